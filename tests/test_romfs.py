"""The firmware's .mpy in a romfs partition, run in place (issue 13's .mpy budget).

`boton flash` gives the partition table a romfs partition; `boton deploy` writes lib/ there
as one ROMFS image and removes lib/ from LittleFS (it would come first on sys.path); the
virtual chip maps the partition and mounts it at /rom as MicroPython's ESP32 port does."""
import contextlib
import hashlib
import io
import sys
import types

import pytest
from click.testing import CliRunner

from boton import flash as fl
from boton import frozen, provision, romfs
from boton import image as img
from boton.cli import main
from boton.device import Device
from boton.errors import DeviceError
from boton.provision import release_on_board
from boton.release import firmware_files
from boton.sim.rom_server import RomServer
from boton.sim.rig import VirtualDevice
from rigkit import FAST, provision_blank_chip

BOARD = "tcall_sim800l_axp192"
FW = img.virtual_firmware()


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def lib_of(board=BOARD):
    return [(p[4:], d) for p, d in firmware_files(board, True) if p.startswith("lib/")]


# ----------------------------------------------------------------------------- the table
@pytest.mark.parametrize("size, rom_at, vfs_at", [("4MB", 0x200000, 0x230000), ("2MB", 0x170000, 0x1A0000)])
def test_the_romfs_partition_goes_after_the_app_and_the_filesystem_after_it(size, rom_at, vfs_at):
    parts = img.with_romfs(img.default_partitions(size))
    layout = img.layout_for(size, parts)
    assert (layout.romfs.offset, layout.romfs.size, layout.romfs.subtype) == (rom_at, img.ROMFS_SIZE, 0x8F)
    assert layout.vfs_offset == vfs_at and layout.vfs_offset + layout.vfs_size == img.parse_flash_size(size)
    assert img.with_romfs(parts) == parts                                   # once only
    assert img.without_romfs(parts) == img.default_partitions(size)
    assert img.decode_partition_table(img.encode_partition_table(parts)) == list(parts)


def test_a_romfs_row_that_overlaps_the_filesystem_is_refused():
    parts = img.default_partitions("4MB") + (img.Partition("romfs", 1, 0x8F, 0x200000, 0x30000),
                                             img.Partition("vfs", 1, 0x81, 0x220000, 0x1E0000))
    with pytest.raises(img.ImageError, match="overlaps the filesystem"):
        img.layout_for("4MB", parts)


def test_the_flash_adds_removes_or_keeps_the_romfs_row():
    with_rom = fl.with_romfs_as_chosen(FW, 0x1000, True)
    assert img.romfs_partition(img.firmware_partitions(with_rom))
    assert fl.with_romfs_as_chosen(with_rom, 0x1000, True) == with_rom
    assert fl.with_romfs_as_chosen(with_rom, 0x1000, False) == FW         # --no-romfs
    assert fl.with_romfs_as_chosen(FW, 0x10000, True) == FW               # an app alone: no table
    # --keep-config: the board's table decides, whatever is asked
    board_without = img.encode_partition_table(img.default_partitions("4MB"))
    board_with = img.encode_partition_table(img.with_romfs(img.default_partitions("4MB")))
    assert fl.with_romfs_as_chosen(FW, 0x1000, True, board_without) == FW
    assert fl.with_romfs_as_chosen(FW, 0x1000, False, board_with) == with_rom
    # unreadable, nothing to look with: as asked (keeps_her_filesystem then looks and refuses)
    assert fl.with_romfs_as_chosen(FW, 0x1000, True, b"\xff" * 0xC00) == with_rom
    assert fl.with_romfs_as_chosen(FW, 0x1000, False, b"\xff" * 0xC00) == FW


def test_a_boards_own_romfs_row_is_kept_as_it_is():
    odd = img.Partition("romfs", 1, 0x8F, 0x200000, 0x40000)     # another size than ours
    board = img.encode_partition_table(img.default_partitions("4MB") + (odd,))
    got = img.firmware_partitions(fl.with_romfs_as_chosen(FW, 0x1000, True, board, 4 * img.MiB))
    assert img.romfs_partition(got) == odd


