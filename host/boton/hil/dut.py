"""The device under test, the same to a scenario whether it is the virtual rig or a board.

    dut.kind                   "virtual" | "hardware"
    dut.family                 the modem family: "sim800" | "a7670"
    dut.board_profile          the board profile (boards/*.json) as a dict
    dut.number                 the device's own phone number (its SIM)
    dut.config                 the configuration it was provisioned with
    dut.port                   a REPL URL / serial port for mpremote and `boton --port`
    dut.mark()                 a console position, for `since=`
    dut.wait_log(event, detail=None, since=0, timeout=60)   an "EV <event> <detail>" line
    dut.log(since=0)           [(event, detail), ...] the firmware logged (its EventLog echo)
    dut.within(hw_s, rig_s)    a timeout: generous on hardware, tight on the rig
    dut.reset()                pull EN: the ESP32 reboots (the modem keeps running)
    dut.wait_standby()         until the modem sleeps (how she carries it between alerts)
    dut.wait_ready(since)      until the firmware logged "ready"
    dut.audio()                the modem's audio levels (virtual only; None on hardware)
    dut.serving_cell_id()      the serving cell's id (GSM CI or LTE ECI; virtual only, else None)
    dut.port_released()        context manager: the console lets go of the port (for mpremote)
"""
import contextlib
import json
import re
import threading
import time

import serial

from ..boards import load_board, modem_family
from ..errors import EXIT_VERIFY, DeviceError
from .timeline import at_rows

EV_LINE = re.compile(rb"EV (\S+) ?(\S*)\r?\n")


class ConsoleBuffer:
    """What the device printed, with the time each chunk arrived."""

    def __init__(self):
        self._cond = threading.Condition()
        self._data = bytearray()
        self.chunks = []   # (t, offset, bytes)

    def add(self, data):
        with self._cond:
            self.chunks.append((time.monotonic(), len(self._data), bytes(data)))
            self._data += data
            self._cond.notify_all()

    def mark(self):
        with self._cond:
            return len(self._data)

    def text(self, since=0):
        with self._cond:
            return self._data[since:].decode(errors="replace")

    def wait(self, needle, timeout, since=0, count=1):
        """The console since the mark once it holds `count` whole lines with needle."""
        b = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                i = since - len(b)
                for _ in range(count):
                    i = self._data.find(b, i + len(b))
                    if i < 0:
                        break
                # the whole line, not a chunk that ends inside it (its detail is still coming)
                if i >= 0 and self._data.find(b"\n", i) >= 0:
                    return self._data[since:].decode(errors="replace")
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = self._data[-3000:].decode(errors="replace")
                    raise TimeoutError(f"device never printed {needle!r} within {timeout}s; "
                                       f"console tail:\n{tail}")
                self._cond.wait(left)

    def events(self, since=0):
        with self._cond:
            data = bytes(self._data[since:])
        return [(m.group(1).decode(), m.group(2).decode()) for m in EV_LINE.finditer(data)]

    def rows(self, source="DEVICE"):
        """Timeline rows, one per console line, stamped with the arrival of its first byte."""
        with self._cond:
            chunks = list(self.chunks)
            data = bytes(self._data)
        rows = []
        start = 0
        for m in re.finditer(rb"\r?\n", data):
            line = data[start:m.start()]
            if line.strip():
                rows.append((_time_at(chunks, start), source, line.decode(errors="replace")))
            start = m.end()
        return rows


def _time_at(chunks, offset):
    lo, hi = 0, len(chunks) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if chunks[mid][1] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return chunks[lo][0] if chunks else time.monotonic()


class _DutBase:
    kind = "?"

    def mark(self):
        return self.console.mark()

    def wait_log(self, event, detail=None, since=0, timeout=60, count=1):
        needle = f"EV {event} {detail}" if detail is not None else f"EV {event} "
        return self.console.wait(needle, timeout, since, count)

    def log(self, since=0):
        return self.console.events(since)

    def logged(self, event, since=0):
        """Details of every `event` logged since the mark."""
        return [d for e, d in self.log(since) if e == event]

    def wait_ready(self, since=0, timeout=None):
        return self.wait_log("ready", since=since, timeout=timeout or self.within(180, 60))

    def within(self, hw_s, rig_s):
        return rig_s if self.kind == "virtual" else hw_s

    def audio(self):
        return None

    def serving_cell_id(self):
        return None


