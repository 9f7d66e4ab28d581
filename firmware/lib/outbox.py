# The alert machine's outbox: SMS waiting to go out, one at a time, as records with
# named fields.  It owns the queue, the message numbers and the one SMS in flight;
# texts are rendered by the machine when a message is sent (never stale).  Sans-IO.

from alertsms import same_number

# What a message says (rendered at send time by alert.AlertMachine).
ALERT = "alert"         # the alert's first location SMS
UPDATE = "update"       # a later location update
LOCATION = "location"   # reply to UBICACION
STATUS = "status"       # reply to ESTADO (or CANCELAR with no alert)
CANCEL = "cancel"       # arg: who ended it: "device" | "c4" | "timeout"
LOWBAT = "lowbat"       # arg: None (with the percentage) | "v" (a power warning: no %)
DAILY = "daily"         # arg: the alert count when it was queued
KINDS = (ALERT, UPDATE, LOCATION, STATUS, CANCEL, LOWBAT, DAILY)
LOC = (ALERT, UPDATE)   # her position: dropped when the alert ends before they go
ARM_RETRY = "arm"       # head(): the head waits for its retry delay: arm sms_retry


class Sms:
    arg = None          # defaults on the class: most records never set them
    tries = 0           # failed sends so far

    def __init__(self, n, number, kind, arg=None, tries=0):
        self.n = n              # the id the send_sms action carries
        self.number = number
        self.kind = kind
        if arg is not None:
            self.arg = arg
        if tries:
            self.tries = tries

    def label(self):
        # "alert", "cancel:device", "daily:3": the log's words, and the persisted form
        return self.kind if self.arg is None else "%s:%s" % (self.kind, self.arg)

    def row(self):
        return [self.n, self.number, self.label(), self.tries]

    @staticmethod
    def from_row(r):
        # raises (IndexError, ValueError, TypeError) on a damaged row
        n, number, label, tries = int(r[0]), str(r[1]), str(r[2]), int(r[3])
        i = label.find(":")
        kind = label if i < 0 else label[:i]
        if kind not in KINDS:
            raise ValueError(label)
        arg = None if i < 0 else label[i + 1:]
        if kind == DAILY:
            arg = int(arg or 0)
        return Sms(n, number, kind, arg, tries)


class Outbox:
    def __init__(self):
        self.items = []         # Sms, in sending order
        self.seq = 0            # the last message number given out
        self.inflight = None    # n of the SMS on its way
        self.inflight_fix = None  # the fix kind its text carried ("gps", "last", ...)
        self.retry_ready = False  # the sms_retry timer fired: the head may go again
        self.retry_armed = False

    def new(self, number, kind, arg=None):
        self.seq += 1
        return Sms(self.seq, number, kind, arg)

    def queue(self, number, kind, arg=None):
        self.items.append(self.new(number, kind, arg))

    def pending(self, number, kinds):
        # a message of one of these kinds is waiting (or on its way) to number
        for e in self.items:
            if e.kind in kinds and same_number(e.number, number):
                return e
        return None

    def has_kind(self, kind):
        for e in self.items:
            if e.kind == kind:
                return True
        return False

    def drop(self, kinds):
        # messages of these kinds not yet on their way are obsolete (the alert ended:
        # its locations; a new one began: the last one's end)
        self.items = [e for e in self.items if e.n == self.inflight or e.kind not in kinds]

    def keep(self, allowed):
        # only the messages allowed(e) says may still go
        self.items = [e for e in self.items if allowed(e)]

    def take(self, e):
        # e out of the queue, to be put elsewhere (put_front)
        self.items.remove(e)

    def retry_later(self, e):
        # a failed SMS (taken by take_inflight) waits at the back for another try
        self.items.append(e)

    def retry_due(self):
        # the sms_retry timer fired: the head that failed may go again
        self.retry_armed = False
        self.retry_ready = True

    def put_front(self, front):
        # ahead of everything but the SMS in flight
        items = self.items
        i = 1 if items and items[0].n == self.inflight else 0
        self.items = items[:i] + front + items[i:]

    def head(self):
        # the next SMS to send, or None: one is in flight, none waits, or the head
        # failed before and its retry delay has not passed (ARM_RETRY: start that delay)
        if self.inflight is not None or not self.items:
            return None
        e = self.items[0]
        if e.tries > 0:
            if not self.retry_ready:
                if not self.retry_armed:
                    self.retry_armed = True
                    return ARM_RETRY
                return None
            self.retry_ready = False
        return e

    def sent(self, e, fix_kind):
        self.inflight = e.n
        self.inflight_fix = fix_kind

    def take_inflight(self):
        # the SMS in flight is done: out of the outbox (the caller re-queues a retry)
        n = self.inflight
        self.inflight = None
        for i in range(len(self.items)):
            if self.items[i].n == n:
                return self.items.pop(i)
        return None

    def rows(self):
        return [e.row() for e in self.items]

    def restore(self, rows, seq):
        self.items = [Sms.from_row(r) for r in rows or []]
        self.seq = seq
        self.inflight = None