def test_no_romfs_partition_for_a_micropython_without_romfs(tmp_path):
    """MicroPython's default ESP32 build has no vfs.rom_ioctl: a partition would only take
    192 KB of her filesystem, and deploy could not use it."""
    stock = FW.replace(img.ROMFS_SUPPORT_MARK, b"-" * len(img.ROMFS_SUPPORT_MARK))
    assert img.supports_romfs(FW) and not img.supports_romfs(stock)
    said = []
    assert fl.with_romfs_as_chosen(stock, 0x1000, True, None, 4 * img.MiB, say=said.append) == stock
    assert len(said) == 1 and "this MicroPython has no ROMFS" in said[0] and "lib/" in said[0]
    # a board that has the partition keeps it under --keep-config (her filesystem stays put)
    board = img.encode_partition_table(img.with_romfs(img.default_partitions("4MB")))
    assert img.romfs_partition(img.firmware_partitions(fl.with_romfs_as_chosen(stock, 0x1000, True, board)))


def test_no_romfs_partition_where_the_table_leaves_no_room(tmp_path):
    said = []
    with_vfs = img.firmware_with_table(FW, img.default_partitions("4MB")[:2] + (
        img.Partition("factory", 0, 0, 0x10000, 0x1F0000), img.Partition("vfs", 1, 0x81, 0x200000, 0x200000)))
    assert fl.with_romfs_as_chosen(with_vfs, 0x1000, True, None, 4 * img.MiB, say=said.append) == with_vfs
    big_app = img.firmware_with_table(FW, img.default_partitions("4MB")[:2] + (
        img.Partition("factory", 0, 0, 0x10000, 0x3D0000),))        # ends 64 KB before the flash does
    assert fl.with_romfs_as_chosen(big_app, 0x1000, True, None, 4 * img.MiB, say=said.append) == big_app
    assert len(said) == 2 and all("no romfs partition added" in m and "lib/" in m for m in said), said
    assert "its own vfs partition" in said[0]
    srv = RomServer(tmp_path / "chip.bin").start()           # and so it is flashed: as the .bin has it
    try:
        lines = []
        fl.flash(srv.url, with_vfs, progress=lines.append)
        assert srv.loader.flash.read(0x1000, len(with_vfs)) == with_vfs
        assert any("no romfs partition added" in ln for ln in lines), lines
    finally:
        srv.stop()


@pytest.mark.parametrize("romfs_flag", [True, False])
def test_keep_config_finds_her_filesystem_after_a_romfs_partition_when_the_table_is_gone(tmp_path, romfs_flag):
    """A --keep-config flash cut short after the ROM loader erased 0x8000 on a button with
    the partition: the next try finds her LittleFS at 0x230000, whatever --romfs says."""
    data = bytearray(her_romfs_button())
    data[0x8000:0x9000] = b"\xff" * 0x1000                   # the erase took the table
    res, flash = newer_release_kept(tmp_path, bytes(data), romfs_flag)
    assert res["kept_filesystem"] == (0x230000, 0x1D0000)
    assert img.romfs_partition(img.decode_partition_table(flash[0x8000:0x8C00]))
    assert flash[0x230000:] == data[0x230000:]


def her_romfs_button():
    """A whole flash as a provisioned button flashed with the romfs partition holds it."""
    files = img.device_files(BOARD, {"c4": ["+524499100000"]}, frozen=True)
    return img.build_image(img.firmware_with_table(FW, img.with_romfs(img.default_partitions("4MB"))), files, "4MB")


def newer_release_kept(tmp_path, flash, romfs):
    """`boton flash --keep-config` of another release (other app bytes) onto a chip holding
    `flash`: (the flash result, the chip's flash afterwards)."""
    chip = tmp_path / "chip.bin"
    chip.write_bytes(flash)
    newer = bytearray(FW)
    newer[0xF400:0xF410] = b"release 0.2.0\x00\x00\x00"
    srv = RomServer(chip).start()
    try:
        res = fl.flash(srv.url, bytes(newer), progress=lambda _: None, keep_config=True, romfs=romfs)
        return res, srv.loader.flash.read(0, 4 * img.MiB)
    finally:
        srv.stop()


def test_no_romfs_flashes_the_firmware_as_given(tmp_path):
    srv = RomServer(tmp_path / "chip.bin").start()
    try:
        fl.flash(srv.url, FW, progress=lambda _: None, romfs=False)
        assert srv.loader.flash.read(0x1000, len(FW)) == FW
    finally:
        srv.stop()