class VirtualDut(_DutBase):
    """A VirtualDevice (boton.sim.rig) already provisioned with `config`."""

    kind = "virtual"

    def __init__(self, vd, config):
        self.vd = vd
        self.config = config
        self.console = ConsoleBuffer()
        self.number = vd.device_number
        self.time_scale = vd.time_scale
        self.family = vd.modem_family  # "sim800", "a7670": what the rig simulates
        self.board_profile = vd.board
        orig = vd._console_out  # tap the console before the firmware boots, to stamp it

        def tap(data, _orig=orig):
            self.console.add(data)
            _orig(data)
        vd._console_out = tap

    @property
    def port(self):
        return self.vd.repl_url

    @property
    def modem(self):
        return self.vd.modem

    def start(self, ready_timeout=60):
        self.vd.start()
        self.wait_ready(timeout=ready_timeout)
        return self

    def stop(self):
        self.vd.stop()

    def reset(self):
        self.vd.hard_reset()

    def wait_standby(self, since=0, timeout=None):
        """Until the firmware put the modem to sleep (AT+CSCLK=2) and the module is asleep."""
        self.wait_log("power", "modem_sleep", since=since, timeout=timeout or 30)
        modem = self.vd.modem
        deadline = time.monotonic() + (timeout or 30)
        idle = threading.Event()
        # The module falls asleep on its own timer, which raises no event: look at 20 Hz.
        while not self.vd.call(lambda: modem.sleeping):
            if time.monotonic() > deadline:
                raise TimeoutError("the modem never fell asleep")
            idle.wait(0.05)

    def audio(self):
        return dict(self.vd.call(lambda: self.vd.modem.audio))

    def serving_cell_id(self):
        """The id of the cell the modem camps on: an LTE cell's ECI, else the GSM cell id."""
        modem = self.vd.modem
        return self.vd.call(lambda: modem.cell["eci"] if getattr(modem, "rat", "gsm") == "lte"
                            else modem.cell["cellid"])

    def flash_json(self, name):
        p = self.vd.flash_dir / name
        return json.loads(p.read_text()) if p.exists() else None

    @contextlib.contextmanager
    def port_released(self):
        yield self.port

    def timeline_rows(self):
        rows = self.console.rows("DEVICE")
        rows += at_rows(self.vd.modem.at_log, "ESP>MDM", "MDM>ESP")
        return rows


class SerialConsole:
    """Reads a board's USB serial console on a thread, without resetting it on open."""

    def __init__(self, port, buffer, baudrate=115200):
        self.port = port
        self.buffer = buffer
        self.baudrate = baudrate
        self.ser = None
        self._stop = False
        self._thread = None

    def open(self):
        # On ESP32 boards DTR/RTS drive IO0/EN through the auto-reset circuit, where DTR
        # released with RTS asserted pulls EN low. Opening asserts both (Linux raises them,
        # pyserial then sets DTR before RTS): RTS is released first, at open, then DTR, so
        # no state on the way resets the board (DTR alone only holds IO0, read at reset).
        ser = serial.serial_for_url(self.port, do_not_open=True, baudrate=self.baudrate, timeout=0.1)
        ser.rts = False
        ser.open()
        ser.dtr = False
        self.ser = ser
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="dut-console", daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop:
            try:
                data = self.ser.read(self.ser.in_waiting or 1)
            except (serial.SerialException, OSError):
                return
            if data:
                self.buffer.add(data)

    def close(self):
        self._stop = True
        if self._thread:
            self._thread.join(2)
        if self.ser:
            self.ser.close()
            self.ser = None

    def pulse_en(self, low_s=0.1):
        """EN low for low_s through RTS (esptool's hard reset), IO0 high: a normal boot."""
        self.ser.dtr = False
        self.ser.rts = True
        time.sleep(low_s)  # the width of the reset pulse, not a wait for behaviour
        self.ser.rts = False


def check_release(dev, board):
    """A HIL run tests this release on the --board profile: a board that runs another
    firmware (a deploy forgotten, an older image) or profile would pass or fail scenarios
    for code this checkout does not hold. Refused, with what to run, before any scenario."""
    from ..provision import differences, release_on_board, remedy_sentence

    held, differs = release_on_board(dev)
    if held is not None and held != board:
        differs = [f"its board.json is the {held} profile, not --board {board}"] + differs
    if differs:
        raise DeviceError(f"the board on {dev.port} does not run this release: {differences(differs)}. "
                          f"{remedy_sentence(differs, dev.port, board)} first", EXIT_VERIFY)


