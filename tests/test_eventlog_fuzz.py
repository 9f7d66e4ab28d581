"""firmware/lib/eventlog.py over a button's life (hypothesis, stateful): entries of every
kind, strangers' floods, a flash that refuses writes for a while, the RTC set forward and
back, and resets (a new EventLog on the same files), in any order.

Rules after every step: the retained log is what the host's check accepts (counters
contiguous, hashes chained: eventlog.verify, which the registry's audit runs); numbers
never go back and every entry written is numbered once; the ring stays within its
segments; a log that cannot be written never raises into the caller; and her entries
(alert, cancel) stay until three segments' worth of entries came after them, across
resets and whatever floods of strangers' entries.

Pure CPython: the module is the firmware's own; test_alert_parts runs it on MicroPython.
"""
import os
import sys
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from boton.paths import FIRMWARE

sys.path.insert(0, str(FIRMWARE / "lib"))
import eventlog  # noqa: E402

HERS = ("alert", "cancel", "sms_ok", "call_active", "boot", "ready")
DETAILS = st.one_of(st.sampled_from(["-", "gesture", "...0000 #1", "a b\nc", ""]),
                    st.text(max_size=30))


def _builtin_open():
    eventlog.__dict__.pop("open", None)  # the module's open() is the builtin again


class LogOverALife(RuleBasedStateMachine):
    @initialize()
    def boot(self):
        self.dir = tempfile.mkdtemp(prefix="evlog-")
        self.prefix = os.path.join(self.dir, "log")
        self.now = 1796040000
        self.refuse = False
        self.seq_seen = 0
        self.hers = []          # seq of her alerts and cancels that reached the flash
        self.log = self._open()

    def teardown(self):
        _builtin_open()
        d = getattr(self, "dir", None)
        if d:
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
            os.rmdir(d)

    def _open(self):
        return eventlog.EventLog(prefix=self.prefix, echo=False, clock=lambda: self.now)

    def _flash(self):
        # a flash that refuses writes (full, worn): open() for append raises OSError
        if self.refuse:
            def refusing(path, mode="r", *a, **k):
                if "a" in mode or "w" in mode:
                    raise OSError(28)
                return open(path, mode, *a, **k)
            eventlog.open = refusing
        else:
            _builtin_open()

    @rule(event=st.sampled_from(HERS), detail=DETAILS)
    def her_entry(self, event, detail):
        self._flash()
        before = self.log.seq
        seq = self.log.add(event, detail)
        if seq > before and event in ("alert", "cancel"):
            self.hers.append(seq)

    @rule(event=st.sampled_from(eventlog.STRANGER), n=st.integers(1, 80))
    def strangers(self, event, n):
        self._flash()
        for _ in range(n):
            self.log.add(event, "...7777")

    @rule(refuse=st.booleans())
    def flash_refuses(self, refuse):
        self.refuse = refuse

    @rule(dt=st.integers(-3 * 86400, 3 * 86400))
    def clock(self, dt):
        self.now = max(946684800, self.now + dt)

    @rule(unset=st.booleans())
    def reset(self, unset):
        # a reset: the RTC keeps its time, or (a power-off) counts from 2000 again
        if unset:
            self.now = 946684800 + 12
        self._flash()
        self.log = self._open()

    @invariant()
    def the_host_accepts_the_retained_log(self):
        if not hasattr(self, "log"):
            return
        _builtin_open()
        lines = self.log.entries()
        ok, why = eventlog.verify(lines)
        assert ok, (why, lines[-5:])
        seqs = [int(x.split(" ", 1)[0]) for x in lines]
        assert len(lines) <= eventlog.SEGMENTS * eventlog.PER_SEGMENT
        if seqs:
            assert seqs[-1] == self.log.seq, (seqs[-1], self.log.seq)
            assert self.log.seq >= self.seq_seen
            self.seq_seen = self.log.seq
            # her entries stay until three segments' worth came after them (the ring's
            # retention; strangers past their daily quota take no place in it)
            keep = (eventlog.SEGMENTS - 1) * eventlog.PER_SEGMENT
            for s in self.hers:
                if self.log.seq - s < keep:
                    assert s in seqs, (s, seqs[0], self.log.seq)


LogOverALife.TestCase.settings = settings(
    max_examples=int(os.environ.get("BOTON_FUZZ_EXAMPLES", 150)),
    stateful_step_count=int(os.environ.get("BOTON_FUZZ_STEPS", 40)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_log_over_a_life = LogOverALife.TestCase
