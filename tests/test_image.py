"""Factory images: the LittleFS that `boton image` builds is read by MicroPython's own
VfsLfs2 (the unix port, the same extmod code the ESP32 port runs), both directions."""
import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from boton import image as img
from boton.cli import BotonGroup
from boton.cli_image import image_cmd
from boton.paths import FIRMWARE
from boton.pin import check_pin
from boton.release import firmware_files
from boton.rules import build_config, config_bytes
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT

SIM = Path(img.__file__).parent / "sim"
BOARD = "tcall_sim800l_axp192"
MiB = 1 << 20
PRELUDE = f"import sys\nsys.path.insert(0, {str(SIM)!r})\nimport lfs_blockdev as L\nimport os, vfs, json\n"

# Where MicroPython >= 1.26 (generic ESP32 tables) puts `vfs` on each flash size.
EXPECTED = {
    "2MB": (0x170000, 0x090000, 144),
    "4MB": (0x200000, 0x200000, 512),
    "8MB": (0x200000, 0x600000, 1536),
    "16MB": (0x200000, 0xE00000, 3584),
}


@pytest.fixture(scope="module")
def config():
    return build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4],
                        device_id="BS-0042", pin="482913")


@pytest.fixture(scope="module")
def files(config):
    return img.device_files(BOARD, config)


