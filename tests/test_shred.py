"""Crypto-shredding of her position on the flash (firmware/lib/shred.py, app._save_state):
alert.json holds her fix and cell only sealed under a per-alert key kept in RTC memory,
so once the alert ends (or the board loses power) no copy on the flash can be read."""
import contextlib
import io
import json
import re
import sys
import time

import pytest

from boton.frozen import device_interpreter
from boton.paths import FIRMWARE
from boton.sim.rig import AGS_CENTRO, DEFAULT_C4
from rigkit import demo_config, provisioned_device

sys.path.insert(0, str(FIRMWARE / "lib"))
import shred  # noqa: E402
import sms  # noqa: E402

# A fix as app persists it: [lat_e7, lon_e7, hdop, sats, acc_m, age_ms], and a cell.
FIX = [218823400, -1022914300, 0.9, 8, 5, 1200]
CELL = {"cell": 0, "mcc": 334, "mnc": 20, "lac": "1a2b", "ci": "3c4d"}

SCENARIO = """
import json
import shred
key = bytes(range(16))
other = bytes(range(1, 17))
plain = json.dumps([%s, %s]).encode()
blob = shred.seal(key, plain)
again = shred.seal(key, plain)
bad = blob[:-2] + ("00" if blob[-2:] != "00" else "11")
try:
    shred.seal(key, b"x" * (shred.MAX_PLAIN + 1))
    too_long = "sealed"
except ValueError:
    too_long = "refused"
print(json.dumps({
    "blob": blob,
    "round_trip": shred.unseal(key, blob) == plain,
    "fresh_nonce": blob != again,
    "wrong_key": shred.unseal(other, blob),
    "no_key": shred.unseal(None, blob),
    "tampered": shred.unseal(key, bad),
    "not_hex": shred.unseal(key, "zz" * 20),
    "short": shred.unseal(key, "00"),
    "empty_plain": shred.unseal(key, shred.seal(key, b"")) == b"",
    "rtc_key": list(shred.rtc_key(shred.rtc_record(key))),
    "rtc_empty": shred.rtc_key(b""),
    "rtc_foreign": shred.rtc_key(b"something else, 20b"),
    "too_long": too_long,
}))
""" % (json.dumps(FIX), json.dumps(CELL))


def _digit_runs(fix):
    return [str(abs(v)) for v in fix[:2]]


def _check(got):
    assert got["round_trip"] and got["fresh_nonce"] and got["empty_plain"]
    assert got["wrong_key"] is None and got["no_key"] is None and got["tampered"] is None
    assert got["not_hex"] is None and got["short"] is None
    assert got["rtc_key"] == list(range(16))
    assert got["rtc_empty"] is None and got["rtc_foreign"] is None
    assert got["too_long"] == "refused"
    # nothing of her coordinates is left in what goes to the flash, not even a prefix
    for run in _digit_runs(FIX):
        assert run[:6] not in got["blob"], (run, got["blob"])


def test_cipher_on_cpython():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(SCENARIO, "<shred>", "exec"), {"__name__": "scenario"})
    _check(json.loads(buf.getvalue().strip().splitlines()[-1]))


@pytest.mark.parametrize("port", ["pypi", "device"])
def test_cipher_on_micropython_and_blobs_open_on_cpython(mpy, port):
    exe = None if port == "pypi" else device_interpreter().exe
    got = mpy.json(SCENARIO, exe=exe)
    _check(got)
    # the same cipher on both: what the firmware sealed, the host opens with the key
    plain = shred.unseal(bytes(range(16)), got["blob"])
    assert json.loads(plain) == [FIX, CELL]


# ------------------------------------------------------------------ on the virtual device

PIN = "4821"
MAPS = re.compile(r"https://maps\.google\.com/\?q=(-?[\d.]+),(-?[\d.]+)")


