"""Alert latency on the virtual device at time_scale=1.0 (the simulator's SIM800-manual
typical latencies), split into the firmware's share and the modem's.

t0 is the moment the "EV alert" console line reached the rig (the firmware prints it
once the gesture was recognised and the alert machine handled it). Milestones, all from
the modem's AT trace (sim800.at_log) and the phone network's event times:

    a  first AT command of the alert reaches the modem
    b  ATD<C4>; reaches the modem
    c  first AT+CMGS reaches the modem
    d  the modem prints +CMGS: <mr> (the SMS was accepted by the network)
    e  C4 answers (the network's call_connected)

Each interval [t0, milestone] is split with rigtap.split_turns(): the modem's turn runs
from a command's CR (or the SMS's Ctrl-Z) to its final result code or '> ' prompt; the rest
is the firmware's (reacting to replies, its own work, scheduling, the rig's socket hop).
Also reported, outside the budget: the gesture deadline (button pressed + hold_ms) to
"EV alert", i.e. the time the firmware takes to notice the hold and log it.
"""
from __future__ import annotations

import statistics
import time

from ..rules import build_config
from ..sim.flashdir import install
from ..sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from . import budget_row, info_row
from .rigtap import TappedDevice, turns

NAME = "latency"
FIRMWARE_BUDGET_MS = 100.0
HOLD_MS = 800
TOL_S = 0.005   # a command written in the same tick as the console line may be read first

MILESTONES = (
    ("a", "first AT command"),
    ("b", "ATD issued"),
    ("c", "first AT+CMGS issued"),
    ("d", "SMS accepted (+CMGS)"),
    ("e", "call answered"),
)


def one_alert(workdir, time_scale=1.0, board="tcall_sim800l_axp192"):
    """Boot a provisioned virtual device, raise one alert; return the timeline (seconds)."""
    flash = workdir / "flash"
    config = build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4],
                          device_id="BS-0042", hold_ms=HOLD_MS)
    install(flash, board, config)
    # gps_ttff_s: a first fix 2 s after power-on, as a button in standby has one (its GPS duty
    # cycle): the usual alert, with its position (without, she gets the serving cell's)
    vd = TappedDevice(flash, board=board, time_scale=time_scale, gps_ttff_s=2.0,
                      network_log=workdir / "net.jsonl", console_log=workdir / "console.log")
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=180)
        vd.wait_at_quiet(1.0 * max(time_scale, 0.2), timeout=30)
        # Standby is where an alert starts: if the firmware lets the modem sleep, wait for it.
        deadline = time.monotonic() + 20 * max(time_scale, 0.2)
        while not vd.call(lambda: vd.modem.sleeping) and time.monotonic() < deadline:
            time.sleep(0.1)
        modem_asleep = vd.call(lambda: vd.modem.sleeping)
        mark_console = vd.console_offset()
        mark_events = len(vd.events)
        mark_button = len(vd.button_stamps)
        vd.press(hold_s=HOLD_MS / 1000 + 0.5, bounce=False)
        t_ev = vd.wait_console_time("EV alert ", since=mark_console, timeout=30)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT,
                            timeout=120, after=mark_events)
        conn = vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4,
                             timeout=120, after=mark_events)
        vd.wait_console_time("EV sms_ok", since=mark_console, timeout=30)
        log = vd.at_snapshot()
        t_fw_answer = vd.console_time("EV call_active", since=mark_console)
        pressed = next(t for t, lv in vd.button_stamps[mark_button:]
                       if lv == vd.board["button"]["active"])
    finally:
        vd.stop()

    after = [e for e in log if e[0] >= t_ev - TOL_S]
    t0 = min([t_ev] + [e[0] for e in after[:1] if e[1] == "rx"])

    def first(direction, needle):
        for when, d, data in after:
            if d == direction and needle in data:
                return when
        return None

    first_cmd = next((e for e in after if e[1] == "rx"), None)
    times = {
        "a": first_cmd[0] if first_cmd else None,
        "b": first("rx", b"ATD"),
        "c": first("rx", b"AT+CMGS"),
        "d": first("tx", b"+CMGS:"),
        "e": conn["t"],
    }
    out = {"t_press_to_ev_ms": (t_ev - (pressed + HOLD_MS / 1000)) * 1000,
           "modem_asleep_at_press": modem_asleep,
           "first_command": first_cmd[2].decode(errors="replace").strip() if first_cmd else None,
           "sms_network_t_ms": (sms["t"] - t0) * 1000,
           "firmware_saw_answer_ms": None if t_fw_answer is None else (t_fw_answer - t0) * 1000,
           "commands": [(round((w - t0) * 1000, 2), d, data.decode(errors="replace").strip())
                        for w, d, data in after if w <= (times["e"] or t0) + 0.5][:60]}
    for k, t in times.items():
        if t is None:
            out[k] = None
            continue
        tr = turns(log, t0, t)
        out[k] = {"total_ms": (t - t0) * 1000, "firmware_ms": tr["firmware"] * 1000,
                  "modem_ms": (tr["modem"] + tr["unanswered"]) * 1000,
                  "unanswered_ms": tr["unanswered"] * 1000, "commands": tr["commands"]}
    return out


def run(ctx):
    n = ctx.samples or (1 if ctx.quick else 3)
    runs = []
    for i in range(n):
        runs.append(one_alert(ctx.scratch(f"latency-{i}")))
    rows = []

    def med(k, part):
        vals = [r[k][part] for r in runs if r.get(k)]
        return statistics.median(vals) if vals else None

    detail_runs = {"samples": n, "runs": runs}
    for k, label in MILESTONES:
        total, fw, modem = med(k, "total_ms"), med(k, "firmware_ms"), med(k, "modem_ms")
        lost = med(k, "unanswered_ms")
        split = "" if total is None else f"firmware {fw:.1f} ms + modem/network {modem:.0f} ms"
        if lost:
            split += f" (of which {lost:.0f} ms an unanswered wake-up AT)"
        if k == "a" and runs[0].get("first_command"):
            split += f"; it is {runs[0]['first_command']}"
        rows.append(info_row(f"Alert → {label} ({k})", total, "ms", key=f"latency.{k}.total_ms",
                             note=split, detail={"firmware_ms": fw, "modem_ms": modem}))
        if k in ("b", "c"):
            worst = max((r[k]["firmware_ms"] for r in runs if r.get(k)), default=None)
            rows.append(budget_row(f"  firmware share of ({k})", fw, "ms", FIRMWARE_BUDGET_MS,
                                   key=f"latency.{k}.firmware_ms",
                                   note=f"median of {n}; worst {worst:.1f} ms" if worst is not None else "",
                                   detail={"worst_ms": worst}))
    asleep = sum(1 for r in runs if r["modem_asleep_at_press"])
    rows[0].note += f"; modem asleep (AT+CSCLK) at the press in {asleep} of {n}"
    pre = statistics.median(r["t_press_to_ev_ms"] for r in runs)
    rows.append(info_row("Gesture deadline → \"EV alert\" (firmware)", pre, "ms",
                         key="latency.gesture_to_ev_ms",
                         note="press + hold_ms until the console line; not in the budget",
                         detail=detail_runs))
    for r in rows:
        r.group = NAME
    return rows


if __name__ == "__main__":
    import json
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        print(json.dumps(one_alert(Path(d)), indent=1))
        print("took", time.monotonic() - t)