@pytest.fixture(scope="module")
def image_4mb(files, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "BS-0042.bin"
    path.write_bytes(img.build_image(None, files, "4MB"))
    return path


def mpy_json(mpy, code):
    return mpy.json(PRELUDE + code)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("name", list(EXPECTED))
def test_layout_per_flash_size(name):
    offset, size, blocks = EXPECTED[name]
    lay = img.layout_for(name)
    assert (lay.vfs_offset, lay.vfs_size, lay.block_count, lay.vfs_source) == (offset, size, blocks, "auto")
    assert lay.vfs_offset + lay.vfs_size == img.FLASH_SIZES[name]
    fs = img.build_filesystem([("boot.py", b"#\n")], name)
    assert len(fs) == size
    # The superblock records the block size and count the board will compare with.
    assert fs[8:16] == b"littlefs"
    assert int.from_bytes(fs[24:28], "little") == 4096
    assert int.from_bytes(fs[28:32], "little") == blocks


def test_empty_filesystem_is_byte_identical_to_micropython_mkfs(mpy, tmp_path):
    """Our LFS_CONFIG formats exactly what VfsLfs2.mkfs(bdev) formats on the board."""
    for name in ("2MB", "4MB"):
        blank = tmp_path / f"{name}.bin"
        blank.write_bytes(b"\xff" * EXPECTED[name][1])
    out = mpy_json(mpy, f"""
for name in ("2MB", "4MB"):
    b = L.FlashRegion({str(tmp_path)!r} + "/" + name + ".bin")
    vfs.VfsLfs2.mkfs(b)
    b.close()
print(json.dumps("ok"))
""")
    assert out == "ok"
    for name in ("2MB", "4MB"):
        assert (tmp_path / f"{name}.bin").read_bytes() == img.build_filesystem([], name), name


def test_every_flash_size_mounts_on_micropython(mpy, tmp_path):
    regions = {}
    for name, (offset, size, blocks) in EXPECTED.items():
        p = tmp_path / f"{name}.fs"
        p.write_bytes(img.build_filesystem([("main.py", name.encode())], name))
        regions[name] = str(p)
    got = mpy_json(mpy, f"""
res = {{}}
for name, path in {regions!r}.items():
    fs = L.mount_image(path, 0, None, mountpoint="/m" + name, chdir=False, readonly=True)
    st = fs.statvfs("/")
    res[name] = [st[0], st[2], open("/m" + name + "/main.py").read()]
print(json.dumps(res))
""")
    assert got == {n: [4096, b, n] for n, (_, _, b) in EXPECTED.items()}


# ----------------------------------------------------------------------------- reading
def test_micropython_reads_every_file_byte_exact(mpy, image_4mb, files, config):
    offset, size, blocks = EXPECTED["4MB"]
    # One line per file: the board's heap holds one file at a time, not the whole release.
    out = mpy.run(PRELUDE + f"""
import binascii
b = L.FlashRegion({str(image_4mb)!r}, {offset}, {size}, readonly=True)
vfs.mount(b, "/flash")        # what _boot.py does: autodetect, then VfsLfs2(bdev) defaults
os.chdir("/flash")
for path, n in L.walk():
    with open(path, "rb") as f:
        data = f.read()
    print(json.dumps([path, n, binascii.b2a_base64(data).decode()]))
    data = None
print(json.dumps(["*statvfs", list(os.statvfs("/flash"))]))
""")
    got = {p: rest for p, *rest in map(json.loads, out.splitlines())}
    st = got.pop("*statvfs")[0]
    assert st[0] == 4096 and st[2] == blocks
    assert set(got) == {p for p, _ in files}
    for path, data in files:
        n, b64 = got[path]
        assert n == len(data) and base64.b64decode(b64) == data, path
    assert json.loads(base64.b64decode(got["config.json"][1])) == config
    assert {"boot.py", "main.py", "board.json", "lib/app.mpy"} <= set(got)


def test_image_is_esptool_merge_bin_of_firmware_and_fs(image_4mb, files, tmp_path):
    """The Python API result equals the documented CLI:
    esptool --chip esp32 merge-bin -o out.bin 0x1000 fw.bin 0x200000 fs.bin"""
    fw = tmp_path / "fw.bin"
    fw.write_bytes(img.placeholder_firmware(4 * MiB))
    fs = tmp_path / "fs.bin"
    fs.write_bytes(img.build_filesystem(files, "4MB"))
    out = tmp_path / "out.bin"
    esptool = [sys.executable, "-m", "esptool"]
    subprocess.run([*esptool, "--chip", "esp32", "merge-bin", "-o", str(out),
                    "0x1000", str(fw), "0x200000", str(fs)], check=True, capture_output=True)
    data = image_4mb.read_bytes()
    assert out.read_bytes() == data
    assert len(data) == 4 * MiB
    assert data[:0x1000] == b"\xff" * 0x1000
    assert data[0x1000:].startswith(img.PLACEHOLDER_MARK)
    assert img.extract_filesystem(data, "4MB") == fs.read_bytes()
    assert img.read_filesystem(img.extract_filesystem(data)) == dict(files)


# ----------------------------------------------------------------------------- mismatches
def test_wrong_block_count_or_offset_is_refused(mpy, image_4mb):
    """A partition of another size (e.g. a 0x210000 factory: 480 blocks; an 8 MB chip:
    1536) must not mount. _boot.py's vfs.mount(bdev) autodetects littlefs, VfsLfs2 refuses
    the block count (EINVAL), autodetect then tries FAT (ENODEV): OSError, and on a board
    inisetup's 'filesystem appears to be corrupted' loop."""
    offset, size, blocks = EXPECTED["4MB"]
    got = mpy_json(mpy, f"""
import errno
def err(f):
    try:
        f()
        return "mounted"
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
res = {{}}
for label, off, count in (("ok", {offset}, {blocks}), ("480", {offset}, 480), ("1536", {offset}, 1536),
                          ("shifted", 0x220000, 480)):
    b = L.FlashRegion({str(image_4mb)!r}, off, min({size}, 0x400000 - off), block_count=count, readonly=True)
    res[label] = [err(lambda: vfs.mount(b, "/a" + label)),       # _boot.py's call
                  err(lambda: vfs.mount(vfs.VfsLfs2(b), "/b" + label))]
print(json.dumps(res))
""")
    assert got["ok"] == ["mounted", "mounted"]
    assert got["480"] == got["1536"] == ["ENODEV", "EINVAL"]
    assert "mounted" not in got["shifted"]
    # littlefs-python agrees: the host cannot read it with the wrong geometry either.
    fs = img.extract_filesystem(image_4mb.read_bytes())
    with pytest.raises(Exception):
        img.read_filesystem(fs, 480)


# ----------------------------------------------------------------------------- writing
def test_micropython_writes_littlefs_python_reads(mpy, image_4mb, files, tmp_path):
    """The board appends to our filesystem (firmware's own store.write_json: temp + rename,
    a log file in a new directory); the host reads the result back with littlefs-python."""
    work = tmp_path / "flash.bin"
    work.write_bytes(image_4mb.read_bytes())
    offset, size, _ = EXPECTED["4MB"]
    log = "0123456789abcdef" * 700  # > one block, so not inlined
    mpy_json(mpy, f"""
import store
L.mount_image({str(work)!r}, {offset}, {size})
store.write_json("state.json", {{"armed": True, "n": 7}})
os.mkdir("logs")
with open("logs/log.0", "w") as f:
    f.write({log!r})
with open("config.json", "rb") as f:
    cfg = f.read()
vfs.umount("/flash")
print(json.dumps(len(cfg)))
""")
    back = img.read_filesystem(img.extract_filesystem(work.read_bytes(), "4MB"))
    assert json.loads(back.pop("state.json")) == {"armed": True, "n": 7}
    assert back.pop("logs/log.0") == log.encode()
    assert back == dict(files)  # nothing of ours was disturbed
    assert work.read_bytes()[:offset] == image_4mb.read_bytes()[:offset]  # nor the firmware


# ----------------------------------------------------------------------------- booting
def test_boot_from_image(mpy, image_4mb, monkeypatch):
    """What board_repl.py would do: mount the image's vfs as the device's flash, chdir,
    run boot.py from it and import the firmware's .mpy from its lib/ (not the host's)."""
    offset, size, _ = EXPECTED["4MB"]
    spec = img.flash_image_spec(image_4mb)
    assert spec == f"{image_4mb}@{offset:#x}+{size:#x}"
    monkeypatch.setenv("BOTON_FLASH_IMAGE", spec)
    got = mpy_json(mpy, """
fs = L.mount_from_env()
sys.path[:] = ["", "lib", ".frozen"]        # board_repl's path: the flash only
src = open("boot.py").read()
g = {"__name__": "__main__"}
exec(compile(src, "boot.py", "exec"), g)
import gsm7
print(json.dumps({"cwd": os.getcwd(), "boot": src, "gc": "gc" in g, "mod": gsm7.__file__,
                  "config": json.loads(open("config.json").read())["device_id"],
                  "spec": L.parse_spec("/a@b/f.bin@0x200000+2097152")}))
""")
    assert got["cwd"] == "/flash"
    assert got["boot"] == (FIRMWARE / "boot.py").read_text()
    assert got["gc"] is True
    assert got["mod"] == "lib/gsm7.mpy"
    assert got["config"] == "BS-0042"
    assert got["spec"] == ["/a@b/f.bin", 0x200000, 0x200000]


def test_one_esptool_write_flashes_and_provisions(mpy, image_4mb, config, tmp_path):
    """End to end on the virtual board: `esptool write-flash 0x0 image` into its ROM
    loader's flash file (the real esptool, --no-stub), then MicroPython mounts the vfs
    region of that flash as the board would and runs boot.py from it. ~6 s."""
    import os
    from boton.sim.rom_server import RomServer

    flash = tmp_path / "flash.bin"
    srv = RomServer(flash).start()
    try:
        esptool = Path(sys.executable).with_name("esptool")
        p = subprocess.run([str(esptool), "--port", srv.url, "--before", "no-reset", "--after", "no-reset",
                            "--no-stub", "write-flash", "0x0", str(image_4mb)], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, NO_COLOR="1"))
    finally:
        srv.stop()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Hash of data verified" in p.stdout
    assert flash.read_bytes() == image_4mb.read_bytes()
    path, offset, size = str(flash), *EXPECTED["4MB"][:2]
    assert img.flash_image_spec(flash) == f"{path}@{offset:#x}+{size:#x}"
    got = mpy_json(mpy, f"""
L.mount_image({path!r}, {offset}, {size})
sys.path[:] = ["", "lib"]
exec(open("boot.py").read(), {{"__name__": "__main__"}})
with open("config.json") as f:
    print(json.dumps(json.loads(f.read())))
""")
    assert got == config


