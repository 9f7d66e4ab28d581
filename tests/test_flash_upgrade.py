"""`boton flash --keep-config`: a new release for a button that holds her configuration.

Without it a flash erases the whole chip, so a release-image button could only get a new
firmware by being provisioned again (a new PIN for her, a new test of everything). With it
nothing is erased but the sectors the image is written to, and only after the board's own
partition table shows that the new image leaves her filesystem where it is."""
import hashlib
import json

import pytest
from click.testing import CliRunner

from boton import flash as fl
from boton import image as img
from boton.cli import main
from boton.errors import EXIT_DEVICE, EXIT_USAGE
from boton.registry import Registry
from boton.rules import CONFIG_PATH
from boton.sim.rom_server import RomServer
from rigkit import demo_config

MAC = "24:0a:c4:00:00:42"        # the virtual chip's
BOARD = "tcall_sim800l_axp192"
V1 = img.virtual_firmware()
APP = img.APP_OFFSET - img.BOOTLOADER_OFFSET


def next_release(base=V1, table=None):
    """The same layout with other app bytes (what a new release changes); `table`: another
    partition table in it."""
    data = bytearray(base)
    data[APP + 0x400:APP + 0x410] = b"release 0.2.0\x00\x00\x00"
    if table is not None:
        rel = img.PARTITION_TABLE_OFFSET - img.BOOTLOADER_OFFSET
        data[rel:rel + img.PARTITION_TABLE_SIZE] = img.encode_partition_table(table)
    return bytes(data)


def commands(srv):
    return [name for name, _ in srv.loader.log]


@pytest.fixture
def her_button(tmp_path):
    """A chip as a provisioned button leaves it: the release image at 0x1000 and a LittleFS
    with her configuration in the vfs partition; in download mode."""
    chip = tmp_path / "chip.bin"
    chip.write_bytes(img.build_image(V1, img.device_files(BOARD, demo_config(), frozen=True), "4MB"))
    srv = RomServer(chip).start()
    yield srv
    srv.stop()


def flash_bytes(srv):
    return srv.loader.flash.read(0, 4 * img.MiB)


def her_config(flash):
    return img.read_filesystem(img.extract_filesystem(flash))[CONFIG_PATH]


def test_keep_config_writes_the_release_and_leaves_her_filesystem_byte_for_byte(her_button):
    before = flash_bytes(her_button)
    fs = img.extract_filesystem(before)
    lines = []
    res = fl.flash(her_button.url, next_release(), keep_config=True, progress=lines.append)
    after = flash_bytes(her_button)
    assert after[img.BOOTLOADER_OFFSET:img.BOOTLOADER_OFFSET + len(V1)] == next_release()
    assert img.extract_filesystem(after) == fs                 # not one byte of hers changed
    assert json.loads(her_config(after)) == json.loads(her_config(before))
    assert res["kept_filesystem"] == (0x200000, 0x200000) and not res["skipped"]
    assert "ERASE_REGION" not in commands(her_button) and "ERASE_FLASH" not in commands(her_button)
    assert any("her filesystem stays as it is (2048 KB at 0x200000)" in ln for ln in lines), lines


def test_without_keep_config_the_same_flash_erases_her_filesystem(her_button):
    """What --keep-config changes: a plain flash (a repair, --force) erases the chip."""
    fl.flash(her_button.url, next_release(), progress=lambda m: None)
    fs = img.extract_filesystem(flash_bytes(her_button))
    assert fs == b"\xff" * len(fs)


@pytest.mark.parametrize("what, image, needle", [
    ("a 2 MB partition table on a 4 MB chip: the filesystem moves to 0x170000",
     next_release(table=img.default_partitions(2 * img.MiB)),
     "the new image puts the filesystem at 0x170000 (2624 KB); the board has it at 0x200000 (2048 KB)"),
    ("an image as long as the space before her filesystem and more",
     next_release() + b"\xff" * (0x200000 - len(V1)),
     "reaches into her filesystem at 0x200000"),
    ("no partition table in the image", next_release()[:APP],
     "no partition table at 0x8000 in the firmware"),
])
def test_keep_config_refuses_an_image_that_would_lose_her_data_and_writes_nothing(her_button, what, image, needle):
    before = flash_bytes(her_button)
    if what.startswith("no partition"):
        image = bytearray(image)
        rel = img.PARTITION_TABLE_OFFSET - img.BOOTLOADER_OFFSET
        image[rel:rel + img.PARTITION_TABLE_SIZE] = b"\xff" * img.PARTITION_TABLE_SIZE
        image = bytes(image)
    with pytest.raises(fl.FlashError) as e:
        fl.flash(her_button.url, image, keep_config=True, progress=lambda m: None)
    assert e.value.exit_code == EXIT_USAGE and needle in str(e.value), str(e.value)
    assert "nothing was written" in str(e.value).lower()
    assert not {"FLASH_BEGIN", "FLASH_DEFL_BEGIN", "ERASE_REGION"} & set(commands(her_button))
    assert flash_bytes(her_button) == before


