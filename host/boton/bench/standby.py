"""Standby: the firmware's duty cycle on the virtual device, turned into days per battery.

For every board profile with a battery, a provisioned virtual device of that board boots
at time_scale=1.0 and is left alone for WINDOW_S seconds (the firmware's own health/status
timers are real seconds); the boards run side by side. Observed:

* the ESP32: time in light sleep, as the rig times the firmware's hw.lightsleep() (the
  boards differ: only one whose SIM800 RI line reaches the ESP32 may sleep);

* the MicroPython process: wake-ups per second (voluntary context switches: each is a
  return from poll() in the asyncio loop) and CPU busy share, from /proc;
* the modem: AT commands sent, share of time a command was outstanding, share of time
  the SIM800 simulation was asleep (it sleeps only after AT+CSCLK=1/2);
* the GPS: every level the firmware drove on the board's gps.enable pin (the rig powers
  the simulated receiver from it). The GPS share is the last completed on-period (boot:
  on until a fresh fix) divided by the firmware's wake period (gps_every_s, read from
  powerpolicy.py's default); never switched off means on 100 %.

Static facts from the firmware sources (firmware/lib minus the hw_* backends), for the
record: whether it calls lightsleep()/deepsleep(), sends AT+CSCLK, or writes to the GPS
UART (a power-save command). A part never seen asleep is awake 100 % in the model.

Currents (mA, typical, see docs/performance.md for the sources):
    ESP32      active (CPU on, radio off) 40        light sleep 0.8
    SIM800     idle, registered 10-20 (15 used)     sleep (AT+CSCLK) 1
    A7670      idle, registered 15-30 (20 used)     sleep (AT+CSCLK) 2      ASSUMED: no
               current figure in data/at/a76xx.md (SIMCom's hardware design manual has
               them: measure on a T-A7670X on battery, its modem cannot sleep on USB)
    NEO-6M     continuous/acquisition 45            power save 11      off 0
    L76K       continuous 25                                           off 0   ASSUMED
               (no datasheet figure at hand); the T-A7670X's shield has no enable pin:
               always on
    power chip (boards with one, boards.power_chip): IP5306 with its boost kept on,
               AXP192 with DC-DC3 and the battery ADC on: I_PMU below, ASSUMED (no
               datasheet figure for these states was at hand: measure them on a board)
days = battery_mah / mean current / 24, nominal capacity (no derating, no self-discharge).
"""
from __future__ import annotations

import os
import re
import time

from ..paths import BOARDS, FIRMWARE
from ..rules import build_config
from ..sim.flashdir import install
from ..boards import RENAMED, load_board, power_chip
from ..sim.gps import restart_mode
from ..sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from . import info_row
from .rigtap import TappedDevice, split_turns

NAME = "standby"
WINDOW_S = 125.0    # the health check sends AT after 60 s of modem silence: ~every 120 s
QUICK_WINDOW_S = 20.0

I_ESP_ACTIVE, I_ESP_LIGHT = 40.0, 0.8
I_MODEM_IDLE, I_MODEM_IDLE_RANGE, I_MODEM_SLEEP = 15.0, (10.0, 20.0), 1.0
I_GPS_ON, I_GPS_PSM, I_GPS_OFF = 45.0, 11.0, 0.0
# Power chip's own draw in standby (mA), assumed until measured: a 5 V boost kept on at no
# load switches all the time; the AXP192 runs one buck (DC-DC3) and its ADC.
I_PMU = {"ip5306": 1.0, "axp192": 0.2}


class PartCurrents:
    """One part's standby currents (mA): `on` (awake: modem idle and registered, GPS
    running), `on_range` (low, high), `rest` (modem asleep, GPS off); `assumed` when no
    datasheet figure backs them."""

    def __init__(self, label, on, on_range, rest, assumed=False):
        self.label, self.on, self.on_range, self.rest, self.assumed = label, on, on_range, rest, assumed


# by the board profile's modem.family and gps.module (a profile without one: NEO-6M)
MODEMS = {"sim800": PartCurrents("SIM800", I_MODEM_IDLE, I_MODEM_IDLE_RANGE, I_MODEM_SLEEP),
          "a7670": PartCurrents("A7670", 20.0, (15.0, 30.0), 2.0, assumed=True)}
GPS_RECEIVERS = {"NEO-6M": PartCurrents("NEO-6M", I_GPS_ON, (I_GPS_ON, I_GPS_ON), I_GPS_OFF),
                 "L76K": PartCurrents("L76K", 25.0, (25.0, 25.0), 0.0, assumed=True)}


def board_parts(profile):
    """(modem, GPS) PartCurrents of a board profile."""
    return (MODEMS[profile["modem"].get("family", "sim800")],
            GPS_RECEIVERS[profile.get("gps", {}).get("module") or "NEO-6M"])


def _proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    with open(f"/proc/{pid}/status") as f:
        txt = f.read()
    vol = int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", txt).group(1))
    return cpu, vol


