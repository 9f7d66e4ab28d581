"""`make demo`: the whole alert path on a virtual device, as a technician would run it."""
import shutil
import tempfile
from pathlib import Path

from rich.table import Table

from . import provision as prov
from . import rules
from .device import Device
from .sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice

DEMO_ALIAS = "Luna"
MAPS = "maps.google.com/?q="


def run_demo(console, time_scale=0.3, keep=False) -> bool:
    work = Path(tempfile.mkdtemp(prefix="boton-demo-"))
    net_log = work / "network.jsonl"
    console.rule("Botón Seguro — demo on a virtual device")
    vd = VirtualDevice(work / "flash", time_scale=time_scale, network_log=net_log,
                       console_log=work / "console.log", c4_hangup_after_s=20)
    vd.start()
    try:
        console.print(f"1. virtual device up ({vd.interpreter.label}); REPL at {vd.repl_url}")
        with Device(vd.repl_url) as dev:
            copied, total = prov.deploy(dev, "tcall_sim800l_axp192")
        console.print(f"2. boton deploy: {len(copied)} of {total} files copied and verified")
        with Device(vd.repl_url) as dev:
            config = rules.build_config(alias=DEMO_ALIAS, contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4],
                                        device_id="BS-0042", hold_ms=1500)
            digest = prov.write_config(dev, config)
        console.print(f"3. boton provision: alias {DEMO_ALIAS!r}, 1 trusted contact, C4; config {digest[:12]} read back")
        vd.wait_console("EV ready", timeout=60)
        fixed, ttff = vd.call(lambda: (vd.gps.fixed, vd.gps.ttff_s))
        console.print("4. firmware booted and modem registered; " + (
            "the GPS already has its fix" if fixed else
            f"the GPS is on its cold start ({vd.gps_receiver}: first fix ~{ttff:g} s after power-on, "
            f"{ttff * time_scale:g} s here), and her alert does not wait for it"))
        console.print("   holding the button for 2 s ...")
        mark = len(vd.events)
        vd.press(hold_s=2.0)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=90, after=mark)
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=120, after=mark)
        # without a fix at the press, her position follows as an update once the GPS has one
        located = sms if MAPS in sms["text"] else vd.wait_event(
            lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT and MAPS in e["text"],
            timeout=90 + 2 * ttff * time_scale, after=mark)
    finally:
        vd.stop()

    audio = call.get("audio", {})
    table = Table(title="What the phone network saw")
    table.add_column("what")
    table.add_column("from → to", no_wrap=True)
    table.add_column("details")
    for what, e in (("SMS", sms), ("SMS update", located))[:1 if located is sms else 2]:
        table.add_row(what, f"{e['from']} → {e['to']}", f"delivered: {e['delivered']}, {len(e['text'])} chars")
    table.add_row("call", f"{call['from']} → {call['to']}",
                  f"answered: {call['answered']}, {call['duration_s']:.1f} s; covert: mic gain "
                  f"{audio.get('mic_gain')}, speaker {audio.get('speaker_level')}, ringer {audio.get('ringer_level')}")
    console.print(table)
    console.print("SMS text the trusted contact received" + ("" if located is sms else
                  " (at once, without waiting for the GPS; then, once it had a fix, her position)") + ":")
    for e in (sms,) if located is sms else (sms, located):
        console.print(f"  {e['text']}", soft_wrap=True, markup=False)
    if keep:
        console.print(f"network log: {net_log}; console: {work / 'console.log'}", soft_wrap=True, markup=False)
    ok = (located["delivered"] and call["answered"]
          and audio.get("speaker_level") == 0 and audio.get("ringer_level") == 0)
    console.print("[bold green]demo OK[/]: SMS with location delivered, C4 call answered covertly" if ok
                  else "[bold red]demo FAILED[/]")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return ok
