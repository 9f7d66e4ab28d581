"""Check a GPS module's captured output with the firmware's own NMEA parser.

``analyse(path)`` runs firmware/lib/nmea.py on the MicroPython unix port (the
interpreter the device runs; ``use_micropython=False`` runs the same module and
driver under CPython) over a captured log and returns a JSON-serialisable dict::

    {"file": ..., "interpreter": "micropython",
     "fixes": [{"seq", "time", "utc", "lat", "lon", "lat_e7", "lon_e7",
                "quality", "sats", "hdop", "alt", "speed_knots", "course"}, ...],
     "summary": {"sentences", "valid", "invalid", "bad_checksum",
                 "missing_checksum", "checksum_ok", "gga", "fixes",
                 "no_position", "overlong", "stray"}}

``valid``/``invalid`` are RMC sentences with status A / other, as the parser
counts them (see nmea.py).  Each fix is reported once its epoch is complete
(when the next fix arrives, or at the end), so a GGA that follows its RMC is
already merged.  ``render_text(result)`` formats it for humans.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from . import mpy
from .paths import FIRMWARE

# Runs unchanged on MicroPython and CPython: feeds the log in small chunks and
# emits one JSON line per fix, then one with the counters.
_DRIVER = """
def _time(t):
    return None if t is None else '%02d:%02d:%02d.%03d' % t

def _utc(u):
    return None if u is None else '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ' % u

def _fix(f):
    return {'seq': f.seq, 'time': _time(f.time), 'utc': _utc(f.utc),
            'lat': f.lat, 'lon': f.lon, 'lat_e7': f.lat_e7, 'lon_e7': f.lon_e7,
            'quality': f.quality, 'sats': f.sats, 'hdop': f.hdop, 'alt': f.alt,
            'speed_knots': f.speed_knots, 'course': f.course}

def run(nmea, path, out):
    p = nmea.NMEAParser(queue=64)
    buf = bytearray(512)
    mv = memoryview(buf)
    pending = None
    with open(path, 'rb') as f:
        while True:
            k = f.readinto(buf)
            if k:
                p.feed(mv[:k])
            else:
                p.flush()
            while True:
                fx = p.pop_fix()
                if fx is None:
                    break
                if pending is not None:
                    out(['fix', _fix(pending)])
                pending = fx
            if not k:
                break
    if pending is not None:
        out(['fix', _fix(pending)])
    out(['stats', p.stats.as_dict()])
"""

_MPY_MAIN = """
import json, nmea
def _out(x):
    print(json.dumps(x))
run(nmea, %r, _out)
"""


_FIX_KEYS = ("seq", "time", "utc", "lat", "lon", "lat_e7", "lon_e7", "quality", "sats",
             "hdop", "alt", "speed_knots", "course")


@functools.lru_cache(maxsize=None)
def _load_cpython_nmea():
    spec = importlib.util.spec_from_file_location("_boton_fw_nmea", FIRMWARE / "lib" / "nmea.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def analyse(path, use_micropython: bool = True) -> dict:
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    records = []
    if use_micropython:
        out = mpy.run(_DRIVER + _MPY_MAIN % str(path))
        records = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    else:
        ns: dict = {}
        exec(_DRIVER, ns)
        ns["run"](_load_cpython_nmea(), str(path), lambda x: records.append(json.loads(json.dumps(x))))
    # MicroPython dicts have no stable order: give the fixes a fixed one
    fixes = [{k: r[1][k] for k in _FIX_KEYS} for r in records if r[0] == "fix"]
    stats = [r[1] for r in records if r[0] == "stats"]
    if len(stats) != 1:
        raise RuntimeError("parser run produced no summary")
    s = stats[0]
    summary = {
        "sentences": s["sentences"],
        "valid": s["rmc_valid"],
        "invalid": s["rmc_invalid"],
        "bad_checksum": s["checksum_bad"],
        "missing_checksum": s["checksum_missing"],
        "checksum_ok": s["checksum_ok"],
        "gga": s["gga"],
        "fixes": s["fixes"],
        "no_position": s["rmc_nopos"],
        "overlong": s["overlong"],
        "stray": s["stray"],
    }
    return {"file": str(path), "interpreter": "micropython" if use_micropython else "cpython",
            "fixes": fixes, "summary": summary}


def _deg(e7: int) -> str:
    return _load_cpython_nmea().deg_str(e7, 6)   # exact, no float rounding


def _opt(v, fmt="%s"):
    return "-" if v is None else fmt % v


def render_text(result: dict) -> str:
    s = result["summary"]
    fixes = result["fixes"]
    lines = ["%s  (firmware parser on %s)" % (result["file"], result["interpreter"]), ""]
    if fixes:
        lines.append("%5s  %-24s %11s %12s %2s %4s %5s" % ("#", "time (UTC)", "lat", "lon", "q", "sats", "hdop"))
        for f in fixes:
            when = f["utc"] or ((f["time"] + " (no date)") if f["time"] else "-")
            lines.append("%5d  %-24s %11s %12s %2s %4s %5s" % (
                f["seq"], when, _deg(f["lat_e7"]), _deg(f["lon_e7"]),
                _opt(f["quality"]), _opt(f["sats"]), _opt(f["hdop"], "%.2f")))
        lines.append("")
    else:
        lines += ["no valid fix in this log", ""]
    lines.append("sentences %d: checksum ok %d, bad checksum %d, missing checksum %d%s" % (
        s["sentences"], s["checksum_ok"], s["bad_checksum"], s["missing_checksum"],
        (", overlong %d" % s["overlong"]) if s["overlong"] else ""))
    lines.append("RMC: valid %d, invalid %d; GGA %d; fixes %d%s" % (
        s["valid"], s["invalid"], s["gga"], s["fixes"],
        (" (%d valid RMC without a usable position)" % s["no_position"]) if s["no_position"] else ""))
    if fixes:
        f = fixes[-1]
        lines.append("last fix: %s, %s at %s" % (_deg(f["lat_e7"]), _deg(f["lon_e7"]), f["utc"] or f["time"] or "?"))
    return "\n".join(lines) + "\n"
