"""The firmware frozen into a 32-bit MicroPython (boton.frozen): cache key, fallback reason,
the built interpreter itself, `make firmware` without ESP-IDF, and the bench's ESP32 rows."""
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

from boton import frozen, mpy, paths
from boton.bench import memory

TOOLS, WHY_NOT = frozen.tooling()
needs_tooling = pytest.mark.skipif(TOOLS is None, reason=f"{WHY_NOT} (CI has it beside the clone)")


@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    """A copy of firmware/ and a stand-in tooling folder, so files can be changed freely."""
    fw = tmp_path / "firmware"
    shutil.copytree(paths.FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    tools = tmp_path / "mp"
    tools.mkdir()
    (tools / frozen.SCRIPT).write_text("#!/bin/bash\nexit 0\n")
    (tools / frozen.TARBALL).write_bytes(b"not really a tarball")
    monkeypatch.setattr(paths, "FIRMWARE", fw)
    monkeypatch.setattr(frozen, "MANIFEST", fw / "manifest.py")
    return fw, tools


def test_cache_key_follows_what_is_frozen(fake_tree):
    fw, tools = fake_tree
    key = frozen.build_key(tools, frozen=True, target="unix")
    plain = frozen.build_key(tools, frozen=False)
    assert frozen.build_key(tools, frozen=True, target="unix") == key   # stable

    # hw_esp32.py is not frozen into the unix build: changing it must not force a rebuild
    (fw / "lib" / "hw_esp32.py").write_text((fw / "lib" / "hw_esp32.py").read_text() + "\n# x\n")
    assert frozen.build_key(tools, frozen=True, target="unix") == key

    (fw / "lib" / "gsm7.py").write_text((fw / "lib" / "gsm7.py").read_text() + "\n# changed\n")
    changed = frozen.build_key(tools, frozen=True, target="unix")
    assert changed != key
    assert frozen.build_key(tools, frozen=False) == plain   # nothing frozen: firmware is irrelevant

    (tools / frozen.SCRIPT).write_text("#!/bin/bash\nexit 0 # other\n")
    assert frozen.build_key(tools, frozen=True, target="unix") != changed
    assert frozen.build_key(tools, frozen=False) != plain


def test_manifest_freezes_the_firmware_per_target():
    unix = {p.name for p in frozen.frozen_files("unix")}
    esp32 = {p.name for p in frozen.frozen_files("esp32")}
    lib = {p.name for p in (paths.FIRMWARE / "lib").glob("*.py")}
    # safe mode and the start check, and the _boot.py that runs them without a filesystem
    boot = {"bootcheck.py", "safe.py", "_boot.py", "nofs.py"}
    assert unix == lib - {"hw_esp32.py"} | boot
    assert esp32 == lib - {"hw_sim.py"} | boot
    assert frozen.stamp("unix")["sha256"] != frozen.stamp("esp32")["sha256"]


PORT_BOOT = """import gc
import vfs
from flashbdev import bdev

try:
    if bdev:
        vfs.mount(bdev, "/")
except OSError:
    import inisetup

    inisetup.setup()

gc.collect()
"""


@needs_tooling
def test_the_esp32_image_freezes_our_boot_py_in_place_of_the_ports(tmp_path):
    """MicroPython's own manifest tool, on a stand-in ESP32 port whose manifest freezes its
    modules folder whole (as ports/esp32/boards/manifest.py does): every port module but its
    _boot.py, ours under that name, once."""
    import tarfile
    mp = tmp_path / "micropython"
    with tarfile.open(TOOLS / frozen.TARBALL) as tar:
        wanted = [m for m in tar.getmembers()
                  if m.name.split("/", 1)[-1].startswith(("tools/", "extmod/asyncio/"))]
        for m in wanted:
            m.name = m.name.split("/", 1)[1]
        tar.extractall(mp, members=wanted, filter="data")
    port = mp / "ports" / "esp32"
    (port / "modules" / "machine").mkdir(parents=True)
    (port / "boards").mkdir()
    for name in ("flashbdev.py", "inisetup.py", "machine/__init__.py"):
        (port / "modules" / name).write_text("x = 1\n")
    (port / "modules" / "_boot.py").write_text(PORT_BOOT)
    (port / "boards" / "manifest.py").write_text('freeze("$(PORT_DIR)/modules")\n'
                                                 'include("$(MPY_DIR)/extmod/asyncio")\n')
    wrapper = frozen._stamped_manifest(tmp_path / "out", "esp32", "ta7670x_a7670sa", port)
    sys.path.insert(0, str(mp / "tools"))
    try:
        import manifestfile
        m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {"MPY_DIR": str(mp), "PORT_DIR": str(port),
                                                                 "BOARD_DIR": None, "MPY_LIB_DIR": None})
        m.execute(str(wrapper))
    finally:
        sys.path.remove(str(mp / "tools"))
        sys.modules.pop("manifestfile", None)
    frozen_as = {}
    for f in m.files():
        frozen_as.setdefault(f.target_path, []).append(Path(f.full_path))
    assert frozen_as["_boot.py"] == [paths.FIRMWARE / "frozen" / "_boot.py"]
    assert {"flashbdev.py", "inisetup.py", "machine/__init__.py", "asyncio/core.py", "nofs.py", "safe.py",
            "bootcheck.py", "alert.py", "hw_esp32.py", "boton_frozen.py"} <= set(frozen_as)
    assert "hw_sim.py" not in frozen_as and all(len(v) == 1 for v in frozen_as.values())
    assert not frozen.boot_differs(PORT_BOOT)   # ours is the port's but for what a mount failure runs
    assert frozen.boot_differs(PORT_BOOT + "import network\n")   # a port's _boot.py that does more: no build


