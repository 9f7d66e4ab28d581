# The voice call's state, owned apart from the rest of the alert: where the call is, and
# where the machine is in its list of numbers to dial.  Moves go through one table;
# a move the table does not allow is refused (move() returns None) and the machine
# logs it, so a surprise from the modem can never wedge or kill the alert.  Sans-IO.

IDLE = "idle"
DIALING = "dialing"
ALERTING = "alerting"
ANSWERING = "answering"     # a C4 call-back being picked up
ACTIVE = "active"
HANGUP = "hangup"           # we hung up and wait for the modem to confirm

# (state, event, next state): every move the table allows.  Events: "dial" "answer"
# (our actions), "dialing" "alerting" "active" "ended" (the modem's reports), "hangup"
# (ours), "kept_dialing" "kept_alerting" (after a reset: our call, still ringing at C4,
# survived it in the modem).  A report that only restates progress the machine did not ask about keeps
# the state (next None).  One constant tuple: it costs no heap in the frozen image.
MOVES = (
    ("idle", "dial", "dialing"), ("idle", "answer", "answering"), ("idle", "active", "active"),
    ("idle", "ended", None), ("idle", "dialing", None), ("idle", "alerting", None),
    ("idle", "kept_dialing", "dialing"), ("idle", "kept_alerting", "alerting"),
    ("dialing", "dialing", "dialing"), ("dialing", "alerting", "alerting"),
    ("dialing", "active", "active"), ("dialing", "ended", "idle"), ("dialing", "hangup", "hangup"),
    ("alerting", "dialing", "dialing"), ("alerting", "alerting", "alerting"),
    ("alerting", "active", "active"), ("alerting", "ended", "idle"),
    ("alerting", "hangup", "hangup"),
    ("answering", "active", "active"), ("answering", "ended", "idle"),
    ("answering", "hangup", "hangup"), ("answering", "dialing", None),
    ("answering", "alerting", None),
    ("active", "active", "active"), ("active", "ended", "idle"), ("active", "hangup", "hangup"),
    ("active", "dialing", None), ("active", "alerting", None),
    # a late "active" is the call we are ending; a ring means the line is free
    ("hangup", "dial", "dialing"), ("hangup", "answer", "answering"), ("hangup", "active", None),
    ("hangup", "ended", "idle"), ("hangup", "hangup", "hangup"), ("hangup", "dialing", None),
    ("hangup", "alerting", None),
)


class CallState:
    def __init__(self, dial_list):
        self.dial_list = dial_list  # C4 numbers, then the emergency number if allowed
        self.state = IDLE
        self.connected = False  # the current call was answered
        self.done = False       # C4 answered her call and later hung up: no more redials
        self.reached = False    # a call of hers answered in this alert (not a call-back:
        #                         a caller ID is all that says a call-back is C4's)
        self.callback = False   # the current call is a call-back we answered
        self.redial = False     # her press hung up a call-back: dial C4 once it has ended
        self.ni = 0             # index in dial_list
        self.att = 0            # attempts on dial_list[ni]
        self.dials = 0          # dials in this alert (since the boot, after a reset)
        self.dial_t = 0         # ticks when the machine last asked for a dial

    def _row(self, event):
        for row in MOVES:
            if row[0] == self.state and row[1] == event:
                return row
        return None

    def can(self, event):
        return self._row(event) is not None

    def move(self, event):
        # -> the state after event, or None if the table refuses it (nothing changes)
        row = self._row(event)
        if row is None:
            return None
        if row[2] is not None:
            self.state = row[2]
        return self.state

    def in_call(self):
        return self.state != IDLE and self.state != HANGUP

    def drop_callback(self):
        # Her press, and on the line a call-back that showed C4's number while no call of
        # hers was answered in this alert: a caller ID anyone can fake, and he could hold
        # the line for as long as he liked. True: hang it up, and dial C4 once it has ended.
        if not (self.callback and self.in_call() and not self.reached):
            return False
        self.move("hangup")
        self.redial = True
        return True

    def ringing_out(self):
        # a call of ours (or a call-back) not answered yet: the dial timeout applies
        return self.state in (DIALING, ALERTING, ANSWERING)

    def number(self):
        return self.dial_list[self.ni]

    def start_series(self):
        # a new alert: the list from the top
        self.done = self.reached = False
        self.ni = 0
        self.att = 0
        self.dials = 0

    def quiet(self):
        # An hour with C4 not answering is a hundred dials and failures: the first four
        # and every tenth are logged, or her alert's start would leave the event log
        return self.dials > 4 and self.dials % 10

    def next_delay_s(self, cfg):
        # after a failed attempt: how long before the next one (and which number)
        back = cfg["redial_backoff_s"] or [5]
        if self.att >= cfg["attempts_per_number"]:
            self.ni += 1
            self.att = 0
            if self.ni >= len(self.dial_list):
                self.ni = 0
                return cfg["cycle_backoff_s"]
            return back[0]
        return back[min(self.att, len(back)) - 1] if self.att > 0 else back[0]

    def reset(self):
        # after a reset: whatever call there was is the modem's business now
        self.state = IDLE
        self.connected = self.redial = False
