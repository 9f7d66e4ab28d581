"""A connection to a board's REPL (real USB serial or the virtual device), over mpremote.

Every failure becomes an errors.DeviceError with a one-line reason and an exit code by
kind, so the CLI never shows a traceback to a technician. mpremote and pyserial stay on
the transport side (this module, ports.py, esptool_io.py, flash.py, rfc2217_link.py): the
registry, the rules and the virtual device do not import them.
"""
import base64
import hashlib
import json
import re
import time

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from .errors import EXIT_CONNECT, EXIT_DEVICE, EXIT_USAGE, EXIT_VERIFY, DeviceError

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
# A board in light sleep hears nothing on its UART (the firmware wakes for ~20 ms between
# sleeps of up to 2 s), and one still booting drops what comes too early: knock this often,
# without a pause, until the raw REPL answers, so that one lands in the first wake.
KNOCK = b"\r\x03\x01"
KNOCK_S = 0.01
# machine.WDT cannot be stopped and outlives the soft reset that opens a session, where the
# firmware's loop no longer feeds it: the session has the board feed it from a timer
# (hw.hold_watchdog) at this timeout. Each command renews the hold for its own timeout plus
# SESSION_SLACK_S, no more: a board whose host vanished (killed, asleep, its cable out)
# resets back into its firmware within that, where one 15-minute hold per session had left
# her button deaf to her presses for up to 15 minutes.
SESSION_WDT_MS = 30000
SESSION_SLACK_S = 60


def hold_watchdog(seconds):
    """The code that (re)starts the board's watchdog hold for `seconds`; any firmware."""
    return ("try:\n import hw\n hw.hold_watchdog(%d,%d)\n"
            "except (ImportError, AttributeError):\n pass\n" % (SESSION_WDT_MS, int(seconds * 1000)))


# Whether alert.json says her alert runs, as bootcheck.alert_running reads it (any firmware
# version, or none): one digit back, nothing of hers crosses the wire.
ALERT_RUNNING = ("try:\n import json\n f=open('alert.json')\n s=json.load(f)\n f.close()\n"
                 " print(int(bool(s.get('active'))))\nexcept Exception:\n print(0)")


# The ESP32 ROM's first words after any reset ("rst:0x1 (POWERON_RESET),boot:0x13 ...",
# "rst:0xf (RTCWDT_BROWN_OUT_RESET)", ...): seen in the middle of a command, the board
# restarted under it (a brown-out under the modem's transmit burst, a crash, the watchdog)
# and the command's answer will never come. Its firmware boots and talks on, so mpremote's
# wait between characters never ran out: a test call cut so waited five minutes.
ROM_RESET = re.compile(rb"rst:0x([0-9a-fA-F]{1,2}) \($")
RESET_CAUSES = {1: "its supply was cut (power-on)", 15: "its supply sagged (brown-out)",
                12: "its firmware restarted it (a crash)", 7: "its watchdog", 8: "its watchdog",
                9: "its watchdog", 13: "its watchdog", 16: "its watchdog"}


class BoardRestarted(Exception):
    pass


class _Output:
    """mpremote's data consumer for one command: the board's output, kept (or passed on
    to the caller's consumer), watched for the ROM's reset banner."""

    def __init__(self, consumer=None):
        self.consumer = consumer
        self.data = bytearray()
        self.tail = b""

    def __call__(self, b):
        self.tail = (self.tail + b)[-24:]
        m = ROM_RESET.search(self.tail) if b == b"(" else None
        if m:
            code = int(m.group(1), 16)
            raise BoardRestarted(RESET_CAUSES.get(code, "ESP32 reset cause %d" % code))
        if self.consumer is None:
            self.data += b
        else:
            self.consumer(b)

    def output(self):
        # what the caller would have had from mpremote: the text before its end mark
        # (nothing, when the caller's own consumer took it)
        return bytes(self.data[:-1]) if self.data.endswith(b"\x04") else bytes(self.data)


def resolve_port(port):
    from .ports import pick_port

    port, why = pick_port(port)
    if not port:
        raise DeviceError(why, EXIT_USAGE)
    return port


