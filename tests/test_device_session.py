"""A technician's session with a button, as the real CLI runs it on the virtual device:
whatever way the session ends, her button is back in its firmware; and a full event log
is read without running out of heap."""
import json
import sys

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from boton.cli import main
from boton.paths import FIRMWARE
from boton.registry import Registry
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, VirtualDevice
from rigkit import FAST, demo_config, provisioned_device


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def full_log(flash, n=250):
    """A log of n entries on the button's flash, written by the firmware's own module."""
    sys.path.insert(0, str(FIRMWARE / "lib"))
    try:
        import eventlog
    finally:
        sys.path.pop(0)
    log = eventlog.EventLog(prefix=str(flash / "log"), echo=False, clock=lambda: 1796040000)
    for i in range(n):
        log.add("status", "battery_%d" % (i % 100))
    return log


@pytest.fixture
def vd(tmp_path):
    """A provisioned button (demo config) whose event log is nearly full, switched on."""
    install(tmp_path / "flash", config=demo_config())
    full_log(tmp_path / "flash")
    rig = VirtualDevice(tmp_path / "flash", time_scale=FAST)
    rig.start()
    rig.wait_console("EV ready", timeout=60)
    yield rig
    rig.stop()


def test_a_full_event_log_is_read_whole(vd):
    # the log was read into one list on the board: past ~150 entries `logs`, `status` and
    # `test-call` (which reads the log first) ran out of the 56 KB heap
    r = run("logs", "--port", vd.repl_url, "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    # the boot's entries rotated the oldest segment out: three whole ones and the newest
    assert got["intact"] and len(got["entries"]) >= 3 * 64
    seqs = [int(e.split(" ")[0]) for e in got["entries"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[-1] > 250
    r = run("status", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output


def test_a_session_that_fails_leaves_her_button_in_its_firmware(vd):
    # a command that fails on the device (here: the board is not in the registry) left the
    # board in the raw REPL: presses were ignored until the session's watchdog hold ran out
    with Registry():
        pass  # a registry without this board (with none, test-call stops before the port)
    mark = vd.console_mark()
    r = run("test-call", "--port", vd.repl_url, "--timeout", "30")
    assert r.exit_code != 0
    vd.wait_console("EV ready", since=mark, timeout=30)
    ev = len(vd.events)
    vd.press(hold_s=1.3)
    vd.wait_event(lambda e: e["kind"] == "call" or e["kind"] == "call_start", timeout=60, after=ev)


def test_a_session_leaves_her_running_alert_alone_unless_told(tmp_path):
    # Every session starts with a Ctrl-C: a `boton status` on a button in her alert stopped
    # the alert (no redial, no location SMS, her presses unheard) for the whole command
    with provisioned_device(tmp_path) as rig:
        rig.press(hold_s=1.3)
        rig.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        mark, ev = rig.console_mark(), len(rig.events)
        r = run("status", "--port", rig.repl_url)
        assert r.exit_code == 4, r.output
        assert "in an alert" in r.output and "--during-alert" in r.output
        rig.wait_console("EV ready", since=mark, timeout=30)  # back in its firmware at once
        # ... which carried the alert on: C4's call kept, neither dropped nor redialled
        assert [e["kind"] for e in rig.events[ev:] if e["kind"].startswith("call")] == []
        assert json.loads((rig.flash_dir / "alert.json").read_text())["active"]
        r = run("status", "--port", rig.repl_url, "--during-alert")
        assert r.exit_code == 0, r.output


VANISH = """
import os, sys
from boton import device
device.SESSION_SLACK_S = 5  # the test's: the programme's minute is too long to wait for
dev = device.Device(sys.argv[1])
dev.__enter__()
dev.exec("x = 1")
os._exit(9)  # killed, its laptop asleep, its cable out: no __exit__
"""


def test_a_host_that_vanishes_mid_session_leaves_her_button_deaf_only_briefly(tmp_path):
    # One 15-minute watchdog hold per session left the board in the raw REPL, deaf to her
    # presses, for 15 minutes after the host vanished. Each command now holds for its own
    # timeout and SESSION_SLACK_S: here 10 + 5 s, then the watchdog's 30 s.
    import subprocess
    with provisioned_device(tmp_path) as vd:
        mark = vd.console_mark()
        gone = subprocess.run([sys.executable, "-c", VANISH, vd.repl_url], capture_output=True, timeout=60)
        assert gone.returncode == 9, gone.stderr.decode()
        vd.wait_console("EV ready", since=mark, timeout=90)
        ev = len(vd.events)
        vd.press(hold_s=1.3)
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60, after=ev)


RESET_MID = """
import sys, time
from boton.device import Device
from boton.errors import DeviceError
with Device(sys.argv[1]) as dev:
    dev.exec("x = 1")
    print("open", flush=True)
    sys.stdin.readline()  # the board resets now
    try:
        dev.exec("print(2 + 2)", timeout=10)
        print("answered")
    except DeviceError as e:
        print("DeviceError:", e)
"""


def test_a_board_that_resets_mid_session_on_a_pty_ends_the_command(tmp_path):
    # On a pty (boton sim --repl pty, the rehearsal's port) mpremote reads byte by byte
    # with no timeout: a session whose board reset (the watchdog, EN) waited for ever
    import subprocess
    with provisioned_device(tmp_path, repl="pty") as vd:
        proc = subprocess.Popen([sys.executable, "-c", RESET_MID, vd.repl_url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "open", proc.stderr.read()
            vd.hard_reset()
            proc.stdin.write("\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=90)
        finally:
            proc.kill()
        assert "DeviceError: lost the device" in out or "answered" in out, (out, err)
