"""The virtual device behaves like a board to the real mpremote, and the alert path works on it."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boton.sim import chipclock
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, TICKS_PERIOD, VirtualDevice
from rigkit import provisioned_device

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def mpremote(url, *args, timeout=60):
    proc = subprocess.run([MPREMOTE, "connect", url, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


@pytest.fixture(params=["socket", "pty"])
def blank_device(request, tmp_path):
    vd = VirtualDevice(tmp_path / "flash", repl=request.param, time_scale=0.1)
    vd.start()
    yield vd
    vd.stop()


def test_mpremote_fs_exec_and_soft_reset(blank_device, tmp_path):
    url = blank_device.repl_url
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hola\n" * 300)  # > one 256-byte raw-paste window
    mpremote(url, "fs", "cp", str(src), ":hello.txt")
    assert (blank_device.flash_dir / "hello.txt").read_bytes() == src.read_bytes()
    assert "hello.txt" in mpremote(url, "fs", "ls")
    assert mpremote(url, "exec", "import sys; print(sys.implementation.name, 6*7)").split() == ["micropython", "42"]
    # state survives between commands but not a soft reset, as on a board
    out = mpremote(url, "exec", "x = 5", "eval", "x", "soft-reset", "exec",
                   "print('x' in globals())")
    assert out.split() == ["5", "False"]
    script = tmp_path / "run_me.py"
    script.write_text("print('ran on', __import__('sys').platform)")
    assert "ran on linux" in mpremote(url, "run", str(script))


def test_a_blank_board_tells_its_mac_as_a_chip_does(blank_device):
    # machine.unique_id() (the eFuse MAC) answers with no firmware on the flash: boton finds
    # a board whose .mpy firmware went with an erase in the registry so (the fresh-clone
    # run's test_wipe, on the PyPI interpreter, found the virtual board could not)
    out = mpremote(blank_device.repl_url, "exec",
                   "import machine, binascii; print(binascii.hexlify(machine.unique_id()).decode())")
    assert out.strip() == blank_device.mac.replace(":", "").lower()


def test_soft_reset_runs_boot_and_main(blank_device):
    (blank_device.flash_dir / "boot.py").write_text("print('BOOT.PY')")
    (blank_device.flash_dir / "main.py").write_text("print('MAIN.PY')")
    mark = blank_device.console_mark()
    # friendly-REPL Ctrl-D soft reset: boot.py then main.py, like a board
    mpremote(blank_device.repl_url, "exec", "pass")  # leaves the friendly REPL after
    import serial
    with serial.serial_for_url(blank_device.repl_url, timeout=5) as port:
        port.write(b"\r\x02\x04")
        text = blank_device.wait_console("MAIN.PY", timeout=20, since=mark)
    assert "MPY: soft reboot" in text and text.index("BOOT.PY") < text.index("MAIN.PY")


def test_device_error_exits_are_printed_not_fatal(blank_device):
    proc = subprocess.run([MPREMOTE, "connect", blank_device.repl_url, "exec", "1/0"],
                          capture_output=True, text=True, timeout=30)
    assert "ZeroDivisionError" in proc.stdout + proc.stderr
    # the device is still there
    assert mpremote(blank_device.repl_url, "eval", "1+1").strip() == "2"


def test_alert_sends_location_sms_and_covert_call(tmp_path):
    with provisioned_device(tmp_path) as vd:
        vd.press(hold_s=1.2)
        sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=60)
        call = vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == DEFAULT_C4, timeout=60)
        assert sms["delivered"]
        assert "https://maps.google.com/?q=21.88234,-102.29143" in sms["text"]
        assert len(sms["text"]) <= 160
        assert vd.modem.audio["speaker_level"] == 0 and vd.modem.audio["ringer_level"] == 0
        assert vd.modem.audio["mic_gain"] > 0
        # the SIM800's network LED dark, and saved so (dark from the module's next start)
        assert vd.modem.netlight == 0 and vd.modem._profile["netlight"] == 0
    lines = [json.loads(x) for x in (tmp_path / "net.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT for e in lines)


def test_bounce_and_short_press_do_not_alert(tmp_path):
    with provisioned_device(tmp_path) as vd:
        vd.noise(pulses=15, width_s=0.004)
        vd.press(hold_s=0.2)  # a bag squeeze: far shorter than the 800 ms gesture
        before = vd.console_text()
        vd.press(hold_s=1.2)
        vd.wait_console("EV alert gesture", timeout=30)
        text = vd.console_text()
    # had the noise or the squeeze raised an alert, it would be logged before the real press
    # and the real press would only have logged "alert_repeat"
    assert "EV alert" not in before
    assert text.count("EV alert gesture") == 1 and "alert_repeat" not in text


def test_a_gpio_line_is_dated_by_the_firmwares_clock(tmp_path):
    # hw_sim writes "P <pin> <level> <ticks_ms>"; the unix port's ticks are CLOCK_MONOTONIC
    # in ms, like the rig's time.monotonic() (offset by the chip's clock where it is set)
    vd = VirtualDevice(tmp_path / "host-clock")
    now_ms = int(time.monotonic() * 1000)
    at = vd._device_time((now_ms - 300) % TICKS_PERIOD)
    assert at is not None and 0.25 < time.monotonic() - at < 1.0
    assert vd._device_time((now_ms + 60_000) % TICKS_PERIOD) is None   # not this clock
    if chipclock.unavailable():
        return
    vd = VirtualDevice(tmp_path / "on-for-days", uptime_s=TICKS_PERIOD / 1000 - 0.1)
    vd.clock.chip_boot()   # as the rig's power-on does
    ticks = vd.chip_ticks_ms()
    assert ticks < 2000 or ticks > TICKS_PERIOD - 1000    # within a second of the wrap
    at = vd._device_time((ticks - 300) % TICKS_PERIOD)
    assert at is not None and 0.25 < time.monotonic() - at < 1.0
    assert vd._device_time((now_ms - 300) % TICKS_PERIOD) is None      # the host's count is not the chip's


@pytest.mark.parametrize("board, receiver, ttff", [("tcall_sim800l_axp192", "NEO-6M", 27.0),
                                                   ("ta7670x_a7670sa", "L76K", 30.0)])
def test_the_gps_starts_cold_with_its_receivers_datasheet_time(tmp_path, board, receiver, ttff):
    """`boton sim`, the demo and the HIL virtual DUT: a button from stock has no ephemeris,
    so its first fix takes the receiver's cold start (NEO-6 data sheet 27 s, L76K 30 s)."""
    from boton.cli_sim import _gps_line

    with VirtualDevice(tmp_path / "flash", board=board, time_scale=0.1) as vd:
        assert vd.gps_receiver == receiver
        assert vd.call(lambda: (vd.gps.mode, vd.gps.ttff_s, vd.gps.fixed)) == ("cold", ttff, False)
        assert _gps_line(vd) == (f"{receiver}, cold start: first fix {ttff:g} s after power-on "
                                 f"({ttff / 10:g} s at --time-scale 0.1); her alert does not wait for it")