# ----------------------------------------------------------------------------- firmware
def fake_firmware(parts, length=0x20000):
    """A stand-in with a real bootloader magic and the given partition table."""
    body = bytearray(b"\xff" * length)
    body[0] = 0xE9
    body[0x7000:0x7000 + img.PARTITION_TABLE_SIZE] = img.encode_partition_table(parts)
    return bytes(body)


def test_partition_table_round_trip_and_layout_from_firmware():
    table = img.encode_partition_table(img.TABLE_4MIBPLUS)
    assert len(table) == 0xC00 and table[:2] == b"\xaa\x50"
    assert img.decode_partition_table(table) == list(img.TABLE_4MIBPLUS)
    damaged = bytearray(table)
    damaged[12] ^= 1
    with pytest.raises(img.ImageError, match="MD5"):
        img.decode_partition_table(bytes(damaged))

    p = img.Partition
    # a build with a bigger app partition: vfs moves and shrinks (480 blocks on 4 MB)
    big_app = [p("nvs", 1, 2, 0x9000, 0x6000), p("phy_init", 1, 1, 0xF000, 0x1000), p("factory", 0, 0, 0x10000, 0x210000)]
    lay = img.layout_of_firmware(fake_firmware(big_app), "4MB")
    assert (lay.vfs_offset, lay.block_count, lay.vfs_source) == (0x220000, 480, "auto")
    # a pre-1.26 style table with its own vfs row: that row wins, whatever the chip size
    with_vfs = big_app[:2] + [p("factory", 0, 0, 0x10000, 0x1F0000), p("vfs", 1, 0x81, 0x200000, 0x200000)]
    lay = img.layout_of_firmware(fake_firmware(with_vfs), "8MB")
    assert (lay.vfs_offset, lay.block_count, lay.vfs_source) == (0x200000, 512, "table")
    image = img.build_image(fake_firmware(with_vfs), [("a", b"1")], "8MB")
    assert len(image) == 0x400000 and img.extract_filesystem(image, "8MB")[8:16] == b"littlefs"


