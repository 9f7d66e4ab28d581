"""`boton deploy`: frozen-aware (a board whose image holds this release gets only the flash
root), cannot brick (an interrupted deploy leaves the old firmware running; the next one
finishes), and honest about memory (status shows the heap; .mpy deploys warn when the
board's free heap is below what the bench measured the alert needs). Issues 10 and 13."""
import json
import shutil

import pytest
from click.testing import CliRunner

from boton import build, frozen, paths
from boton.cli import main
from boton.release import firmware_files
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, VirtualDevice
from rigkit import FAST, demo_config, press_in_safe_mode

TOOLS, WHY_NOT = frozen.tooling()
needs_32bit = pytest.mark.skipif(TOOLS is None, reason=f"{WHY_NOT} (CI has it beside the clone)")
OLD_VERSION = "0.0.9-old"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def rig(tmp_path, interpreter, **kw):
    return VirtualDevice(tmp_path / "flash", time_scale=FAST, interpreter=interpreter, **kw).start()


def boot(vd, needle):
    """Power-cycle the board and wait for `needle` on the console from then on."""
    mark = vd.console_mark()
    vd.hard_reset()
    return vd.wait_console(needle, timeout=60, since=mark)


def firmware_on(flash):
    """The flash's files that are not hers or the firmware's own records (config, log, state)."""
    return {p.relative_to(flash).as_posix() for p in flash.rglob("*") if p.is_file()
            and p.name not in ("config.json", "alert.json") and not p.name.startswith("log.")}


def old_release(flash, tmp_path):
    """A provisioned board running an older firmware: its version.mpy says OLD_VERSION and
    its app.mpy differs too (a deploy has a large file to copy, not only the version)."""
    install(flash, config=demo_config())
    old = tmp_path / "old"
    old.mkdir()
    (old / "version.py").write_text((paths.FIRMWARE / "lib" / "version.py").read_text().replace(
        'VERSION = "0.1.0"', f'VERSION = "{OLD_VERSION}"', 1))
    assert OLD_VERSION in (old / "version.py").read_text()
    (old / "app.py").write_text((paths.FIRMWARE / "lib" / "app.py").read_text() + "\nOLD_RELEASE = True\n")
    for name in ("version", "app"):
        (flash / "lib" / f"{name}.mpy").write_bytes(build.compile_module(old / f"{name}.py", cache=tmp_path / "mpy"))


# ------------------------------------------------------------------ frozen-aware
@needs_32bit
def test_frozen_board_gets_only_the_flash_root_and_loses_shadowing_copies(tmp_path):
    flash = tmp_path / "flash"
    install(flash, config=demo_config())          # lib/*.mpy from an earlier .mpy deploy
    (flash / "gsm7.py").write_text("raise ImportError('stale root copy')\n")  # would shadow the frozen one
    vd = rig(tmp_path, "esp32")
    try:
        vd.wait_console("safe mode: modem ready", timeout=60)   # the stale copy failed the import
        # bootcheck's note of a failed start for the next boot, as a reset cut short would
        # leave it: stale once the release that failed is replaced
        (flash / "safe_next.txt").write_text("import_ImportError:stale root copy")
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0, r.output
        stamp = frozen.stamp("unix")
        assert f"frozen firmware {stamp['version']} on the board (unix, content {stamp['sha256'][:12]})" in r.output
        assert "removed what the release no longer uses: gsm7.py, lib/" in r.output
        assert ("the firmware it replaced had failed to start (import_ImportError:stale root copy); its "
                "safe-mode note is removed: the next start tries this release") in " ".join(r.output.split())
        assert not (flash / "lib").exists() and not (flash / "gsm7.py").exists()
        assert not (flash / "safe_next.txt").exists()
        root = {p for p, _ in firmware_files("tcall_sim800l_axp192", frozen=True)}
        assert firmware_on(flash) == root           # what install(frozen=True) and images lay out
        assert not any(p.startswith("lib/") for p in root)
        assert (flash / "config.json").exists()     # her configuration stays
        again = run("deploy", "--port", vd.repl_url)
        assert again.output.startswith(f"firmware already up to date ({len(root)} files; frozen firmware")
        boot(vd, "EV ready ok")
    finally:
        vd.stop()


