# Button gestures without false alarms, sans-IO with explicit time.
#
# All times are millisecond ticks (time.ticks_ms() on the device); differences go
# through ticks_diff()/ticks_add(), which use MicroPython's wrapping arithmetic when
# available and plain integers elsewhere (CPython tests).
#
#     deb = Debouncer(stable_ms=30, pressed_level=0)
#     edge = deb.feed(t_ms, raw_level)      # None | ("press", t) | ("release", t)
#     edge = deb.tick(now_ms)               # call at deb.next_deadline()
#
#     g = Gesture(mode="hold", hold_ms=2000)                  # or
#     g = Gesture(mode="presses", count=3, window_ms=2000)
#     r = g.feed(edge)                      # None | "alert" | "cancel"
#     r = g.tick(now_ms)                    # call at g.next_deadline()
#
#     b = Button(debounce_ms=30, pressed_level=0, mode="hold", ...)   # both in one
#     r = b.feed(t_ms, raw_level); r = b.tick(now_ms); b.next_deadline()
#
# An edge's time is when the new level *started* (the start of the stable run), so
# hold durations are measured from the real press, although the edge is reported
# stable_ms later.
#
# Alert:  mode "hold": the button held >= hold_ms (reported while still held, from
#         tick(), or at the release if tick() came late);
#         mode "presses": `count` presses, each lasting min_press_ms..max_press_ms,
#         the first and last starting within window_ms (reported at the release of
#         the last press).  A press that is too short (squeeze/chatter) or too long
#         resets the sequence.
# Cancel: while an alert is active, a *new* press (started after the alert became
#         active) held >= cancel_ms.  The press that raised the alert never cancels
#         it, however long she keeps squeezing.  cancel=None disables the gesture
#         (then only the command centre can cancel).

try:
    from time import ticks_diff as _tdiff, ticks_add as _tadd
except ImportError:  # CPython
    _tdiff = _tadd = None


# Under CPython (the host's tests) the ticks wrap as the ESP32's do, every 2**30 ms
# (12.4 days), so the sans-IO tests can run a story across the wrap.
_PERIOD = 1 << 30


