"""Paths the technician gives (options, BOTON_* variables, files and pipes) that cannot be
used: one line saying why and exit 2, never a Python traceback."""
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from boton.cli import main
from boton.paths import DATA
from boton.registry import Registry

BOTON = str(Path(sys.executable).parent / "boton")
NMEA_LOG = DATA / "nmea" / "bu353s4.log"


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_line(r, code=2):
    assert r.exit_code == code, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1, r.output
    return r.output


@pytest.mark.parametrize("var", ["BOTON_REGISTRY", "BOTON_KEY_FILE"])
def test_a_home_folder_of_no_user_is_named_not_a_traceback(tmp_path, monkeypatch, var):
    monkeypatch.delenv("BOTON_KEY", raising=False)
    monkeypatch.setenv(var, "~nosuchuser-boton/x")   # was: RuntimeError Could not determine home directory
    out = one_line(run("registry", "info"))
    assert var in out and "~nosuchuser-boton/x: there is no home folder of user 'nosuchuser-boton'" in out


def test_init_key_where_no_file_can_be_made_is_one_line(tmp_path, monkeypatch):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    out = one_line(run("registry", "init-key", "--key-file", str(in_the_way / "registry.key")))
    assert f"cannot create the folder of key file {in_the_way / 'registry.key'}: a file is in the way" in out

    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):   # root writes anywhere: the system says no as it would to a user
        real_open = os.open

        def refuse(path, *a, **kw):
            if str(path).startswith(str(ro)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *a, **kw)
        monkeypatch.setattr(os, "open", refuse)
    out = one_line(run("registry", "init-key", "--key-file", str(ro / "registry.key")))
    assert f"cannot create key file {ro / 'registry.key'}: Permission denied; nothing was written " \
           "(choose a folder" in out
    assert not (ro / "registry.key").exists()


def test_a_key_file_that_is_a_folder_is_called_one(tmp_path, monkeypatch):
    from boton.errors import RegistryKeyError
    from boton.registry_crypto import load_key

    monkeypatch.delenv("BOTON_KEY", raising=False)
    monkeypatch.setenv("BOTON_KEY_FILE", str(tmp_path))
    tmp_path.chmod(0o755)
    with pytest.raises(RegistryKeyError) as e:
        load_key()
    assert str(e.value) == (f"key file {tmp_path} is a folder, not a key file: set BOTON_KEY_FILE to the key "
                            f"file itself (e.g. {tmp_path / 'registry.key'})")


def test_nmea_of_dev_null_says_the_input_is_empty():
    out = one_line(run("nmea", os.devnull))
    assert out == f"error: {os.devnull} is empty input: no NMEA sentences to read\n"


def test_nmea_reads_a_pipe_as_it_reads_the_file():
    want = run("nmea", str(NMEA_LOG), "--json")
    assert want.exit_code == 0, want.output
    # boton nmea <(cat capture.log): the path is a pipe the shell opened
    proc = subprocess.run(["bash", "-c", f'"{BOTON}" nmea --json <(cat "{NMEA_LOG}")'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["file"].startswith("/dev/fd/")
    assert dict(got, file=str(NMEA_LOG)) == json.loads(want.output)


def test_nmea_reads_a_named_pipe(tmp_path):
    fifo = tmp_path / "gps"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(NMEA_LOG.read_bytes()))
    writer.start()
    r = run("nmea", str(fifo), "--json")
    writer.join()
    assert r.exit_code == 0, r.output
    want = run("nmea", str(NMEA_LOG), "--json").output
    assert r.output == want.replace(str(NMEA_LOG), str(fifo))
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_build_into_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    out = one_line(run("build", "--out", str(in_the_way / "mpy")))
    assert out.startswith(f"error: cannot write the firmware into {in_the_way / 'mpy'}: ")
    assert "choose a folder you may write to (--out)" in out


@pytest.mark.parametrize("command", [
    ["deploy"], ["status"], ["test-call"], ["logs"], ["wipe"],
    ["provision", "--alias", "Luna", "--contact", "449 111 2233", "--c4", "449 910 0000"],
])
def test_a_port_the_user_may_not_open_says_to_join_dialout(tmp_path, monkeypatch, command):
    """A user not in the dialout group got only mpremote's "failed to access /dev/ttyUSB0"."""
    port = tmp_path / "ttyUSB0"
    port.write_bytes(b"")
    port.chmod(0)
    real_access = os.access
    if real_access(port, os.R_OK | os.W_OK):   # root may open anything: the OS says no as to a user
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(port)
                            else real_access(p, mode, **kw))
    monkeypatch.setenv("BOTON_PIN", "482913")
    with Registry():
        pass  # test-call names a missing registry before it opens the port
    r = run(*command, "--port", str(port))
    assert one_line(r, code=3) == (f"error: cannot open {port}: no permission to open the port: add yourself "
                                   "to the dialout group (sudo usermod -aG dialout $USER) and log in again\n")


def test_a_port_that_does_not_exist_is_called_missing(tmp_path):
    r = run("status", "--port", str(tmp_path / "ttyUSB9"))
    assert one_line(r, code=3) == (f"error: cannot open {tmp_path / 'ttyUSB9'}: {tmp_path / 'ttyUSB9'} does not "
                                   "exist: is the board plugged in, and is this its port?\n")


def test_a_port_with_brackets_is_named_as_typed(tmp_path):
    # rich took "[/x]" in the error line for a closing tag: MarkupError instead of the line
    port = str(tmp_path / "[/x]")
    r = run("status", "--port", port)
    assert one_line(r, code=3).startswith(f"error: cannot open {port}: ")