def test_firmware_checks():
    with pytest.raises(img.ImageError, match="0xE9"):
        img.build_image(b"MZ" + bytes(0x20000), [], "4MB")
    with pytest.raises(img.ImageError, match="no partition table"):
        img.build_image(b"\xe9" + b"\xff" * 0x20000, [], "4MB")
    with pytest.raises(img.ImageError, match="runs into"):
        img.build_image(fake_firmware(img.TABLE_4MIBPLUS, length=0x200000), [], "4MB")
    with pytest.raises(img.ImageError, match="no room"):
        img.layout_for("2MB", img.TABLE_4MIBPLUS)   # the generic 4 MB+ build on a 2 MB chip
    with pytest.raises(img.ImageError, match="not one of"):
        img.parse_flash_size("3MB")
    assert img.parse_flash_size("4MiB") == img.parse_flash_size(4 * MiB) == 4 * MiB
    ph = img.placeholder_firmware()
    assert img.is_placeholder(ph) and ph[0] != 0xE9
    with pytest.raises(img.ImageError, match="do not fit"):
        img.build_filesystem([("big", bytes(0x100000))], "2MB")
    with pytest.raises(img.ImageError, match="bad device path"):
        img.build_filesystem([("../etc/x", b"")], "4MB")


def test_device_files(config):
    got = img.device_files(BOARD, config)
    assert got[:-1] == firmware_files(BOARD)
    assert got[-1] == ("config.json", config_bytes(config))


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def cli():
    group = BotonGroup("boton")
    group.add_command(image_cmd)

    def run(*args, env=None):
        # no registry here: these images are for no registered button (tests/test_pin.py
        # has the registered ones)
        return CliRunner().invoke(group, ["image", "--unregistered", *args], env=env, catch_exceptions=False)
    return run


def test_cli_json(cli, tmp_path, files, config):
    out = tmp_path / "BS-0042.bin"
    r = cli("--placeholder-firmware", "--device-id", "BS-0042", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4, "-o", str(out), "--json", env={"BOTON_PIN": "482913"})
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["pin"] == "env"
    assert rep["flash_size"] == 4 * MiB and rep["write_offset"] == 0 and rep["image_size"] == 4 * MiB
    assert rep["vfs"] | {"used_blocks": 0} == {"offset": 0x200000, "size": 0x200000, "block_size": 4096,
                                               "block_count": 512, "source": "auto", "used_blocks": 0,
                                               "files": len(files), "bytes": sum(len(d) for _, d in files)}
    assert rep["firmware"]["placeholder"] is True
    back = img.read_filesystem(img.extract_filesystem(out.read_bytes()))
    stored = json.loads(back["config.json"])
    # the same configuration as the fixture's but for the PIN hash's own random salt
    assert stored == dict(config, pin_hash=stored["pin_hash"]) and check_pin(stored["pin_hash"], "482913")
    assert rep["config_sha256"] == hashlib.sha256(config_bytes(stored)).hexdigest()
    assert DEFAULT_CONTACT not in r.output and "482913" not in r.output
    assert back == dict(files, **{"config.json": back["config.json"]})