def test_keep_config_keeps_a_boards_romfs_partition(tmp_path):
    """A button flashed with the partition keeps it (and her filesystem after it) when a new
    release goes on with --keep-config and --no-romfs is not what moves it."""
    chip = her_romfs_button()
    res, flash = newer_release_kept(tmp_path, chip, romfs=False)
    assert res["kept_filesystem"] == (0x230000, 0x1D0000)
    assert img.romfs_partition(img.decode_partition_table(flash[0x8000:0x8C00]))
    assert img.extract_filesystem(flash) == img.extract_filesystem(chip)


# ----------------------------------------------------------------------------- the image
def test_the_image_holds_lib_as_deploy_lists_it():
    lib = lib_of()
    image = romfs.image(lib)
    assert image[:3] == romfs.HEADER and len(image) < img.ROMFS_SIZE
    assert romfs.image(reversed(lib)) == image                     # the same bytes whatever the order


class _Partition(bytearray):
    """esp32.Partition as vfs.rom_ioctl(2, 0) gives it on the ESP32: mapped (buffer
    protocol), erased by block with ioctl(6), written with writeblocks(block, buf, offset),
    NOR rules (a write only clears bits)."""

    def ioctl(self, op, arg):
        if op == 4:
            return len(self) // 4096
        if op == 5:
            return 4096
        if op == 6:
            self[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
            self.erased.append(arg)
            return 0

    def writeblocks(self, block, buf, offset=0):
        self.written.append(block)
        at = block * 4096 + offset
        self[at:at + len(buf)] = bytes(a & b for a, b in zip(self[at:at + len(buf)], buf))


class _Esp32:
    """Device.exec run by CPython, with the ESP32 port's vfs (its romfs partition an
    esp32.Partition): the code romfs.py sends, as the board would run it."""

    def __init__(self, size=img.ROMFS_SIZE):
        self.part = _Partition(b"\x00" * size)  # not erased: the write must erase first
        self.part.erased, self.part.written = [], []
        self.mounted = ["/rom"]  # as the port mounted it at start-up

        def umount(path):
            if path not in self.mounted:
                raise OSError(22)
            self.mounted.remove(path)

        def vfs_rom(buf):  # VfsRom refuses what is not a ROMFS (ENODEV)
            if bytes(memoryview(buf)[:3]) != romfs.HEADER:
                raise OSError(19)
            return memoryview(buf)

        def mount(fs, path):
            if path in self.mounted:
                raise OSError(1)  # EPERM: something is mounted there
            self.mounted.append(path)
        fake = types.ModuleType("vfs")
        fake.rom_ioctl = lambda op, *a: 1 if op == 1 else self.part if op == 2 and a == (0,) else -22
        fake.umount, fake.mount, fake.VfsRom = umount, mount, vfs_rom
        self.vfs, self.ns = fake, {}

    def exec(self, code, timeout=None):
        out = io.StringIO()
        saved = sys.modules.get("vfs")
        sys.modules["vfs"] = self.vfs
        try:
            with contextlib.redirect_stdout(out):
                exec(code, self.ns)
        finally:
            if saved is None:
                sys.modules.pop("vfs", None)
            else:
                sys.modules["vfs"] = saved
        return out.getvalue().encode()


def test_an_esp32_partition_is_erased_written_verified_and_mounted():
    dev, image = _Esp32(), romfs.image(lib_of())
    info = romfs.partition(dev)
    assert info == {"segments": 1, "size": img.ROMFS_SIZE, "block": 4096, "object": True}
    assert not romfs.holds(dev, image)
    romfs.write(dev, image, info)
    assert bytes(dev.part[:len(image)]) == image and romfs.holds(dev, image)
    assert dev.part.erased == list(range(-(-len(image) // 4096)))
    assert dev.part.written[-1] == 0 and sorted(dev.part.written) == dev.part.erased  # the header last
    assert dev.mounted == ["/rom"]                                   # unmounted, written, mounted again


def test_an_image_too_big_for_the_partition_is_refused_before_anything_is_written():
    dev = _Esp32(size=8192)
    with pytest.raises(DeviceError, match="does not fit the board's romfs partition"):
        romfs.write(dev, romfs.image(lib_of()))
    assert dev.part == b"\x00" * 8192


def test_a_write_that_does_not_read_back_is_a_verify_failure():
    dev = _Esp32()
    dev.part.writeblocks = lambda block, buf, offset=0: None      # the flash takes nothing
    with pytest.raises(DeviceError, match="verify failed for the romfs partition"):
        romfs.write(dev, romfs.image(lib_of()))
    assert dev.mounted == []


# ----------------------------------------------------------------------------- on the virtual chip
@pytest.fixture
def mpy_chip(tmp_path):
    """A blank virtual chip whose interpreter has no firmware frozen in (an .mpy deploy's)."""
    vd = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", repl="rfc2217", time_scale=FAST,
                       interpreter=frozen.device_interpreter("pypi")).start()
    vd.wait_console("invalid header", timeout=20)
    yield vd
    vd.stop()


def test_deploy_puts_the_firmware_in_the_romfs_partition_and_it_runs_from_there(mpy_chip):
    vd = mpy_chip
    provision_blank_chip(vd)                      # flash (romfs partition), deploy, her config, EV ready
    with Device(vd.repl_url) as dev:
        where = dev.exec("import os,sys\nprint(sorted(os.listdir('/')))\nprint(sys.path)\n"
                         "import app\nprint(app.__file__)").decode()
        assert release_on_board(dev) == (BOARD, [])
    root = where.splitlines()[0]
    assert "'lib'" not in root and "'rom'" in root                     # no lib/ in LittleFS
    assert "'/rom', '/rom/lib']" in where and "/rom/lib/app.mpy" in where
    chip = vd.flash_image.read_bytes()
    rom = img.romfs_partition(img.decode_partition_table(chip[0x8000:0x8C00]))
    image = romfs.image(lib_of())
    assert chip[rom.offset:rom.offset + len(image)] == image          # in the flash, byte for byte
    r = run("deploy", "--port", vd.repl_url)                           # again: nothing to write
    assert r.exit_code == 0 and "firmware already up to date" in r.output and "romfs partition" in r.output, r.output


def test_deploy_to_romfs_removes_an_old_lib_that_would_run_instead(mpy_chip):
    vd = mpy_chip
    assert run("flash", "--port", vd.repl_url, "--virtual-firmware", "--no-romfs").exit_code == 0
    vd.wait_console("Performing initial setup", timeout=30)
    assert run("deploy", "--port", vd.repl_url).exit_code == 0         # no partition: lib/ in LittleFS
    with Device(vd.repl_url) as dev:
        assert "app.mpy" in dev.exec("import os\nprint(os.listdir('lib'))").decode()
    assert run("flash", "--port", vd.repl_url, "--virtual-firmware").exit_code == 0
    vd.wait_console("Performing initial setup", timeout=30)            # the chip erased: a new table
    with Device(vd.repl_url) as dev:                                   # an old lib/ put back by hand
        dev.write_file("lib/app.mpy", b"stale")
    r = run("deploy", "--port", vd.repl_url)
    assert r.exit_code == 0 and "removed what the release no longer uses: lib/" in r.output, r.output
    with Device(vd.repl_url) as dev:
        assert release_on_board(dev) == (BOARD, [])
        assert "/rom/lib/app.mpy" in dev.exec("import app\nprint(app.__file__)").decode()


def next_release(monkeypatch):
    """This tool with a newer release: one module more in lib/ (any change rewrites the image)."""
    real = provision.firmware_files
    extra = dict(real(BOARD, True))["lib/version.mpy"]
    monkeypatch.setattr(provision, "firmware_files", lambda board, mpy=True: real(board, mpy) + (
        [("lib/zz_next.mpy", extra)] if mpy else []))
    return [(p[4:], d) for p, d in provision.firmware_files(BOARD) if p.startswith("lib/")]


def boots_from(vd, where):
    mark = vd.console_mark()
    vd.hard_reset()
    vd.wait_console("EV ready", since=mark, timeout=60)
    with Device(vd.repl_url) as dev:
        assert where in dev.exec("import app\nprint(app.__file__)").decode()


def test_a_new_release_onto_a_romfs_button_is_written_while_lib_holds_it(mpy_chip, monkeypatch):
    """The partition rewritten under a board that ran from it: nothing of the session may
    run from it meanwhile (its watchdog feeder is hw's code), and the board runs the new
    release from the partition afterwards, with no lib/."""
    vd = mpy_chip
    provision_blank_chip(vd)
    lib = next_release(monkeypatch)
    r = run("deploy", "--port", vd.repl_url)
    assert r.exit_code == 0 and "deployed" in r.output and "/rom/lib/zz_next.mpy" in r.output, r.output
    with Device(vd.repl_url) as dev:
        assert release_on_board(dev) == (BOARD, [])
        assert romfs.holds(dev, romfs.image(lib))
        assert "lib" not in dev.exec("import os\nprint(os.listdir())").decode().split("'")
    boots_from(vd, "/rom/lib/app.mpy")


def test_a_romfs_write_cut_short_leaves_the_release_running_from_lib(mpy_chip, monkeypatch):
    vd = mpy_chip
    provision_blank_chip(vd)
    lib = next_release(monkeypatch)
    real_write = romfs.write

    def cut(dev, img, *a, **kw):   # the cable pulled after the erase and a few chunks
        real_exec, n = dev.exec, [0]

        def exec_(code, *args, **kwargs):
            if code.startswith("buf=a2b_base64("):
                n[0] += 1
                if n[0] == 4:
                    raise DeviceError("lost the device: cable pulled")
            return real_exec(code, *args, **kwargs)
        dev.exec = exec_
        try:
            real_write(dev, img, *a, **kw)
        finally:
            dev.exec = real_exec
    monkeypatch.setattr(romfs, "write", cut)
    r = run("deploy", "--port", vd.repl_url)
    assert r.exit_code != 0 and "cable pulled" in r.output, r.output
    boots_from(vd, "lib/app.mpy")                             # the new release, whole, from LittleFS
    with Device(vd.repl_url) as dev:                          # the cut image does not mount: no header
        assert dev.exec("import vfs\nprint(bytes(memoryview(vfs.rom_ioctl(2,0))[:3]))").decode().split()[-1] \
            == "b'\\xff\\xff\\xff'"
    with Device(vd.repl_url) as dev:                          # and no check passes it as done
        assert release_on_board(dev) == (BOARD, ["its firmware is in LittleFS lib/ on a board with a romfs "
                                                 "partition: a deploy that did not finish"])
    monkeypatch.setattr(romfs, "write", real_write)
    r = run("deploy", "--port", vd.repl_url)                  # and the next deploy finishes the job
    assert r.exit_code == 0 and "removed what the release no longer uses: lib/" in r.output, r.output
    with Device(vd.repl_url) as dev:
        assert release_on_board(dev) == (BOARD, []) and romfs.holds(dev, romfs.image(lib))
    boots_from(vd, "/rom/lib/app.mpy")


def test_an_unfinished_removal_of_the_old_lib_does_not_stop_the_next_release(mpy_chip, monkeypatch):
    vd = mpy_chip
    provision_blank_chip(vd)
    with Device(vd.repl_url) as dev:                          # lib.gone half removed by a power cut
        dev.write_file("lib.gone/app.mpy", b"old")
    next_release(monkeypatch)
    r = run("deploy", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output
    with Device(vd.repl_url) as dev:
        root = dev.exec("import os\nprint(os.listdir())").decode()
        assert "lib.gone" not in root and "'lib'" not in root
        assert release_on_board(dev) == (BOARD, [])


def test_an_image_too_big_for_the_partition_stops_the_deploy_before_anything_is_staged(mpy_chip, monkeypatch):
    vd = mpy_chip
    provision_blank_chip(vd)
    next_release(monkeypatch)
    real = romfs.partition
    monkeypatch.setattr(romfs, "partition", lambda dev: dict(real(dev), size=8192))
    r = run("deploy", "--port", vd.repl_url)
    assert r.exit_code != 0 and "does not fit the board's romfs partition (8 KB): nothing was written" in r.output
    with Device(vd.repl_url) as dev:
        root = dev.exec("import os\nprint(os.listdir())").decode()
        assert "lib" not in root.split("'")                  # nothing staged: the old release runs from /rom
    boots_from(vd, "/rom/lib/app.mpy")
