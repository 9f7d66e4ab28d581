"""The simulated phone network around the virtual panic button.

It knows these kinds of subscriber, each by E.164 number:

* **C4 operators** (`add_c4`): scripted phones at the monitoring centre. Each has a
  behaviour for calls it receives ("answer", "busy", "no_answer", "reject", "unreachable")
  and timings.
* **Contacts** (`add_contact`): trusted people who get SMS. They answer calls too.
* **Scripted phones** (`script_phone`): any number a tester scripts (`boton sim --phone`).
* **Devices** (`attach`): simulated SIM800 modems. Calls and SMS to them go through the
  modem (RING/+CLIP, +CMTI) and are handled by the firmware.
* **Auto phones**: like a real network, any other *valid* number (national or E.164, for
  the network's `region`) reaches a phone: the first call or SMS to it creates one that
  answers after `auto_answer_after_s` and stays on the line `auto_hangup_after_s` (None:
  until the caller hangs up). A number that is not valid is unassigned: calls to it are
  "unreachable" (cause 1, the caller gets NO CARRIER) and SMS to it are not delivered.
  `auto_phones=False` turns this off (only explicit subscribers exist).

Every SMS and every call is recorded as an event dict, kept in `events`, appended as one
JSON line to `log_path` (flushed per line, so a tester can `tail -f` it) and passed to
each `subscribe()`d callback. The network never sleeps and owns no threads: all timing
goes through the shared Scheduler, so `time_scale` scales it and tests drive it with a
ManualClock.

Event shapes (every event also has "t", the scheduler time):

    {"kind": "sms", "from", "to", "text", "delivered": bool[, "error": <CMS code>][, "held": True]}
                 held: a device could not take it; the SMSC holds it for sms_validity_s
    {"kind": "sms_late", "from", "to", "text", "delivered": True, "held_s"}   a held SMS
                 reached the device (its SCTS says when it was sent)
    {"kind": "sms_expired", "from", "to", "text"}   a held SMS outlived its validity
    {"kind": "call_start", "call_id", "from", "to"}
    {"kind": "ringing", "call_id", "from", "to"}
    {"kind": "call_connected", "call_id", "from", "to"}
    {"kind": "call_end", "call_id", "from", "to", "result", "ended_by"}
    {"kind": "call", "call_id", "from", "to", "answered": bool, "result", "duration_s",
     "ended_by", "t_start", "cause": <GSM release cause, as AT+CEER reports it>,
     "audio": {"mic_gain", "speaker_level", "ringer_level"} | None}
    {"kind": "phone", "number", "origin": "auto" | "scripted", "behaviour",
     "answer_after_s", "hangup_after_s"}   a phone was auto-created or scripted
    {"kind": "coverage", "ok": bool}
    {"kind": "signal", "level": int}

Call "result" is one of: answered (connected, then ended normally by either side), busy,
no_answer (nobody picked up: ring timeout, or the caller gave up), rejected (the callee
declined), dropped (radio/network loss), unreachable (could not be routed: unknown number,
no coverage, device off or unregistered, or registered for SMS only). "ended_by" is the
number that hung up, or "network". "audio" is the device modem's audio settings when the
call connected (or when it started ringing, if it never connected), so a tester can see
whether the call was covert.
"""
import itertools
import json
import logging
import os
from datetime import datetime, timedelta, timezone

import phonenumbers

log = logging.getLogger(__name__)

BEHAVIOURS = ("answer", "busy", "no_answer", "reject", "unreachable")
# Behaviours whose phone rings first: only these take a ring time (answer/decline after).
RINGING_BEHAVIOURS = ("answer", "reject")
_RESULT_FOR_BEHAVIOUR = {"busy": "busy", "unreachable": "unreachable"}

# What a SIM800 prints when the network clears a call it placed (the caller side), per
# result. A declined call is cleared by the handset with cause 17 "user busy" on most
# phones, so the caller hears busy and the module prints BUSY.
CALLER_CODE = {
    "busy": "BUSY",
    "rejected": "BUSY",
    "no_answer": "NO ANSWER",
    "unreachable": "NO CARRIER",
    "answered": "NO CARRIER",
    "dropped": "NO CARRIER",
}


# GSM release causes (3GPP TS 24.008 §10.5.4.11), as AT+CEER words them.
CAUSE_TEXT = {
    0: "No cause",
    1: "Unassigned (unallocated) number",
    16: "Normal call clearing",
    17: "User busy",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    31: "Normal, unspecified",
    41: "Temporary failure",
}