@needs_32bit
def test_a_board_with_another_release_frozen_in_is_refused(tmp_path, monkeypatch):
    # the interpreter is chosen (its image built) before the stamp is patched: chosen after,
    # the build key and the image took the patched stamp too and matched (the test passed
    # only in a process where an earlier test had chosen it)
    frozen.device_interpreter("esp32")
    real = frozen.stamp
    monkeypatch.setattr(frozen, "stamp", lambda target="unix": dict(real(target), sha256="ab" * 32,
                                                                    version="0.2.0"))
    vd = rig(tmp_path, "esp32")
    try:
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 4, r.output
        out = " ".join(r.output.split())
        assert "not this release's 0.2.0" in out and "boton flash --firmware" in out
        assert "erases the whole chip, her configuration and PIN with it" in out
        assert not (vd.flash_dir / "main.py").exists()   # refused before writing anything
        # status sent the technician to the deploy that refuses it (on a board that has
        # its profile, as one in the field does)
        from boton.release import board_json
        (vd.flash_dir / "board.json").write_bytes(board_json("tcall_sim800l_axp192"))
        r = run("status", "--port", vd.repl_url, "--json")
        assert r.exit_code == 0, r.output
        release_line = json.loads(r.output)["release"]
        assert release_line.startswith("NOT this release (flash the matching image"), release_line
        assert "lib/" not in release_line   # a frozen image never holds lib/: not "missing"
    finally:
        vd.stop()


# ------------------------------------------------------------------ cannot brick (.mpy)
def test_interrupted_deploy_keeps_the_old_firmware_and_the_next_one_finishes(tmp_path):
    flash = tmp_path / "flash"
    old_release(flash, tmp_path)
    vd = rig(tmp_path, "pypi")
    try:
        boot(vd, f"EV boot {OLD_VERSION}")
        vd.unplug_after(8_000)                     # mid-way through the new app.mpy
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 3, r.output
        assert (flash / "lib.new").is_dir()        # staged beside, not over, the old one
        boot(vd, f"EV boot {OLD_VERSION}")
        vd.wait_console("EV ready ok")
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0, r.output
        assert "lib/app.mpy" in r.output and "firmware as .mpy" in r.output
        assert firmware_on(flash) == {p for p, _ in firmware_files("tcall_sim800l_axp192")}   # no lib.new/, lib.old/
        boot(vd, "EV boot 0.1.0")
        vd.wait_console("EV ready ok")
    finally:
        vd.stop()


def test_power_lost_between_the_two_renames_boots_the_old_firmware(tmp_path):
    """The worst point: lib/ renamed away, lib.new/ not yet in its place."""
    flash = tmp_path / "flash"
    install(flash, config=demo_config())
    shutil.copytree(flash / "lib", flash / "lib.new")   # the verified new firmware
    old_release(tmp_path / "scratch", tmp_path)
    (flash / "lib").rename(flash / "lib.old")
    for name in ("version.mpy", "app.mpy"):
        shutil.copy(tmp_path / "scratch" / "lib" / name, flash / "lib.old" / name)
    vd = rig(tmp_path, "pypi")
    try:
        vd.wait_console(f"EV boot {OLD_VERSION}", timeout=60)   # boot.py put lib.old back
        assert (flash / "lib").is_dir() and not (flash / "lib.old").exists()
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0, r.output
        assert "lib/app.mpy" not in r.output        # already staged: nothing crossed the cable again
        boot(vd, "EV boot 0.1.0")
    finally:
        vd.stop()


# ------------------------------------------------------------------ honest memory
def test_mpy_deploy_warns_below_the_measured_need(tmp_path, monkeypatch):
    monkeypatch.setattr(frozen, "BENCH_JSON", tmp_path / "no-bench.json")
    vd = rig(tmp_path, "pypi")
    try:
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0 and "warning" not in r.output, r.output   # 200 KB heap: enough
        monkeypatch.setattr(frozen, "MPY_ALERT_HEAP_KB", {"romfs": 50, "mpy": 100_000})
        r = run("deploy", "--port", vd.repl_url)
        assert "warning:" in r.output and "below the 100000 KB" in r.output, r.output
        assert "boton flash --firmware" in r.output
    finally:
        vd.stop()


