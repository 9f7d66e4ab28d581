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
        console.print("4. firmware booted and modem registered; holding the button for 2 s ...")
        mark = len(vd.events)
        vd.press(hold_s=2.0)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=90, after=mark)
        call = vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=120, after=mark)
    finally:
        vd.stop()

    audio = call.get("audio", {})
    table = Table(title="What the phone network saw")
    table.add_column("what")
    table.add_column("from → to", no_wrap=True)
    table.add_column("details")
    table.add_row("SMS", f"{sms['from']} → {sms['to']}", f"delivered: {sms['delivered']}, {len(sms['text'])} chars")
    table.add_row("call", f"{call['from']} → {call['to']}",
                  f"answered: {call['answered']}, {call['duration_s']:.1f} s; covert: mic gain "
                  f"{audio.get('mic_gain')}, speaker {audio.get('speaker_level')}, ringer {audio.get('ringer_level')}")
    console.print(table)
    console.print("SMS text the trusted contact received:")
    console.print(f"  {sms['text']}", soft_wrap=True, markup=False)
    if keep:
        console.print(f"network log: {net_log}; console: {work / 'console.log'}", soft_wrap=True, markup=False)
    ok = ("maps.google.com/?q=" in sms["text"] and call["answered"]
          and audio.get("speaker_level") == 0 and audio.get("ringer_level") == 0)
    console.print("[bold green]demo OK[/]: SMS with location delivered, C4 call answered covertly" if ok
                  else "[bold red]demo FAILED[/]")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return ok