def test_keep_config_refuses_a_board_whose_partition_table_cannot_be_read(tmp_path):
    srv = RomServer(tmp_path / "blank.bin").start()       # a blank chip: all 0xFF
    try:
        with pytest.raises(fl.FlashError) as e:
            fl.flash(srv.url, V1, keep_config=True, progress=lambda m: None)
        assert e.value.exit_code == EXIT_DEVICE
        assert "the board's partition table at 0x8000 cannot be read (it is blank)" in str(e.value)
        # looked for her where the table with the romfs partition (--romfs, the default) puts
        # the filesystem, and without it; the message names the first
        assert "no filesystem of the size the new image expects is at 0x230000" in str(e.value)
        assert "A new board (a blank chip) has nothing to keep: flash it without --keep-config" in str(e.value)
        assert "FLASH_BEGIN" not in commands(srv) and "FLASH_DEFL_BEGIN" not in commands(srv)
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- the registry
def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def delivered(env):
    """MAC delivered to her, through the registry's API as the commands leave it."""
    from boton.cli_registry import devices

    assert CliRunner().invoke(devices, ["add", MAC, "--board", BOARD, "--flash-size", "4MB"]).exit_code == 0
    r = CliRunner().invoke(devices, ["assign", MAC, "--alias", "Luna", "--case-id", "AGS/2024/00731",
                                     "--name", "Maria Lopez", "--order-ends", "2031-01-31",
                                     "--contact", "449 111 2233"])
    assert r.exit_code == 0, r.output
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.record_deploy(MAC, "ab" * 32)
        reg.record_provision(MAC, "cd" * 32)
        reg.record_test_call(MAC, True, "ok")
        reg.deliver(MAC)


def test_cli_keeps_her_delivered_button_delivered_and_asks_for_deploy_and_a_test_call(
        her_button, registry_env, tmp_path):
    delivered(registry_env)
    release = tmp_path / "release.bin"
    release.write_bytes(next_release())
    before = img.extract_filesystem(flash_bytes(her_button))
    r = cli("flash", "--port", her_button.url, "--firmware", str(release))
    assert r.exit_code == 7, r.output                       # a plain flash would erase her data
    assert "a new release: --keep-config" in " ".join(r.output.split())
    r = cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config", "--force")
    assert r.exit_code == 2 and "give one" in r.output
    assert not {"FLASH_BEGIN", "FLASH_DEFL_BEGIN", "ERASE_REGION"} & set(commands(her_button))

    r = cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "flashed and verified" in out and "her configuration, PIN and event log were kept" in out
    assert "next: `boton deploy`" in out and "run `boton test-call` before it goes back to her" in out
    assert img.extract_filesystem(flash_bytes(her_button)) == before
    with Registry(registry_env["BOTON_REGISTRY"]) as reg:
        d = reg.get(MAC)
        assert d.state == "delivered" and d.config_hash == "cd" * 32   # hers, still on it
        assert d.test_call_result is None                              # a new firmware: test it again
        assert d.image_hash == hashlib.sha256(next_release()).hexdigest()
        actions = [a["action"] for a in reg.audit(MAC)]
        assert actions[-2:] == ["flash_writing", "flash_kept"]     # said before the write, then done
        assert reg.audit(MAC)[-1]["detail"].endswith("her filesystem kept (--keep-config)")


# ----------------------------------------------------------------------------- on the virtual device
def test_her_button_boots_the_new_release_with_her_configuration_and_log(tmp_path):
    """The whole path on the virtual device, its filesystem mounted from the flash as
    MicroPython mounts it: provisioned, running, given a new release with --keep-config:
    it boots into her firmware (no "initial setup", which formats the filesystem), her
    configuration and event log as they were."""
    from boton.device import Device
    from boton.provision import read_config, read_event_log
    from boton.sim.rig import VirtualDevice
    from rigkit import FAST, provision_blank_chip

    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", repl="rfc2217",
                       time_scale=FAST).start()
    try:
        vd.wait_console("invalid header", timeout=20)                     # a blank chip
        provision_blank_chip(vd)
        with Device(vd.repl_url) as dev:
            config, log = read_config(dev), read_event_log(dev)
        assert config and log
        release = tmp_path / "release.bin"
        release.write_bytes(next_release())
        mark = vd.console_mark()
        r = cli("flash", "--port", vd.repl_url, "--firmware", str(release), "--keep-config")
        assert r.exit_code == 0 and "flashed and verified" in r.output, r.output
        booted = vd.wait_console("EV ready", since=mark, timeout=60)
        assert "Performing initial setup" not in booted
        with Device(vd.repl_url) as dev:
            assert read_config(dev) == config
            assert read_event_log(dev)[:len(log)] == log                  # her log, carried on
    finally:
        vd.stop()


