"""The technician's whole day on a virtual device with a real SPI flash file: the real
esptool flashes it through the ROM loader, MicroPython mounts the LittleFS with VfsLfs2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from boton import image as img
from boton.registry import Registry
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice
from rigkit import FAST, FAST_FIX, esptool

BOTON = str(Path(sys.executable).parent / "boton")


def boton(*args, ok=True, timeout=300):
    proc = subprocess.run([BOTON, *args], capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def chip(tmp_path):
    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", time_scale=FAST,
                       c4_hangup_after_s=30, **FAST_FIX)  # the maps link in her first SMS
    vd.start()
    yield vd
    vd.stop()


def files_on(vd):
    return img.read_filesystem(img.extract_filesystem(vd.flash_image.read_bytes()))


def device_log(vd):
    """The button's own event log, read from its flash: what a failed step looks like from
    the inside (entries carry masked numbers only)."""
    try:
        files = files_on(vd)
    except Exception as e:  # the failure being reported matters more than this extra
        return f"\n(device log unreadable: {e})"
    logs = sorted(k for k in files if k.split("/")[-1].startswith("log."))
    return "\ndevice log:\n" + "".join(files[k] if isinstance(files[k], str) else files[k].decode(errors="replace")
                                       for k in logs)


def test_flash_deploy_provision_test_call_deliver(chip, tmp_path, monkeypatch):
    assert "invalid header" in chip.wait_console("invalid header", timeout=10)  # a blank chip
    chip.enter_download()
    out = boton("flash", "--port", chip.download_url, "--virtual-firmware").stdout
    assert "flashed and verified" in out and chip.mac in out
    chip.enter_download()
    assert "already flashed" in boton("flash", "--port", chip.download_url, "--virtual-firmware").stdout
    chip.hard_reset()
    chip.wait_console("Performing initial setup", timeout=30)  # MicroPython formats the empty vfs

    url = chip.repl_url
    assert "deployed" in boton("deploy", "--port", url).stdout
    assert "already up to date" in boton("deploy", "--port", url).stdout  # second deploy copies nothing
    # her case first: provision builds the button's configuration from it. The key as
    # registry.md asks for it, with a passphrase: every step that reads her case unlocks it
    monkeypatch.setenv("BOTON_KEY_FILE", str(tmp_path / "registry.key"))
    monkeypatch.setenv("BOTON_KEY_NEW_PASSPHRASE", "la oficina de la calle Madero")
    boton("registry", "init-key")
    monkeypatch.delenv("BOTON_KEY_NEW_PASSPHRASE")
    assert (tmp_path / "registry.key").read_text().startswith('{"format": "boton-registry-key/')
    monkeypatch.setenv("BOTON_KEY_PASSPHRASE", "la oficina de la calle Madero")
    boton("devices", "assign", chip.mac, "--alias", "Luna", "--case-id", "AGS-2026-0042",
          "--order-ends", "2027-06-30", "--contact", DEFAULT_CONTACT)
    assert "from her case" in boton("provision", "--port", url, "--c4", DEFAULT_C4).stdout
    assert json.loads(files_on(chip)["config.json"])["alias"] == "Luna"  # in the LittleFS itself
    call = boton("test-call", "--port", url, "--timeout", "90", ok=False)
    assert call.returncode == 0 and "-> ok" in call.stdout, call.stdout + call.stderr + device_log(chip)
    boton("devices", "deliver", chip.mac, "--port", url)  # reads the button before recording it
    with Registry() as reg:
        dev = reg.get(chip.mac)
        assert dev.state == "delivered" and dev.flash_size == 4 * 1024 * 1024
        assert dev.firmware_hash and dev.config_hash and dev.test_call_result == "passed"
    # a flash image's Python block device counts in the rig's own share, still within its allowance
    assert "rig: the virtual board" not in chip.console_text()
    listing = json.loads(boton("devices", "list", "--json").stdout)
    assert any(d["mac"] == chip.mac and d["state"] == "delivered" for d in
               (listing["devices"] if isinstance(listing, dict) else listing))


def test_a_flash_file_named_relative_to_the_current_folder_boots(tmp_path, monkeypatch):
    # `boton sim --flash-image chip.bin`, as the guide writes it: the interpreter runs in the
    # flash folder, so the relative name pointed nowhere and MicroPython crash-looped
    # (ENOENT) after a flash that said "verified"
    monkeypatch.chdir(tmp_path)
    vd = VirtualDevice("flash", flash_image="chip.bin", time_scale=FAST, **FAST_FIX)
    vd.start()
    try:
        vd.wait_console("invalid header", timeout=10)
        vd.enter_download()
        boton("flash", "--port", vd.download_url, "--virtual-firmware")
        vd.hard_reset()
        vd.wait_console("Performing initial setup", timeout=30)
        assert "Traceback" not in vd.console_text()
    finally:
        vd.stop()


def test_flash_hints_when_not_in_download_mode(chip):
    chip.enter_download()
    boton("flash", "--port", chip.download_url, "--virtual-firmware")  # leaves it running the app
    proc = boton("flash", "--port", chip.download_url, "--virtual-firmware", ok=False)
    assert proc.returncode == 3
    assert "hold BOOT" in proc.stderr and "Traceback" not in proc.stderr


def test_factory_image_boots_provisioned(chip, tmp_path):
    fw = tmp_path / "virtual.bin"
    fw.write_bytes(img.virtual_firmware())
    out = tmp_path / "factory.bin"
    boton("devices", "add", chip.mac, "--label", "BS-0042")  # an image is for a registered button
    boton("image", "--board", "tcall_sim800l_axp192", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
          "--c4", DEFAULT_C4, "--device-id", "BS-0042", "--hold-ms", "800",
          "--firmware", str(fw), "-o", str(out))
    chip.enter_download()
    esptool(chip.download_url, "write-flash", "-z", "0x0", str(out))
    chip.hard_reset()
    chip.wait_console("EV ready", timeout=60)  # boot.py/main.py/config straight from the image
    chip.press(hold_s=1.2)
    sms = chip.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=60)
    assert "Luna" in sms["text"] and "maps.google.com" in sms["text"]
    with Registry() as reg:  # the registry recorded the configuration the button now holds
        assert reg.check_config(chip.mac, files_on(chip)["config.json"]) == reg.get(chip.mac).config_hash


def test_one_rfc2217_url_for_esptool_and_mpremote_like_a_usb_port(tmp_path):
    """esptool's DTR/RTS reset enters the ROM loader, its hard reset boots MicroPython, and
    mpremote then gets the REPL on the same URL."""
    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", repl="rfc2217",
                       time_scale=FAST)
    vd.start()
    try:
        assert vd.repl_url.startswith("rfc2217://") and vd.download_url == vd.repl_url
        fw = tmp_path / "virtual.bin"
        fw.write_bytes(img.virtual_firmware())
        esptool(vd.repl_url, "write-flash", "-z", "0x1000", str(fw), reset=("--after", "hard-reset"))
        vd.wait_console("Performing initial setup", timeout=60)
        out = subprocess.run([str(Path(sys.executable).parent / "mpremote"), "connect", vd.repl_url,
                              "exec", "import os; print(sorted(os.listdir()))"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "['boot.py']"  # a freshly formatted filesystem: the port writes a boot.py
    finally:
        vd.stop()


def test_two_boards_flash_in_parallel_with_per_device_lines(tmp_path):
    a = VirtualDevice(tmp_path / "a", flash_image=tmp_path / "a.bin", mac="24:0a:c4:00:00:01", time_scale=FAST)
    b = VirtualDevice(tmp_path / "b", flash_image=tmp_path / "b.bin", mac="24:0a:c4:00:00:02", time_scale=FAST)
    a.start()
    b.start()
    try:
        a.enter_download()
        b.enter_download()
        out = boton("flash", "--port", a.download_url, "--port", b.download_url, "--virtual-firmware").stdout
        for vd in (a, b):
            assert f"{vd.download_url}: flashed and verified ({vd.mac}, 4MB)" in out
            assert vd.flash_image.read_bytes()[0x1000] == 0xE9
        with Registry() as reg:
            assert {reg.get(a.mac).state, reg.get(b.mac).state} == {"in_stock"}
            assert reg.get(a.mac).image_hash == reg.get(b.mac).image_hash
    finally:
        a.stop()
        b.stop()
