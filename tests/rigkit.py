"""Shared helpers for tests that drive a virtual device."""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boton.rules import build_config
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice

FAST = 0.1  # simulated parts run ten times faster than the real modem/GPS
# A test shortcut: the GPS's first fix 2 s after power-on. The rig's own default is the
# receiver's real cold start (27 s on a NEO-6M, 30 s on an L76K); tests about something
# else than the first fix choose this instead, so that her first SMS carries a position.
FAST_FIX = dict(gps_ttff_s=2.0)

# The real esptool, as a technician runs it by hand (boton flash uses its Python API).
ESPTOOL = Path(sys.executable).with_name("esptool")
if not ESPTOOL.exists():
    ESPTOOL = Path(shutil.which("esptool") or "esptool")
NO_RESET = ("--before", "no-reset", "--after", "no-reset")


def esptool(url, *args, reset=NO_RESET, stub=False, check=True):
    cmd = [str(ESPTOOL), "--port", url, *reset, *(() if stub else ("--no-stub",)), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    out = p.stdout + p.stderr
    if check and p.returncode:
        pytest.fail(f"{' '.join(cmd[1:])} exited {p.returncode}:\n{out}")
    return p.returncode, out


def demo_config(**kw):
    args = dict(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4], device_id="BS-0042",
                hold_ms=800)
    args.update(kw)
    return build_config(**args)


def provision_blank_chip(vd):
    """A blank virtual chip (flash_image, repl="rfc2217") made into her button as a
    technician does it: `boton flash --virtual-firmware`, `boton deploy`, her configuration;
    left running its firmware (EV ready)."""
    from click.testing import CliRunner

    from boton.cli import main
    from boton.device import Device
    from boton.provision import write_config

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert run("flash", "--port", vd.repl_url, "--virtual-firmware").exit_code == 0
    vd.wait_console("Performing initial setup", timeout=30)
    assert run("deploy", "--port", vd.repl_url).exit_code == 0
    with Device(vd.repl_url) as dev:
        write_config(dev, demo_config())
    mark = vd.console_mark()
    vd.hard_reset()
    vd.wait_console("EV ready", since=mark, timeout=60)


@contextlib.contextmanager
def provisioned_device(tmp_path, config=None, board="tcall_sim800l_axp192", **rig_kw):
    """A virtual device with firmware and config already on its flash, booted and ready."""
    flash = tmp_path / "flash"
    install(flash, board, config if config is not None else demo_config())
    rig_kw.setdefault("time_scale", FAST)
    for k, v in FAST_FIX.items():  # the test shortcut (above), unless the test says otherwise
        rig_kw.setdefault(k, v)
    vd = VirtualDevice(flash, board=board, network_log=tmp_path / "net.jsonl", **rig_kw)
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=60)
        yield vd
    finally:
        vd.stop()


def her_alert_on_the_flash(vd):
    """Press; once C4 answers, wait until alert.json says her alert is running."""
    mark = len(vd.events)
    vd.press(hold_s=1.2)
    vd.wait_event(lambda e: e["kind"] == "call_connected", after=mark, timeout=60)
    saved = vd.flash_dir / "alert.json"
    deadline = time.monotonic() + 30
    while not (saved.exists() and '"active": true' in saved.read_text()):
        assert time.monotonic() < deadline, "her alert never reached the flash"
        time.sleep(0.05)


def programme_boards(tmp_path, monkeypatch, c4):
    """The programme's board profiles (a BOTON_BOARDS folder): the release's, with its real
    C4 as safe_c4 (what safe mode calls, and provision checks)."""
    from boton import boards
    folder = tmp_path / "boards"
    folder.mkdir()
    for p in boards.BOARDS.glob("*.json"):
        profile = json.loads(p.read_text())
        profile["safe_c4"] = c4
        (folder / p.name).write_text(json.dumps(profile, indent=2))
    monkeypatch.setattr(boards, "BOARDS", folder)
    return folder


def log_entries(vd):
    """(seq, stamp, event, detail) of the device's event log on its flash, oldest first."""
    rows = []
    for f in vd.flash_dir.glob("log.*"):
        for line in f.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) >= 5:
                rows.append((int(parts[0]), parts[1], parts[2], parts[3]))
    return sorted(rows)


SAFE_WATCHING = "safe mode: button watched"


def break_firmware(flash):
    """A corrupt alert module both in lib/ and in the flash root (the root comes before the
    frozen modules on sys.path, so it breaks a frozen image's import too): the board boots
    into safe mode."""
    for path in (flash / "lib" / "alert.mpy", flash / "alert.mpy"):
        path.write_bytes(b"\x00garbage, not bytecode")


def press_in_safe_mode(vd, number, hold_s=1.2, presses=1):
    """Once safe mode watches the button (a press before that finds no one listening, as
    on the board), press it (held, or `presses` short presses) and wait until `number`
    answers. Returns the event mark from before the press."""
    vd.wait_console(SAFE_WATCHING, timeout=60)
    mark = len(vd.events)
    if presses > 1:
        vd.press_sequence(presses)
    else:
        vd.press(hold_s=hold_s)
    vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == number, after=mark, timeout=60)
    return mark


def wait_until(vd, fact, timeout=30):
    """Until fact() (run on the rig's loop, where the simulated parts live) is true."""
    deadline = time.monotonic() + timeout
    while not vd.call(fact):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class FakeClock:
    """A monotonic clock for the network-wait loops: pause() moves it, nothing sleeps."""
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def pause(self, s):
        self.t += s