def test_cli_config_file_and_human_output(cli, tmp_path, config):
    cfg = tmp_path / "her.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "x.bin"
    r = cli("--config", str(cfg), "--placeholder-firmware", "--flash-size", "8MB", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "PLACEHOLDER" in r.output and "0x200000" in r.output and "1536 blocks" in r.output
    assert "write-flash 0x0" in r.output
    assert len(out.read_bytes()) == 8 * MiB
    back = img.read_filesystem(img.extract_filesystem(out.read_bytes(), "8MB"))
    assert json.loads(back["config.json"]) == config


def test_cli_config_file_keeps_the_callback_window(cli, tmp_path, config):
    # the call-back window a programme chose (boton provision --callback-window-s) goes
    # into an image built from a config file too
    cfg = tmp_path / "her.json"
    cfg.write_text(json.dumps(dict(config, callback_window_s=600)))
    out = tmp_path / "x.bin"
    r = cli("--config", str(cfg), "--placeholder-firmware", "--flash-size", "8MB", "-o", str(out))
    assert r.exit_code == 0, r.output
    back = img.read_filesystem(img.extract_filesystem(out.read_bytes(), "8MB"))
    assert json.loads(back["config.json"])["callback_window_s"] == 600


@pytest.mark.parametrize("typed", [["--callback-window-s", "0"], ["--allow-911"], ["--hold-ms", "3000"],
                                   ["--gesture", "presses"]])
def test_cli_a_setting_typed_beside_a_config_file_is_refused_not_dropped(cli, tmp_path, config, typed):
    # --callback-window-s 0 beside --config built the firmware's default hour, exit 0
    cfg = tmp_path / "her.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "never.bin"
    r = cli("--config", str(cfg), *typed, "--placeholder-firmware", "-o", str(out))
    assert r.exit_code == 2 and f"give {typed[0]} in the config file" in r.output, r.output
    assert r.output.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("field, value", [("max_alert_s", -5), ("update_every_s", 0),
                                          ("callback_window_s", -1), ("callback_window_s", 90000)])
def test_cli_config_with_an_alert_that_cannot_run_is_refused(cli, tmp_path, config, field, value):
    cfg = tmp_path / "her.json"
    cfg.write_text(json.dumps(dict(config, **{field: value})))
    out = tmp_path / "never.bin"
    r = cli("--config", str(cfg), "--placeholder-firmware", "-o", str(out))
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: {field} (") and f"got {value}" in r.output
    assert r.output.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4, "--device-id", "BS-1"], "--firmware"),
    (["--placeholder-firmware", "--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4], "--device-id"),
    (["--placeholder-firmware", "--device-id", "BS-1"], "--config"),
    (["--placeholder-firmware", "--device-id", "BS-1", "--alias", "Luna", "--contact", "123",
      "--c4", DEFAULT_C4], "not"),
    (["--firmware", "/nonexistent.bin", "--device-id", "BS-1", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
      "--c4", DEFAULT_C4], "no firmware file"),
])
def test_cli_bad_input_exits_2(cli, tmp_path, args, needle):
    out = tmp_path / "never.bin"
    r = cli(*args, "-o", str(out))
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert not out.exists()


def test_cli_never_writes_over_the_registry_or_an_existing_file(cli, tmp_path):
    # `boton image ... -o $BOTON_REGISTRY` replaced the registry with an image. Never, even
    # with --force; any other existing file only with --force.
    from boton.registry import Registry

    registry = Path(os.environ["BOTON_REGISTRY"])
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:42", label="BS-0007")
    args = ["--placeholder-firmware", "--device-id", "BS-0042", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4]
    env = {"BOTON_PIN": "482913"}
    before = registry.read_bytes()
    for target in (registry, Path(f"{registry}-wal"), Path(f"{registry}-shm")):
        for force in ((), ("--force",)):
            r = cli(*args, "-o", str(target), *force, env=env)
            assert r.exit_code == 2 and "refusing to write the image to" in r.output, r.output
    assert registry.read_bytes() == before
    with Registry() as reg:
        assert reg.find("BS-0007") and "image_unregistered" not in [a["action"] for a in reg.audit()]
    out = tmp_path / "BS-0042.bin"
    out.write_bytes(b"an earlier image")
    r = cli(*args, "-o", str(out), env=env)
    assert r.exit_code == 7 and "already exists" in r.output and "--force" in r.output
    assert out.read_bytes() == b"an earlier image"
    r = cli(*args, "-o", str(out), "--force", env=env)
    assert r.exit_code == 0, r.output
    assert len(out.read_bytes()) == 4 * MiB and not (tmp_path / "BS-0042.bin.tmp").exists()


