"""A tiny event scheduler shared by the simulated parts.

The parts never sleep: they schedule callbacks at absolute times. The rig runs the
scheduler against the wall clock; tests run it against a manual clock, so timing is
exact and no test sleeps.
"""
import heapq
import itertools
import time


class Scheduler:
    def __init__(self, clock=time.monotonic, time_scale: float = 1.0):
        self._clock = clock
        self.time_scale = time_scale  # multiplies every simulated delay
        self._queue = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._clock()

    def after(self, delay_s: float, fn, *args):
        """Run fn(*args) `delay_s * time_scale` seconds from now. Returns a handle for cancel()."""
        return self.at(self.now() + delay_s * self.time_scale, fn, *args)

    def at(self, when: float, fn, *args):
        entry = [when, next(self._seq), fn, args, True]
        heapq.heappush(self._queue, entry)
        return entry

    @staticmethod
    def cancel(handle):
        if handle is not None:
            handle[4] = False

    def next_deadline(self):
        while self._queue and not self._queue[0][4]:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def run_due(self, now=None) -> int:
        """Run every callback due by `now`; return how many ran."""
        now = self.now() if now is None else now
        ran = 0
        while self._queue and self._queue[0][0] <= now:
            when, _, fn, args, live = heapq.heappop(self._queue)
            if live:
                fn(*args)
                ran += 1
        return ran


class ManualClock:
    """A clock for tests: time moves only when told."""

    def __init__(self, start: float = 1000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, sched: Scheduler, seconds: float):
        """Move time forward, running callbacks in order at their own times."""
        end = self.t + seconds
        while True:
            nxt = sched.next_deadline()
            if nxt is None or nxt > end:
                break
            self.t = max(self.t, nxt)
            sched.run_due(self.t)
        self.t = end
