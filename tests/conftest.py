import json
import pytest
from cryptography.fernet import Fernet

from boton import mpy as _mpy
from boton.paths import DATA


class MicroPython:
    """Runs test code on the real MicroPython unix port with firmware/lib importable."""

    def run(self, code, **kw):
        return _mpy.run(code, **kw)

    def json(self, code, **kw):
        """Run code whose last stdout line is JSON; return it decoded."""
        out = _mpy.run(code, **kw).strip().splitlines()
        return json.loads(out[-1])


@pytest.fixture(scope="session")
def mpy():
    return MicroPython()


@pytest.fixture(scope="session")
def captures():
    """The repository's data/ folder: real GPS logs and SIM800 transcripts (see data/README.md)."""
    return DATA


@pytest.fixture(autouse=True)
def _private_registry(tmp_path, monkeypatch):
    """Every test gets its own registry file: never the technician's real one."""
    monkeypatch.setenv("BOTON_REGISTRY", str(tmp_path / "registry.sqlite"))
    monkeypatch.setenv("BOTON_TECHNICIAN", "tester")
    # the PIN a script gives: tests run without a terminal, and a generated PIN is shown on a
    # terminal only (provision and image refuse to generate one without it; tests/test_pin.py)
    monkeypatch.setenv("BOTON_PIN", "730519")


def pytest_report_header(config):
    from boton.frozen import device_interpreter

    it = device_interpreter()
    return f"virtual device firmware: {it.label}" + (f" ({it.note})" if it.note else "")



@pytest.fixture
def registry_env(tmp_path, monkeypatch):
    """A registry, its key and a technician, as a technician's shell sets them: the
    variables, set (for CliRunner and subprocesses alike) and returned."""
    e = {"BOTON_REGISTRY": str(tmp_path / "reg" / "registry.sqlite3"),
         "BOTON_KEY": Fernet.generate_key().decode(),
         "BOTON_KEY_FILE": str(tmp_path / "cfg" / "registry.key"),
         "BOTON_TECHNICIAN": "ana"}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    return e


@pytest.fixture
def unenterable(tmp_path, monkeypatch):
    """A folder inside one this user may not enter (as /root is to a technician's account):
    nothing in it can be looked at, opened or made. Root enters anything, so for root the
    answer the system gives a user is given by hand."""
    import builtins
    import errno
    import io
    import os

    locked = tmp_path / "locked"
    (locked / "x").mkdir(parents=True)
    locked.chmod(0)
    if os.geteuid() == 0:
        inside = str(locked) + os.sep

        def refusing(real):
            def call(path, *a, **kw):
                if isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(inside):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
                return real(path, *a, **kw)
            return call

        for mod, name in ((os, "stat"), (os, "lstat"), (os, "open"), (os, "mkdir"), (builtins, "open"),
                          (io, "open")):
            monkeypatch.setattr(mod, name, refusing(getattr(mod, name)))
    yield locked / "x"
    locked.chmod(0o700)


@pytest.fixture
def unblocking():
    """unblocking(fifo, fn): fn() where it might block opening the named pipe `fifo` to read
    it; a run still blocked after 30 s is let go (a writer opens the pipe) and fails."""
    import os
    import threading

    def run(fifo, fn):
        got = {}
        t = threading.Thread(target=lambda: got.update(result=fn()), daemon=True)
        t.start()
        t.join(30)
        blocked = t.is_alive()
        if blocked:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            t.join(30)
        assert not blocked, f"blocked on the named pipe {fifo}"
        return got["result"]
    return run