class Subscriber:
    def __init__(self, number, kind, answer_after_s=3.0, hangup_after_s=None, behaviour="answer"):
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
        self.number = number
        self.kind = kind  # "c4" | "contact" | "scripted" | "auto" | "device"
        self.answer_after_s = answer_after_s
        self.hangup_after_s = hangup_after_s
        self.behaviour = behaviour
        self.modem = None
        self.inbox = []  # SMS received by a scripted phone: (t, from, text)


class Call:
    """One voice call. `caller_modem`/`callee_modem` are set for device ends."""

    def __init__(self, call_id, caller, callee, t):
        self.id = call_id
        self.caller = caller
        self.callee = callee
        self.caller_modem = None
        self.callee_modem = None
        self.state = "dialing"  # dialing -> alerting -> active -> ended
        self.t_start = t
        self.t_connect = None
        self.result = None
        self.cause = None  # GSM release cause, for AT+CEER
        self.audio = None
        self.timers = []
        self.emergency = False  # placed as an emergency call: reaches the emergency line

    @property
    def ended(self):
        return self.state == "ended"

    def modems(self):
        return [m for m in (self.caller_modem, self.callee_modem) if m is not None]

    def __repr__(self):
        return f"<Call {self.id} {self.caller}->{self.callee} {self.state}>"


