"""Simulated modems on a byte stream, for AT clients that are not the firmware.

* ``UartBridge`` exposes one simulated SIM800's UART as something pyserial opens: a
  ``socket://127.0.0.1:PORT`` URL (``serial.serial_for_url``) or a pty path
  (``serial.Serial``), so the reference-modem driver and foreign AT clients (python-gsmmodem)
  talk to the simulation exactly as they would to a USB-serial adapter.
* ``SimBench`` is a phone network and modems without any firmware: a Scheduler run in real
  time on its own thread. ``bench.call(fn, *args)`` runs code on that thread (the simulated
  parts are not thread-safe), like ``VirtualDevice.call`` does on the rig.

A second modem can join a running virtual device's network the same way
(``attach_modem(vd.call, vd.sched, vd.network, number)``): that is how the reference modem
of the HIL set-up is rehearsed on the rig.
"""
import os
import pty
import queue
import select
import socket
import threading
import time
import tty

from ..sim.clock import Scheduler
from ..sim.network import PhoneNetwork
from ..sim.modem import Sim800


class UartBridge:
    """A simulated UART as a socket:// URL or a pty. `emit()` is the modem's TXD."""

    def __init__(self, call, kind="socket"):
        self._call = call          # runs fn(*args) on the thread that owns the modem
        self.kind = kind
        self.modem = None
        self._closing = False
        self._conn = None
        self._lock = threading.Lock()
        if kind == "socket":
            self._server = socket.socket()
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._server.bind(("127.0.0.1", 0))
            self._server.listen(1)
            self.url = "socket://127.0.0.1:%d" % self._server.getsockname()[1]
            target = self._serve_socket
        elif kind == "pty":
            self._master, self._slave = pty.openpty()
            tty.setraw(self._slave)  # a UART: no echo, no CR/LF translation
            self.url = os.ttyname(self._slave)
            target = self._serve_pty
        else:
            raise ValueError("kind must be 'socket' or 'pty'")
        self._thread = threading.Thread(target=target, name="uart-bridge", daemon=True)
        self._thread.start()

    def emit(self, data: bytes):
        """Bytes from the modem to whoever holds the other end (dropped if nobody does)."""
        if self.kind == "pty":
            try:
                os.write(self._master, data)
            except OSError:
                pass
            return
        with self._lock:
            conn = self._conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass

    def _feed(self, data):
        if self.modem is not None and not self._closing:
            try:
                self._call(self.modem.feed, data)
            except Exception:  # the rig is going away
                pass

    def _serve_socket(self):
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                old, self._conn = self._conn, conn
            if old is not None:
                old.close()
            while not self._closing:
                try:
                    data = conn.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                self._feed(data)
            with self._lock:
                if self._conn is conn:
                    self._conn = None
            conn.close()

    def _serve_pty(self):
        while not self._closing:
            r, _, _ = select.select([self._master], [], [], 0.2)
            if not r:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if data:
                self._feed(data)

    def close(self):
        self._closing = True
        if self.kind == "socket":
            try:
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
            except OSError:
                pass
            self._server.close()
            with self._lock:
                if self._conn is not None:
                    try:
                        self._conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        self._thread.join(2)
        if self.kind == "pty":
            os.close(self._master)
            os.close(self._slave)


def attach_modem(call, sched, network, number, bridge_kind="socket", power_on=True, **modem_kw):
    """A Sim800 for `number` on `network`, its UART behind a new UartBridge. Returns
    (modem, bridge). `call` runs code on the thread that owns sched and network."""
    bridge = UartBridge(call, bridge_kind)

    def make():
        modem = Sim800(sched, network, number, emit=bridge.emit, **modem_kw)
        network.attach(number, modem)
        if power_on:
            modem.power_on()
        return modem

    bridge.modem = call(make)
    return bridge.modem, bridge


class SimBench:
    """A PhoneNetwork and simulated modems, run in real time on a background thread."""

    def __init__(self, time_scale=0.1, **network_kw):
        self.sched = Scheduler(time.monotonic, time_scale)
        self.network = PhoneNetwork(self.sched, **network_kw)
        self._jobs = queue.SimpleQueue()
        self._cv = threading.Condition()
        self._kicked = False
        self._stop = False
        self._bridges = []
        self._thread = threading.Thread(target=self._run, name="sim-bench", daemon=True)
        self._thread.start()

    def call(self, fn, *args, timeout=10):
        """Run fn(*args) on the bench thread; return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        done = threading.Event()
        box = {}
        self._jobs.put((fn, args, box, done))
        self._kick()
        if not done.wait(timeout):
            raise TimeoutError("sim bench did not run the call")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def add_modem(self, number, bridge="socket", **modem_kw):
        modem, br = attach_modem(self.call, self.sched, self.network, number, bridge, **modem_kw)
        self._bridges.append(br)
        return modem, br

    def _kick(self):
        with self._cv:
            self._kicked = True
            self._cv.notify()

    def _run(self):
        while True:
            while True:
                try:
                    fn, args, box, done = self._jobs.get_nowait()
                except queue.Empty:
                    break
                try:
                    box["result"] = fn(*args)
                except BaseException as e:  # handed to the caller
                    box["error"] = e
                done.set()
            self.sched.run_due()
            nxt = self.sched.next_deadline()
            with self._cv:
                if self._stop:
                    return
                if not self._kicked:
                    wait = None if nxt is None else max(0.0, nxt - time.monotonic())
                    if wait is None or wait > 0:
                        self._cv.wait(wait if wait is not None else 0.5)
                self._kicked = False

    def close(self):
        for br in self._bridges:
            br.close()
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(5)
        self.network.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
