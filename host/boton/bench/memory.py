"""Heap of the firmware on the MicroPython unix port (64-bit: pointers, small ints and GC
blocks are twice an ESP32's, so these bytes are up to 2x what a board uses).

Two measurements:

1. In the running virtual device. The bench lays its own main.py on the virtual flash
   (the firmware is not touched): it records gc.mem_alloc() once boot.py has run, starts
   a sampler task (gc.collect() then gc.mem_alloc() every SAMPLE_MS, printed as
   "BENCH mem <alloc> <peak>") and then runs `app.main()` exactly as the real main.py
   does. A provisioned device with five trusted contacts boots, the GPS simulator streams
   NMEA at 1 Hz throughout, the button raises an alert and the bench waits for every
   SMS and the answered call. Figures: live heap after boot ("EV ready") and the highest
   live heap sampled during the alert, both as the firmware's share (minus what was
   allocated before main.py: board_repl.py, the stand-in for a board's C REPL) and raw.
   Sampling misses transients shorter than SAMPLE_MS; measurement 2 bounds them.

2. Outside, on MicroPython directly (tools/…/bench only): the deployed .mpy modules are
   imported as main.py does it (bootcheck.check() imports them, then the check's module
   is dropped; safe mode's is not loaded), App is built as app._main builds it, with stand-in UART/Pin objects (its
   board.json and config.json read by store.read_json), and an alert with five contacts
   is driven through AlertMachine synchronously while NMEA from a real log is parsed;
   every action is carried out as app.act() would (event log, persisted state, rendered
   SMS texts). Live heap after each step, micropython.mem_info() at the end, and the
   smallest -X heapsize the whole scenario completes in (binary search), which includes
   transients, fragmentation and the GC's own tables.
   `hw` is what a board loads: with .mpy files, hw.py and lib/hw_esp32.mpy over a stand-in
   `machine` (on the chip a C module), not hw_sim.py, the virtual device's socket layer and
   chip model that never runs on a board. The frozen build keeps hw_sim (frozen there: its
   code takes no heap either way). The scenario (worstalert.py) and the stand-in are frozen
   into the 32-bit interpreters: on a chip neither exists, and their code and names would
   otherwise take heap (a 1,280-entry qstr pool, 9 KB, once the names pass 1,260).
"""
from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path

from .. import build, mpy
from ..paths import DATA
from ..release import board_json
from ..rules import build_config
from ..sim.flashdir import install
from ..sim.rig import DEFAULT_C4
from . import budget_row, info_row
from .rigtap import TappedDevice

NAME = "memory"
# Budgets on the 32-bit builds (issue 13): the frozen worst alert must fit the ESP32's 56 KB
# initial heap with room for fragmentation; the .mpy one must stay below the 112 KB the port
# sizes its first heap growth for. The 64-bit figures are context only.
ESP32_FROZEN_PEAK_KB = 48.0
ESP32_MPY_MIN_HEAP_KB = 96.0
# The worst alert on the virtual device (frozen; asyncio tasks, streams, fragmentation over
# a real run) must complete in the ESP32's 56 KB with 4 KB to spare.
ESP32_DEVICE_MIN_HEAP_KB = 52.0
SAMPLE_MS = 20
CONTACTS = ["+524491112233", "+524491112234", "+524491112235", "+524491112236", "+524491112237"]
NMEA_LOG = DATA / "nmea" / "neo-m8n.log"

# The SMS command of the worst alert carries the right PIN: the device keeps only its hash.
BENCH_PIN = "482913"

HARNESS_MAIN = """# bench harness (boton.bench.memory), not the firmware's main.py
import gc
gc.collect()
_base = gc.mem_alloc()
print("BENCH base", _base, gc.mem_free())
import asyncio

_peak = [0, 0]


async def _sampler():
    n = 0
    while True:
        gc.collect()
        a = gc.mem_alloc()
        n += 1
        if a > _peak[0] or n %% %(every)d == 0:
            _peak[0] = max(a, _peak[0])
            print("BENCH mem", a, _peak[0])
        await asyncio.sleep_ms(%(ms)d)


asyncio.create_task(_sampler())
import app

app.main()
"""

