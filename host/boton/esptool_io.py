"""esptool used as a library, for several boards at once.

esptool has one global logger: install_log_router() routes it per thread, so the thread
flashing a board (board.log, a BoardLog) keeps that board's output for the error hints
and its progress; other threads reach the logger that was there before. open_port()
gives esptool an rfc2217:// port that does not renegotiate on every timeout change.
"""
import threading

_ROUTER_LOCK = threading.Lock()
board = threading.local()  # .log: the BoardLog of the board this thread flashes


class BoardLog:
    """What esptool logs while one board is flashed: kept for the error hints, progress
    (bytes done, bytes total) handed to `on_progress`."""

    def __init__(self, on_progress=None):
        self.lines = []
        self.on_progress = on_progress
        self.step = "connect"  # what esptool was doing, for the error message

    def text(self) -> str:
        return "\n".join(self.lines)


def install_log_router():
    """Route esptool's global logger per thread; threads not flashing a board (another
    caller of esptool in this process) still reach the logger that was there before."""
    from esp_pylib.logger import EspLog, EspLogBase

    with _ROUTER_LOCK:
        if isinstance(EspLog.instance, EspLogBase) and getattr(EspLog.instance, "_boton_router", False):
            return
        import esptool.logger  # noqa: F401  (installs esptool's own logger first)

        previous = EspLog.instance

        class Router(EspLogBase):
            _boton_router = True

            def _sink(self):
                return getattr(board, "log", None)

            def _line(self, kind, args, delegate, **kw):
                sink = self._sink()
                if sink is None:
                    return getattr(previous, delegate)(*args, **kw)
                text = " ".join(str(a) for a in args)
                sink.lines.append(f"{kind}{text}" if kind else text)

            def print(self, *args, **kwargs):
                sink = self._sink()
                if sink is None:
                    return previous.print(*args, **kwargs)
                sink.lines.append(" ".join(str(a) for a in args))

            def err(self, *args, suggestion=None):
                self._line("error: ", args, "err", suggestion=suggestion)

            def warn(self, *args, suggestion=None):
                self._line("warning: ", args, "warn", suggestion=suggestion)

            def warning(self, message, suggestion=None):
                self.warn(message, suggestion=suggestion)

            def error(self, message, suggestion=None):
                self.err(message, suggestion=suggestion)

            def note(self, *args):
                self._line("note: ", args, "note")

            def hint(self, *args):
                self._line("hint: ", args, "hint")

            def debug(self, *args):
                if self._sink() is None:
                    previous.debug(*args)

            def stage(self, finish=False):
                if self._sink() is None:
                    previous.stage(finish)

            def set_verbosity(self, mode):
                previous.set_verbosity(mode)

            def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
                sink = self._sink()
                if sink is None:
                    return previous.progress_bar(cur_iter, total_iters, prefix, suffix, bar_length)
                if sink.on_progress:
                    sink.on_progress(cur_iter, total_iters)

        router = Router()
        EspLog.set_logger(router)
        # esptool.reset bound its one warning ("Chip was NOT reset") to the logger of import time
        from esptool.reset import ResetStrategy
        from esptool.util import PrintOnce

        ResetStrategy.print_once = PrintOnce(router.warn)


def open_port(port: str):
    """The serial port object esptool gets. On rfc2217:// pyserial renegotiates every line
    setting (polling every 50 ms) whenever the read timeout changes, which esptool does
    twice per command although the timeout never leaves this host: _QuickRfc2217 only
    renegotiates when a line setting changes. Other ports: esptool opens them itself."""
    if not port.startswith("rfc2217://"):
        return port
    import serial.rfc2217

    class _QuickRfc2217(serial.rfc2217.Serial):
        _negotiated = None

        def _reconfigure_port(self):
            if self._write_timeout is not None:
                raise NotImplementedError("write_timeout is currently not supported")
            settings = (self._baudrate, self._bytesize, self._parity, self._stopbits,
                        self._rtscts, self._xonxoff)
            if settings != self._negotiated:
                super()._reconfigure_port()
                self._negotiated = settings

    return _QuickRfc2217(port)  # errors: flash() turns them into hints