class Device:
    """The REPL of one board. Use as a context manager; it leaves the firmware running."""

    def __init__(self, port, timeout=10, during_alert=False, answer_s=None):
        self.port = resolve_port(port)
        self.timeout = timeout
        self.answer_s = answer_s or timeout  # how long the REPL has to answer at all
        self.during_alert = during_alert  # the technician said to go on in her running alert
        self.t = None
        self.bytes_written = 0
        self.round_trips = 0

    def __enter__(self):
        try:
            # timeout: a read returns after 1 s of silence. mpremote reads a pty (the rig's
            # rehearsal port) a byte at a time, and without one a board that reset under
            # the session (its watchdog, EN) left the command waiting for ever
            self.t = SerialTransport(self.port, baudrate=115200, timeout=1)
        except (TransportError, serial.SerialException, OSError, ValueError) as e:
            raise DeviceError(f"cannot open {self.port}: {_reason(e)}", EXIT_CONNECT) from None
        try:
            # A soft reset, as mpremote does by default: a clean interpreter that ran
            # boot.py only, so the firmware's tasks and UARTs are not in the way.
            self._enter_raw_repl()
        except (TransportError, serial.SerialException, OSError) as e:
            self._close()
            raise DeviceError(f"no MicroPython REPL answers on {self.port}: {_reason(e)} "
                              "(is the firmware flashed? is another program using the port?)",
                              EXIT_CONNECT) from None
        if not self.during_alert:
            self._leave_a_running_alert()
        return self

    def _leave_a_running_alert(self):
        """The Ctrl-C that opened the session stopped her alert's firmware (the modem keeps
        C4's call): unless the technician said so, go straight back to it, which resumes
        the alert and keeps the call, and do nothing."""
        try:
            running = self.exec(ALERT_RUNNING).strip() == b"1"
        except DeviceError:
            running = False  # no answer is no alert: the command's own steps report the board
        if not running:
            return
        self.restart_firmware()
        self._close()
        raise DeviceError(f"the button on {self.port} is in an alert (calling C4, texting her "
                          "contacts): nothing was done and it went straight back to it. Run again "
                          "with --during-alert only if this cannot wait: the alert stops for the "
                          "whole command", EXIT_DEVICE)

    def __exit__(self, exc_type, exc, tb):
        if self.t is None:
            return
        try:
            # Whatever ended the session (an error, a refusal, Ctrl-C), the button goes back
            # to its firmware: left in the raw REPL it ignored her presses until the
            # session's watchdog hold ran out (SESSION_SLACK_S after its last command).
            # Code still running there (a command the host gave up on) is interrupted first.
            self.restart_firmware(interrupt=exc_type is not None)
        finally:
            self._close()

    def _close(self):
        # mpremote's close sets RTS/DTR first: on a port that vanished (USB pulled, the
        # board browned out) that raises OSError, which must not hide why the session
        # ended, nor leave the port open (and locked) in this process
        try:
            self.t.close()
        except OSError:
            try:
                self.t.serial.close()
            except OSError:
                pass

    def fresh_interpreter(self):
        """Soft-reset into a clean raw REPL: what earlier commands of this session left in
        the heap (a log read, a config) is gone."""
        try:
            self._enter_raw_repl()
        except (TransportError, serial.SerialException, OSError) as e:
            raise DeviceError(f"lost the device on {self.port}: {_reason(e)}", EXIT_CONNECT) from None

    def exec_firmware(self, code, timeout=None, consumer=None):
        """exec() of code that runs the firmware's own modules (the modem service, the test
        call): from a clean heap (the session's earlier reads fragment it), and leaving a
        clean one (the firmware's modules stay imported, fragmenting it for what follows)."""
        self.fresh_interpreter()
        out = self.exec(code, timeout=timeout, consumer=consumer)
        self.fresh_interpreter()
        return out

    def _enter_raw_repl(self):
        """mpremote's enter_raw_repl(soft_reset=True), except that the board is knocked on
        until it answers instead of asked once: a board light-sleeping hears its UART only
        in the few ms it wakes between sleeps (of up to 2 s), one still starting drops what
        comes too early, and a silence while waiting for an answer to a knock that was lost
        could miss every wake of the session's whole timeout."""
        t, deadline = self.t, time.monotonic() + self.answer_s
        heard = b""
        while RAW_PROMPT + b">" not in heard:
            if time.monotonic() >= deadline:
                raise TransportError("could not enter raw repl: no answer to Ctrl-C / Ctrl-A")
            # Ctrl-C interrupts the firmware (in a raw REPL it clears the line); Ctrl-A
            # then asks the REPL, friendly or raw, for the raw prompt
            t.serial.write(KNOCK)
            time.sleep(KNOCK_S)
            while t.serial.inWaiting():
                heard = (heard + t.serial.read(t.serial.inWaiting()))[-128:]
        # Knocks still on their way bring more prompts: one last Ctrl-A, whose prompt is
        # the last, so that the soft reset below starts from an empty raw line.
        while t.serial.inWaiting():
            t.serial.read(t.serial.inWaiting())
        t.serial.write(b"\r\x01")
        data = t.read_until(1, RAW_PROMPT + b">", timeout_overall=self.timeout)
        if not data.endswith(RAW_PROMPT + b">"):
            raise TransportError("could not enter raw repl: the prompt went silent")
        t.serial.write(b"\x04")  # Ctrl-D: soft reset, boot.py only (main.py is skipped in raw mode)
        for ending in (b"soft reboot\r\n", RAW_PROMPT):
            data = t.read_until(1, ending, timeout_overall=self.timeout)
            if not data.endswith(ending):
                raise TransportError("could not enter raw repl: no soft reset")
        t.in_raw_repl = True
        out, err = t.exec_raw(hold_watchdog(self.timeout + SESSION_SLACK_S), timeout=self.timeout)
        if err:
            raise TransportError("could not hold the watchdog: " + err.decode(errors="replace").strip()[-80:])

    # ---------------------------------------------------------------- primitives
    def exec(self, code, timeout=None, consumer=None):
        timeout = timeout or self.timeout
        code = hold_watchdog(timeout + SESSION_SLACK_S) + code  # renewed for this command
        self.round_trips += 1
        self.bytes_written += len(code)
        output = _Output(consumer)
        try:
            _, err = self.t.exec_raw(code, timeout=timeout, data_consumer=output)
        except BoardRestarted as e:
            self.t.in_raw_repl = False  # its firmware runs again: the next session knocks anew
            raise DeviceError(f"the button on {self.port} restarted in the middle of this step: {e} "
                              f"(a battery too weak for the modem's transmit bursts restarts it so; "
                              f"`boton logs` tells more); the step was cut short", EXIT_CONNECT) from None
        except (TransportError, serial.SerialException, OSError) as e:
            raise DeviceError(f"lost the device on {self.port}: {_reason(e)}", EXIT_CONNECT) from None
        out = output.output()
        if err:
            last = err.decode(errors="replace").strip().splitlines()[-1:]
            raise DeviceError(f"device error: {last[0] if last else err!r}")
        return out

    def eval_json(self, expr):
        out = self.exec(f"import json\nprint(json.dumps({expr}))")
        return json.loads(out.decode().strip().splitlines()[-1])

    def restart_firmware(self, interrupt=False):
        """Soft reset into the friendly REPL, which runs boot.py and main.py, as after power-on."""
        try:
            if interrupt:
                self.t.serial.write(b"\r\x03\x03")
                self.t.read_until(1, b">", timeout=2)
            self.t.exit_raw_repl()
            self.t.serial.write(b"\x04")
            self.t.read_until(1, b"soft reboot\r\n", timeout=self.timeout)
        except (TransportError, serial.SerialException, OSError):
            pass

    # ---------------------------------------------------------------- files
    def read_file(self, path):
        out = self.exec(f"import binascii\ntry:\n f=open({path!r},'rb')\nexcept OSError:\n print('-')\nelse:\n"
                        " while 1:\n  b=f.read(192)\n  if not b: break\n  print(binascii.b2a_base64(b).decode().strip())\n f.close()")
        lines = out.decode().split()
        if lines[:1] == ["-"]:
            return None
        import binascii
        return b"".join(binascii.a2b_base64(x) for x in lines)

    def write_file(self, path, data: bytes):
        """Write, then check the device's own SHA-256 of what landed."""
        self._mkdirs(path)
        # base64 costs 4/3 of the bytes; a bytes literal of .mpy costs ~2.6x (escapes)
        self.exec(f"import binascii\nf=open({path!r},'wb')\nw=f.write\nd=binascii.a2b_base64")
        for i in range(0, len(data), 1536):
            self.exec(f"w(d({base64.b64encode(data[i:i + 1536]).decode()!r}))")
        self.exec("f.close()")
        got = self.hash_file(path)
        if got != hashlib.sha256(data).hexdigest():
            raise DeviceError(f"verify failed for {path}: the device holds different bytes", EXIT_VERIFY)

    def write_file_atomic(self, path, data: bytes):
        """Write to a temporary name and rename over the old file: never a half-written config."""
        tmp = path + ".tmp"
        self.write_file(tmp, data)
        self.exec(f"import os\nos.rename({tmp!r},{path!r})")

    def hash_file(self, path):
        return self.hash_files([path]).get(path)

    def hash_files(self, paths):
        """SHA-256 of each path on the device (missing files omitted), in one round trip."""
        # One line per file as it is hashed, and the names deleted after: a 56 KB heap has
        # no room to spare for a dict of them all turned into one JSON string.
        code = ("import hashlib,binascii\ndef _h(ps):\n b=bytearray(256)\n for p in ps:\n"
                "  try:\n   f=open(p,'rb')\n  except OSError:\n   continue\n"
                "  h=hashlib.sha256()\n  while 1:\n   n=f.readinto(b)\n   if not n: break\n"
                "   h.update(b[:n])\n  f.close()\n  print(binascii.hexlify(h.digest()).decode(),p)\n"
                f"_h({list(paths)!r})\ndel _h")
        out = self.exec(code)
        hashes = {}
        for line in out.decode().splitlines():
            digest, _, path = line.strip().partition(" ")
            if len(digest) == 64 and path:
                hashes[path] = digest
        return hashes

    def _mkdirs(self, path):
        parts = path.strip("/").split("/")[:-1]
        if parts:
            self.exec("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
                      % ["/".join(parts[: i + 1]) for i in range(len(parts))])

    def remove(self, path):
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")