def ticks_diff(a, b):
    # a - b in ticks, wrap-safe.
    if _tdiff is not None:
        return _tdiff(a, b)
    return ((a - b + _PERIOD // 2) & (_PERIOD - 1)) - _PERIOD // 2


def ticks_add(t, delta):
    if _tadd is not None:
        return _tadd(t, delta)
    return (t + delta) & (_PERIOD - 1)


def earliest(*deadlines):
    # The earliest of some deadlines (None ignored), wrap-safe; None if none.
    best = None
    for d in deadlines:
        if d is not None and (best is None or ticks_diff(d, best) < 0):
            best = d
    return best


PRESS = "press"
RELEASE = "release"


class Debouncer:
    # Raw samples or interrupt edges in, stable press/release edges out.  A level
    # counts only once it has stayed unchanged for stable_ms: contact bounce and
    # noise spikes shorter than that never produce an edge.

    def __init__(self, stable_ms=30, pressed_level=0, pressed=False):
        self.stable_ms = stable_ms
        self.pressed_level = pressed_level
        self.pressed = pressed      # stable state
        self._cand = pressed        # candidate state
        self._since = 0

    def feed(self, t, level):
        ev = self.tick(t)
        p = level == self.pressed_level
        if p != self._cand:
            self._cand = p
            self._since = t
        return ev

    def tick(self, now):
        if self._cand != self.pressed and ticks_diff(now, self._since) >= self.stable_ms:
            self.pressed = self._cand
            return (PRESS if self.pressed else RELEASE, self._since)
        return None

    def next_deadline(self):
        if self._cand != self.pressed:
            return ticks_add(self._since, self.stable_ms)
        return None


class Gesture:
    def __init__(self, mode="hold", hold_ms=2000, count=3, window_ms=2000,
                 cancel="hold", cancel_ms=5000, min_press_ms=50, max_press_ms=1000,
                 active=False):
        if mode not in ("hold", "presses"):
            raise ValueError("mode")
        self.mode = mode
        self.hold_ms = hold_ms
        self.count = count
        self.window_ms = window_ms
        self.cancel = cancel
        self.cancel_ms = cancel_ms
        self.min_press_ms = min_press_ms
        self.max_press_ms = max_press_ms
        self.active = active
        self.pressed = False
        self._press_t = 0
        self._fired = False         # this press already produced a result
        self._during_alert = False  # this press started while the alert was active: it may
                                    # repeat the alert or cancel it
        self._repeated = False      # ... and already repeated the alert (held past hold_ms)
        self._seq = []              # press start times of the current sequence
        self._alert_t = None        # presses mode: when the last sign raised the alert

    def set_active(self, flag):
        # The app tells the gesture whether an alert is active (after a reset, or
        # when the command centre cancelled).  A press already in progress can neither
        # repeat nor cancel it.
        self.active = bool(flag)
        self._seq = []
        if self.pressed:
            self._during_alert = False
            self._fired = True

    def feed(self, edge):
        # edge: None, ("press", t) or ("release", t).
        if edge is None:
            return None
        kind, t = edge
        if kind == PRESS:
            if self.pressed:
                return None
            self.pressed = True
            self._press_t = t
            self._fired = False
            self._repeated = False
            self._during_alert = self.active
            return None
        if not self.pressed:
            return None
        r = self.tick(t)            # a hold that tick() was too late to see
        self.pressed = False
        dur = ticks_diff(t, self._press_t)
        if r is None and self.mode == "presses" and not self._fired and (self._during_alert or not self.active):
            r = self._count_press(dur)  # during her alert too: she repeats the sign
            if r is not None:
                self._alert_t = t
        return r

    def _may_cancel(self):
        # Presses mode has no repeat pulse to stop at: a press begun within window_ms of
        # the presses that raised the alert is her sign going on (three presses, then
        # holding on, frightened), never its cancel.
        if self.cancel != "hold":
            return False
        return (self.mode != "presses" or self._alert_t is None
                or not 0 <= ticks_diff(self._press_t, self._alert_t) < self.window_ms)

    def _count_press(self, dur):
        if dur < self.min_press_ms or dur > self.max_press_ms:
            self._seq = []
            return None
        t = self._press_t
        seq = [x for x in self._seq if 0 <= ticks_diff(t, x) <= self.window_ms]
        seq.append(t)
        if len(seq) >= self.count:
            self._seq = []
            return self._alert()
        self._seq = seq
        return None

    def _alert(self):
        self.active = True
        return "alert"

    def tick(self, now):
        if self._seq and not self.pressed:
            # presses that can no longer make a sequence go at their deadline: a stamp
            # kept for days would read as recent once the ticks wrap (a negative
            # ticks_diff after 6.2 days, a small one after 12.4), and one bump in a bag a
            # week on would complete two stray presses into her alert
            self._seq = [x for x in self._seq if 0 <= ticks_diff(now, x) <= self.window_ms]
        if not self.pressed or self._fired:
            return None
        held = ticks_diff(now, self._press_t)
        if not self.active:
            if self.mode == "hold" and held >= self.hold_ms:
                self._fired = True
                return self._alert()
        elif self._during_alert:
            # A press begun during her alert: the sign held again repeats it (one
            # vibration, her location again, C4 called again if the line is idle), as
            # her sheet says; held on to the cancel time, it cancels. The repeat comes
            # first so that "hold until it vibrates" never ends in a cancel.
            if held >= self.cancel_ms and self._may_cancel():
                self._fired = True
                self.active = False
                return "cancel"
            if self.mode == "hold" and not self._repeated and held >= self.hold_ms:
                self._repeated = True
                self._fired = self.cancel != "hold"
                return "alert"
        return None

    def next_deadline(self):
        if self._seq and not self.pressed:
            return ticks_add(self._seq[0], self.window_ms + 1)  # the oldest press expires
        if not self.pressed or self._fired:
            return None
        if not self.active:
            if self.mode == "hold":
                return ticks_add(self._press_t, self.hold_ms)
        elif self._during_alert:
            if self.mode == "hold" and not self._repeated and (self.cancel != "hold" or self.hold_ms < self.cancel_ms):
                return ticks_add(self._press_t, self.hold_ms)
            if self._may_cancel():
                return ticks_add(self._press_t, self.cancel_ms)
        return None


class Button:
    # Debouncer + Gesture fed with raw levels.  Config keys as in alert.py's
    # "gesture" dict: debounce_ms, pressed_level, mode, hold_ms, count, window_ms,
    # cancel, cancel_ms, min_press_ms, max_press_ms.
    #
    # A hold is only reported once the level is settled: if a release started
    # before the hold deadline, the gesture waits for the debouncer to decide
    # (a real release -> no alert; a noise spike -> alert, at most debounce_ms late).

    def __init__(self, debounce_ms=30, pressed_level=0, **gesture_kw):
        self.debouncer = Debouncer(debounce_ms, pressed_level)
        self.gesture = Gesture(**gesture_kw)

    def _settled_tick(self, now):
        d = self.debouncer
        if d._cand != d.pressed:
            return None
        return self.gesture.tick(now)

    def feed(self, t, level):
        r = self.gesture.feed(self.debouncer.feed(t, level))
        return r if r is not None else self._settled_tick(t)

    def tick(self, now):
        r = self.gesture.feed(self.debouncer.tick(now))
        return r if r is not None else self._settled_tick(now)

    def next_deadline(self):
        d = self.debouncer.next_deadline()
        if d is not None:
            return d        # the gesture's deadline waits until the level settles
        return self.gesture.next_deadline()

    def set_active(self, flag):
        self.gesture.set_active(flag)
