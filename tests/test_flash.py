"""`boton flash` (host/boton/flash.py) on esptool's Python API: one connection per board,
the virtual chip recognised by its eFuse signature (ROM loader, no stub), hints for the
known failures, and the REPL stand-in surviving esptool's bytes on the wrong port."""
import concurrent.futures
import hashlib
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from boton import esptool_io
from boton import flash as fl
from boton import image as img
from boton.cli import main
from boton.errors import EXIT_CONNECT, EXIT_DEVICE, EXIT_VERIFY
from boton.registry import Registry
from boton.sim.rom_loader import EFUSE_BASE, EFUSE_BLK3
from boton.sim.rom_server import RomServer
from boton.sim.rig import VirtualDevice
from rigkit import FAST

VIRTUAL_FW = img.virtual_firmware()


def fake_firmware(n, seed):
    """An ESP32-looking image (0xE9 first) of n bytes that deflates like code does."""
    words = [hashlib.sha256(bytes([seed, i])).digest() for i in range(64)]
    body = b"".join(words[(i * 7 + seed) % 64] for i in range(n // 32 + 1))
    return b"\xe9" + body[1:n]


def commands(srv):
    return [name for name, _ in srv.loader.log]


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def chip(tmp_path):
    srv = RomServer(tmp_path / "chip.bin").start()  # socket://, in download mode
    yield srv
    srv.stop()


def press_boot_and_reset(srv):
    n = len(srv.boots)
    srv.reset("download")
    srv.wait_boot("download", after=n)


def a_real_chip(srv):
    """Wipe the virtual chip's signature from its eFuse: it now reads like a real ESP32."""
    i = (EFUSE_BLK3 - EFUSE_BASE) // 4 + 6
    srv.loader._efuse[i:i + 2] = [0, 0]


# ----------------------------------------------------------------------------- one connection
def test_virtual_chip_flashed_on_one_connection_without_stub(chip):
    lines = []
    res = fl.flash(chip.url, VIRTUAL_FW, progress=lines.append)
    log = commands(chip)
    assert chip.connections == 1           # one connection for the whole run
    # synced once: esptool may resend SYNC when the answer is late (0.1 s on a busy host, as on
    # a real chip), but only before its first other command, never by reconnecting later
    first = next(i for i, name in enumerate(log) if name != "SYNC")
    assert first >= 1 and "SYNC" not in log[first:]
    assert "MEM_BEGIN" not in log          # no stub upload
    assert log[-2:] == ["FLASH_BEGIN", "FLASH_END"]  # and it ran the app
    chip.wait_boot("run")
    # the firmware as given, but for the romfs partition added to its table (--romfs, the default)
    written = chip.loader.flash.read(0x1000, len(VIRTUAL_FW))
    assert written == fl.with_romfs_as_chosen(VIRTUAL_FW, 0x1000, True) != VIRTUAL_FW
    assert img.firmware_partitions(written) == list(img.with_romfs(img.firmware_partitions(VIRTUAL_FW)))
    assert res["virtual"] and not res["skipped"] and res["bytes"] == len(VIRTUAL_FW)
    assert res["mac"] == "24:0a:c4:00:00:42" and res["flash_size"] == "4MB"
    assert "(virtual chip: ROM loader, no flasher stub)" in lines[0]
    assert any(ln.startswith(f"{chip.url}: wrote 65,536 bytes in ") and ln.endswith(" kB/s)") for ln in lines), lines


def test_same_firmware_is_skipped_and_force_writes_again(chip):
    fl.flash(chip.url, VIRTUAL_FW, progress=lambda m: None)
    press_boot_and_reset(chip)
    res = fl.flash(chip.url, VIRTUAL_FW, progress=lambda m: None)
    assert res["skipped"] and "FLASH_DEFL_BEGIN" not in commands(chip)
    press_boot_and_reset(chip)
    res = fl.flash(chip.url, VIRTUAL_FW, force=True, progress=lambda m: None)
    assert not res["skipped"] and "FLASH_DEFL_BEGIN" in commands(chip)


def test_the_stub_choice_comes_from_the_chip_signature(chip):
    """Without the signature the chip is taken as real and gets esptool's stub, which the
    virtual chip cannot run: proof that the signature, not the URL, keeps the stub off."""
    a_real_chip(chip)
    with pytest.raises(fl.FlashError) as e:
        fl.flash(chip.url, VIRTUAL_FW, progress=lambda m: None)
    assert e.value.exit_code == EXIT_DEVICE and "retry with --no-stub" in str(e.value)
    assert "MEM_END" in commands(chip)


def test_no_stub_flashes_a_chip_without_the_signature(tmp_path):
    srv = RomServer(tmp_path / "chip.bin").start()
    try:
        a_real_chip(srv)
        res = fl.flash(srv.url, VIRTUAL_FW, stub=False, progress=lambda m: None)
        assert not res["virtual"] and "MEM_BEGIN" not in commands(srv)
    finally:
        srv.stop()


def test_virtual_firmware_is_refused_on_a_real_chip_before_erasing(chip):
    a_real_chip(chip)
    with pytest.raises(fl.FlashError) as e:
        fl.flash(chip.url, VIRTUAL_FW, virtual_only=True, progress=lambda m: None)
    assert e.value.exit_code == 2 and "real ESP32 (24:0a:c4:00:00:42)" in str(e.value)
    assert "FLASH_BEGIN" not in commands(chip)


def test_flash_that_does_not_read_back_is_a_verify_failure(chip, monkeypatch):
    monkeypatch.setattr(chip.loader.flash, "md5", lambda addr, n: "0" * 32)  # a faulty chip
    with pytest.raises(fl.FlashError) as e:
        fl.flash(chip.url, VIRTUAL_FW, progress=lambda m: None)
    assert e.value.exit_code == EXIT_VERIFY and "does not read back the same" in str(e.value)
    assert "esptool write-flash failed" in str(e.value)  # the step it was in


def test_an_unknown_failure_names_the_step_and_esptools_reason(chip, monkeypatch):
    monkeypatch.setattr(chip.loader.flash, "program", lambda addr, data: b"\x00" * len(data))  # programs nothing
    with pytest.raises(fl.FlashError) as e:
        fl.flash(chip.url, VIRTUAL_FW, progress=lambda m: None)
    assert e.value.exit_code == EXIT_DEVICE
    assert str(e.value).startswith(f"esptool write-flash failed on {chip.url}: FatalError: Write failed")


def test_parallel_boards_keep_their_own_esptool_log_and_progress(tmp_path):
    servers = [RomServer(tmp_path / f"chip{i}.bin", mac=bytes([0x24, 0x0A, 0xC4, 0, 0, i])).start()
               for i in (1, 2, 3)]
    images = {s.url: fake_firmware(40_000 * (i + 1), seed=i) for i, s in enumerate(servers)}
    progress = {s.url: [] for s in servers}
    try:
        def one(url):
            return fl.flash(url, images[url], progress=lambda m: None,
                            on_progress=lambda done, total: progress[url].append((done, total)))

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = dict(zip(images, pool.map(one, images)))
        for i, s in enumerate(servers):
            assert results[s.url]["mac"] == f"24:0a:c4:00:00:{i + 1:02x}"
            assert s.loader.flash.read(0x1000, len(images[s.url])) == images[s.url]
            totals = {t for _, t in progress[s.url]}
            assert len(totals) == 1 and progress[s.url][-1][0] == totals.pop()  # one board's bar
        assert len({p[-1][1] for p in progress.values()}) == 3  # three different images
    finally:
        for s in servers:
            s.stop()


def test_rfc2217_timeout_changes_do_not_renegotiate_the_port(tmp_path, monkeypatch):
    """esptool changes the read timeout twice per command; pyserial's RFC2217 client
    renegotiated every line setting each time (50 ms polls): a 1.6 MB write took minutes."""
    import serial.rfc2217

    negotiations = []
    real = serial.rfc2217.Serial._reconfigure_port
    monkeypatch.setattr(serial.rfc2217.Serial, "_reconfigure_port",
                        lambda self: (negotiations.append(self._baudrate), real(self)))
    with RomServer(tmp_path / "chip.bin", rfc2217=True) as srv:
        port = esptool_io.open_port(srv.url)
        try:
            opened = list(negotiations)  # opening negotiates
            for t in (3, 0.1, 100, 3):
                port.timeout = t
            assert negotiations == opened
            port.baudrate = 460800  # a real line change still goes to the server
            assert negotiations == [*opened, 460800]
        finally:
            port.close()


# ----------------------------------------------------------------------------- the CLI
def test_cli_reports_speed_and_time_and_leaves_no_temp_file(chip, tmp_path, monkeypatch):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    planted = tmp / "boton-virtual-firmware.bin"  # another user's file with the old fixed name
    planted.write_bytes(b"not yours")
    r = cli("flash", "--port", chip.url, "--virtual-firmware")
    assert r.exit_code == 0, r.output
    assert f"{chip.url}: wrote 65,536 bytes in " in r.output
    assert f"{chip.url}: flashed and verified (24:0a:c4:00:00:42, 4MB) in " in r.output
    assert sorted(p.name for p in tmp.iterdir()) == [planted.name] and planted.read_bytes() == b"not yours"
    with Registry() as reg:
        assert reg.get("24:0a:c4:00:00:42").state == "in_stock"


def test_cli_flash_refuses_another_button_than_the_one_named(chip):
    # the docs promised `--device BS-0042` for flash (registry first); it had none, so the
    # wrong button on the port was erased, her configuration with it
    assert cli("devices", "add", "24:0a:c4:00:00:43", "--label", "BS-0043").exit_code == 0
    assert cli("devices", "add", "24:0a:c4:00:00:42", "--label", "BS-0042").exit_code == 0
    r = cli("flash", "--port", chip.url, "--virtual-firmware", "--device", "BS-0043")
    assert r.exit_code == 7, r.output
    assert "not BS-0043 (24:0a:c4:00:00:43): nothing was changed" in " ".join(r.output.split())
    assert "ERASE_FLASH" not in commands(chip) and "FLASH_BEGIN" not in commands(chip)
    r = cli("flash", "--port", chip.url, "--virtual-firmware", "--device", "BS-0042")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args, needle", [
    (("--port", "/dev/ttyUSB0", "--virtual-firmware"), "/dev/ttyUSB0 is a serial port"),
    (("--port", "socket://127.0.0.1:8", "--port", "socket://127.0.0.1:9", "--virtual-firmware", "--device",
      "BS-0042"), "--device names one button: give one --port with it"),
    (("--port", "socket://127.0.0.1:9", "--port", "socket://127.0.0.1:9", "--virtual-firmware"),
     "the same --port is given twice"),
])
def test_cli_bad_input_exits_2(args, needle):
    r = cli("flash", *args)
    assert r.exit_code == 2 and needle in r.output


