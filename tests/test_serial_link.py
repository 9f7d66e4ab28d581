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


class LinesPort:
    """The DTR/RTS lines of a USB serial port as pyserial on Linux drives them: open() finds
    both asserted (the kernel raises them together), then applies DTR, then RTS
    (serialposix.Serial.open); every state the lines pass through is recorded."""

    def __init__(self, **kw):
        self.is_open, self._dtr, self._rts = False, True, True
        self.states = []
        self.in_waiting = 0

    def _set(self, dtr, rts):
        self._dtr, self._rts = dtr, rts
        if self.is_open:
            self.states.append((dtr, rts))

    dtr = property(lambda s: s._dtr, lambda s, v: s._set(bool(v), s._rts))
    rts = property(lambda s: s._rts, lambda s, v: s._set(s._dtr, bool(v)))

    def open(self):
        dtr, rts = self._dtr, self._rts
        self.is_open = True
        self._set(True, True)
        self._set(dtr, True)
        self._set(dtr, rts)

    def read(self, n=1):
        return b""

    def close(self):
        self.is_open = False


def test_the_hil_console_opens_the_port_without_resetting_the_board(monkeypatch):
    # On an ESP32's auto-reset circuit DTR released while RTS is asserted pulls EN low: the
    # console set both released before open(), which on Linux passes through that state
    from boton.hil import dut

    port = LinesPort()
    monkeypatch.setattr(dut.serial, "serial_for_url", lambda *a, **kw: port)
    console = dut.SerialConsole("/dev/ttyUSB0", dut.ConsoleBuffer())
    console.open()
    try:
        assert (False, True) not in port.states, port.states   # EN never pulled low
        assert port.states[-1] == (False, False)                # both released once open
        console.pulse_en(low_s=0)
        assert (False, True) in port.states                     # a reset is what pulse_en does
    finally:
        console.close()


def test_a_windows_port_that_fails_to_open_is_not_called_missing():
    # Windows refuses a COM port another program holds (the Arduino IDE's monitor); mpremote
    # says only "failed to access COM3", and COM3 is no file: it was reported as missing
    from mpremote.transport import TransportError

    from boton.device import _reason

    for port in ("COM3", r"\\.\COM12"):
        why = _reason(TransportError(f"failed to access {port}"))
        assert "does not exist" not in why and "another program may hold it" in why, why


def test_a_path_that_is_no_serial_port_is_named_as_such(tmp_path):
    # a typo'd --port that exists (the firmware image, a folder, /dev/null) was blamed on
    # "another program may hold it": a technician closes monitors that are not there
    from mpremote.transport import TransportError

    from boton.device import _reason

    image = tmp_path / "boton-factory.bin"
    image.write_bytes(b"\xe9" * 16)
    for port, what in ((image, "is a file"), (tmp_path, "is a folder"),
                       ("/dev/null", "is a device that is no terminal")):
        why = _reason(TransportError(f"failed to access {port}"))
        assert f"{port} {what}, not a serial port" in why and "boton ports" in why, why
