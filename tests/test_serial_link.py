"""The session layer (boton.device) over what a real USB serial port does and the virtual
device's socket never shows: here a pyserial port whose board went away."""
import errno
import os

import serial
from click.testing import CliRunner

from boton.cli import main
from boton.errors import EXIT_CONNECT


class VanishedPort:
    """pyserial's Serial on Linux once the USB device is gone (cable pulled, the board
    browned out as its modem drew 2 A): reads, writes and the DTR/RTS ioctls fail with EIO."""

    def __init__(self):
        self.closed = False

    def isOpen(self):
        return True

    def _gone(self, *args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    inWaiting = read = _gone
    in_waiting = rts = dtr = property(_gone, _gone)

    def write(self, data):
        raise serial.SerialException(f"write failed: [Errno {errno.EIO}] {os.strerror(errno.EIO)}")

    def close(self):
        self.closed = True


def test_a_board_gone_as_the_session_opens_is_cannot_connect(monkeypatch):
    # mpremote's close() sets RTS and DTR first; on the vanished port that raised OSError out
    # of the failed connect, hiding its reason: "Input/output error", exit 2 (bad input)
    port = VanishedPort()
    monkeypatch.setattr(serial, "serial_for_url", lambda *a, **kw: port)
    r = CliRunner().invoke(main, ["status", "--port", "/dev/ttyUSB0"])
    assert r.exit_code == EXIT_CONNECT, r.output
    assert "no MicroPython REPL answers on /dev/ttyUSB0" in r.output
    assert port.closed