def _asleep(vd):
    """Seconds the virtual ESP32 has spent in light sleep (the rig counts them from the
    firmware's hw.lightsleep()), the current sleep included; None if the rig cannot tell."""
    if not hasattr(vd, "asleep_s"):
        return None
    since = getattr(vd, "_sleep_since", None)
    return vd.asleep_s + (time.monotonic() - since if since is not None else 0.0)


def static_facts(lib=FIRMWARE / "lib"):
    src = "\n".join(p.read_text() for p in sorted(lib.glob("*.py")) if not p.name.startswith("hw"))
    return {
        "esp_sleep_calls": len(re.findall(r"\b(?:lightsleep|deepsleep)\s*\(", src)),
        "modem_csclk": "CSCLK" in src,
        "gps_uart_writes": len(re.findall(r"gps_uart\.write|PUBX|\\xb5\\x62|PMTK", src)),
    }


def measure(workdir, window_s, board="tcall_sim800l_axp192"):
    flash = workdir / "flash"
    install(flash, board, build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4],
                                       device_id="BS-0042"))
    # The boot's GPS run stands for every wake's (gps_on_times): the receiver starts as it
    # does after each rest of the duty cycle, hot on a backup cell, else cold.
    wake = restart_mode(bool(load_board(board)["gps"].get("backup")), since_fix_s=0)
    vd = TappedDevice(flash, board=board, time_scale=1.0, network_log=workdir / "net.jsonl", gps_start=wake)
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=180)
        vd.wait_at_quiet(2.0, timeout=30)
        pid = vd._proc.pid
        cpu0, vol0 = _proc(pid)
        t0 = time.monotonic()
        slept0 = _asleep(vd)
        asleep = samples = 0
        while time.monotonic() - t0 < window_s:
            if vd.call(lambda: vd.modem.sleeping):
                asleep += 1
            samples += 1
            time.sleep(0.25)
        t1 = time.monotonic()
        slept1 = _asleep(vd)
        cpu1, vol1 = _proc(pid)
        log = vd.at_snapshot()
        gps_pin = vd.board["gps"].get("enable")
        gps_driven = [(t, lv) for t, p, lv in vd.pin_history if p == gps_pin] if gps_pin is not None else []
        same_process = vd._proc.pid == pid
    finally:
        vd.stop()
    fw, modem, commands = split_turns(log, t0, t1)
    cmds = [d.decode(errors="replace").strip() for t, k, d in log if t0 <= t <= t1 and k == "rx"]
    span = t1 - t0
    esp_asleep = None if slept0 is None else min(1.0, (slept1 - slept0) / span)
    return {"board": board, "window_s": span, "wakeups_per_s": (vol1 - vol0) / span,
            "cpu_share": (cpu1 - cpu0) / span, "esp_asleep_share": esp_asleep,
            "at_commands": commands, "at_per_hour": commands * 3600 / span,
            "modem_busy_share": modem / span, "modem_asleep_share": asleep / max(1, samples),
            "gps_enable_pin": gps_pin, "gps_enable_driven": gps_driven, "commands": cmds[:40],
            "gps_period_s": gps_period_s(),
            "power_chip": power_chip(load_board(board))[0],
            "modem_family": vd.board["modem"].get("family", "sim800"),
            "gps_module": vd.board["gps"].get("module") or "NEO-6M",
            "same_process": same_process}


def gps_period_s(lib=FIRMWARE / "lib"):
    """The firmware's default GPS wake period (powerpolicy.py: cfg.get("gps_every_s", N)),
    or None."""
    try:
        src = (lib / "powerpolicy.py").read_text()
    except OSError:
        return None
    found = re.search(r"""["']gps_every_s["']\s*,\s*(\d+(?:\.\d+)?)""", src)
    return float(found.group(1)) if found else None


def gps_on_times(driven):
    """Durations (s) of the completed on-periods of the GPS enable pin."""
    out, on_at = [], None
    for t, lv in driven:
        if lv and on_at is None:
            on_at = t
        elif not lv and on_at is not None:
            out.append(t - on_at)
            on_at = None
    return out


def model(m, facts):
    if m.get("esp_asleep_share") is not None:
        awake = 1.0 - m["esp_asleep_share"]     # the rig timed the firmware's lightsleep()
    elif not facts["esp_sleep_calls"]:
        awake = 1.0                             # it never sleeps
    else:
        awake = 1.0                             # it may sleep, but nobody timed it: assume not
    i_esp = awake * I_ESP_ACTIVE + (1 - awake) * I_ESP_LIGHT
    modem = MODEMS[m.get("modem_family") or "sim800"]
    gps = GPS_RECEIVERS[m.get("gps_module") or "NEO-6M"]
    s = m["modem_asleep_share"]
    i_modem = s * modem.rest + (1 - s) * modem.on
    on_times = gps_on_times(m["gps_enable_driven"])
    period = m.get("gps_period_s")
    if not on_times:
        gps_duty = 1.0          # never switched off: always on
    elif period:
        gps_duty = min(1.0, on_times[-1] / period)   # one fix-seeking run per wake period
    else:
        gps_duty = m.get("gps_on_share_window", 1.0)
    i_gps = gps_duty * gps.on + (1 - gps_duty) * gps.rest
    i_pmu = I_PMU.get(m.get("power_chip"), 0.0)
    total = i_esp + i_modem + i_gps + i_pmu
    lo = awake * I_ESP_ACTIVE + (1 - awake) * I_ESP_LIGHT + s * modem.rest \
        + (1 - s) * modem.on_range[0] + i_gps + i_pmu
    hi = lo - (1 - s) * modem.on_range[0] + (1 - s) * modem.on_range[1]
    return {"esp_awake_share": awake, "i_esp": i_esp, "i_modem": i_modem, "i_gps": i_gps,
            "i_pmu": i_pmu, "gps_duty": gps_duty, "gps_on_s": on_times[-1] if on_times else None, "gps_period_s": period,
            "i_total": total, "i_total_range": (lo, hi)}