def _not_a_serial_port(path):
    """What an existing path is when it is no serial port ("a folder", "a file", "a device
    that is no terminal"), else None. Looked at, never opened: an open resets the board."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if not stat.S_ISCHR(mode):
        return "neither a file nor a device"
    real = os.path.realpath(path)
    if real.startswith("/dev/pts/"):      # a pseudo-terminal (a bridge, the rig's pty)
        return None
    if os.path.isdir("/sys/class/tty"):   # Linux lists every other terminal device, serial ones too
        name = os.path.basename(real)
        return None if os.path.exists(os.path.join("/sys/class/tty", name)) else "a device that is no terminal"
    return None


def _reason(e):
    """One line on why the port failed. mpremote drops the OSError behind its "failed to
    access PORT": for a device path, the path is looked at again (never opened: an open
    resets the board) to say whether it is missing or the user may not open it."""
    import errno
    import os
    import re

    from .errors import PORT_PERMISSION_HINT

    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) and e.errno == errno.EACCES:
        return PORT_PERMISSION_HINT
    m = re.fullmatch(r"failed to access (\S+)", text)
    if m and re.fullmatch(r"(\\\\\.\\)?COM\d+", m.group(1), re.I):
        # a Windows port is no file to look at; a busy one is what Windows refuses most
        return f"{text}: another program may hold it (close serial monitors), or no board is on it (boton ports)"
    if m and "://" not in m.group(1):
        port = m.group(1)
        if not os.path.exists(port):
            return f"{port} does not exist: is the board plugged in, and is this its port?"
        if not os.access(port, os.R_OK | os.W_OK):
            return PORT_PERMISSION_HINT
        what = _not_a_serial_port(port)
        if what:
            return f"{port} is {what}, not a serial port: give the board's port (boton ports lists them)"
        return f"{text}: another program may hold it (close serial monitors)"
    if m:   # a socket:// or rfc2217:// URL: the virtual device's (or a network bridge's)
        return (f"nothing answers at {m.group(1)}: is `boton sim` (or the bridge) still running, "
                "and is this the URL it printed?")
    return text.splitlines()[0]