def test_cli_nobody_listening_is_a_connect_hint():
    with socket.socket() as s:  # a free port that nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"socket://127.0.0.1:{s.getsockname()[1]}"
    r = cli("flash", "--port", url, "--virtual-firmware")
    assert r.exit_code == EXIT_CONNECT and "the port does not exist" in r.output


# ----------------------------------------------------------------------------- the wrong port: the REPL
@pytest.fixture
def repl_device(tmp_path):
    vd = VirtualDevice(tmp_path / "flash", time_scale=FAST).start()
    vd.wait_console("help()", timeout=30)
    yield vd
    vd.stop()


def repl_answers(vd, sock):
    mark = vd.console_mark()
    sock.sendall(b"\x03print(6 * 7)\r")
    return "42" in vd.wait_console("42", timeout=20, since=mark)


def test_repl_survives_bytes_that_are_not_utf8(repl_device):
    vd = repl_device
    host, port = vd.repl_url[len("socket://"):].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"x = 1\xc0\xff\xdb\r")  # friendly REPL: the bytes are dropped, x = 1 runs
        mark = vd.console_mark()
        s.sendall(b"\x01\xc0\x00\xff\xfe\x04")  # raw REPL: not UTF-8, then Ctrl-D runs it
        out = vd.wait_console("SyntaxError", timeout=20, since=mark)
        assert "OK\x04SyntaxError: invalid syntax" in out  # reported through the raw-REPL protocol
        s.sendall(b"\x02")  # back to the friendly REPL
        assert repl_answers(vd, s)
        mark = vd.console_mark()
        s.sendall(b"print(x + 1)\r")
        assert "2" in vd.wait_console("2", timeout=20, since=mark)
    assert vd.resets == 0 and vd.console_text().count("POWERON_RESET") == 1


