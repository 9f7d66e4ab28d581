"""The host's layers: errors.py holds the exit codes and error classes; the registry, the
pure rules and the virtual device do not pull in the board transport (mpremote, pyserial)."""
import os
import subprocess
import sys

import pytest

from boton import errors

HOST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "host")

# The CLI's exit codes are an interface (scripts, docs/cli.md): never renumber them.
STABLE_CODES = {"EXIT_OK": 0, "EXIT_USAGE": 2, "EXIT_CONNECT": 3, "EXIT_DEVICE": 4,
                "EXIT_VERIFY": 5, "EXIT_TEST": 6, "EXIT_CONFLICT": 7, "EXIT_ATTENTION": 8,
                "EXIT_INTERRUPTED": 130}


def test_exit_codes_are_stable_and_distinct():
    codes = {name: getattr(errors, name) for name in dir(errors) if name.startswith("EXIT_")}
    assert codes == STABLE_CODES
    assert len(set(codes.values())) == len(codes)


@pytest.mark.parametrize("cls, code", [
    (errors.InputError, errors.EXIT_USAGE),
    (errors.RegistryError, errors.EXIT_USAGE),
    (errors.RegistryKeyError, errors.EXIT_USAGE),
    (errors.RegistryConflict, errors.EXIT_CONFLICT),
])
def test_error_classes_carry_their_exit_code(cls, code):
    e = cls("why")
    assert isinstance(e, errors.DeviceError) and e.exit_code == code and str(e) == "why"
    assert errors.DeviceError("why").exit_code == errors.EXIT_DEVICE


def test_one_definition_of_each_error():
    # modules that use an error class import errors.py's: none defines its own
    from boton import device, provision, registry, rules

    for mod in (device, provision, registry, rules):
        for name in ("DeviceError", "InputError", "RegistryError", "RegistryConflict", "RegistryKeyError"):
            if hasattr(mod, name):
                assert getattr(mod, name) is getattr(errors, name), f"{mod.__name__}.{name}"


TRANSPORT_FREE = ("boton.errors", "boton.rules", "boton.release", "boton.eventlog_check", "boton.daily_reports",
                  "boton.provision", "boton.registry", "boton.registry_workflow", "boton.sim.rig",
                  "boton.sim.rom_server", "boton.sim.rom_loader", "boton.sim.modem",
                  "boton.sim.network", "boton.sim.gps", "boton.sim.flashdir")


def _transport_modules_after(imports):
    code = (f"import sys\nimport {', '.join(imports)}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mpremote', 'serial')))")
    env = dict(os.environ, PYTHONPATH=HOST + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_registry_rules_and_sim_do_not_import_the_transport():
    assert _transport_modules_after(TRANSPORT_FREE) == "[]"


def test_the_check_sees_the_transport():
    # the same check on the transport itself: it must be able to fail
    assert "mpremote" in _transport_modules_after(["boton.device"])


def test_rfc2217_server_still_works_without_sim_importing_pyserial():
    from boton.sim.rom_server import RomServer
    import serial

    with RomServer(loader=_NullLoader(), rfc2217=True, banner=False) as srv:
        port = serial.serial_for_url(srv.url, timeout=2, do_not_open=True)
        port.dtr = port.rts = False
        port.open()
        try:
            boots = len(srv.boots)
            port.rts = True    # EN low: reset
            port.rts = False   # EN high: the chip leaves reset into the app (IO0 high)
            assert srv.wait_boot("run", timeout=5, after=boots)[1] == "run"
        finally:
            port.close()


class _NullLoader:
    """A ROM loader that hears nothing (this test drives only the reset lines)."""
    host_baud = 115200
    exited = None

    def reset(self):
        pass

    def feed(self, data):
        return b""

    def close(self):
        pass
