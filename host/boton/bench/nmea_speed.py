"""GPS parsing throughput of firmware/lib/nmea.py on the MicroPython unix port.

Every log of data/nmea is read into memory, then fed to a fresh NMEAParser in
64-byte memoryview slices, as the firmware's gps_task does; the time is the median of
several passes over all logs (time.ticks_us on MicroPython). A separate pass first checks
that every log parses without an exception and with stats.internal_errors == 0.

Allocations per sentence: each sentence is fed alone with the GC disabled and
gc.mem_alloc() read before and after, once WARMUP lines have gone through the parser;
mem_alloc counts whole GC blocks (32 bytes on the 64-bit unix port, 16 on an ESP32).

Optionally (--compare-parser DIR) a public parser downloaded by hand into DIR is measured
the same way on the same logs, e.g. Adafruit's CircuitPython GPS library:
    .venv/bin/pip download --no-deps -d /tmp/p adafruit-circuitpython-gps && unzip ...
It is never a dependency of the project.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import mpy
from ..paths import DATA, FIRMWARE
from . import Row, budget_row, info_row

NAME = "nmea"
NMEA_DIR = DATA / "nmea"
BAUD_BYTES_S = 960          # 9600 baud, 8N1: 10 bits a byte
CHUNK = 64                  # app.gps_task reads 64 bytes at a time
WARMUP = 10
HEAP = "2M"                 # room for all 21 logs in memory at once (~390 KB)

_OURS = r"""
import gc, json, time, nmea
PATHS = %(paths)r
REPS = %(reps)d
CHUNK = %(chunk)d
WARMUP = %(warmup)d
datas = []
for p in PATHS:
    with open(p, 'rb') as f:
        datas.append(f.read())

def parse(data):
    p = nmea.NMEAParser()
    mv = memoryview(data)
    n = len(data)
    i = 0
    while i < n:
        p.feed(mv[i:i + CHUNK])
        i += CHUNK
    p.flush()
    return p

logs = []
sentences = 0
for path, d in zip(PATHS, datas):
    try:
        s = parse(d).stats.as_dict()
        logs.append([path, None, s])
        sentences += s['sentences']
    except Exception as e:
        logs.append([path, repr(e), None])

times = []
for _ in range(REPS):
    gc.collect()
    t = time.ticks_us()
    for d in datas:
        parse(d)
    times.append(time.ticks_diff(time.ticks_us(), t))

# allocations per sentence, steady state
kinds = {}
p = nmea.NMEAParser()
gc.collect()
fed = 0
for d in datas:
    for line in d.split(b'\n'):
        line = line + b'\n'
        fed += 1
        if fed <= WARMUP:
            p.feed(line)
            continue
        j = line.rfind(b'$')
        kind = 'other'
        if j >= 0 and line[j + 1:j + 2] != b'P':
            kind = line[j + 3:j + 6].decode()
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        p.feed(line)
        a = gc.mem_alloc() - a
        gc.enable()
        e = kinds.get(kind)
        if e is None:
            e = kinds[kind] = [0, 0, 0]
        e[0] += 1
        e[1] += a
        if a:
            e[2] += 1
print(json.dumps({'logs': logs, 'sentences': sentences, 'bytes': sum(len(d) for d in datas),
                  'times_us': times, 'alloc': kinds}))
"""

_THEIRS = r"""
import gc, json, sys, time
# CircuitPython libraries call time.struct_time and time.monotonic, which MicroPython's
# time lacks: a shim, so that what is measured is the parsing, not the platform gap.
class _ST:
    def __init__(self, t):
        (self.tm_year, self.tm_mon, self.tm_mday, self.tm_hour, self.tm_min, self.tm_sec,
         self.tm_wday, self.tm_yday, self.tm_isdst) = t
class _Time:
    def __getattr__(self, n):
        return getattr(time, n)
    struct_time = _ST
    @staticmethod
    def monotonic():
        return time.ticks_ms() / 1000
sys.modules['time'] = _Time()
import %(module)s as M
PATHS = %(paths)r
REPS = %(reps)d

class U:
    def __init__(self, lines):
        self.lines = lines
        self.i = 0
    @property
    def in_waiting(self):
        return 80 if self.i < len(self.lines) else 0
    def readline(self):
        i = self.i
        self.i = i + 1
        return self.lines[i]
    def read(self, n):
        return self.readline()
    def write(self, b):
        return len(b)

prepared = []
total = 0
for p in PATHS:
    with open(p, 'rb') as f:
        d = f.read()
    total += len(d)
    prepared.append([x + b'\n' for x in d.split(b'\n') if x])

def parse(lines):
    u = U(lines)
    g = M.GPS(u)
    n = len(lines)
    while u.i < n:
        g.update()

logs = []
ok = []
for path, lines in zip(PATHS, prepared):
    try:
        parse(lines)
        logs.append([path, None])
        ok.append(lines)
    except Exception as e:
        logs.append([path, repr(e)])

times = []
for _ in range(REPS):
    gc.collect()
    t = time.ticks_us()
    for lines in ok:
        parse(lines)
    times.append(time.ticks_diff(time.ticks_us(), t))