def cut_after_the_erase(srv):
    """The cable pulled at the first block of the image, after the ROM loader erased the
    sectors it covers (0x8000, the partition table, with them): undo() plugs it back."""
    from boton.sim.rom_loader import CMD, RomError

    handlers = srv.loader._handlers
    real = handlers[CMD["FLASH_DEFL_DATA"]]

    def pulled(data, chk):
        raise RomError(0x08, "cable pulled")
    handlers[CMD["FLASH_DEFL_DATA"]] = pulled
    return lambda: handlers.__setitem__(CMD["FLASH_DEFL_DATA"], real)


def test_a_keep_config_flash_cut_short_is_retried_and_her_filesystem_found(her_button, registry_env, tmp_path):
    """A write cut short leaves no partition table (the erase took it) but her filesystem:
    the retry finds her LittleFS where the image puts it and writes the image, which brings
    the table back; the registry said at once that the test call no longer counts."""
    delivered(registry_env)
    release = tmp_path / "release.bin"
    release.write_bytes(next_release())
    fs = img.extract_filesystem(flash_bytes(her_button))
    plug_back = cut_after_the_erase(her_button)
    r = cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config")
    plug_back()
    assert r.exit_code == 4, r.output
    cut = flash_bytes(her_button)
    assert cut[img.PARTITION_TABLE_OFFSET:img.PARTITION_TABLE_OFFSET + 32] == b"\xff" * 32   # no table: no boot
    assert cut[0x200000:] == fs                                                  # hers, untouched
    with Registry(registry_env["BOTON_REGISTRY"]) as reg:
        d = reg.get(MAC)
        assert d.state == "delivered" and d.test_call_result is None   # not "passed" on a dead button
        assert reg.audit(MAC)[-1]["action"] == "flash_writing"
    her_button.reset("download")
    r = cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "cannot be read (it is blank), but her filesystem is where the new image puts it (LittleFS, " \
           "512 blocks at 0x200000)" in out
    after = flash_bytes(her_button)
    assert img.extract_filesystem(after) == fs and her_config(after)
    assert after[img.BOOTLOADER_OFFSET:img.BOOTLOADER_OFFSET + len(V1)] == next_release()


def test_a_damaged_board_table_is_said_to_be_the_boards_not_the_firmware_file(her_button):
    flash = her_button.loader.flash
    table = bytearray(flash.read(img.PARTITION_TABLE_OFFSET, img.PARTITION_TABLE_SIZE))
    table[0x70] ^= 0xFF                              # one byte of its MD5 row
    flash.erase(img.PARTITION_TABLE_OFFSET, 0x1000)
    flash.program(img.PARTITION_TABLE_OFFSET, bytes(table))
    lines = []
    res = fl.flash(her_button.url, next_release(), keep_config=True, progress=lines.append)
    assert res["kept_filesystem"] == (0x200000, 0x200000)   # her LittleFS is where the image puts it
    assert any("cannot be read (the partition table's MD5 does not match: it is damaged), but her "
               "filesystem is where the new image puts it" in ln for ln in lines), lines


def test_a_skipped_flash_keeps_her_passed_test_call(her_button, registry_env, tmp_path):
    delivered(registry_env)
    release = tmp_path / "release.bin"
    release.write_bytes(next_release())
    assert cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config").exit_code == 0
    with Registry(registry_env["BOTON_REGISTRY"]) as reg:
        reg.record_test_call(MAC, True, "ok")           # deploy and test-call after the upgrade
        n = len(reg.audit(MAC))
    her_button.reset("download")
    r = cli("flash", "--port", her_button.url, "--firmware", str(release), "--keep-config")
    assert r.exit_code == 0 and "already flashed" in r.output, r.output
    assert "cleared its test call" not in r.output
    with Registry(registry_env["BOTON_REGISTRY"]) as reg:
        assert reg.get(MAC).test_call_result == "passed" and len(reg.audit(MAC)) == n


def test_a_kept_filesystem_keeps_the_event_logs_anchor(registry_env):
    """`boton logs` checks her log against what the registry last saw; a flash that erased
    the log ends that anchor, one that kept her filesystem must not (else a log cut after
    the upgrade would pass)."""
    delivered(registry_env)
    head = {"seq": 24, "head": "ab" * 32}
    with Registry(registry_env["BOTON_REGISTRY"]) as reg:
        reg.record_log_check(MAC, head, 24)
        reg.flash_writing(MAC)
        reg.record_flash(MAC, "4MB", "12" * 32, kept_config=True)
        assert reg.log_anchor(MAC)["seq"] == 24
        reg.record_flash(MAC, "4MB", "34" * 32)      # a flash that erased the chip
        assert reg.log_anchor(MAC) is None