@pytest.mark.parametrize("force", [False, True])
def test_ctrl_c_while_the_image_is_written_leaves_no_file_of_hers(cli, tmp_path, monkeypatch, force):
    # the .tmp image (her numbers, her PIN's hash) was removed only after an OSError
    out = tmp_path / "img" / "BS-0042.bin"
    out.parent.mkdir()
    if force:
        out.write_bytes(b"an earlier image")

    def ctrl_c(*args, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", ctrl_c)
        m.setattr(os, "link", ctrl_c)
        r = cli("--placeholder-firmware", "--device-id", "BS-0042", "--alias", "Luna", "--contact",
                DEFAULT_CONTACT, "--c4", DEFAULT_C4, "-o", str(out), *(["--force"] if force else []),
                env={"BOTON_PIN": "482913"})
    assert r.exit_code == 130 and "interrupted (Ctrl-C)" in r.output   # boton's answer to a Ctrl-C
    assert [p.name for p in out.parent.iterdir()] == (["BS-0042.bin"] if force else [])
    if force:
        assert out.read_bytes() == b"an earlier image"


def test_cli_real_looking_firmware(cli, tmp_path):
    fw = tmp_path / "ESP32_GENERIC.bin"
    fw.write_bytes(fake_firmware(img.TABLE_4MIBPLUS, length=0x180000))
    out = tmp_path / "o.bin"
    r = cli("--firmware", str(fw), "--device-id", "BS-7", "--alias", "Sol", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4, "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)          # the generated PIN is shown on stderr
    assert rep["firmware"]["placeholder"] is False and rep["firmware"]["size"] == 0x180000
    assert out.read_bytes()[0x1000:0x1000 + 0x180000] == fw.read_bytes()


# ----------------------------------------------------------------------------- paths as typed
def test_output_paths_with_brackets_are_printed_as_typed_and_the_pin_line_comes(tmp_path, monkeypatch):
    # `-o 'usb[/]BS-0001.bin'` wrote the image and recorded the button as provisioned, then
    # rich took "[/]" for a closing tag: MarkupError, and the PIN line never came;
    # `-o 'B2[nuevo].bin'` showed the esptool command with "B2.bin"
    from boton.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "usb[").mkdir()
    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)   # noqa: E731
    assert run("devices", "add", "24:6f:28:00:00:01", "--label", "BS-0001").exit_code == 0
    args = ["image", "--placeholder-firmware", "--device-id", "BS-0001", "--alias", "Luna", "--contact",
            DEFAULT_CONTACT, "--c4", DEFAULT_C4]
    for out in ("usb[/]BS-0001.bin", "B2[nuevo].bin", "[bold red]x.bin"):
        r = run(*args, "-o", out, "--force")
        assert r.exit_code == 0, r.output
        assert f"image {out}: " in r.output and f"write-flash 0x0 {out}\n" in r.output
        assert "SMS command PIN: from BOTON_PIN" in r.output
        assert (tmp_path / out).stat().st_size == 4 * MiB


def test_a_config_path_with_brackets_is_named_as_typed(cli, tmp_path, monkeypatch, config):
    monkeypatch.chdir(tmp_path)
    r = cli("--config", "caso [/final].json", "--placeholder-firmware", "-o", "x.bin")
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "caso [/final].json" in r.output
    Path("caso [final].json").write_text(json.dumps(config))
    r = cli("--config", "caso [final].json", "--placeholder-firmware", "-o", "x.bin")
    assert r.exit_code == 0 and "SMS command PIN: as in caso [final].json" in r.output, r.output


def test_an_output_folder_that_is_missing_or_a_file_is_refused_before_the_registry_changes(tmp_path):
    # `image -o /nonexistent-dir/x.bin` moved the button in_stock -> provisioning before the
    # write failed: the output's folder is checked with the file, before anything is recorded
    from boton.cli import main
    from boton.registry import Registry

    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)   # noqa: E731
    assert run("devices", "add", "24:6f:28:00:00:01", "--label", "BS-0001").exit_code == 0
    with Registry() as reg:
        before = (reg.find("BS-0001"), reg.audit())
    (tmp_path / "a-file").write_text("")
    for out, why in ((tmp_path / "nonexistent-dir" / "x.bin", f"there is no folder {tmp_path / 'nonexistent-dir'}"),
                     (tmp_path / "a-file" / "x.bin", f"{tmp_path / 'a-file'} is not a folder")):
        r = run("image", "--placeholder-firmware", "--device-id", "BS-0001", "--alias", "Luna", "--contact",
                DEFAULT_CONTACT, "--c4", DEFAULT_C4, "-o", str(out))
        assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
        assert r.output == f"error: cannot write the image to {out}: {why}\n"
        with Registry() as reg:
            assert (reg.find("BS-0001"), reg.audit()) == before