okbytes = sum(sum(len(x) for x in lines) for lines in ok)
print(json.dumps({'logs': logs, 'bytes': total, 'ok_bytes': okbytes, 'times_us': times}))
"""


def logs(names=None):
    paths = sorted(NMEA_DIR.glob("*.log"))
    if names:
        paths = [p for p in paths if p.name in names]
    return paths


def measure_ours(paths, reps=5, lib=FIRMWARE / "lib"):
    code = _OURS % dict(paths=[str(p) for p in paths], reps=reps, chunk=CHUNK, warmup=WARMUP)
    out = json.loads(mpy.run(code, lib=lib, heap=HEAP, timeout=600).strip().splitlines()[-1])
    times = sorted(out["times_us"])
    med = times[len(times) // 2] / 1e6
    out["median_s"] = med
    out["bytes_per_s"] = out["bytes"] / med
    out["sentences_per_s"] = out["sentences"] / med
    out["failed_logs"] = [Path(p).name for p, err, s in out["logs"]
                          if err or (s and s["internal_errors"])]
    return out


def measure_other(dir_, paths, reps=3):
    dir_ = Path(dir_)
    module = next((p.stem for p in sorted(dir_.glob("*.py")) if "gps" in p.stem.lower()), None)
    if module is None:
        raise FileNotFoundError(f"no *gps*.py parser module in {dir_}")
    code = _THEIRS % dict(module=module, paths=[str(p) for p in paths], reps=reps)
    out = json.loads(mpy.run(code, lib=dir_, heap=HEAP, timeout=600).strip().splitlines()[-1])
    times = sorted(out["times_us"])
    med = times[len(times) // 2] / 1e6 if times else None
    out["module"] = module
    out["median_s"] = med
    out["bytes_per_s"] = out["ok_bytes"] / med if med else None
    out["raised"] = {Path(p).name: err for p, err in out["logs"] if err}
    return out


def run(ctx, paths=None):
    paths = paths or logs()
    reps = 3 if ctx.quick else 7
    o = measure_ours(paths, reps=reps)
    n_logs = len(paths)
    parsed = n_logs - len(o["failed_logs"])
    bps = o["bytes_per_s"]
    rows = [
        budget_row(f"NMEA: logs parsed without exception (of {n_logs})", parsed, "logs", n_logs - 0.5,
                   key="nmea.logs_ok", lower_is_better=False,
                   note=", ".join(o["failed_logs"]) or "internal_errors 0 everywhere",
                   detail={"logs": o["logs"]}),
        info_row("NMEA throughput (firmware nmea.py)", bps / 1e6, "MB/s", key="nmea.bytes_per_s",
                 note=f"{o['bytes']} B, {o['sentences']} sentences, median of {reps}",
                 detail={"bytes_per_s": bps, "times_us": o["times_us"], "bytes": o["bytes"]}),
        info_row("NMEA throughput", o["sentences_per_s"] / 1e3, "k sentences/s",
                 key="nmea.sentences_per_s", detail={"sentences_per_s": o["sentences_per_s"]}),
        info_row("NMEA CPU share of a 9600-baud stream", 100 * BAUD_BYTES_S / bps, "%",
                 key="nmea.cpu_share_9600", note="960 B/s ÷ throughput, unix port"),
    ]
    al = o["alloc"]
    total_n = sum(v[0] for v in al.values())
    total_b = sum(v[1] for v in al.values())
    allocating = sum(v[2] for v in al.values())
    per_kind = {k: {"sentences": v[0], "bytes_per_sentence": v[1] / v[0], "allocating": v[2]}
                for k, v in sorted(al.items())}
    top = sorted(per_kind.items(), key=lambda kv: -kv[1]["bytes_per_sentence"])[:3]
    rows.append(info_row("NMEA heap allocated per sentence (steady state)",
                         total_b / total_n if total_n else None, "B", key="nmea.alloc_bytes_per_sentence",
                         note=f"{allocating} of {total_n} sentences allocate; most: "
                              + ", ".join(f"{k} {v['bytes_per_sentence']:.0f} B" for k, v in top),
                         detail={"per_kind": per_kind}))
    if ctx.compare_parser:
        try:
            t = measure_other(ctx.compare_parser, paths, reps=max(3, reps // 2))
            rows.append(info_row(f"NMEA throughput, {t['module']} (comparison)",
                                 t["bytes_per_s"] / 1e6 if t["bytes_per_s"] else None, "MB/s",
                                 key="nmea.compare.bytes_per_s",
                                 note=f"raised on {len(t['raised'])} of {n_logs} logs"
                                      + (": " + ", ".join(sorted(t["raised"])) if t["raised"] else ""),
                                 detail=t))
        except Exception as e:  # a comparison must never sink the bench
            rows.append(Row(f"NMEA comparison parser ({ctx.compare_parser})", None, note=repr(e)[:120],
                            key="nmea.compare.bytes_per_s"))
    for r in rows:
        r.group = NAME
    return rows
