"""What provisioning costs on the serial link, on a virtual device (blank flash).

Three steps, each exactly as the CLI does it (one Device session, which soft-resets into
the raw REPL on entry and restarts the firmware on exit):

    first deploy           prov.deploy() onto an empty flash
    re-deploy, no change   prov.deploy() again: only hashes travel
    config re-provision    prov.write_config() of a changed config over an existing one
                           (after a first provision that is not reported)

Figures per step: Device.bytes_written (the Python code sent for exec) and round_trips
(exec calls), the bytes that really crossed the link each way (raw-REPL framing and
replies included, counted by the rig), the wall time on the virtual device, and that byte
count at 115200 baud (8N1) — the floor a real USB-serial link adds, before the board's
flash writes.
"""
from __future__ import annotations

import time

from .. import provision as prov
from .. import rules
from ..device import Device
from ..sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from . import info_row
from .rigtap import TappedDevice

NAME = "provisioning"
BOARD = "tcall_sim800l_axp192"
BAUD = 115200


def _step(vd, fn):
    h0, c0, t0 = vd.host_bytes, vd.console_offset(), time.monotonic()
    with Device(vd.repl_url, timeout=30) as dev:
        result = fn(dev)
        written, trips = dev.bytes_written, dev.round_trips
    wall = time.monotonic() - t0
    up, down = vd.host_bytes - h0, vd.console_offset() - c0
    return {"bytes_written": written, "round_trips": trips, "wire_up": up, "wire_down": down,
            "wall_s": wall, "at_115200_s": (up + down) * 10 / BAUD, "result": result}


def measure(workdir):
    config = rules.build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4],
                                device_id="BS-0042", pin="482913")
    changed = dict(config, contacts=[DEFAULT_CONTACT, "+524491112244"])
    vd = TappedDevice(workdir / "flash", board=BOARD, time_scale=0.1)
    vd.start()
    try:
        out = {}
        first = _step(vd, lambda d: prov.deploy(d, BOARD))
        out["first_deploy"] = first
        out["redeploy"] = _step(vd, lambda d: prov.deploy(d, BOARD))
        out["first_provision"] = _step(vd, lambda d: prov.write_config(d, config))
        out["reprovision"] = _step(vd, lambda d: prov.write_config(d, changed))
    finally:
        vd.stop()
    for k, v in out.items():
        r = v.pop("result")
        if isinstance(r, tuple):
            v["files_copied"], v["files_total"] = len(r[0]), r[1]
    return out


LABELS = (("first_deploy", "first deploy"), ("redeploy", "re-deploy, no change"),
          ("reprovision", "config-only re-provision"))


def run(ctx):
    m = measure(ctx.scratch("provisioning"))
    rows = []
    for k, label in LABELS:
        s = m[k]
        files = f", {s['files_copied']}/{s['files_total']} files copied" if "files_copied" in s else ""
        rows.append(info_row(f"Provision: {label}: bytes written", s["bytes_written"], "B",
                             key=f"provisioning.{k}.bytes_written",
                             note=f"{s['round_trips']} round trips; link {s['wire_up']} B up / "
                                  f"{s['wire_down']} B down{files}",
                             detail=dict(s)))
        rows.append(info_row(f"Provision: {label}: wall time", s["wall_s"], "s",
                             key=f"provisioning.{k}.wall_s",
                             note=f"virtual device; ≥ {s['at_115200_s']:.1f} s of link time at 115200 baud"))
    for r in rows:
        r.group = NAME
    return rows