def _gps_supply_cut(vd, had_fix):
    """The firmware switches the GPS off and on again (its duty cycle, or her alert)."""
    pin = vd.board["gps"]["enable"]

    def cut():
        if had_fix:
            vd.gps.start(ttff_s=0)    # a fix in its very first burst: it has its ephemeris
        vd._pin_level(pin, 0)
        vd._pin_level(pin, 1)
        return vd.gps.mode, vd.gps.ttff_s
    return vd.call(cut)


@pytest.mark.parametrize("backup, had_fix, restart", [(True, True, ("hot", 1.0)), (True, False, ("cold", 27.0)),
                                                       (False, True, ("cold", 27.0))])
def test_a_gps_supply_cut_keeps_a_hot_start_only_on_its_backup_cell(tmp_path, backup, had_fix, restart):
    """Only V_BCKP (the NEO-6M module's backup cell) keeps the ephemeris while the supply is
    off: without it, or without a fix to keep, the receiver starts cold again."""
    from boton.boards import board_file

    profile = json.loads(board_file("tcall_sim800l_axp192").read_text())
    assert profile["gps"]["backup"] is True      # the module's cell (docs/hardware.md parts list)
    profile["gps"]["backup"] = backup
    path = tmp_path / "board.json"
    path.write_text(json.dumps(profile))
    with VirtualDevice(tmp_path / "flash", board=str(path), time_scale=0.1) as vd:
        assert _gps_supply_cut(vd, had_fix) == restart