@pytest.mark.parametrize("mode", ["mpy", "romfs"])
def test_bench_figure_wins_when_measured(tmp_path, mode):
    bench = tmp_path / "bench.json"
    row = frozen.MPY_ALERT_ROWS[mode]
    other = frozen.MPY_ALERT_ROWS["romfs" if mode == "mpy" else "mpy"]
    bench.write_text(json.dumps({"rows": [{"key": row, "value": 101}, {"key": other, "value": 7}]}))
    assert frozen.mpy_alert_heap_kb(bench, mode)[0] == 101
    bench.write_text(json.dumps({"rows": [{"key": row, "value": None}]}))  # not measured
    assert frozen.mpy_alert_heap_kb(bench, mode) == (frozen.MPY_ALERT_HEAP_KB[mode],
                                                     f"bench {row}, {frozen.MPY_ALERT_MEASURED}")
    bench.write_text("{not json")
    assert frozen.mpy_alert_heap_kb(bench, mode)[0] == frozen.MPY_ALERT_HEAP_KB[mode]


@needs_32bit
def test_esp32_heap_warns_for_mpy_and_the_firmware_falls_back_to_safe_mode(tmp_path):
    """A real 56 KB heap: the 32-bit build with nothing frozen, as a plain ESP32 image."""
    plain = frozen.unix32(frozen=False)
    vd = VirtualDevice(tmp_path / "flash", time_scale=FAST)
    vd.interpreter = frozen.DeviceInterpreter(str(plain.exe), frozen.ESP32_HEAP, "32-bit, nothing frozen", chip=True)
    vd.start()
    try:
        r = run("deploy", "--port", vd.repl_url)
        assert r.exit_code == 0, r.output
        assert "firmware as .mpy" in r.output and "warning:" in r.output and "flash the frozen image" in r.output
        # and the warning is right: the firmware does not fit, the button still calls C4
        assert "MemoryError" in boot(vd, "EV safe_mode import_")
        press_in_safe_mode(vd, DEFAULT_C4, hold_s=2.5)   # no configuration on this board: a 2 s hold
    finally:
        vd.stop()


def test_status_shows_free_heap_and_largest_block(tmp_path):
    flash = install(tmp_path / "flash", config=demo_config())
    vd = VirtualDevice(flash, time_scale=FAST).start()
    try:
        vd.wait_console("EV ready", timeout=60)
        r = run("status", "--port", vd.repl_url, "--json")
        assert r.exit_code == 0, r.output
        info = json.loads(r.output)
        assert 0 < info["heap_max_free"] <= info["heap_free"]
        assert info["fw"] and "last_events" in info      # the old keys are all still there
        # a release image names its build: "0.1.0" alone was every release's boot log line
        want = frozen.firmware_version()
        if frozen.device_interpreter().chip:             # the frozen image (else .mpy files)
            want += "+" + frozen.stamp("unix")["sha256"][:12]
        assert info["fw"] == want and f"EV boot {want}\n" in vd.console_text()
        r = run("status", "--port", vd.repl_url)
        assert "heap free" in r.output and "largest free block" in r.output
    finally:
        vd.stop()


def test_mpy_cache_takes_several_builders_at_once(tmp_path):
    """The bench builds every board's firmware at once from one cache: writers of the same
    module must not trip over each other's temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from boton import build
    from boton.paths import FIRMWARE

    src = FIRMWARE / "lib" / "gesture.py"
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda _: build.compile_module(src, tmp_path), range(16)))
    assert len(set(outs)) == 1 and outs[0][:1] == b"M"  # one .mpy, whole
    assert not list(tmp_path.glob("*.tmp"))


def test_deployed_mpy_carry_no_line_tables_and_name_their_module(tmp_path):
    """A board holds each .mpy's whole bytecode in its heap (issue 13): the deployed ones
    drop the line-number tables and name their source by the module (a qstr the import
    interns anyway). A traceback still names module and function; the rig's own code keeps
    its lines."""
    from boton import mpy

    src = tmp_path / "boom.py"
    src.write_text("def f():\n    x = 1\n    raise ValueError(x)\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    run_it = "import sys\nsys.path[:] = ['lib']\nimport boom\nboom.f()\n"
    shown = {}
    for lines in (False, True):
        (lib / "boom.mpy").write_bytes(build.compile_module(src, cache=tmp_path / "mpy", lines=lines))
        with pytest.raises(mpy.MicroPythonError) as e:
            mpy.run(run_it, lib=lib, cwd=tmp_path)
        shown[lines] = str(e.value)
    assert 'File "boom", line 1, in f' in shown[False], shown[False]
    assert 'File "boom.py", line 3, in f' in shown[True], shown[True]
    assert len(build.compile_module(src, cache=tmp_path / "mpy")) < len(
        build.compile_module(src, cache=tmp_path / "mpy", lines=True))
