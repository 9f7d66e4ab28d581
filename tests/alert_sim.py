# A tiny deterministic driver for alert.AlertMachine, used by tests/test_alert.py.
# It runs unchanged on MicroPython (prepended to the test code) and on CPython:
# it keeps the timers the machine sets, fires them in time order, and (optionally)
# reports every send_sms as delivered at once.  Not collected by pytest.
# Story time (t, in every recorded action) starts at 0; the machine is handed ticks
# t0 + t, wrapped as time.ticks_ms() wraps (gesture.ticks_add), so a story started
# near the wrap must record exactly what the same story from 0 records.
import json
import sys
from alert import AlertMachine
from gesture import ticks_add

C4 = "+524491110000"
C4B = "+524492220000"
CONTACTS = ["+524493330001", "+524493330002", "+524493330003"]
CFG = {"c4_numbers": [C4, C4B], "contacts": CONTACTS, "pin": "4321", "alias": "Luna",
       "device_id": "BS-0042", "fw": "1.0.0"}


class Sim:
    def __init__(self, cfg=None, sms_ok=True, keep=None, text=None, t0=0, **over):
        # keep: the action kinds to record (None: all); text: how much of each SMS
        # text to record (None: all) - long scenarios must stay small on MicroPython
        c = dict(CFG)
        c.update(cfg or {})
        c.update(over)
        self.cfg = c
        self.m = AlertMachine(c)
        self.t = 0
        self.t0 = t0            # the ticks at story time 0
        self.timers = {}
        # every action as (t, kind, args...), kept in 64-entry chunks so that a long
        # scenario never needs a big contiguous block in the tests' small MicroPython heap
        self._chunks = []
        self.n = 0
        self.sms_ok = sms_ok    # True/False: report each send_sms so; None: leave pending
        self.pending = []
        self.state = None
        self.keep = keep
        self.text = text

    def _add(self, a):
        if self.keep is not None and a[1] not in self.keep:
            return
        if self.text is not None and a[1] == "send_sms":
            a = a[:3] + (a[3][:self.text],) + a[4:]
        if self.n % 64 == 0:
            self._chunks.append([None] * 64)
        self._chunks[-1][self.n % 64] = a
        self.n += 1

    def _iter(self):
        for i in range(self.n):
            yield self._chunks[i // 64][i % 64]

    def _run(self, acts):
        for a in acts:
            k = a[0]
            if k == "persist":
                self.state = a[1]
                self._add((self.t, "persist"))
                continue
            self._add((self.t,) + a)
            if k == "set_timer":
                self.timers[a[1]] = self.t + a[2]
            elif k == "cancel_timer":
                self.timers.pop(a[1], None)
            elif k == "send_sms":
                self.pending.append(a[3])
        while self.sms_ok is not None and self.pending:
            n = self.pending.pop(0)
            self._run(self.m.handle(("sms_sent", n, self.sms_ok), self.now()))

    def now(self):
        # what time.ticks_ms() would read
        return ticks_add(self.t0, self.t)

    def ev(self, *e):
        self._run(self.m.handle(tuple(e), self.now()))
        return self

    def resume(self, state, call_kept=False, gap_ms=0):
        # gap_ms: the time from the save to the resume by the RTC (None: unknown)
        self._run(self.m.from_state(state, self.now(), call_kept, gap_ms))
        return self

    def start(self):
        self._run(self.m.start(self.now()))
        return self

    def advance(self, ms):
        end = self.t + ms
        while True:
            due = sorted([(v, k) for k, v in self.timers.items() if v <= end])
            if not due:
                break
            v, k = due[0]
            del self.timers[k]
            self.t = v
            self._run(self.m.handle(("timer", k), self.now()))
        self.t = end
        return self

    def _list(self, keep, get):
        # lists are sized first and then filled: a list growing by appends needs ever
        # bigger contiguous blocks, which a fragmented small heap may not have
        n = 0
        for a in self._iter():
            if keep(a):
                n += 1
        out = [None] * n
        i = 0
        for a in self._iter():
            if keep(a):
                out[i] = get(a)
                i += 1
        return out

    @property
    def acts(self):
        return self._list(lambda a: True, lambda a: a)

    def of(self, kind):
        return self._list(lambda a: a[1] == kind, lambda a: a)

    def sms(self):
        return self._list(lambda a: a[1] == "send_sms", lambda a: (a[0], a[2], a[3]))

    def dials(self):
        return self._list(lambda a: a[1] == "dial", lambda a: (a[0], a[2]))

    def kinds(self):
        return self._list(lambda a: True, lambda a: a[1])

    def logs(self, what=None):
        return self._list(lambda a: a[1] == "log" and (what is None or a[2] == what),
                          lambda a: a[2:])

    def clear(self):
        self._chunks = []
        self.n = 0
        return self


def out(obj):
    # streamed: no single big string for a long result
    json.dump(obj, sys.stdout)
    print()