# What the firmware calls or texts: C4, her contacts, the programme's daily status, the fallback.
DIALLED = ("c4_numbers", "contacts", "programme_number", "emergency_number")


def _digits(n):
    return "".join(ch for ch in str(n) if ch.isdigit())


def dialled(config):
    """Every number a config has the board call or text, as digits."""
    out = set()
    for key in DIALLED:
        value = config.get(key) or []
        out |= {_digits(n) for n in ([value] if isinstance(value, str) else value) if n}
    return out


def check_bench_board(held, config, port):
    """A delivered button looks like the bench's board: provisioning one plugged in by
    mistake would overwrite her configuration and end her running alert. `held` is the
    config.json on the board (bytes, None if there is none); it belongs to the bench if it
    has the bench's device_id and dials none but the bench's phones. Refused otherwise,
    naming only the device id (never her numbers)."""
    if held is None:
        return  # a blank board
    try:
        cfg = json.loads(held)
        device_id = cfg.get("device_id")
        ours = device_id == config["device_id"] and dialled(cfg) <= dialled(config)
    except (ValueError, AttributeError, TypeError):  # not JSON, or not a config
        device_id, ours = None, False
    if ours:
        return
    whose = (f"a config.json for {device_id!r}" if isinstance(device_id, str) and device_id
             else "a config.json the bench cannot read")
    raise DeviceError(f"the board on {port} holds {whose}, not the bench's ({config['device_id']}): "
                      "it may be a delivered button; nothing was changed. If it is hers, unplug it "
                      "and give it back as it is. If it is a bench board, wipe it first (`boton wipe "
                      f"--port {port}`) or run again with --hil-erase-foreign")


class HardwareDut(_DutBase):
    """A real board on a serial port, provisioned through mpremote (boton.device)."""

    kind = "hardware"
    release_checked = set()   # ports whose firmware check_release passed in this session

    def __init__(self, port, number, config, board="tcall_sim800l_axp192", erase_foreign=False):
        self.port = port
        self.erase_foreign = erase_foreign  # --hil-erase-foreign: overwrite another's config
        self.number = number
        self.config = config
        self.board = board
        self.board_profile = load_board(board)
        self.family = modem_family(self.board_profile)
        self.time_scale = 1.0
        self.console = ConsoleBuffer()
        self._serial = SerialConsole(port, self.console)

    def provision(self):
        """Write the config if it differs, forget any alert state, reboot, wait for ready.
        A board holding another's config is refused first (check_bench_board)."""
        from ..device import Device
        from ..provision import write_config
        from ..rules import CONFIG_PATH, config_bytes
        # an alert the last scenario left running on the bench's board is what this ends;
        # on a refused board the session's end restarts its firmware, which resumes hers
        with Device(self.port, during_alert=True) as dev:
            held = dev.read_file(CONFIG_PATH)
            if not self.erase_foreign:
                check_bench_board(held, self.config, self.port)
            if self.port not in HardwareDut.release_checked:   # once a session: it hashes every file
                check_release(dev, self.board)
                HardwareDut.release_checked.add(self.port)
            if held != config_bytes(self.config):
                write_config(dev, self.config)
            dev.remove("alert.json")
        self._serial.open()
        mark = self.mark()
        self.reset()
        self.wait_ready(since=mark)
        return self

    def stop(self):
        self._serial.close()

    def reset(self):
        self._serial.pulse_en()

    def wait_standby(self, since=0, timeout=None):
        """Until the firmware put the modem to sleep; the module itself sleeps 5 s after its
        UART goes quiet and nothing outside it shows that, so allow for it."""
        self.wait_log("power", "modem_sleep", since=since, timeout=timeout or 120)
        time.sleep(6)  # the SIM800's own idle time before sleep (AT+CSCLK=2): unobservable

    @contextlib.contextmanager
    def port_released(self):
        self._serial.close()
        try:
            yield self.port
        finally:
            self._serial.open()

    def timeline_rows(self):
        return self.console.rows("DEVICE")
