"""The virtual board's USB-UART on TCP: ROM download mode for the real esptool (CPython).

``RomServer`` serves a ``RomLoader`` (see rom_loader.py) on ``127.0.0.1:PORT`` so that
``esptool --port <url> --no-stub ...`` and esptool's Python API flash the virtual device::

    with RomServer("build/flash.bin") as srv:            # srv.url: socket://127.0.0.1:PORT
        subprocess.run(["esptool", "--port", srv.url, "--before", "no-reset",
                        "--after", "no-reset", "--no-stub", "write-flash", "0x1000", "fw.bin"])

    RomServer(path, rfc2217=True)                        # srv.url: rfc2217://127.0.0.1:PORT

Two transports, one board:

* ``socket://`` is a bare byte pipe (pyserial cannot carry DTR/RTS over it, and esptool
  forces ``--before no-reset``). The chip sits in whatever mode it was booted into:
  ``boot_mode="download"`` (default: as if BOOT was held while plugging in) or ``"run"``.
* ``rfc2217://`` (the server side of RFC 2217: boton.rfc2217_link, imported only then) carries
  DTR/RTS, wired like an ESP32 dev board's auto-reset circuit (two cross-coupled
  transistors): EN is low only while RTS is asserted alone, IO0 is low only while DTR is
  asserted alone. When EN rises the chip leaves reset ``en_delay_s`` later (the RC on EN)
  and samples IO0 then: low -> ROM download mode, high -> the app ("run"). So esptool's
  classic reset (RTS=EN low, DTR=IO0 low, release EN while IO0 is low) enters the
  loader, and its ``--after hard-reset`` (pulse RTS with DTR released) boots the app.
  RFC2217 is slow with pyserial's client whatever the server: every change of the port's
  timeout (esptool makes two per command) renegotiates the port settings with 50 ms polls,
  ~0.2 s per command. Where speed matters, serve ``socket://`` and put the board into
  download mode with ``reset("download")`` (the BOOT button) before running esptool.

On every boot the ROM banner is sent to the host (``banner=True``), exactly as the
ESP32 prints it ("rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT...) waiting for
download"); esptool looks for it after a reset to report a wrong boot mode.

Leaving the loader also switches modes: FLASH_END / FLASH_DEFL_END "run user code" (what
``esptool run`` and ``--after soft-reset`` send) boots the app without a reset; their
"reboot" flavour is a software reset, which on the ESP32 keeps the latched strapping (a
chip that booted into download mode comes back into download mode). MEM_END with an entry
point (the flasher stub: esptool without ``--no-stub``; ``load-ram``) cannot run: the
board halts until the next reset, after one SLIP frame saying so (esptool shows it as
"Failed to start stub flasher. Unexpected response: b'... use esptool --no-stub'").

Hooks, for the owner of the rest of the virtual board (the MicroPython child):

* ``on_boot_mode(mode)``: called on each boot with "download" or "run". On "run" start
  the app from power-on; on "download" stop it (the ROM owns the UART now).
* ``on_app_data(data)``: host bytes while the app runs (the REPL's stdin).
* ``send_console(data)``: the app's UART output; delivered to the host only while the
  board is in "run" (a chip in reset or in the ROM prints nothing of the app).
* ``reset(mode)``: press EN (with BOOT held for "download"); ``wait_boot()`` waits for a boot.

One host at a time, like one USB cable: a new connection replaces the old one. The hooks
run on the server's thread; keep them short and hand work to your own loop.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections import deque

from .peercred import allowed as peer_allowed
from .rom_loader import RomLoader, boot_banner, slip_encode

log = logging.getLogger(__name__)

# EN's RC: the chip leaves reset this long after EN rises, then samples IO0. On a board
# the RC is a few ms and filters the (DTR, RTS) = (on, on) glitch of esptool's classic
# reset. Over RFC2217 every line change costs one round trip that pyserial's client polls
# every 50 ms, so that glitch lasts ~50 ms and IO0 stays low for ~150 ms after it (0.65 s
# on esptool's second attempt): 0.1 s sits inside both windows.
EN_DELAY_S = 0.1
# Sent as one SLIP frame: esptool waiting for the stub's "OHAI" prints any other packet
# ("Failed to start stub flasher. Unexpected response: b'...'"), so the hint reaches the user.
HALT_MESSAGE = slip_encode(b"virtual ESP32: code uploaded to RAM cannot run here (esptool's "
                           b"flasher stub is not emulated); use esptool --no-stub")


class AutoResetCircuit:
    """DTR/RTS -> EN/IO0 of the usual ESP32 dev-board auto-reset circuit (sans-IO).

    ``dtr`` / ``rts`` follow pyserial: True = asserted (the line is driven low).
    ``set_lines(now, ...)`` and ``poll(now)`` return the boot events that happened:
    "reset" (EN went low) and "download" / "run" (the chip left reset; IO0 sampled).
    """

    def __init__(self, en_delay_s: float = EN_DELAY_S):
        self.en_delay_s = en_delay_s
        self.dtr = False
        self.rts = False
        self.in_reset = False
        self._release_at = None

    @property
    def en(self) -> bool:  # True = high (running)
        return not (self.rts and not self.dtr)

    @property
    def io0(self) -> bool:  # True = high (boot from flash)
        return not (self.dtr and not self.rts)

    def deadline(self):
        return self._release_at

    def poll(self, now: float) -> list[str]:
        if self._release_at is not None and now >= self._release_at:
            self._release_at = None
            self.in_reset = False
            return ["run" if self.io0 else "download"]
        return []

    def set_lines(self, now: float, dtr: bool | None = None, rts: bool | None = None) -> list[str]:
        events = self.poll(now)  # a release that was due happened before this change
        was_en = self.en
        if dtr is not None:
            self.dtr = bool(dtr)
        if rts is not None:
            self.rts = bool(rts)
        if was_en and not self.en:
            self.in_reset = True
            self._release_at = None
            events.append("reset")
        elif not was_en and self.en:
            self._release_at = now + self.en_delay_s
        return events


class _VirtualPort:
    """The device side of the USB-UART bridge, as an RFC 2217 server sees a serial port."""

    def __init__(self, server: "RomServer"):
        self._server = server
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self):
        return self._server.loader.host_baud

    @baudrate.setter
    def baudrate(self, value):
        self._server.loader.host_baud = value  # the ROM autobauds on the next SYNC

    @property
    def dtr(self):
        return self._server.circuit.dtr

    @dtr.setter
    def dtr(self, value):
        self._server._set_lines(dtr=value)

    @property
    def rts(self):
        return self._server.circuit.rts

    @rts.setter
    def rts(self, value):
        self._server._set_lines(rts=value)

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


class RomServer:
    """A TCP endpoint (socket:// or rfc2217://) for the virtual board's UART0 (see module doc)."""

    def __init__(self, flash_path=None, *, loader: RomLoader | None = None, host="127.0.0.1",
                 port=0, rfc2217=False, boot_mode="download", on_boot_mode=None,
                 on_app_data=None, banner=True, en_delay_s=EN_DELAY_S, **loader_kw):
        if boot_mode not in ("download", "run"):
            raise ValueError(f"boot_mode must be 'download' or 'run', not {boot_mode!r}")
        if loader is None:
            if flash_path is None:
                raise ValueError("give flash_path or loader")
            loader = RomLoader(flash_path, **loader_kw)
            self._own_loader = True
        else:
            self._own_loader = False
        self.loader = loader
        self.rfc2217 = rfc2217
        self.on_boot_mode = on_boot_mode
        self.on_app_data = on_app_data
        self.banner = banner
        self.circuit = AutoResetCircuit(en_delay_s)
        self.mode = None          # "download", "run", "reset" (EN low) or "halted"
        self.boots = []           # (monotonic time, mode, reason) of every boot, in order;
                                  # reason: "poweron" (EN), "sw" (software reset), "jump"
                                  # (the ROM ran user code: FLASH_END)
        self.connections = 0      # host connections accepted (esptool opens one per run)
        self._initial_mode = boot_mode
        self._latched = boot_mode  # strapping latched at the last EN boot
        self._host, self._port = host, port
        self._cond = threading.Condition()
        self._calls = deque()
        self._conn = None
        self._link = None         # the RFC 2217 session of the connected host (rfc2217=True)
        self._rx_pending = bytearray()
        self._thread = None
        self._stopping = False
        self.url = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self._listen = socket.create_server((self._host, self._port))
        self._listen.setblocking(False)
        port = self._listen.getsockname()[1]
        self.url = f"{'rfc2217' if self.rfc2217 else 'socket'}://{self._host}:{port}"
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="rom-server", daemon=True)
        self._thread.start()
        self.wait_boot(self._initial_mode, timeout=10)
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join(10)
        self._thread = None
        for s in (self._listen, self._wake_r, self._wake_w):
            s.close()
        if self._own_loader:
            self.loader.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ public, thread-safe
    def send_console(self, data: bytes):
        """The app's UART output (delivered while the board runs the app)."""
        self._call_soon(self._app_out, bytes(data))

    def reset(self, mode: str = "run"):
        """Press EN, with BOOT held for mode="download"."""
        if mode not in ("download", "run"):
            raise ValueError(mode)
        self._call_soon(self._boot, mode, "poweron")

    def wait_boot(self, mode: str | None = None, timeout: float = 10.0, after: int = 0):
        """Block until boot number >= `after` (into `mode`, if given) happened; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for b in self.boots[after:]:
                    if mode is None or b[1] == mode:
                        return b
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no boot into {mode or 'any mode'} within {timeout}s; "
                                       f"boots: {self.boots}")
                self._cond.wait(left)

    # ------------------------------------------------------------------ server thread
    def _call_soon(self, fn, *args):
        self._calls.append((fn, args))
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self._listen, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._boot(self._initial_mode, "poweron")
        try:
            while not self._stopping:
                due = self.circuit.deadline()
                timeout = None if due is None else max(0.0, due - time.monotonic())
                for key, _ in sel.select(timeout):
                    if key.data == "accept":
                        self._accept(sel)
                    elif key.data == "wake":
                        try:
                            self._wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                    elif key.data == "client":
                        self._readable(sel, key.fileobj)
                while self._calls:
                    fn, args = self._calls.popleft()
                    fn(*args)
                self._events(self.circuit.poll(time.monotonic()))
        except Exception:
            log.exception("rom server thread died")
            raise
        finally:
            if self._conn is not None:
                self._conn.close()
            sel.close()

    def _accept(self, sel):
        try:
            conn, peer = self._listen.accept()
        except BlockingIOError:
            return
        # Only the user who started it (checked before the current client is dropped).
        if not peer_allowed(peer, conn.getsockname(), "ROM loader/REPL"):
            conn.close()
            return
        if self._conn is not None:
            self._drop_client(sel)
        conn.setblocking(True)
        conn.settimeout(5)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self.connections += 1
        sel.register(conn, selectors.EVENT_READ, "client")
        if self.rfc2217:
            # pyserial's RFC 2217 code, only for a server that serves rfc2217://
            from ..rfc2217_link import Rfc2217Link

            self._link = Rfc2217Link(_VirtualPort(self), self._send_raw)

    def _drop_client(self, sel):
        conn = self._conn
        self._conn = None
        try:
            sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()
        if self._link is not None:
            self._link = None
            # closing the port drops DTR and RTS (HUPCL)
            self._events(self.circuit.set_lines(time.monotonic(), dtr=False, rts=False))

    def _readable(self, sel, conn):
        try:
            data = conn.recv(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            if conn is self._conn:
                self._drop_client(sel)
            return
        if self._link is None:
            self._from_host(data)
            return
        self._link.feed(data, self._rx_pending)
        self._flush_rx()

    def _flush_rx(self):
        if self._rx_pending:
            data = bytes(self._rx_pending)
            self._rx_pending.clear()
            self._from_host(data)

    def _set_lines(self, dtr=None, rts=None):
        self._flush_rx()  # bytes sent before the line change reach the chip first
        self._events(self.circuit.set_lines(time.monotonic(), dtr=dtr, rts=rts))

    def _events(self, events):
        for ev in events:
            if ev == "reset":
                self.mode = "reset"
            else:
                self._boot(ev, "poweron")

    def _boot(self, mode, reason):
        """The chip starts: 'poweron' (EN) latches the strapping; 'sw' keeps it."""
        if reason == "poweron":
            self._latched = mode
        if mode == "download":
            self.loader.reset()
        self.mode = mode
        if self.banner and reason in ("poweron", "sw"):
            self._send(boot_banner(mode, reason))
        with self._cond:
            self.boots.append((time.monotonic(), mode, reason))
            self._cond.notify_all()
        self._hook(self.on_boot_mode, mode)

    def _from_host(self, data):
        if self.mode == "download":
            out = self.loader.feed(data)
            if out:
                self._send(out)
            if self.loader.exited:
                self._loader_exit(self.loader.exited)
        elif self.mode == "run":
            self._hook(self.on_app_data, data)
        # "reset" (EN low) and "halted": nobody listens

    @staticmethod
    def _hook(fn, arg):
        if fn is None:
            return
        try:
            fn(arg)
        except Exception:  # the board keeps going; the owner's bug is logged
            log.exception("rom server hook %r failed", fn)

    def _loader_exit(self, how):
        if how == "run":
            self._boot("run", "jump")  # straight to user code, no reset, no banner
        elif how == "reboot":
            self._boot(self._latched, "sw")
        else:  # "ram": code we cannot run
            log.warning("MEM_END jumped to %#x: RAM code is not emulated (use --no-stub)",
                        self.loader.entry or 0)
            self.mode = "halted"
            self._send(HALT_MESSAGE)

    def _app_out(self, data):
        if self.mode == "run":
            self._send(data)

    def _send(self, data):
        if self._link is not None:
            data = self._link.escape(data)
        self._send_raw(data)

    def _send_raw(self, data):
        conn = self._conn
        if conn is None or not data:
            return
        try:
            conn.sendall(data)
        except OSError:
            pass  # the host went away; _readable() notices
