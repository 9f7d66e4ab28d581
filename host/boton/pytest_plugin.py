"""pytest plugin shipped with the host package: run the same scenarios on the virtual
rig (default) or on a real board with a reference modem (HIL).

    pytest                                   # virtual device, in CI
    pytest --device /dev/ttyUSB0 --ref-modem /dev/ttyUSB1 -m hil
"""
import pytest

VIRTUAL = "virtual"


def pytest_addoption(parser):
    group = parser.getgroup("boton", "Botón Seguro device under test")
    group.addoption("--device", default=VIRTUAL,
                    help="'virtual' (default: the simulated rig) or the board's serial port for HIL")
    group.addoption("--ref-modem", default=None,
                    help="serial port of the reference modem that plays C4 and the trusted contact (HIL)")


def pytest_configure(config):
    config.addinivalue_line("markers", "hil: needs a real board and a reference modem (--device PORT --ref-modem PORT)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--device") != VIRTUAL and config.getoption("--ref-modem"):
        return
    reason = ("needs real hardware: run with --device /dev/ttyUSB0 --ref-modem /dev/ttyUSB1"
              if config.getoption("--device") == VIRTUAL else
              "needs --ref-modem PORT (the reference modem that plays C4 and the contact)")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