def test_the_manifest_is_not_deployed_to_a_board():
    from boton import build
    deployed = [path for path, _ in build.firmware_modules(mpy=False)]
    assert "manifest.py" not in deployed and "boot.py" in deployed


def test_reason_when_the_tooling_is_absent(tmp_path, monkeypatch):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    monkeypatch.setenv("BOTON_MICROPYTHON", str(empty))
    got = frozen.unix32(frozen=True, cache=tmp_path / "cache")
    assert got.exe is None
    assert got.reason == (f"32-bit MicroPython build not available: {empty} has no "
                          f"{frozen.SCRIPT}, {frozen.TARBALL}; using the 64-bit PyPI interpreter")
    assert not (tmp_path / "cache").exists()


def test_cli_reason_names_the_shared_folder(tmp_path):
    env = dict(os.environ, BOTON_SHARED=str(tmp_path / "absent"))
    env.pop("BOTON_MICROPYTHON", None)
    proc = subprocess.run([sys.executable, "-m", "boton.frozen", "unix32"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "32-bit MicroPython build not available:" in lines[0]
    assert "not found (set BOTON_MICROPYTHON); using the 64-bit PyPI interpreter" in lines[0]


def test_build_failure_is_a_message_with_the_log_tail(tmp_path, monkeypatch):
    tools = tmp_path / "mp"
    tools.mkdir()
    (tools / frozen.SCRIPT).write_text(
        'mkdir -p "$1"; printf "cc foo.c\\nfoo.c:1: error: no 32-bit libc\\n" > "$1/build.log"; exit 3\n')
    (tools / frozen.TARBALL).write_bytes(b"x")
    monkeypatch.setenv("BOTON_MICROPYTHON", str(tools))
    with pytest.raises(frozen.BuildError) as e:
        frozen.unix32(frozen=False, cache=tmp_path / "cache")
    msg = str(e.value)
    assert msg.startswith("32-bit MicroPython build failed (exit 3; full log: ")
    assert msg.rstrip().endswith("foo.c:1: error: no 32-bit libc")
    # no .complete marker: the next call tries again instead of reusing a broken build
    assert not list((tmp_path / "cache").glob("*/.complete"))


def test_bench_esp32_rows_fail_when_the_build_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTON_MICROPYTHON", str(tmp_path))
    rows = memory.esp32_rows(tmp_path / "w")
    assert [r.key for r in rows] == ["memory.esp32_frozen.peak_raw_kb", "memory.esp32_mpy.min_heap_kb",
                                     "memory.esp32_mpy.peak_raw_kb", "memory.esp32_device.min_heap_kb",
                                     "memory.esp32_mpy_lfs.min_heap_kb", "memory.esp32_mpy_lfs.peak_raw_kb",
                                     "memory.esp32_device_a7670.min_heap_kb"]
    assert [r.ok for r in rows] == [False, False, None, False, None, None, None]
    assert all(r.value is None and r.note.startswith("NOT MEASURED: 32-bit MicroPython build not available")
               for r in rows)


def _make_firmware(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("IDF_PATH", "BOTON_MICROPYTHON_SRC")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not (Path(p) / "idf.py").exists())
    # -o: never (re)build the venv from a test; BIN: this interpreter's
    return subprocess.run(["make", "-s", "-C", str(paths.REPO), "-o", ".venv/.installed",
                           f"BIN={Path(sys.executable).parent}", "firmware", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_make_firmware_without_esp_idf_says_why_in_one_line():
    proc = _make_firmware("BOARD=tcall_sim800l_axp192")
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("make")]
    assert ours == ["error: ESP32 image not built: ESP-IDF not found (idf.py not on PATH and $IDF_PATH "
                    "unset); use MicroPython's ESP-IDF container or install ESP-IDF"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_make_firmware_with_an_unknown_board_is_bad_input():
    proc = _make_firmware("BOARD=../etc/passwd")
    assert "error: unknown board '../etc/passwd'" in proc.stderr
    assert "Error 2" in proc.stderr          # exit code 2, as the other bad-input errors
    assert "Traceback" not in proc.stderr



def test_a_module_with_psram_gets_the_ports_spiram_variant(tmp_path):
    # The T-A7670X's WROVER-E carries 8 MB of PSRAM, yet its image was the plain build: the
    # worst alert there needs all of the 56 KB internal heap (a review, 2026-12-04); the
    # SPIRAM variant puts MicroPython's heap in the PSRAM
    port, build, manifest = tmp_path / "esp32", tmp_path / "b", tmp_path / "m.py"
    psram = frozen.esp32_make_command("ta7670x_a7670sa", port, build, manifest)
    assert psram == ["make", "-C", str(port), "BOARD=ESP32_GENERIC", "BOARD_VARIANT=SPIRAM",
                     f"BUILD={build}", f"FROZEN_MANIFEST={manifest}"]
    for board in ("tcall_sim800l_axp192", "tcall_sim800l_ip5306", "devkitc_sim800l_neo6m"):
        cmd = frozen.esp32_make_command(board, port, build, manifest)
        assert "BOARD=ESP32_GENERIC" in cmd and not any(c.startswith("BOARD_VARIANT") for c in cmd), board


@needs_tooling
def test_frozen_interpreter_is_32_bit_and_carries_the_firmware(tmp_path):
    built = frozen.unix32(frozen=True)     # ~30 s the first time, then cached under build/unix32/
    assert built.exe and built.exe.is_file(), built.reason
    probe = ("import sys\nsys.path[:] = ['.frozen']\n"
             "import alert, app, hw, boton_frozen\n"
             "print(sys.maxsize == 2**31 - 1, alert.__file__, hw.__name__, app.VERSION)\n"
             "print(boton_frozen.VERSION, boton_frozen.TARGET, boton_frozen.CONTENT_SHA256, boton_frozen.FILES)\n")
    # an empty cwd and sys.path = ['.frozen']: the firmware can only come from the image
    proc = subprocess.run([str(built.exe), "-X", "heapsize=56k", "-c", probe], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.split("\n")[:2]
    assert first.split()[:2] == ["True", "alert.py"]
    want = frozen.stamp("unix")
    assert second.split() == [want["version"], "unix", want["sha256"], str(want["files"])]
    assert want["version"] == first.split()[-1]


# ------------------------------------------------------------------ what the virtual device runs
def test_device_interpreter_falls_back_with_a_note_or_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTON_MICROPYTHON", str(tmp_path))   # no tooling here
    auto = frozen.device_interpreter("auto")
    assert auto.exe == paths.micropython_exe() and auto.heap == frozen.PYPI_HEAP
    assert "not available" in auto.note and "\n" not in auto.note
    with pytest.raises(frozen.DeviceError, match="ESP32 interpreter was asked for"):
        frozen.device_interpreter("esp32")   # CI insists: no silent 64-bit run
    with pytest.raises(frozen.DeviceError, match="one of auto, esp32, pypi"):
        frozen.device_interpreter("esp")
    monkeypatch.setenv("BOTON_INTERPRETER", "pypi")
    assert frozen.device_interpreter().note == ""


@needs_tooling
def test_the_virtual_device_runs_the_frozen_firmware_at_the_esp32_heap(tmp_path):
    from boton.sim.rig import VirtualDevice
    from rigkit import demo_config
    from boton.sim.flashdir import install

    install(tmp_path / "flash", "tcall_sim800l_axp192", demo_config())
    with VirtualDevice(tmp_path / "flash", time_scale=0.1, interpreter="esp32") as vd:
        vd.wait_console("EV ready", timeout=60)
        assert vd.interpreter.heap == "56k"
        out = subprocess.run([str(Path(sys.executable).parent / "mpremote"), "connect", vd.repl_url, "exec",
                              "import gc, micropython\ngc.collect()\nfree = gc.mem_free()\nmicropython.mem_info()\n"
                              "import sys, app; print(sys.maxsize, app.__file__, free)"],
                             capture_output=True, text=True, timeout=60)
        console = vd.console_text()
    assert out.returncode == 0, out.stderr
    maxsize, where, free = out.stdout.split()[-3:]
    # 32-bit, the firmware from the image although lib/app.mpy is on the flash
    assert (int(maxsize), where) == (2**31 - 1, "app.py")
    # The free heap a chip leaves: 56 KB less its own boot's share, whatever the rig's Python
    # board side (a chip's C) holds of the larger heap it was started with, and in one piece
    # but for a few KB (mem_info's "max free sz" is in 16-byte blocks).
    from boton.sim.rig import CHIP_BOOT_BYTES
    assert "rig:" not in console, console        # rig.RIG_HEAP_KB still covers the board side
    assert 56 * 1024 - CHIP_BOOT_BYTES - 3072 < int(free) <= 56 * 1024 - CHIP_BOOT_BYTES
    largest = 16 * int(re.search(r"max free sz: (\d+)", out.stdout).group(1))
    assert largest > int(free) - 8 * 1024


@needs_tooling
def test_the_worst_alert_runs_its_mpy_in_place_from_a_romfs(tmp_path):
    # bench row memory.esp32_mpy (as boton deploy installs it): the flash holds no lib/, the
    # firmware's .mpy come from a ROMFS image frozen into the interpreter (outside its heap,
    # as mapped flash)
    d = memory._outside_dir(tmp_path, lib="mpy")
    image = memory.romfs_image(d / "lib")
    assert image[:2] == b"\xd2\xcd"      # ROMFS's header byte, as mpremote writes it
    built = frozen.unix32_romfs(image)
    assert built.exe, built.reason
    shutil.rmtree(d / "lib")
    out = memory._outside_run(d, "256k", built.exe, rom=True)
    assert memory._scenario(out)[1] == "", out[-2000:]
    with pytest.raises(mpy.MicroPythonError):   # and without the image, nothing to import
        memory._outside_run(d, "256k", built.exe)