def _wait_state(vd, predicate, timeout=60.0):
    """alert.json once predicate(parsed, raw) holds: the firmware writes it on its own
    schedule, so this waits on the file, read whole (it is replaced by a rename)."""
    import time
    path = vd.flash_dir / "alert.json"
    deadline = time.monotonic() + timeout
    raw = None
    while time.monotonic() < deadline:
        try:
            raw = path.read_text()
            if predicate(json.loads(raw), raw):
                return json.loads(raw), raw
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"alert.json never got there within {timeout}s: {raw}")


def _sms_with_link(vd, to, after):
    return vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == to and MAPS.search(e["text"]),
                         timeout=60, after=after)


def _coordinate_digits(link_match):
    # "21.88234" -> "2188234": her latitude and longitude as digits, however they are written
    return [m.replace("-", "").replace(".", "") for m in link_match.groups()]


def _files_holding(flash_dir, runs):
    hits = []
    for p in sorted(flash_dir.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            hits += [(p.name, r) for r in runs if r.encode() in data]
    return hits


def test_her_position_is_sealed_on_the_flash_and_shredded_when_the_alert_ends(tmp_path):
    with provisioned_device(tmp_path, config=demo_config(pin=PIN), gps_point=AGS_CENTRO) as vd:
        contact = vd.contacts[0]
        vd.press(hold_s=1.2)
        link = MAPS.search(_sms_with_link(vd, contact, 0)["text"])
        runs = _coordinate_digits(link)
        assert runs[0] == "2188234"  # the rig's point: the check looks for the right digits

        # during the alert: alert.json holds her position, but only sealed
        state, raw = _wait_state(vd, lambda st, raw: st.get("active") and (st.get("fix") or st.get("loc")))
        assert not [r for r in runs if r in raw], f"plaintext coordinates in alert.json: {raw}"
        assert state["fix"] is None and state["cell"] is None
        sealed = state["loc"]
        key = shred.rtc_key(vd.rtc_memory)
        assert key is not None, "the alert's key is not in RTC memory"
        fix = json.loads(shred.unseal(key, sealed))[0]
        assert sms.maps_link(lat_e7=fix[0], lon_e7=fix[1]) == link.group(0)
        assert not _files_holding(vd.flash_dir, runs)  # nor the event log, nor anything else

        # a reset mid-alert (EN pulled low) with the GPS gone quiet: the resumed alert
        # still sends her last position, which only the key in RTC memory could unseal
        vd.call(vd.gps.silent, True)
        quiet_since = time.monotonic()
        time.sleep(4)  # not a wait for an event: her last fix must age before the reset
        mark, console = len(vd.events), vd.console_mark()
        vd.hard_reset()
        text = vd.wait_console("EV resume", timeout=60, since=console)
        assert "EV location_lost" not in text
        after = _sms_with_link(vd, contact, mark)
        assert MAPS.search(after["text"]).group(0) == link.group(0)
        # ... aged by the time the reset took too (the RTC outlives it), not as of the save
        waited = time.monotonic() - quiet_since
        age = re.search(r"hace (\d+)(s|min)", after["text"])
        assert age, after["text"]
        age_s = int(age.group(1)) * (60 if age.group(2) == "min" else 1)
        assert age_s >= waited - 3, (age_s, waited, after["text"])

        # C4 cancels: the key is dropped and the state keeps no position
        console = vd.console_mark()
        vd.call(vd.network.sms_to_device, DEFAULT_C4, vd.device_number, "CANCELAR %s" % PIN)
        vd.wait_console("EV cancel c4", timeout=60, since=console)
        state, raw = _wait_state(vd, lambda st, raw: not st.get("active"))
        vd.wait_rtc_memory(lambda mem: mem == b"", timeout=10)
        assert state["loc"] is None and state["fix"] is None and state["cell"] is None

        # a power cycle: RTC memory stays empty, the old ciphertext cannot be opened
        console = vd.console_mark()
        vd.power_cycle()
        vd.wait_console("EV ready", timeout=60, since=console)
        assert vd.rtc_memory == b""
        assert shred.unseal(shred.rtc_key(vd.rtc_memory), sealed) is None
        state = json.loads((vd.flash_dir / "alert.json").read_text())
        assert not state["active"] and state["loc"] is None and state["fix"] is None
        assert not _files_holding(vd.flash_dir, runs)


def test_a_power_cycle_mid_alert_resumes_without_her_old_position(tmp_path):
    with provisioned_device(tmp_path, config=demo_config(pin=PIN), gps_point=AGS_CENTRO) as vd:
        vd.press(hold_s=1.2)
        _sms_with_link(vd, vd.contacts[0], 0)
        state, _ = _wait_state(vd, lambda st, raw: st.get("active") and st.get("loc"))
        vd.call(vd.gps.silent, True)
        console = vd.console_mark()
        vd.power_cycle()
        text = vd.wait_console("EV resume", timeout=60, since=console)
        assert "EV location_lost" in text  # the key went with the power: nothing to unseal


def test_an_alert_whose_position_cannot_be_sealed_is_still_saved_and_resumes(tmp_path):
    """A MemoryError sealing her position (on a full heap: the first save of an alert with a
    fix) must not keep the alert itself off the flash: a reset then would lose it."""
    src = (FIRMWARE / "lib" / "shred.py").read_text()
    assert "\ndef seal(key, plain):\n" in src
    broken = src.replace("\ndef seal(key, plain):\n", "\ndef seal(key, plain):\n    raise MemoryError('heap full')\n")
    with provisioned_device(tmp_path, config=demo_config(pin=PIN), gps_point=AGS_CENTRO) as vd:
        (vd.flash_dir / "shred.py").write_text(broken)   # the flash root comes first on sys.path
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV ready", timeout=60, since=mark)
        vd.press(hold_s=1.2)
        _sms_with_link(vd, vd.contacts[0], 0)
        state, _ = _wait_state(vd, lambda st, raw: st.get("active"))
        assert not state.get("loc") and "EV location_unsaved MemoryError" in vd.console_text()
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV resume", timeout=60, since=mark)


def test_a_crash_in_the_alerts_first_save_still_leaves_it_on_the_flash(tmp_path):
    """Whatever fails (here the first save of the alert itself, with what no one expects:
    a bug; a full flash or heap is handled, tests/test_flash_faults.py), the crash handler
    saves the running alert before the restart, and the board resumes it."""
    from boton.paths import FIRMWARE as fw
    store_src = (fw / "lib" / "store.py").read_text()
    once = store_src + (
        "\n_real_write_json = write_json\n_failed = []\n\n\n"
        "def write_json(path, obj):\n"
        "    if path == 'alert.json' and isinstance(obj, dict) and obj.get('active') and not _failed:\n"
        "        _failed.append(1)\n"
        "        raise TypeError('a bug in the save')\n"
        "    _real_write_json(path, obj)\n")
    with provisioned_device(tmp_path, config=demo_config(pin=PIN), gps_point=AGS_CENTRO) as vd:
        (vd.flash_dir / "store.py").write_text(once)   # the flash root comes first on sys.path
        mark = vd.console_mark()
        vd.hard_reset()
        vd.wait_console("EV ready", timeout=60, since=mark)
        mark = vd.console_mark()
        vd.press(hold_s=1.2)
        vd.wait_console("EV crash TypeError", timeout=60, since=mark)
        vd.wait_console("EV resume", timeout=60, since=mark)


def test_keys_are_key_length_and_differ(mpy):
    got = mpy.json("""
import json, shred
keys = [shred.new_key() for _ in range(50)]
print(json.dumps([len(set(keys)), sorted(set(len(k) for k in keys))]))
""")
    assert got == [50, [shred.KEY_LEN]]
    assert len({shred.new_key() for _ in range(50)}) == 50     # and under CPython