def target_current(pm=None):
    """What the same hardware would draw with the ESP32 in light sleep between events
    (its awake time neglected) and the modem and GPS as measured; without a measurement,
    with the SIM800 asleep and the GPS off."""
    if pm is None:
        return I_ESP_LIGHT + I_MODEM_SLEEP + I_GPS_OFF
    return I_ESP_LIGHT + pm["i_modem"] + pm["i_gps"] + pm.get("i_pmu", 0.0)


def boards():
    # A renamed profile (boards.RENAMED) is measured under its new names only.
    return {p.stem: load_board(p.stem) for p in sorted(BOARDS.glob("*.json")) if p.stem not in RENAMED}


def run(ctx):
    from concurrent.futures import ThreadPoolExecutor

    window = QUICK_WINDOW_S if ctx.quick else WINDOW_S
    names = [n for n, b in boards().items() if b.get("battery_mah")]
    # The boards differ (RI line for light sleep, GPS switch): each is measured on its own
    # virtual device, all at once (they are idle most of the time; 2 cores suffice).
    with ThreadPoolExecutor(len(names)) as ex:
        futs = {n: ex.submit(measure, ctx.scratch(f"standby-{n}"), window, n) for n in names}
        results = {n: f.result() for n, f in futs.items()}
    facts = static_facts()
    rows = []
    for name in names:
        m = results[name]
        pm = model(m, facts)
        modem, gps = board_parts(boards()[name])
        assumed = " (assumed)"
        mah = boards()[name]["battery_mah"]
        why = []
        if pm["esp_awake_share"] >= 0.999:
            why.append("ESP32 never light-sleeps")
        else:
            why.append(f"ESP32 asleep {100 * (1 - pm['esp_awake_share']):.0f} %")
        why.append(f"{modem.label} asleep {100 * m['modem_asleep_share']:.0f} %")
        if pm["gps_duty"] >= 1.0:
            why.append("GPS always on" + (" (no enable pin)" if m["gps_enable_pin"] is None else ""))
        elif pm["gps_on_s"] is not None:
            why.append(f"GPS on {pm['gps_on_s']:.1f} s per {pm['gps_period_s'] or 0:.0f} s")
        lo, hi = pm["i_total_range"]
        rows += [
            info_row(f"Standby {name}: current (model)", pm["i_total"], "mA",
                     key=f"standby.{name}.current_ma",
                     note=f"ESP32 {pm['i_esp']:.1f} + {modem.label} {pm['i_modem']:.1f}"
                          + (assumed if modem.assumed else "")
                          + f" + GPS {gps.label} {pm['i_gps']:.2f}" + (assumed if gps.assumed else "")
                          + (f" + {m['power_chip'].upper()} {pm['i_pmu']:.1f} (assumed)" if pm["i_pmu"] else "")
                          + "; "
                          + ", ".join(why),
                     detail={"model": pm, "measured": m, "static": facts}),
            info_row(f"Standby {name}: {mah} mAh battery", mah / pm["i_total"] / 24, "days",
                     key=f"standby.{name}.days",
                     note=f"{mah / hi / 24:.3g}–{mah / lo / 24:.3g} days for {modem.label} idle "
                          f"{modem.on_range[1]:g}–{modem.on_range[0]:g} mA" + (assumed if modem.assumed else "")
                          + ("" if pm["esp_awake_share"] < 0.999 else
                             f"; {mah / target_current(pm) / 24:.0f} days if the ESP32 light-slept too"),
                     detail={"battery_mah": mah, "days_if_esp32_slept": mah / target_current(pm) / 24}),
            info_row(f"Standby {name}: wake-ups / AT commands", m["wakeups_per_s"], "/s",
                     key=f"standby.{name}.wakeups_per_s",
                     note=f"unix-port poll() returns; CPU busy {100 * m['cpu_share']:.1f} %; "
                          f"{m['at_per_hour']:.0f} AT commands/h ({m['at_commands']} in {m['window_s']:.0f} s), "
                          f"modem busy {100 * m['modem_busy_share']:.2f} %"),
        ]
    for r in rows:
        r.group = NAME
    return rows
