"""The host's knock on a board that light-sleeps, against a board whose UART hears only
while it is awake (a few ms between sleeps on the chip; here 100 ms, so that nothing but
the host's protocol decides). In-process: no rig loop whose lag could hide a wake."""
import threading
import time

import pytest

from boton import device
from boton.device import RAW_PROMPT, Device
from boton.errors import DeviceError


class SleepyBoard:
    """A board running its firmware that is awake only in `wakes` (start, end) seconds after
    the port opened: what reaches its UART otherwise is lost, as in light sleep. Ctrl-C
    stops the firmware (friendly REPL), Ctrl-A asks for the raw REPL, Ctrl-D on an empty
    raw line soft-resets into the raw REPL, as pyexec does."""

    def __init__(self, wakes):
        self.t0 = time.monotonic()
        self.wakes = wakes
        self.mode = "firmware"
        self.line = b""
        self.out = bytearray()
        self.lost = 0
        self.lock = threading.Lock()

    def awake(self):
        now = time.monotonic() - self.t0
        return self.mode != "firmware" or any(a <= now < b for a, b in self.wakes)

    # pyserial's side, as device.py uses it
    def write(self, data):
        with self.lock:
            if not self.awake():
                self.lost += len(data)
                return len(data)
            for c in data:
                self._byte(c)
        return len(data)

    def _byte(self, c):
        if self.mode == "firmware":
            if c == 3:
                self.mode = "friendly"
                self.out += b"\r\nKeyboardInterrupt\r\n>>> "
        elif self.mode == "friendly":
            if c == 1:
                self.mode = "raw"
                self.out += RAW_PROMPT + b">"
            elif c in (3, 13):
                self.out += b"\r\n>>> "
        elif c == 1:  # raw
            self.line = b""
            self.out += RAW_PROMPT + b">"
        elif c == 3:
            self.line = b""
        elif c == 4 and not self.line:
            self.out += b"OK\r\nMPY: soft reboot\r\n" + RAW_PROMPT + b">"
        elif c != 4:
            self.line += bytes([c])

    def inWaiting(self):
        with self.lock:
            return len(self.out)

    def read(self, n=1):
        with self.lock:
            data, self.out[:] = bytes(self.out[:n]), self.out[n:]
            return data

    def close(self):
        pass


class Transport:
    """mpremote's SerialTransport, as much of it as a session uses, over SleepyBoard."""

    def __init__(self, board):
        self.serial = board
        self.in_raw_repl = False

    def read_until(self, min_num_bytes, ending, timeout=10, data_consumer=None, timeout_overall=None):
        data, end = b"", time.monotonic() + (timeout_overall or timeout)
        while not data.endswith(ending) and time.monotonic() < end:
            b = self.serial.read(1)
            if b:
                data += b
            else:
                time.sleep(0.005)
        return data

    def exec_raw(self, code, timeout=10, data_consumer=None):
        return b"", b""

    def exit_raw_repl(self):
        self.in_raw_repl = False

    def close(self):
        pass


# Wakes that the old protocol (knock 1.5 s, then wait 1.5 s for a raw prompt) always
# missed: each fell in one of its waits, so its knocks reached only a sleeping board.
WAKES = [(1.8, 1.9), (4.8, 4.9), (7.8, 7.9)]


def session(monkeypatch, wakes, answer_s):
    board = SleepyBoard(wakes)
    monkeypatch.setattr(device, "SerialTransport", lambda port, baudrate, timeout=None: Transport(board))
    return board, Device("socket://sleepy-board:1", timeout=2, answer_s=answer_s, during_alert=True)


def test_a_knock_lands_in_the_first_wake_of_a_sleeping_board(monkeypatch):
    board, dev = session(monkeypatch, WAKES, answer_s=5)
    with dev:
        assert dev.t.in_raw_repl
        opened = time.monotonic() - board.t0
    assert board.lost > 0  # its UART was deaf at first
    assert opened < WAKES[1][0]  # in its first wake, not its second


def test_a_board_that_never_wakes_is_a_one_line_error(monkeypatch):
    board, dev = session(monkeypatch, [], answer_s=0.5)
    with pytest.raises(DeviceError) as e:
        dev.__enter__()
    assert "no MicroPython REPL answers" in str(e.value) and "Ctrl-C" in str(e.value)
