"""A flash that fails her: full (ENOSPC, as a LittleFS filled by a forgotten lib.old, or
worn), or with a bit flipped in a file. Neither may keep the button from calling C4 and
texting her contacts, at once or after a reset."""
import contextlib
import json
import time

import pytest

from boton.device import Device
from boton.eventlog_check import firmware_eventlog
from boton.paths import FIRMWARE
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, VirtualDevice
from rigkit import FAST, FAST_FIX, demo_config, provisioned_device


def _her_alert_goes_out(vd, after):
    """The covert call reaches C4 and her contact gets the SMS."""
    vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, after=after, timeout=60)
    vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.contacts[0], after=after, timeout=60)


def _reset_then_her_alert(vd, ready="EV ready"):
    """Reset the board, press once it is up, see her alert go out; the console since."""
    console = vd.console_mark()
    vd.hard_reset()
    vd.wait_console(ready, since=console, timeout=60)
    mark = len(vd.events)
    vd.press(hold_s=1.2)
    _her_alert_goes_out(vd, mark)
    return vd.console_text()[-(vd.console_mark() - console):]


def _flash_lines(vd):
    lines = []
    for p in vd.flash_dir.glob("log.*"):
        lines += [ln for ln in p.read_bytes().decode(errors="replace").splitlines() if ln]
    return sorted(lines, key=lambda ln: int(ln.split(" ", 1)[0]))


def _wait_state(vd, predicate, timeout=60.0):
    path = vd.flash_dir / "alert.json"
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        try:
            st = json.loads(path.read_text())
            if predicate(st):
                return st
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"alert.json never got there within {timeout}s: {st}")


def test_a_full_flash_does_not_stop_her_alert_and_what_it_refused_is_told_after(tmp_path):
    # A save or a log entry that raised ENOSPC killed the brain before the dial: no
    # vibration, no call, no SMS; the crash handler's own save failed too and the board
    # restarted, again and again, never counting a crash (crashes.json could not be written).
    with provisioned_device(tmp_path, flash_faults=True) as vd:
        vd.set_flash_full()
        mark, console = len(vd.events), vd.console_mark()
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV alert " in text and "EV state_unsaved 28" in text
        assert "EV crash" not in text and vd.resets == 0
        saved = vd.flash_dir / "alert.json"
        assert not saved.exists() or not json.loads(saved.read_text())["active"]
        assert not list(vd.flash_dir.glob("*.tmp"))   # nothing half-written left holding blocks

        # room again: her alert reaches the flash without waiting for a change (a reset now
        # resumes it), and the log says what it could not keep, its chain whole
        vd.set_flash_full(False)
        _wait_state(vd, lambda st: st["active"])
        vd.wait_console("EV state_saved after_", since=console, timeout=30)
        lines = _flash_lines(vd)
        told = [ln.split(" ")[3] for ln in lines if ln.split(" ")[2] == "not_logged"]
        assert told and "alert=1" in told[0].split(",") and "errno=28" in told[0].split(","), lines
        assert firmware_eventlog().verify(lines)[0], lines


def test_a_button_whose_flash_is_full_still_boots_and_calls(tmp_path):
    # log.add("boot") raised at every boot: a crash loop no count could end
    with provisioned_device(tmp_path, flash_faults=True) as vd:
        vd.set_flash_full()
        assert "EV crash" not in _reset_then_her_alert(vd)


def test_a_flipped_bit_in_the_log_still_boots_and_calls(tmp_path):
    # The log was read as text: one byte of invalid UTF-8 raised UnicodeError in EventLog()
    # at every boot; the crash loop's safe mode never rotated the file out, and she was
    # left with safe mode's call to C4 only (no SMS), for good.
    with provisioned_device(tmp_path) as vd:
        with Device(vd.repl_url):      # the firmware stopped while the byte flips
            seg = vd.flash_dir / "log.0"
            raw = bytearray(seg.read_bytes())
            raw[raw.index(b" boot ") + 1] = 0xE2    # 'b' (0x62) with its top bit flipped
            seg.write_bytes(bytes(raw))
        text = _reset_then_her_alert(vd, "EV ready ok")
        assert "EV crash" not in text and "safe_mode" not in text
        # what could be kept was: the entries after the damaged one chain on from it
        lines = _flash_lines(vd)
        assert "\ufffd" in lines[0] and firmware_eventlog().verify(lines[1:])[0], lines