class PhoneNetwork:
    # Typical GSM figures; all are scaled by the scheduler's time_scale.
    alert_delay_s = 3.0     # ATD until the far phone rings (call setup + paging), 2-4 s
    ring_timeout_s = 30.0   # the network gives up on an unanswered call
    sms_submit_s = 3.0      # AT+CMGS Ctrl-Z until the SMSC acknowledges (+CMGS), 1-5 s
    sms_delivery_s = 2.0    # SMSC to a device: until the modem stores it (+CMTI)
    register_s = 4.0        # a modem finds and registers on a cell once it may
    # The SMSC keeps an SMS it could not deliver for its validity period (set by the sender
    # or the SMSC; a day here, an assumption: carriers keep them one to seven days).
    sms_validity_s = 86400.0
    TIMING = ("alert_delay_s", "ring_timeout_s", "sms_submit_s", "sms_delivery_s", "register_s",
              "sms_validity_s")
    # Whether registering gives a modem the network's time (NITZ, AT+CLTS=1): many networks
    # send none. A class attribute, so a rig or test can choose before the rig starts.
    gives_time = True
    # Whether an emergency call from a module with no SIM (or a locked one) is taken: the
    # operator's option (3GPP TS 22.003 A.1.2 note 2); not known for Mexico's networks, so
    # not by default. With a SIM, barred or out of credit, 911 is always taken (IFT 2015).
    emergency_without_sim = False
    EMERGENCY_LINE = "911"  # Mexico's one emergency number (IFT, DOF 2015-12-02)

    def __init__(self, scheduler, log_path=None, operator="TELCEL", mcc=334, mnc="020",
                 signal_level=20, start_datetime=None, utc_offset_h=-6, region="MX",
                 auto_phones=True, auto_answer_after_s=4.0, auto_hangup_after_s=None):
        self.sched = scheduler
        self.region = region  # how national numbers are read (the network's country)
        self.auto_phones = auto_phones
        self.auto_answer_after_s = auto_answer_after_s
        self.auto_hangup_after_s = auto_hangup_after_s
        # Network time (SMS timestamps): Mexico's central zone by default, no DST since 2022.
        tz = timezone(timedelta(hours=utc_offset_h))
        self._t0 = scheduler.now()
        self._dt0 = start_datetime or datetime.now(tz).replace(microsecond=0)
        self.operator = operator
        self.mcc = mcc
        self.mnc = mnc
        self.coverage = True
        self.signal_level = signal_level  # CSQ rssi 0-31 that modems in coverage report
        self.subscribers = {}
        self.events = []
        self.calls = []  # every Call, live or ended
        self._callbacks = []
        self._ids = itertools.count(1)
        self._canonical = {}  # number as given -> E.164 or None (invalid)
        # every SMS whole and every number: readable by its owner only, like an export
        self._log = (open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a",
                          encoding="utf-8") if log_path else None)
        self._held = {}  # device number -> [(sched time sent, SCTS datetime, sender, text)]
        # the emergency operator: answers as a person does (a scenario may script it)
        self.subscribers[self.EMERGENCY_LINE] = Subscriber(self.EMERGENCY_LINE, "emergency")

    # ------------------------------------------------------------------ registry
    def add_c4(self, number, answer_after_s=3.0, hangup_after_s=None, behaviour="answer"):
        sub = Subscriber(number, "c4", answer_after_s, hangup_after_s, behaviour)
        self.subscribers[number] = sub
        return sub

    def add_contact(self, number, answer_after_s=5.0, hangup_after_s=None, behaviour="answer"):
        sub = Subscriber(number, "contact", answer_after_s, hangup_after_s, behaviour)
        self.subscribers[number] = sub
        return sub

    def script_phone(self, number, behaviour="answer", answer_after_s=None, hangup_after_s=None):
        """Script how the phone `number` treats calls: a built-in C4/contact phone keeps its
        kind and gets the new behaviour; any other number becomes a scripted phone. Recorded
        as a "phone" event, so the network log says what each number will do."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
        sub = self.phone(number)
        if sub is not None and sub.modem is not None:
            raise ValueError("that is a simulated device's own number: it cannot be scripted")
        if sub is None:
            sub = Subscriber(self.canonical(number) or number, "scripted",
                             self.auto_answer_after_s, self.auto_hangup_after_s)
            self.subscribers[sub.number] = sub
        sub.behaviour = behaviour
        if answer_after_s is not None:
            sub.answer_after_s = answer_after_s
        if hangup_after_s is not None:
            sub.hangup_after_s = hangup_after_s
        self._record_phone(sub, "scripted")
        return sub

    def set_behaviour(self, number, behaviour, answer_after_s=None, hangup_after_s=None):
        """Change how a scripted phone treats the calls it gets from now on."""
        sub = self.phone(number)
        if sub is None:
            raise KeyError(number)
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
        sub.behaviour = behaviour
        if answer_after_s is not None:
            sub.answer_after_s = answer_after_s
        if hangup_after_s is not None:
            sub.hangup_after_s = hangup_after_s

    def attach(self, number, modem):
        sub = self.subscribers.get(number) or Subscriber(number, "device")
        sub.kind = "device"
        sub.modem = modem
        self.subscribers[number] = sub
        return sub

    def detach(self, number):
        sub = self.subscribers.get(number)
        if sub and sub.modem:
            self.modem_unreachable(number)
            sub.modem = None

    def subscribe(self, callback):
        """callback(event) is called for every event, right after it is recorded."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def close(self):
        if self._log:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ radio conditions
    def set_coverage(self, ok: bool):
        """Whole-network coverage: False drops every call and deregisters every modem."""
        ok = bool(ok)
        if ok == self.coverage:
            return
        self.coverage = ok
        self._record("coverage", ok=ok)
        if not ok:
            for call in self.live_calls():
                self._end(call, "dropped", "network")
        for modem in self._modems():
            modem.net_conditions_changed()

    def set_signal(self, level: int):
        """CSQ rssi (0-31, 99 = unknown) reported by modems in coverage."""
        self.signal_level = int(level)
        self._record("signal", level=self.signal_level)
        for modem in self._modems():
            modem.net_conditions_changed()

    # ------------------------------------------------------------------ observers
    def sms(self, **match):
        return [e for e in self.events if e["kind"] == "sms" and _matches(e, match)]

    def call_records(self, **match):
        return [e for e in self.events if e["kind"] == "call" and _matches(e, match)]

    def live_calls(self):
        return [c for c in self.calls if not c.ended]

    def canonical(self, number):
        """E.164 of `number` if it is a valid number (read in the network's region), else None."""
        number = str(number)
        if number not in self._canonical:
            try:
                parsed = phonenumbers.parse(number, self.region)
            except phonenumbers.NumberParseException:
                parsed = None
            self._canonical[number] = (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                if parsed is not None and phonenumbers.is_valid_number(parsed) else None)
        return self._canonical[number]

    def phone(self, number):
        """The subscriber `number` reaches (as dialled or in any valid form), or None."""
        sub = self.subscribers.get(number)
        if sub is None:
            e164 = self.canonical(number)
            sub = self.subscribers.get(e164) if e164 else None
        return sub

    def now_datetime(self):
        """The network's clock (SMSC time stamps, network time): it counts the rig's seconds,
        as the GPS's and the chip's RTC do (at --time-scale 0.1, ten a host second)."""
        return self._dt0 + timedelta(seconds=(self.sched.now() - self._t0) / self.sched.time_scale)

    # ------------------------------------------------------------------ rig / test actions
    def hangup(self, number):
        """The phone `number` hangs up (or declines, or gives up) on all its calls."""
        for call in self.live_calls():
            end = self._end_of(call, number)
            if end is not None:
                self._release_by(call, end)

    def drop(self, number=None):
        """Radio drop of the calls of `number` (all live calls if None)."""
        for call in self.live_calls():
            if number is None or self._end_of(call, number) is not None:
                self._end(call, "dropped", "network")

    def call_device(self, from_number, to_device_number):
        """A scripted phone (the C4 calling back) calls a device: it gets RING/+CLIP."""
        return self._start_call(from_number, to_device_number, None)

    def sms_to_device(self, from_number, to_device_number, text):
        """A scripted phone sends an SMS; the device gets +CMTI after sms_delivery_s."""
        self.sched.after(self.sms_delivery_s, self._deliver_sms, from_number, to_device_number, text)

    def hold_sms(self, from_number, to_device_number, text, sent_ago_s):
        """An SMS the SMSC has held for the device since it was sent `sent_ago_s` seconds
        (the rig's) ago, while the device was out of reach: it arrives, with that time
        stamp, as soon as the module can take it (now, if it can)."""
        sub = self.subscribers.get(to_device_number)
        if sub is None or sub.modem is None:
            raise ValueError(f"{to_device_number} is not a device on this network")
        # its time stamp by the network's clock; its validity, like every network timing,
        # in the scheduler's (host) seconds
        self._hold(to_device_number, sender=from_number, text=text,
                   t_sent=self.sched.now() - sent_ago_s * self.sched.time_scale,
                   sent=self.now_datetime() - timedelta(seconds=sent_ago_s))
        self.sms_ready(to_device_number)

    # ------------------------------------------------------------------ modem-facing API
    def place_call(self, from_number, to_number, override=None, emergency=False):
        """A modem dials (registered, or an emergency call in limited service). `override`
        replaces the callee's behaviour once. An emergency call reaches the emergency
        line whatever was dialled (112 too: the handset's EMERGENCY SETUP carries no number,
        3GPP TS 24.008 9.3.8)."""
        return self._start_call(from_number, to_number, override, emergency)

    def failed_call(self, from_number, to_number):
        """A modem could not even start a call (not registered): record the attempt."""
        call = Call(next(self._ids), from_number, to_number, self.sched.now())
        call.caller_modem = self._modem(from_number)
        self.calls.append(call)
        self._record("call_start", call_id=call.id, **{"from": from_number, "to": to_number})
        self._end(call, "unreachable", "network", notify=False, cause=31)
        return call

    def answer(self, call, number):
        """The device `number` answered (ATA) an incoming call."""
        if call.state == "alerting" and number == call.callee:
            self._connect(call)

    def release(self, call, number):
        """The device `number` hung up (ATH/AT+CHUP)."""
        if not call.ended:
            self._release_by(call, number, quiet=self._modem(number))

    def submit_sms(self, from_number, to_number, text, error=None):
        """A modem's SMS reached the SMSC (or failed with CMS `error`). Returns accepted."""
        if error is not None:
            self._record("sms", delivered=False, error=error,
                         **{"from": from_number, "to": to_number, "text": text})
            return False
        dest = self._reach(to_number)
        delivered = False
        if dest is not None and dest.modem is None:
            dest.inbox.append((self.sched.now(), from_number, text))
            delivered = True
        elif dest is not None and dest.modem is not None and dest.modem.reachable:
            delivered = dest.modem.net_incoming_sms(from_number, text)
        # An SMSC accepts a message for any number; delivery is its own matter.
        self._record("sms", delivered=delivered, **{"from": from_number, "to": to_number, "text": text})
        return True

    def modem_unreachable(self, number):
        """A device lost power or registration: its calls are dropped."""
        for call in self.live_calls():
            if number in (call.caller, call.callee):
                self._end(call, "dropped", "network")

    # ------------------------------------------------------------------ call machinery
    def _start_call(self, caller, callee, override, emergency=False):
        call = Call(next(self._ids), caller, callee, self.sched.now())
        call.caller_modem = self._modem(caller)
        call.emergency = emergency
        self.calls.append(call)
        self._record("call_start", call_id=call.id, **{"from": caller, "to": callee},
                     **({"emergency": True} if emergency else {}))
        self._timer(call, self.alert_delay_s, self._route, call, override)
        return call

    def _route(self, call, override):
        callee = self.EMERGENCY_LINE if call.emergency else call.callee
        dest = self._reach(callee) if self.coverage else None
        if dest is None:
            return self._end(call, "unreachable", "network")
        if dest.modem is not None:
            return self._route_to_device(call, dest.modem)
        behaviour = override or dest.behaviour
        if behaviour in _RESULT_FOR_BEHAVIOUR:
            return self._end(call, _RESULT_FOR_BEHAVIOUR[behaviour], call.callee)
        self._alerting(call)
        self._timer(call, self.ring_timeout_s, self._end, call, "no_answer", "network")
        if behaviour == "answer":
            self._timer(call, dest.answer_after_s, self._connect, call)
        elif behaviour in ("reject", "rejected"):
            self._timer(call, dest.answer_after_s, self._end, call, "rejected", call.callee)

    def _route_to_device(self, call, modem):
        if not modem.reachable:
            return self._end(call, "unreachable", "network")
        if not getattr(modem, "voice_available", True):
            # Registered for SMS only (an A7670 on LTE without VoLTE): the network cannot page
            # it for a call, so the call is never offered; the caller gets "not reachable".
            return self._end(call, "unreachable", "network")
        if modem.in_call:
            return self._end(call, "busy", call.callee)  # no call waiting in this model
        call.callee_modem = modem
        self._alerting(call)
        modem.net_incoming_call(call)
        self._timer(call, self.ring_timeout_s, self._end, call, "no_answer", "network")

    def _alerting(self, call):
        call.state = "alerting"
        call.audio = self._audio_of(call)
        if call.caller_modem:
            call.caller_modem.net_alerting(call)
        self._record("ringing", call_id=call.id, **{"from": call.caller, "to": call.callee})

    def _connect(self, call):
        if call.state != "alerting":
            return
        self._cancel_timers(call)
        call.state = "active"
        call.t_connect = self.sched.now()
        call.audio = self._audio_of(call)
        for modem in call.modems():
            modem.net_connected(call)
        self._record("call_connected", call_id=call.id, **{"from": call.caller, "to": call.callee})
        # A scripted phone may hang up on its own after a while.
        for number in (call.caller, call.callee):
            sub = self.phone(number)
            if sub and sub.modem is None and sub.hangup_after_s is not None:
                self._timer(call, sub.hangup_after_s, self._release_by, call, number)

    def _release_by(self, call, number, quiet=None):
        """`number` hangs up: what that means depends on how far the call got."""
        if call.state == "active":
            result = "answered"
        elif number == call.callee and call.state == "alerting":
            result = "rejected"
        else:
            result = "no_answer"  # the caller gave up before anyone answered
        self._end(call, result, number, quiet=quiet)

    def _end(self, call, result, ended_by, notify=True, quiet=None, cause=None):
        """Clear the call. Each device end is told, except `quiet`: the modem whose own
        ATH cleared it (it already answered OK and prints nothing more)."""
        if call.ended:
            return
        self._cancel_timers(call)
        was_active = call.state == "active"
        call.state = "ended"
        call.result = result
        call.cause = cause if cause is not None else self._cause_for(call, result, ended_by)
        now = self.sched.now()
        if notify:
            for modem in call.modems():
                if modem is not quiet:
                    modem.net_released(call, self._code_for(call, modem))
        duration = now - call.t_connect if was_active else 0.0
        ends = {"from": call.caller, "to": call.callee}
        self._record("call_end", call_id=call.id, result=result, ended_by=ended_by, **ends)
        self._record("call", call_id=call.id, answered=call.t_connect is not None, result=result,
                     duration_s=round(duration, 3), ended_by=ended_by, t_start=call.t_start,
                     cause=call.cause, audio=call.audio, **ends)

    def _cause_for(self, call, result, ended_by):
        if result == "answered":
            return 16
        if result in ("busy", "rejected"):
            return 17  # a declining handset clears with "user busy"
        if result == "no_answer":
            return 19 if ended_by == "network" else 16
        if result == "unreachable":
            return 1 if self.phone(call.callee) is None else 20  # unassigned / absent
        return 41      # dropped: the radio link failed

    @staticmethod
    def _code_for(call, modem):
        if modem is call.caller_modem and call.t_connect is None:
            return CALLER_CODE[call.result]
        return "NO CARRIER"  # an established call, or an incoming one that went away

    def _audio_of(self, call):
        # The device end's settings: the caller's if it is a device, else the callee's.
        modem = call.caller_modem or call.callee_modem or self._modem(call.callee)
        return dict(modem.audio) if modem is not None else None

    def _timer(self, call, delay, fn, *args):
        call.timers.append(self.sched.after(delay, fn, *args))

    def _cancel_timers(self, call):
        for handle in call.timers:
            self.sched.cancel(handle)
        call.timers.clear()

    # ------------------------------------------------------------------ SMS machinery
    def _deliver_sms(self, sender, number, text):
        dest = self._reach(number)
        delivered = held = False
        if dest is not None and dest.modem is None:
            if self.coverage:
                dest.inbox.append((self.sched.now(), sender, text))
                delivered = True
        elif dest is not None:
            delivered = self.coverage and dest.modem.reachable and dest.modem.net_incoming_sms(sender, text)
            if not delivered:
                self._hold(dest.number, sender, text, self.sched.now(), self.now_datetime())
                held = True
        self._record("sms", delivered=delivered, **{"from": sender, "to": number, "text": text},
                     **({"held": True} if held else {}))

    # The SMSC's store and forward (3GPP TS 23.040 §3.2.5, §10.3): an SMS a device could not
    # take (out of reach, not ready, its storage full) is held and offered again when the
    # module says it can take SMS: registered again (the HLR's "MS present" alert), SMS
    # ready, storage freed (RP-SMMA). It arrives with the time stamp of when the SMSC took
    # it (SCTS), so the button can tell how old it is. Held ones go in order; one the
    # module still refuses stays first in line.
    def _hold(self, number, sender, text, t_sent, sent):
        self._held.setdefault(number, []).append((t_sent, sent, sender, text))

    def sms_ready(self, number):
        """Modem-facing: the device `number` can take SMS again."""
        if self._held.get(number):
            self.sched.after(self.sms_delivery_s, self._deliver_held, number)

    def _deliver_held(self, number):
        held = self._held.get(number) or []
        dest = self.subscribers.get(number)
        while held:
            t_sent, sent, sender, text = held[0]
            fields = {"from": sender, "to": number, "text": text}
            if self.sched.now() - t_sent > self.sms_validity_s * self.sched.time_scale:
                held.pop(0)
                self._record("sms_expired", **fields)
                continue
            modem = dest.modem if dest is not None else None
            if not (self.coverage and modem is not None and modem.reachable
                    and modem.net_incoming_sms(sender, text, sent=sent)):
                return
            held.pop(0)
            self._record("sms_late", delivered=True, held_s=round(self.sched.now() - t_sent, 3),
                         **fields)

    # ------------------------------------------------------------------ plumbing
    def _reach(self, number):
        """The subscriber a call or SMS to `number` reaches: a known one, else, for a valid
        number, a new auto phone (a real network routes every assigned number)."""
        sub = self.phone(number)
        if sub is None and self.auto_phones:
            e164 = self.canonical(number)
            if e164 is not None:
                sub = Subscriber(e164, "auto", self.auto_answer_after_s, self.auto_hangup_after_s)
                self.subscribers[e164] = sub
                self._record_phone(sub, "auto")
        return sub

    def _record_phone(self, sub, origin):
        ringing = sub.behaviour in RINGING_BEHAVIOURS
        self._record("phone", number=sub.number, origin=origin, behaviour=sub.behaviour,
                     answer_after_s=sub.answer_after_s if ringing else None,
                     hangup_after_s=sub.hangup_after_s if sub.behaviour == "answer" else None)

    def _end_of(self, call, number):
        """Which end of `call` (as the call names it) the phone `number` is, or None."""
        e164 = self.canonical(number)
        for end in (call.caller, call.callee):
            if end == number or (e164 is not None and self.canonical(end) == e164):
                return end
        return None

    def _modem(self, number):
        sub = self.subscribers.get(number)
        return sub.modem if sub else None

    def _modems(self):
        return [s.modem for s in self.subscribers.values() if s.modem is not None]

    def _record(self, kind, **fields):
        event = {"kind": kind, "t": self.sched.now()}
        for key in ("from", "to"):  # a stable, readable order in the JSON lines
            if key in fields:
                event[key] = fields.pop(key)
        event.update(fields)
        self.events.append(event)
        if self._log:
            self._log.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._log.flush()
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:  # an observer's bug must not stop the network
                log.exception("network event callback failed")
        return event


def _matches(event, match):
    return all(event.get(k) == v for k, v in match.items())
