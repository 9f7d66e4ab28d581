"""The `network` fixture: what the phone network saw, and the C4 operator's hands.

The same API over the simulated network (VirtualNetwork) and the real one seen from the
reference modem (RefModemNetwork):

    network.c4, network.contacts      numbers in the device's config (primary C4 first)
    network.emergency                 the number tried after every C4 when allow_911 (or None)
    network.stranger                  a number that is neither C4 nor a contact (or None)
    network.mark()                    position in the event list, for `after=`
    network.wait_sms(to=, frm=, after=, timeout=, where=)      an accepted SMS
    network.sms(to=, frm=, after=)    the accepted SMS so far
    network.wait_call(kind="call", frm=, to=, after=, timeout=, where=)
        kind: call_start | ringing | call_connected | call_end | call (the summary record)
    network.calls(kind="call", frm=, to=, after=)
    network.set_c4(behaviour, number=None, answer_after_s=None, hangup_after_s=None)
        behaviour: answer | busy | no_answer | reject
    network.hangup(number=None)       that phone (default: the primary C4) hangs up
    network.call_device(frm="c4")     "c4" calls the device back; "stranger" is anybody else
    network.sms_to_device(text, frm="c4")
    network.require(c4=1, emergency=False, stranger=False)    skip when the set-up lacks it

Numbers are compared by their last 10 digits, as the firmware does.
"""
import pytest

from .refmodem import same_number
from .timeline import at_rows, network_row


class _Network:
    kind = "?"
    emergency = None
    stranger = None

    def __init__(self, device_number, c4, contacts):
        self.device_number = device_number
        self.c4 = list(c4)
        self.contacts = list(contacts)

    # subclasses: _events (list), _wait(pred, timeout, after)
    def mark(self):
        return len(self._events)

    def events(self, after=0):
        return list(self._events[after:])

    @staticmethod
    def _match(ev, kind, frm, to, where):
        if ev.get("kind") != kind:
            return False
        if frm is not None and not same_number(ev.get("from"), frm):
            return False
        if to is not None and not same_number(ev.get("to"), to):
            return False
        return where is None or where(ev)

    def wait_sms(self, to=None, frm=None, after=0, timeout=60, where=None):
        frm = self.device_number if frm is None and to is not None else frm
        return self._wait(lambda e: self._match(e, "sms", frm, to, where) and not e.get("error"),
                          timeout, after)

    def sms(self, to=None, frm=None, after=0, where=None):
        return [e for e in self.events(after)
                if self._match(e, "sms", frm, to, where) and not e.get("error")]

    def wait_call(self, kind="call", frm=None, to=None, after=0, timeout=60, where=None):
        return self._wait(lambda e: self._match(e, kind, frm, to, where), timeout, after)

    def calls(self, kind="call", frm=None, to=None, after=0, where=None):
        return [e for e in self.events(after) if self._match(e, kind, frm, to, where)]

    def require(self, c4=1, emergency=False, stranger=False, stranger_sms=False):
        missing = []
        if len(self.c4) < c4:
            missing.append(f"{c4} observable C4 numbers (have {len(self.c4)})")
        if emergency and not self.emergency:
            missing.append("a stand-in for the emergency number (--stand-in-911)")
        if stranger and not self.stranger:
            missing.append("a caller that is not C4")
        if stranger_sms and not getattr(self, "stranger_can_sms", True):
            missing.append("an SMS sender that is not C4 (a second SIM on the reference side)")
        if missing:
            pytest.skip(f"{self.kind} set-up lacks " + ", ".join(missing))


class VirtualNetwork(_Network):
    """The rig's PhoneNetwork (boton.sim.network), through the VirtualDevice."""

    kind = "virtual"
    stranger = "+524495550123"

    def __init__(self, vd, c4, contacts, emergency=None):
        super().__init__(vd.device_number, c4, contacts)
        self.vd = vd
        self.emergency = emergency
        self._events = vd.events

    def _wait(self, pred, timeout, after):
        return self.vd.wait_event(pred, timeout=timeout, after=after)

    def set_c4(self, behaviour, number=None, answer_after_s=None, hangup_after_s=None):
        self.vd.call(self.vd.network.set_behaviour, number or self.c4[0], behaviour,
                     answer_after_s, hangup_after_s)

    def hangup(self, number=None):
        self.vd.call(self.vd.network.hangup, number or self.c4[0])

    def call_device(self, frm="c4"):
        self.vd.call(self.vd.network.call_device, self._who(frm), self.device_number)

    def sms_to_device(self, text, frm="c4"):
        self.vd.call(self.vd.network.sms_to_device, self._who(frm), self.device_number, text)

    def _who(self, frm):
        return {"c4": self.c4[0], "stranger": self.stranger}.get(frm, frm)

    def timeline_rows(self):
        return [(e["t"], "NETWORK", network_row(e)) for e in list(self._events)]


class RefModemNetwork(_Network):
    """The real network as the reference modem sees it: it is the C4 and the contact.

    Only what reaches the reference modem is observable; C4 behaviours map onto what it
    does with the device's calls (busy and reject: it declines, so the device hears BUSY;
    no_answer: it lets it ring)."""

    kind = "ref-modem"
    stranger_can_sms = False

    def __init__(self, ref, device_number, c4, contacts, emergency=None, stranger_withheld=True):
        super().__init__(device_number, c4, contacts)
        self.ref = ref
        self.emergency = emergency
        # A call with the caller id withheld (#31#) is a call "not from C4" to the device.
        self.stranger = "withheld" if stranger_withheld else None
        self._events = ref.events

    def _wait(self, pred, timeout, after):
        return self.ref.wait_event(pred, timeout=timeout, after=after)

    def _check(self, number):
        if number is not None and not same_number(number, self.ref.number):
            pytest.skip(f"only the reference modem ({self.ref.number}) can be driven, not {number}")

    def set_c4(self, behaviour, number=None, answer_after_s=None, hangup_after_s=None):
        self._check(number)
        policy = {"answer": "answer", "busy": "reject", "reject": "reject", "no_answer": "ignore"}
        if behaviour not in policy:
            pytest.skip(f"the reference modem cannot play C4 behaviour {behaviour!r}")
        self.ref.set_incoming(policy[behaviour], answer_after_s, hangup_after_s)

    def hangup(self, number=None):
        self._check(number)
        self.ref.hangup()

    def call_device(self, frm="c4"):
        if frm not in ("c4", "stranger"):
            self._check(frm)
        self.ref.dial(self.device_number, withhold=frm == "stranger")

    def sms_to_device(self, text, frm="c4"):
        if frm != "c4":
            self.require(stranger_sms=True)
        self.ref.send_sms(self.device_number, text)

    def timeline_rows(self):
        rows = [(e["t"], "REFMODEM", network_row(e)) for e in list(self._events)
                if e["kind"] != "urc"]
        rows += at_rows(self.ref.at_log, "HOST>REF", "REF>HOST")
        return rows