def test_files_in_a_folder_the_user_may_not_enter_are_one_line(cli, tmp_path, unenterable):
    # --config, --firmware and -o in /root/x: PermissionError tracebacks as a technician's account
    typed = ["--device-id", "BS-0042", "--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4]
    out = tmp_path / "x.bin"
    for args, line in (
            (["--config", str(unenterable / "c.json"), "--device-id", "BS-0042", "--placeholder-firmware", "-o",
              str(out)], f"cannot read config file {unenterable / 'c.json'}: Permission denied"),
            (["--firmware", str(unenterable / "f.bin"), *typed, "-o", str(out)],
             f"cannot read firmware file {unenterable / 'f.bin'}: Permission denied"),
            (["--placeholder-firmware", *typed, "-o", str(unenterable / "i.bin")],
             f"cannot write the image to {unenterable / 'i.bin'}: {unenterable}: Permission denied")):
        r = cli(*args)
        assert (r.exit_code, r.output) == (2, f"error: {line}\n")
        assert not out.exists()


def test_an_oserror_no_command_foresaw_is_one_line_naming_the_path():
    import click

    from boton.cli import BotonGroup

    group = BotonGroup("boton")

    @group.command()
    def look():
        raise PermissionError(13, "Permission denied", "/root/x/registry.sqlite3")

    r = CliRunner().invoke(group, ["look"], catch_exceptions=False)
    assert (r.exit_code, r.output) == (2, "error: /root/x/registry.sqlite3: Permission denied\n")


def test_a_device_id_goes_on_a_button_only_if_her_sms_shows_it_whole(cli, tmp_path):
    # image --device-id allowed 16 characters, labels 24, her SMS shows 12: AGS-CENTRO-0042
    # and AGS-CENTRO-0043 both reached C4 as "AGS-CENTRO-0"
    from boton.cli import main
    from boton.registry import Registry

    typed = ["--placeholder-firmware", "--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4]
    out = tmp_path / "x.bin"
    r = cli(*typed, "--device-id", "AGS-CENTRO-0042", "-o", str(out))
    assert r.exit_code == 2 and "her alert SMS shows only the first 12" in r.output and not out.exists()
    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)   # noqa: E731
    assert run("devices", "add", "24:6f:28:00:00:01", "--label", "AGS-0042").exit_code == 0
    with Registry() as reg:                        # registered before labels were limited to 12
        reg.db.execute("UPDATE devices SET label = 'AGS-CENTRO-0042'")
        before = reg.audit()
    r = run("image", *typed, "--device-id", "ags-centro-0042", "-o", str(out))
    assert r.exit_code == 7 and r.output.count("\n") == 1, r.output
    assert "`boton devices relabel AGS-CENTRO-0042 NEW-LABEL`" in r.output and not out.exists()
    with Registry() as reg:
        assert reg.audit() == before and reg.find("AGS-CENTRO-0042").state == "in_stock"


def test_a_config_nested_beyond_pythons_parser_is_no_valid_json(cli, tmp_path):
    # `image --config deep.json` nested 100,000 deep: a RecursionError traceback
    deep = tmp_path / "deep.json"
    deep.write_text('{"schema": 1, "alias": ' + "[" * 100_000 + "]" * 100_000 + "}")
    out = tmp_path / "x.bin"
    r = cli("--config", str(deep), "--device-id", "BS-0042", "--placeholder-firmware", "-o", str(out))
    assert (r.exit_code, r.output) == (2, f"error: cannot read config file {deep}: not valid JSON (nested too "
                                          "deeply)\n")
    assert not out.exists()


def test_a_device_id_that_may_be_her_number_is_not_echoed(cli, tmp_path):
    r = cli("--placeholder-firmware", "--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4,
            "--device-id", "+524491112233", "-o", str(tmp_path / "x.bin"))
    assert r.exit_code == 2 and "not shown" in r.output and "4491112233" not in r.output, r.output


def test_an_image_to_a_named_pipe_is_refused_even_with_force(cli, tmp_path, unblocking):
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = ["--placeholder-firmware", "--device-id", "BS-0042", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4, "-o", str(fifo), "--force"]
    r = unblocking(fifo, lambda: cli(*args))
    assert r.exit_code == 2 and "it is not a regular file" in r.output, r.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_factory_image_records_how_often_its_button_reports(tmp_path, config):
    # the registry records the daily report period of the config in the image, as `provision`
    # does: none without a programme number (`boton reports` does not flag its silence)
    from boton.cli import main
    from boton.registry import Registry
    from boton.rules import daily_interval_s

    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)   # noqa: E731
    assert run("devices", "add", "24:6f:28:00:00:01", "--label", "BS-0001").exit_code == 0
    cfg = tmp_path / "her.json"
    for programme, every in (("449 300 0000", 86400), (None, 0)):
        cfg.write_text(json.dumps(dict(config, programme_number=programme)))
        assert daily_interval_s(dict(config, programme_number=programme)) == every
        r = run("image", "--config", str(cfg), "--device-id", "BS-0001", "--placeholder-firmware",
                "-o", str(tmp_path / f"img{every}.bin"))
        assert r.exit_code == 0, r.output
        with Registry() as reg:
            assert reg.find("BS-0001").daily_interval_s == every
            assert reg.audit()[-1]["action"] == "image"