# The firmware's own main.py, behind a fault: the alert's first saves find no block on the
# heap (MemoryError), as at the edge of a 56 KB chip heap at the press, where the sealed
# position, the state's JSON and the file's buffers are all made at once.
SQUEEZED_SAVES = 2
SQUEEZED_MAIN = """# test fault (tests/test_flash_faults.py): no heap for the alert's first saves
import store
_write = store.write_json
_left = [%d]


def _squeezed(path, obj):
    if path == "alert.json" and obj.get("active") and _left[0]:
        _left[0] -= 1
        raise MemoryError("memory allocation failed, allocating 512 bytes")
    return _write(path, obj)


store.write_json = _squeezed
""" % SQUEEZED_SAVES


@contextlib.contextmanager
def _device_with_fault(tmp_path, fault, config=None, **rig_kw):
    """A provisioned T-Call whose main.py starts with `fault` (a test's patch of a firmware
    function), booted to EV ready; a fix streaming (her position to seal at the press)."""
    flash = tmp_path / "flash"
    install(flash, "tcall_sim800l_axp192", config or demo_config())
    (flash / "main.py").write_text(fault + (FIRMWARE / "main.py").read_text())
    vd = VirtualDevice(flash, board="tcall_sim800l_axp192", network_log=tmp_path / "net.jsonl",
                       time_scale=FAST, **FAST_FIX, **rig_kw)
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=60)
        yield vd
    finally:
        vd.stop()


@contextlib.contextmanager
def _press_on_a_squeezed_heap(tmp_path, fault):
    """Her press on a board whose main.py starts with `fault` (a MemoryError where a save
    needs the heap): her call and SMS go out, no crash, no reset, and her alert reaches the
    flash once the heap is back. Yields (device, console mark before the press)."""
    with _device_with_fault(tmp_path, fault) as vd:
        mark, console = len(vd.events), vd.console_mark()
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV state_unsaved MemoryError" in text, text
        assert "EV crash" not in text and vd.resets == 0, text
        _wait_state(vd, lambda st: st["active"])   # the heap back: saved at the next save or tick
        yield vd, console


def test_a_save_that_finds_no_heap_does_not_hold_back_her_call(tmp_path):
    # A MemoryError in the state's save at the press left the brain before the dial: the
    # button crashed and restarted, and C4 was called only after the reboot's resume
    with _press_on_a_squeezed_heap(tmp_path, SQUEEZED_MAIN) as (vd, console):
        vd.wait_console(f"EV state_saved after_{SQUEEZED_SAVES}", since=console, timeout=30)
        assert not list(vd.flash_dir.glob("*.tmp"))


# The same squeeze one step earlier: no block for the state's own table (24 keys, 200
# bytes on the 32-bit build), which the machine builds after every event that changed it.
SQUEEZED_STATE_MAIN = """# test fault (tests/test_flash_faults.py): no heap for the alert's first states
import alert
_to_state = alert.AlertMachine.to_state
_left = [%d]


def _squeezed(self, now=None):
    if self.active and _left[0]:
        _left[0] -= 1
        raise MemoryError("memory allocation failed, allocating 200 bytes")
    return _to_state(self, now)


alert.AlertMachine.to_state = _squeezed
""" % SQUEEZED_SAVES


def test_a_state_that_finds_no_heap_does_not_restart_her_alert(tmp_path):
    # The state built after an event found no block (MemoryError at the edge of a 56 KB
    # heap, seen in the bench's worst alert): the brain died with that event's actions
    # (her SMS, a redial) not carried out, the board restarted mid-alert, and when the
    # crash handler's save failed too her alert was lost with the reset
    with _press_on_a_squeezed_heap(tmp_path, SQUEEZED_STATE_MAIN):
        pass



# No block for her SMS texts themselves (sms.build's 124 bytes at the alert's burst, the
# failure the bench's device row meets at the edge of a 56 KB heap)
SQUEEZED_TEXTS = 3
SQUEEZED_TEXT_MAIN = """# test fault (tests/test_flash_faults.py): no heap for the alert's first texts
import alerttexts
_render = alerttexts.render
_left = [%d]


def _squeezed(m, e, now):
    if m.active and _left[0]:
        _left[0] -= 1
        raise MemoryError("memory allocation failed, allocating 124 bytes")
    return _render(m, e, now)


alerttexts.render = _squeezed
""" % SQUEEZED_TEXTS


def test_a_text_that_finds_no_heap_does_not_restart_her_alert(tmp_path):
    # The text's MemoryError left the brain: a reset mid-alert, and the resume met the same
    # burst again (two resets at 53 KB before her contacts got anything)
    with _device_with_fault(tmp_path, SQUEEZED_TEXT_MAIN) as vd:
        mark, console = len(vd.events), vd.console_mark()
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
        for n in vd.contacts:
            vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == n, after=mark, timeout=60)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert text.count("EV sms_retry MemoryError") == SQUEEZED_TEXTS, text
        assert "EV crash" not in text and vd.resets == 0, text