def test_flash_on_the_repl_port_hints_download_mode_and_the_device_lives(repl_device):
    vd = repl_device
    r = cli("flash", "--port", vd.repl_url, "--virtual-firmware")
    assert r.exit_code == EXIT_CONNECT, r.output
    assert "not in download mode" in r.output and "download URL" in r.output
    host, port = vd.repl_url[len("socket://"):].split(":")
    with socket.create_connection((host, int(port))) as s:
        assert repl_answers(vd, s)
    assert vd.resets == 0


# ----------------------------------------------------------------------------- the rehearsal, end to end
def test_rfc2217_url_of_boton_sim_is_flashed_then_deployed(tmp_path):
    """`boton sim --flash-image X --repl rfc2217` gives one URL: `boton flash
    --virtual-firmware` on it, then `boton deploy` on the same URL, as on a board."""
    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", repl="rfc2217",
                       time_scale=FAST).start()
    try:
        vd.wait_console("invalid header", timeout=20)  # a blank chip
        r = cli("flash", "--port", vd.repl_url, "--virtual-firmware")
        assert r.exit_code == 0, r.output
        assert f"{vd.repl_url}: flashed and verified ({vd.mac}, 4MB) in " in r.output
        with Registry() as reg:   # the label its box's sticker needs, said as it was registered
            assert re.search(rf" s, label {reg.get(vd.mac).label}\n", r.output), r.output
        vd.wait_console("Performing initial setup", timeout=30)  # hard reset: MicroPython boots
        r = cli("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0 and "deployed" in r.output, r.output
    finally:
        vd.stop()


def test_flash_leaves_a_button_in_her_alert_unless_told(tmp_path):
    """esptool's reset stops the firmware and the erase takes alert.json: a button whose
    REPL says her alert runs is refused, as every REPL session refuses it, and goes straight
    back to it; --during-alert goes on. A blank chip is asked only briefly."""
    import time

    from boton.sim.rig import DEFAULT_C4
    from rigkit import provision_blank_chip

    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", repl="rfc2217",
                       time_scale=FAST).start()
    try:
        vd.wait_console("invalid header", timeout=20)  # a blank chip: no REPL answers
        t = time.monotonic()
        fl.refuse_a_running_alert(vd.repl_url)
        assert time.monotonic() - t < fl.REPL_PROBE_S + 3   # not the session's 10 s
        provision_blank_chip(vd)
        vd.press(hold_s=1.3)                               # her alert: C4 on the line
        vd.wait_event(lambda e: e["kind"] == "call_connected", timeout=60)
        boots, mark, ev = len(vd._rom.boots), vd.console_mark(), len(vd.events)
        r = cli("flash", "--port", vd.repl_url, "--virtual-firmware", "--force")
        assert r.exit_code == 4, r.output
        assert "in an alert" in r.output and "--during-alert" in r.output
        assert "erases her alert with the chip" in r.output and DEFAULT_C4[-4:] not in r.output
        vd.wait_console("EV ready", since=mark, timeout=30)  # back in its firmware at once
        # ... which carried the alert on: C4's call kept, neither dropped nor redialled
        assert [e["kind"] for e in vd.events[ev:] if e["kind"].startswith("call")] == []
        assert len(vd._rom.boots) == boots   # esptool never reset it into the ROM loader
        r = cli("flash", "--port", vd.repl_url, "--virtual-firmware", "--during-alert")
        assert r.exit_code == 0 and "already flashed" in r.output, r.output
    finally:
        vd.stop()