def test_a_factory_image_from_options_takes_the_programme_number(tmp_path, config, monkeypatch):
    # `boton image` had no --programme-number: a batch of images made from options sent no
    # daily status SMS, and `boton reports` could never tell one of them had gone quiet
    from boton.cli import main
    from boton.registry import Registry

    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)   # noqa: E731
    assert run("devices", "add", "24:6f:28:00:00:01", "--label", "BS-0001").exit_code == 0
    common = ("--device-id", "BS-0001", "--placeholder-firmware", "--c4", DEFAULT_C4, "--alias", "Luna",
              "--contact", DEFAULT_CONTACT)
    r = run("image", *common, "--programme-number", "449 300 0000", "-o", str(tmp_path / "a.bin"))
    assert r.exit_code == 0, r.output
    assert "daily status SMS: to the programme's phone" in r.output and "4493000000" not in r.output
    with Registry() as reg:
        assert reg.find("BS-0001").daily_interval_s == 86400
        assert reg.find("BS-0001").c4_first == DEFAULT_C4
    r = run("image", *common, "-o", str(tmp_path / "b.bin"))
    assert r.exit_code == 0 and "daily status SMS: none (no --programme-number)" in r.output, r.output
    with Registry() as reg:
        assert reg.find("BS-0001").daily_interval_s == 0
    monkeypatch.setenv("BOTON_PROGRAMME_NUMBER", "449 300 0000")   # the technician guide's setting
    r = run("image", *common, "-o", str(tmp_path / "c.bin"))
    assert r.exit_code == 0, r.output
    with Registry() as reg:
        assert reg.find("BS-0001").daily_interval_s == 86400
    # a config file decides for itself: typed beside it, the number is refused; from the
    # environment it gives way to the file (and the output says the file has none)
    cfg = tmp_path / "her.json"
    cfg.write_text(json.dumps(dict(config, programme_number=None)))
    r = run("image", "--config", str(cfg), "--device-id", "BS-0001", "--placeholder-firmware",
            "--programme-number", "449 300 0000", "-o", str(tmp_path / "d.bin"))
    assert r.exit_code == 2 and "not both" in r.output and not (tmp_path / "d.bin").exists(), r.output
    r = run("image", "--config", str(cfg), "--device-id", "BS-0001", "--placeholder-firmware",
            "-o", str(tmp_path / "e.bin"))
    assert r.exit_code == 0 and f"none ({cfg} has no programme_number)" in r.output, r.output


def test_cli_an_unregistered_image_never_takes_a_label_a_button_gave_up(cli, tmp_path):
    # a relabelled button still carries its old label; a demo board's SMS under it would
    # read as hers
    from boton.registry import Registry

    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:42", label="BS-0042")
        reg.relabel("24:6f:28:00:00:42", "AGS-0042")
    out = tmp_path / "demo.bin"
    r = cli("--placeholder-firmware", "--device-id", "BS-0042", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4, "-o", str(out), env={"BOTON_PIN": "482913"})
    assert r.exit_code == 7, r.output
    assert r.output.startswith("error: label BS-0042 was used by device 24:6f:28:00:00:42 (now AGS-0042)")
    assert not out.exists()