_SAMPLE_RE = re.compile(rb"BENCH mem (\d+) (\d+)")


def in_device(workdir, time_scale=0.1, board="tcall_sim800l_axp192"):
    flash = workdir / "flash"
    config = build_config(alias="Luna", contacts=CONTACTS, c4=[DEFAULT_C4], device_id="BS-0042",
                          hold_ms=800, pin=BENCH_PIN)
    install(flash, board, config)
    (flash / "main.py").write_text(HARNESS_MAIN % {"every": max(1, 250 // SAMPLE_MS), "ms": SAMPLE_MS})
    # the 64-bit context rows: the 32-bit figures are esp32_rows()
    # gps_ttff_s: a first fix 2 s after power-on, as a button in standby has one: the worst
    # alert carries her position and the GPS streams throughout (the product starts cold)
    vd = TappedDevice(flash, board=board, time_scale=time_scale, contacts=CONTACTS, interpreter="pypi",
                      gps_ttff_s=2.0, network_log=workdir / "net.jsonl", console_log=workdir / "console.log")
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=120)
        ready = vd.console_all.find(b"EV ready")
        vd.wait_console("BENCH mem", since=0, timeout=10)
        time.sleep(0.5)
        mark = vd.console_offset()
        mark_ev = len(vd.events)
        vd.press(hold_s=1.3, bounce=False)
        want = set(CONTACTS) | {DEFAULT_C4}
        for n in want:
            vd.wait_event(lambda e, n=n: e["kind"] == "sms" and e["to"] == n, timeout=120, after=mark_ev)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=120, after=mark_ev)
        time.sleep(1.0)  # GPS keeps streaming; the alert's periodic state settles
        end = vd.console_offset()
        text = bytes(vd.console_all)
        resets = vd.resets
    finally:
        vd.stop()
    base = int(re.search(rb"BENCH base (\d+) (\d+)", text).group(1))
    boot = [int(m.group(1)) for m in _SAMPLE_RE.finditer(text, ready)]
    during = [int(m.group(1)) for m in _SAMPLE_RE.finditer(text[:end], mark)]
    sms = sum(1 for _ in re.finditer(rb"EV sms_ok", text[mark:end]))
    return {"base": base, "after_boot_raw": boot[0], "peak_raw": max(during), "samples": len(during),
            "sms_ok": sms, "resets": resets, "memory_error": b"MemoryError" in text}


# ------------------------------------------------------------------ the device, as a chip
# The worst alert on the virtual device itself, with the firmware as a release runs it
# (frozen into the 32-bit build) and the chip's heap (the rig holds what its own Python
# board side does not need, board_repl.hold_chip_heap): 5 contacts, GPS streaming, C4 not
# answering the first call (one redial), an SMS command from C4 and a low battery during
# the alert. Everything counts here that the outside scenario leaves out: the asyncio
# tasks, the UART streams, the event log's writes, fragmentation over a real run's timing.
DEVICE_SMS_COMMAND = "UBICACION " + BENCH_PIN
DEVICE_LOW_BATTERY_MV = 3450
DEVICE_STATUS_EVERY_S = 20   # the battery is read this often (10 min by default), so the low battery lands mid-alert


class _RunFailed(Exception):
    pass


class HeapRunDevice(TappedDevice):
    """A run of the device rows, ended at its first MemoryError or reset: it has failed
    then, and a firmware left with no heap (no SMS, no call) made each of the run's waits
    last its whole 120 s to say so."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._scanned = 0

    def check_parts(self):
        super().check_parts()
        if self.resets or b"MemoryError" in self.console_all[max(0, self._scanned - 16):]:
            raise _RunFailed()
        self._scanned = len(self.console_all)


DEVICE_BOARDS = {"sim800": "tcall_sim800l_axp192", "a7670": "ta7670x_a7670sa"}


def device_worst_alert(workdir, interpreter, time_scale=0.1, board=DEVICE_BOARDS["sim800"]):
    """One run: {"ok": completed without a MemoryError or a reset, "why": what went wrong}."""
    import shutil

    from ..sim.rig import DEFAULT_DEVICE_NUMBER
    shutil.rmtree(workdir, ignore_errors=True)
    flash = workdir / "flash"
    config = build_config(alias="Luna", contacts=CONTACTS, c4=[DEFAULT_C4], device_id="BS-0042",
                          hold_ms=800, pin=BENCH_PIN)
    config["status_every_s"] = DEVICE_STATUS_EVERY_S
    # On a flash image, as a chip holds it: its LittleFS takes heap for each open file, and
    # the rig's image modules shift where the qstr pool grows (a flash folder missed the
    # delivery test call's MemoryError of 2026-12-01, docs/performance.md)
    from .. import image as img
    chip = workdir / "chip.bin"
    workdir.mkdir(parents=True, exist_ok=True)
    chip.write_bytes(img.build_image(img.virtual_firmware(), img.device_files(board, config, frozen=True),
                                     4 * 1024 * 1024))
    vd = HeapRunDevice(flash, board=board, time_scale=time_scale, contacts=CONTACTS, gps_ttff_s=2.0,
                       network_log=workdir / "net.jsonl", flash_image=chip)  # a fix, as above
    vd.interpreter = interpreter
    why = ""
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=120)
        vd.call(vd.network.set_behaviour, DEFAULT_C4, "no_answer")
        mark = len(vd.events)
        vd.press(hold_s=1.3, bounce=False)
        vd.wait_event(lambda e: e["kind"] == "call" and e["to"] == DEFAULT_C4, timeout=120, after=mark)
        vd.call(vd.network.set_behaviour, DEFAULT_C4, "answer")
        vd.call(vd.network.sms_to_device, DEFAULT_C4, DEFAULT_DEVICE_NUMBER, DEVICE_SMS_COMMAND)
        vd.set_battery_mv(DEVICE_LOW_BATTERY_MV)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=120, after=mark)
        for n in CONTACTS:
            vd.wait_event(lambda e, n=n: e["kind"] == "sms" and e["to"] == n, timeout=120, after=mark)
        # C4 gets the alert, then the command's reply: two SMS at least
        vd.wait_event(lambda e: sum(1 for x in vd.events[mark:] if x["kind"] == "sms" and x["to"] == DEFAULT_C4) >= 2,
                      timeout=120, after=mark)
        vd.wait_console("EV low_battery", timeout=120)
    except TimeoutError as e:
        why = str(e).splitlines()[0]
    except _RunFailed:
        pass  # said below
    finally:
        vd.stop()
    text = vd.console_text()
    if "MemoryError" in text:
        why = "MemoryError" + (f"; {why}" if why else "")
    if vd.resets:
        why = f"{vd.resets} reset(s)" + (f"; {why}" if why else "")
    return {"ok": not why, "why": why}


# Runs at the smallest heap found that must also complete. The device runs in real time
# on a shared machine, and where the burst lands in the heap varies from run to run: one
# binary search read 51 to 54 KB on the same firmware (2026-12-05). The row is the heap
# the alert completes in every time, not once.
DEVICE_CONFIRM_RUNS = 2


def device_min_heap_kb(workdir, exe, lo=36, hi=60, board=DEVICE_BOARDS["sim800"]):
    """Smallest chip heap (KB) the device's worst alert completes in, in every one of
    1 + DEVICE_CONFIRM_RUNS runs (a binary search, then the runs again at its result, 1 KB
    up at each failure), and what the largest failing size died of."""
    from ..frozen import DeviceInterpreter

    def run(kb):
        return device_worst_alert(workdir, DeviceInterpreter(str(exe), f"{kb}k", "bench", chip=True), board=board)

    died = ""
    top = hi
    first = run(hi)
    if not first["ok"]:
        return None, f"fails even at {hi} KB: {first['why']}"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = run(mid)
        if r["ok"]:
            hi = mid
        else:
            lo, died = mid, r["why"]
    confirmed = 0
    while confirmed < DEVICE_CONFIRM_RUNS and hi < top:
        r = run(hi)
        if r["ok"]:
            confirmed += 1
        else:
            lo, died, hi, confirmed = hi, r["why"], hi + 1, 0
    return hi, f"at {lo} KB: {died}" if died else ""


# The worst alert itself is worstalert.py, frozen into the 32-bit interpreters (its code
# and names take no heap there, as on a chip, where it does not exist). The 64-bit PyPI
# interpreter has nothing frozen: there it is imported from its source, and counted.
HARNESS = Path(__file__).with_name("worstalert.py")
OUTSIDE = r"""
import sys
sys.path[:] = ['.frozen', %(harness)r]
import worstalert
sys.path[:] = ['', 'lib', '.frozen']
worstalert.main(%(nmea)r, %(pin)r, %(hw)r)
"""

# What the worst alert must have done, or its heap figures measure something smaller.
WORST_ALERT_LOGS = ("call_active", "sms_command", "low_battery")


IMPORTS = r"""
import sys, gc, json
sys.path[:] = ['', 'lib', '.frozen']
class _Stub:
    pass
class machine:  # the chip's built-in C module, for hw_esp32 (see HW_ESP32)
    Pin = WDT = _Stub
sys.modules['machine'] = machine
gc.collect()
b0 = b = gc.mem_alloc()
import asyncio, json, hashlib, binascii, os, time, socket
gc.collect()
a = gc.mem_alloc()
out = [['(MicroPython modules)', a - b]]
b = a
for m in %(mods)r:
    if m == 'hw':  # hw.py picks hw_sim off the chip: give it hw_esp32, as a board has
        sys.modules['hw_sim'] = sys.modules['hw_esp32']
    __import__(m)
    gc.collect()
    a = gc.mem_alloc()
    out.append([m, a - b])
    b = a
print(json.dumps(out))
"""

# leaves first, so each module's figure is its own code (app last: it imports the rest)
IMPORT_ORDER = ("version", "gsm7", "sms", "atargs", "atparse", "aterrors", "dialect_sim800", "gesture",
                "alertsms", "outbox", "callstate", "supervision", "smscommands", "alerttexts",
                "alert", "nmea", "store", "eventlog", "hw_esp32", "hw", "modem", "powerpolicy",
                "radio", "app")


def import_costs(d):
    """Live heap each firmware module adds when imported from its .mpy, in bytes."""
    out = mpy.run(IMPORTS % {"mods": IMPORT_ORDER}, lib=d / "lib", heap="512k", cwd=d)
    costs = json.loads(out.strip().splitlines()[-1])
    sizes = {p.stem: p.stat().st_size for p in (d / "lib").glob("*.mpy")}
    return [{"module": m, "heap": v, "mpy": sizes.get(m)} for m, v in costs]


def _outside_dir(workdir, board="tcall_sim800l_axp192", lib="mpy"):
    """A folder like a board's flash: board.json, config.json and (unless frozen) lib/*.mpy
    as deploy copies them (the 32-bit build's mpy-cross writes the same bytes)."""
    d = workdir / "outside"
    if lib == "mpy":
        build.write_tree(d)
    else:
        d.mkdir(parents=True, exist_ok=True)
        for path, data in build.boot_modules():   # a frozen image's flash keeps bootcheck.mpy too
            (d / path).write_bytes(data)
    (d / "board.json").write_bytes(board_json(board))
    cfg = build_config(alias="Luna", contacts=CONTACTS, c4=[DEFAULT_C4], device_id="BS-0042",
                       pin=BENCH_PIN)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


# lib/ as a ROMFS: the image frozen into the interpreter (frozen.unix32_romfs) mounted
# where MicroPython's ROMFS variant mounts a board's romfs partition
ROMFS_MOUNT = "import vfs, romimage\nvfs.mount(vfs.VfsRom(romimage.IMAGE), '/rom')\n"


def _outside_run(d, heap, exe=None, rom=False):
    # a flash with lib/hw_esp32.mpy: load hw as a board does (worstalert._load_hw)
    hw = "esp32" if rom or (d / "lib" / "hw_esp32.mpy").exists() else "frozen"
    code = OUTSIDE % {"harness": str(HARNESS.parent), "nmea": str(NMEA_LOG), "pin": BENCH_PIN, "hw": hw}
    if rom:
        code = ROMFS_MOUNT + code.replace("'lib',", "'/rom/lib',")
    for f in [*d.glob("log.*"), *d.glob("alert.json")]:
        f.unlink()
    return mpy.run(code, lib=d / "lib", heap=heap, cwd=d, timeout=120, exe=exe)


def romfs_image(lib) -> bytes:
    """The ROMFS image `boton deploy` writes, of the lib/*.mpy in folder `lib`."""
    from .. import romfs
    return romfs.image((p.name, p.read_bytes()) for p in Path(lib).glob("*.mpy"))


def outside_romfs(workdir):
    """The worst alert with lib/*.mpy run in place from a ROMFS (nothing else on the flash):
    {"min_heap_kb", "peak_raw", "after_import", "image", "missing", "build"}."""
    from .. import frozen
    d = _outside_dir(workdir, lib="mpy")
    image = romfs_image(d / "lib")
    built = frozen.unix32_romfs(image)
    if built.exe is None:
        return {"why": built.reason}
    import shutil
    shutil.rmtree(d / "lib")   # the flash holds no lib/: what imports comes from the ROMFS
    out = _outside_run(d, "256k", built.exe, rom=True)
    steps = json.loads(out.split("STEPS", 1)[1].splitlines()[0])
    _, missing = _scenario(out)
    return {"min_heap_kb": min_heap_kb(d, built.exe, rom=True), "peak_raw": max(v[2] for v in steps),
            "after_import": steps[0][1], "image": len(image), "missing": missing, "build": built.key}


def _scenario(out):
    """What the run did, and what it missed of the worst alert ("" = all of it)."""
    seen = json.loads(out.split("SEEN", 1)[1].splitlines()[0])
    missing = [k for k in WORST_ALERT_LOGS if k not in seen["logged"]]
    if seen["dial"] < 2:
        missing.append("redial")
    if seen["sms"] < len(CONTACTS) + 1 + 1 + len(CONTACTS):   # alert + C4 + command reply + low battery
        missing.append(f"only {seen['sms']} SMS")
    return seen, ", ".join(missing)


# MicroPython grows its table of interned names (qstrs) in pools of doubling size: 20, 40,
# ... 640 entries (1,260 in all), then one of 1,280 entries, 9 KB in one piece on a 32-bit
# build. The .mpy firmware's names sit just below that step.
QSTR_POOL_STEP = 1260


def mpy_names(data: bytes) -> set[str]:
    """The names a .mpy file has MicroPython intern as it loads (its qstr table, less the
    core's static names, which every build has). Format 6, py/persistentcode.c."""
    if data[:2] != b"M\x06":
        raise ValueError("not a version 6 .mpy")
    pos = 4

    def uint():
        nonlocal pos
        value = 0
        while True:
            b = data[pos]
            pos += 1
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
    if data[2] & 0x40:        # architecture flags
        uint()
    n_qstr = uint()
    uint()                    # n_obj
    names = set()
    for _ in range(n_qstr):
        n = uint()
        if not n & 1:         # odd: a static name's index
            names.add(data[pos:pos + (n >> 1)].decode())
            pos += (n >> 1) + 1
    return names


def _stand_in_names() -> set[str]:
    """Every name in worstalert's stand-ins for the chip's C modules (in its image there)."""
    tree = ast.parse(HARNESS.read_text())
    stand_ins = [n for n in tree.body if getattr(n, "name", None) in ("machine", "esp32", "_Pin", "_Uart", "_uart")]
    names = set()
    for node in (n for s in stand_ins for n in ast.walk(s)):
        for field in ("name", "id", "attr", "arg"):
            if isinstance(getattr(node, field, None), str):
                names.add(getattr(node, field))
    return names


def harness_shared_names(flash: Path) -> int:
    """How many of the firmware's names (the .mpy files on `flash`) the frozen harness names
    too: in the image's own table on the bench's builds, but interned on a chip. An upper
    bound: some (gc, sys, json...) are in a chip's own table too."""
    firmware = set().union(*(mpy_names(p.read_bytes()) for p in flash.rglob("*.mpy")))
    harness = mpy_names(build.compile_module(HARNESS))
    return len((harness & firmware) - _stand_in_names())


def min_heap_kb(d, exe=None, lo=8, hi=256, rom=False):
    """Smallest -X heapsize (KB) the scenario completes in, by binary search (lo fails, hi works)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _outside_run(d, f"{mid}k", exe, rom)
            hi = mid
        except mpy.MicroPythonError:
            lo = mid
    return hi


def outside(workdir, search=True, exe=None, lib="mpy"):
    d = _outside_dir(workdir, lib=lib)
    out = _outside_run(d, "256k", exe)
    steps = json.loads(out.split("STEPS", 1)[1].splitlines()[0])
    seen, missing = _scenario(out)
    gc_line = re.search(r"GC: total: (\d+), used: (\d+), free: (\d+)", out)
    frag = re.search(r"max free sz: (\d+)", out)
    qstrs = re.search(r"qstr pool: n_pool=(\d+), n_qstr=(\d+)", out)
    res = {"steps": steps, "after_import": steps[0][1], "after_boot": steps[1][1],
           "peak_live": max(v[1] for v in steps), "peak_raw": max(v[2] for v in steps),
           "peak_step": max(steps, key=lambda v: v[2])[0], "seen": seen, "missing": missing,
           "hw": re.search(r"^HW (\w+)", out, re.M).group(1),
           "mem_info": out.split("DONE")[0].split("]\n", 1)[-1].strip()[-400:],
           "gc_total": int(gc_line.group(1)) if gc_line else None,
           "max_free_blocks": int(frag.group(1)) if frag else None,
           "qstr_pools": int(qstrs.group(1)) if qstrs else None,
           "qstrs": int(qstrs.group(2)) if qstrs else None,
           "shared_names": harness_shared_names(d) if lib == "mpy" else None}
    if lib == "mpy" and exe is None:
        res["imports"] = import_costs(d)
    if search:
        res["min_heap_kb"] = min_heap_kb(d, exe)
    return res


def esp32_rows(workdir, builds=None):
    """The heap as an ESP32 sees it: the worst alert on the 32-bit builds (frozen and .mpy)."""
    from .. import frozen
    # The .mpy rows measure the firmware as `boton deploy` installs it on a board that `boton
    # flash` prepared: lib/ in the romfs partition, run in place. The _lfs rows: lib/ in
    # LittleFS (a board flashed --no-romfs, or before the partition), context.
    keys = ("memory.esp32_frozen.peak_raw_kb", "memory.esp32_mpy.min_heap_kb", "memory.esp32_mpy.peak_raw_kb",
            "memory.esp32_device.min_heap_kb", "memory.esp32_mpy_lfs.min_heap_kb", "memory.esp32_mpy_lfs.peak_raw_kb",
            "memory.esp32_device_a7670.min_heap_kb")
    mpy_title = "ESP32 smallest heap, worst alert, firmware as .mpy in the romfs partition (32-bit)"
    lfs_title = "ESP32 smallest heap, worst alert, firmware as .mpy in LittleFS lib/ (32-bit)"
    device_title = "ESP32 smallest heap, worst alert on the virtual device, firmware frozen"
    a7670_title = "ESP32 smallest heap, worst alert on the virtual T-A7670X, firmware frozen"
    # Context: the T-A7670X's image is MicroPython's SPIRAM variant, whose heap is in the
    # board's 8 MB PSRAM; it starts with 56 KB only where that PSRAM is not found.
    a7670_note = ("context: its image puts the heap in the board's PSRAM; 56 KB only where the PSRAM is "
                  "not found; the SIM800 row's worst alert, on the A7670 dialect")
    try:
        fz, plain = builds or (frozen.unix32(frozen=True), frozen.unix32(frozen=False))
        why = fz.reason or plain.reason
    except frozen.BuildError as e:
        fz = plain = None
        why = str(e).splitlines()[0]
    if why:
        note = f"NOT MEASURED: {why.split('; using')[0]}"
        return [budget_row("ESP32 heap peak, worst alert, firmware frozen (32-bit)", None, "KB",
                           ESP32_FROZEN_PEAK_KB, key=keys[0], note=note, inclusive=True),
                budget_row(mpy_title, None, "KB", ESP32_MPY_MIN_HEAP_KB, key=keys[1], note=note, inclusive=True),
                info_row("ESP32 heap peak, worst alert, firmware as .mpy in the romfs partition (32-bit)", None,
                         "KB", key=keys[2], note=note),
                budget_row(device_title, None, "KB", ESP32_DEVICE_MIN_HEAP_KB, key=keys[3], note=note,
                           inclusive=True),
                info_row(lfs_title, None, "KB", key=keys[4], note=note),
                info_row("ESP32 heap peak, worst alert, firmware as .mpy in LittleFS lib/ (32-bit)", None, "KB",
                         key=keys[5], note=note),
                info_row(a7670_title, None, "KB", key=keys[6], note=note)]
    fzr = outside(workdir / "esp32-frozen", search=True, exe=fz.exe, lib="frozen")
    dev_kb, dev_why = device_min_heap_kb(workdir / "esp32-device", fz.exe)
    a7670_kb, a7670_why = device_min_heap_kb(workdir / "esp32-device-a7670", fz.exe, lo=44,
                                             board=DEVICE_BOARDS["a7670"])
    mpr = outside(workdir / "esp32-mpy", search=True, exe=plain.exe, lib="mpy")
    rom = outside_romfs(workdir / "esp32-romfs")

    def value(r, k):
        return None if r["missing"] else r[k] / 1024 if k.startswith("peak") else r[k]

    def note(r, extra):
        if r["missing"]:
            return f"SCENARIO INCOMPLETE ({r['missing']})"
        return (f"live heap after gc.collect(), incl. the interpreter's own; at '{r['peak_step']}'; "
                f"{r['seen']['sms']} SMS, {r['seen']['dial']} dials; " + extra)

    def detail(r, b):
        return {k: v for k, v in r.items() if k != "steps"} | {"steps": r["steps"], "build": b.key}

    def rom_value(k):
        if "why" in rom or rom["missing"]:
            return None
        return rom[k] / 1024 if k.startswith("peak") else rom[k]

    def rom_note(text):
        if "why" in rom:
            return f"NOT MEASURED: {rom['why']}"
        return f"SCENARIO INCOMPLETE ({rom['missing']})" if rom["missing"] else text

    return [
        budget_row("ESP32 heap peak, worst alert, firmware frozen (32-bit)", value(fzr, "peak_raw"), "KB",
                   ESP32_FROZEN_PEAK_KB, key=keys[0], inclusive=True, detail=detail(fzr, fz),
                   note=note(fzr, f"completes in -X heapsize={fzr['min_heap_kb']}k (ESP32 starts with 56k)")),
        budget_row(mpy_title, rom_value("min_heap_kb"), "KB", ESP32_MPY_MIN_HEAP_KB, key=keys[1], inclusive=True,
                   detail=rom, note=rom_note(
                       f"-X heapsize, binary search; the ESP32 grows its first heap area for 112 KB; the "
                       f"same lib/*.mpy as the LittleFS row, in a {rom.get('image', 0) / 1024:.0f} KB ROMFS image "
                       f"(mpremote's VfsRomWriter, as boton deploy writes it), mounted at /rom and run in place, "
                       f"the image outside the heap as mapped flash is; after import "
                       f"{rom.get('after_import', 0) / 1024:.1f} KB")),
        info_row("ESP32 heap peak, worst alert, firmware as .mpy in the romfs partition (32-bit)",
                 rom_value("peak_raw"), "KB", key=keys[2], note=rom_note("live heap after gc.collect()")),
        budget_row(device_title, dev_kb, "KB", ESP32_DEVICE_MIN_HEAP_KB, key=keys[3], inclusive=True,
                   note=("chip heap (the rig holds its own share), flash image, binary search and "
                         f"{DEVICE_CONFIRM_RUNS} more runs at its answer; 5 contacts, GPS, one "
                         "redial, an SMS command, low battery; a run counts if no MemoryError and no reset"
                         + (f"; {dev_why}" if dev_why else ""))),
        info_row(lfs_title, value(mpr, "min_heap_kb"), "KB", key=keys[4], detail=detail(mpr, plain),
                 note=("context: boards flashed --no-romfs or before the romfs partition (boton deploy warns "
                       "there); -X heapsize, binary search; "
                       f"hw: hw.py + lib/{mpr['hw']}.mpy as a board loads them; "
                       f"{mpr['qstrs']} names interned (up to {mpr['shared_names']} more on a chip: "
                       f"the frozen harness names them too), a {QSTR_POOL_STEP + 20}-entry pool "
                       f"(9 KB) past {QSTR_POOL_STEP:,}"
                       if not mpr["missing"] else note(mpr, ""))),
        info_row("ESP32 heap peak, worst alert, firmware as .mpy in LittleFS lib/ (32-bit)", value(mpr, "peak_raw"),
                 "KB", key=keys[5], note=note(mpr, "lib/*.mpy from the build's own mpy-cross")),
        info_row(a7670_title, a7670_kb, "KB", key=keys[6],
                 note=a7670_note + (f"; {a7670_why}" if a7670_why else "")),
    ]


def run(ctx):
    dev = in_device(ctx.scratch("memory-device"))
    out = outside(ctx.scratch("memory-outside"), search=True)
    base = dev["base"]
    boot_fw = (dev["after_boot_raw"] - base) / 1024
    peak_fw = (dev["peak_raw"] - base) / 1024
    fw_imports = [c for c in out["imports"] if c["mpy"]]
    fw_code = sum(c["heap"] for c in fw_imports)
    mpy_bytes = sum(c["mpy"] for c in fw_imports)
    top = sorted(fw_imports, key=lambda c: -c["heap"])[:3]
    sane = dev["sms_ok"] >= len(CONTACTS) and not dev["resets"] and not dev["memory_error"]
    rows = [
        info_row("Heap after boot (virtual device, firmware share)", boot_fw, "KB",
                 key="memory.after_boot_kb",
                 note=f"raw {dev['after_boot_raw'] / 1024:.1f} KB incl. {base / 1024:.1f} KB before main.py",
                 detail=dev),
        info_row("Heap peak during alert, 5 contacts + GPS (firmware share, 64-bit)", peak_fw, "KB",
                 key="memory.peak_kb",
                 note=(f"raw {dev['peak_raw'] / 1024:.1f} KB; 64-bit unix port: context, the budgets "
                       f"are the 32-bit memory.esp32_* rows; live heap sampled every {SAMPLE_MS} ms")
                 + ("" if sane else f"; RUN NOT CLEAN: {dev}")),
        info_row("Heap, outside scenario: after import / after boot", out["after_boot"] / 1024, "KB",
                 key="memory.outside.after_boot_kb",
                 note=f"imports alone {out['after_import'] / 1024:.1f} KB",
                 detail={k: v for k, v in out.items() if k != "steps"} | {"steps": out["steps"]}),
        info_row("Heap, outside scenario (worst alert): live peak", out["peak_live"] / 1024, "KB",
                 key="memory.outside.peak_kb",
                 note=f"SCENARIO INCOMPLETE ({out['missing']})" if out["missing"] else
                 f"{out['seen']['sms']} SMS, {out['seen']['dial']} dials, SMS command, low battery"),
        info_row("Heap taken by importing the firmware's .mpy", fw_code / 1024, "KB",
                 key="memory.import_kb",
                 note=f"for {mpy_bytes / 1024:.1f} KB of .mpy; most: "
                      + ", ".join(f"{c['module']} {c['heap'] / 1024:.1f}" for c in top),
                 detail={"imports": out["imports"]}),
        info_row("Smallest heap the outside alert scenario completes in (64-bit)", out.get("min_heap_kb"),
                 "KB", key="memory.outside.min_heap_kb",
                 note="-X heapsize, binary search; includes transients, fragmentation, GC tables"),
    ]
    rows += esp32_rows(ctx.scratch("memory-esp32"))
    for r in rows:
        r.group = NAME
    return rows