def test_an_alert_she_ended_on_a_full_flash_does_not_come_back_after_a_reset(tmp_path):
    # Her cancel could not be saved (a full flash): alert.json still said "active", and the
    # next reset (the watchdog, a brown-out, a flat battery days later) resumed the alert
    # she had ended: C4 called again, her contacts texted again.
    with provisioned_device(tmp_path, flash_faults=True) as vd:
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
        _wait_state(vd, lambda st: st["active"])
        vd.set_flash_full()
        console = vd.console_mark()
        vd.press(hold_s=5.5)    # the cancel gesture: held 5 s
        vd.wait_console("EV cancel", since=console, timeout=30)   # logged after its save
        ended = vd.console_text()[-(vd.console_mark() - console):]
        console, mark = vd.console_mark(), len(vd.events)
        vd.hard_reset()
        vd.wait_console("EV ready", since=console, timeout=60)
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV resume" not in text, text
        # (an SMS the network delivers now was sent before the reset: her cancel notices)
        assert "EV sms_ok" not in text and "EV dial" not in text, text
        assert not [e for e in vd.events[mark:] if e["kind"] == "call_start"], vd.events[mark:]
        assert "EV state_dropped" in ended, ended


# Each raised in the resume at every boot: a crash loop, then safe mode's bare call.
DAMAGED_STATES = {
    "json_but_no_state": "[1, 2]",                     # AttributeError
    "nested_past_the_heap": "[" * 1500 + "]" * 1500,   # MemoryError parsing it (3 KB)
    "longer_than_any_state": '{"v": 1, "pad": "%s"}' % ("x" * 9000),  # parsed whole before
}


@pytest.mark.parametrize("content", DAMAGED_STATES.values(), ids=DAMAGED_STATES.keys())
def test_a_damaged_state_file_still_boots_and_calls(tmp_path, content):
    flash = tmp_path / "flash"
    install(flash, "tcall_sim800l_axp192", demo_config())
    (flash / "alert.json").write_text(content)
    vd = VirtualDevice(flash, board="tcall_sim800l_axp192", network_log=tmp_path / "net.jsonl",
                       time_scale=FAST)
    vd.start()
    try:
        text = vd.wait_console("EV ready", timeout=60)
        assert "EV state_corrupt" in text and "EV crash" not in text, text
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
    finally:
        vd.stop()


# No heap while C4's command is read off the SIM (the alert's burst): the header's parse
# (atargs.split_args builds the UCS2 sender) or the body's line in the modem's reader.
# The read marked the SMS read, so the sweep (unread ones only) never found it again and
# the next set-up deleted it: C4's CANCELAR went unanswered and her alert went on.
SQUEEZED_HEADER_MAIN = """# test fault (tests/test_flash_faults.py): no heap for the first command's header
import atparse
_parse = atparse.parse_cmgr
_left = [1]


def _squeezed(line):
    if _left[0]:
        _left[0] -= 1
        raise MemoryError("memory allocation failed, allocating 256 bytes")
    return _parse(line)


atparse.parse_cmgr = _squeezed
"""
SQUEEZED_BODY_MAIN = """# test fault (tests/test_flash_faults.py): no heap for the first command's text line
import atparse
_clean = atparse._clean
_left = [1]


def _squeezed(buf, n):
    if _left[0] and bytes(buf[:8]) == b"00550042":   # "UB..." in UCS2: the body's line
        _left[0] -= 1
        raise MemoryError("memory allocation failed, allocating 176 bytes")
    return _clean(buf, n)


atparse._clean = _squeezed
"""


@pytest.mark.parametrize("fault", [SQUEEZED_HEADER_MAIN, SQUEEZED_BODY_MAIN], ids=["header", "body"])
def test_c4s_command_that_finds_no_heap_is_read_again(tmp_path, fault):
    with _device_with_fault(tmp_path, fault, demo_config(pin="482913"), c4_hangup_after_s=600) as vd:
        mark = len(vd.events)
        vd.press(hold_s=1.2)
        _her_alert_goes_out(vd, mark)
        mark, console = len(vd.events), vd.console_mark()
        vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "UBICACION 482913")
        # the failed read leaves it unread; the alert's sweep (the health check) reads it again
        reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == vd.c4_numbers[0]
                              and e["text"].startswith("UBICACION"), timeout=90, after=mark)
        assert "maps.google.com" in reply["text"]
        text = vd.console_text()[-(vd.console_mark() - console):]
        assert "EV sms_read_error" in text, text       # the failed read was seen, and logged
        assert "EV crash" not in text and vd.resets == 0, text
        assert text.count("EV sms_command") == 1, text  # handed over once, not at every sweep
        assert vd.call(lambda: dict(vd.modem.inbox)) == {}   # and deleted once handled
