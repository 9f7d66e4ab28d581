# The alert state machine, sans-IO and deterministic.
#
#     m = AlertMachine(config)
#     actions = m.handle(event, now_ms)        # now_ms: time.ticks_ms() of the caller
#     actions = m.from_state(saved, now_ms, call_kept)  # resume after a reset;
#                                              # call_kept: the modem still has our call
#                                              # ("active", "dialing", "alerting"; True:
#                                              # active)
#     actions = m.start(now_ms)                # once per boot, after from_state
#     saved = m.to_state()                     # also emitted as ("persist", saved)
#
# Nothing here does I/O or reads a clock: the driver performs the actions in order
# and reports what happened as events.  Time only enters through now_ms.
#
# Config (dict; missing keys take DEFAULTS)
#     c4_numbers        ["+524491234567", ...]  C4 numbers, primary first
#     contacts          trusted contacts (1-5), in the order they are notified
#     authorized        extra numbers allowed to send SMS commands (C4 always is)
#     pin_hash          "s$<salt hex>$<hex sha256(salt + PIN)>" of the SMS command PIN
#                       (alertsms.pin_ok); "" and no "pin": SMS commands are off
#     pin               plain PIN of configs from before pin_hash (used only without one)
#     country_code      "+52"  the device's country: a sender reported in national form
#                       (449..., 044 449...) is read as +52 449... (alertsms.canon)
#     allow_911         after every C4 number failed, also try emergency_number
#     emergency_number  "911"
#     alias, device_id, fw    for the texts (alias: short name she chose)
#     test_mode         SMS start with "PRUEBA" (nobody dispatches)
#     sms_c4            location / cancel SMS also go to the primary C4 number
#     redial_backoff_s  [5, 10, 20]  wait after the 1st, 2nd, 3rd.. failed attempt
#     attempts_per_number  3        then move on to the next number
#     cycle_backoff_s   60          wait before starting the list over
#     dial_timeout_s    60          not answered by then -> hang up, count as failure
#     update_every_s    300         periodic location SMS while active
#     max_alert_s       3600        then periodic SMS and redialing stop
#     fix_fresh_s       30          a fix this young is "gps", older is "last"
#     last_fix_max_s    86400       older fixes are forgotten
#     callback_window_s 3600        C4 calls are answered during the alert and this
#                                   long after it ended (-1: always)
#     sms_retries 2, sms_retry_s 20, sms_timeout_s 150 (a backstop for a report that never
#                       comes: longer than the radio's own worst case, 30 s for a recovery
#                       to end, its set-up, the lock, 5 s for the prompt and the module's
#                       60 s for +CMGS; shorter, a slow send was counted failed and sent
#                       twice)
#     pin_max_failures 5, pin_lockout_s 900   wrong-PIN lockout of SMS commands, per
#                       sender: a locked number does not lock C4's other numbers out.
#                       At most PIN_SENDERS senders are tracked (the least recent
#                       unlocked one makes room); the table is persisted with the lock's
#                       age, so a reset does not lift a lock (the time the device was
#                       off does not count towards it: ticks do not survive a reset)
#     vibrate           True        haptic acknowledgement of alert / cancel
#     unsent_warn_s     90          an alert that got nothing out by then (no SMS taken by
#                                   the network, C4's phone never rang) vibrates "unsent"
#                                   once: she must not believe help is coming (0: never)
#     low_battery_pct   [20, 10]    one low-battery SMS to the contacts per downward
#                                   crossing (readings <= pct; [] disables)
#     battery_hysteresis_pct  5     a threshold re-arms when the battery reads above
#                                   pct + this (she charged it)
#     power_update_gap_s  120       during an alert, a power warning pushes a location
#                                   update at most this often
#     programme_number  ""          gets the silent daily status SMS ("": no reports)
#     daily_status_s    86400       period of the daily status SMS (max 5 days)
#     gesture           dict for gesture.Button(**gesture): debounce_ms,
#                       pressed_level, mode ("hold"|"presses"), hold_ms, count,
#                       window_ms, cancel ("hold"|None), cancel_ms, min_press_ms,
#                       max_press_ms
#
# Events in
#     ("gesture", "alert" | "cancel")
#     ("call_state", "dialing"|"alerting"|"active"|"ended", cause)
#         cause for "ended": "remote" = the far end hung up normally (AT+CEER:
#         normal call clearing) - the only cause that is not redialed after the
#         call was answered (a call-back only once C4 answered one of hers: its
#         caller ID may be faked); anything else ("busy", "no_answer", "no_carrier",
#         "dropped", "error", None) counts as a failed/dropped call.
#     ("sms_sent", n, ok[, permanent])  n = the id carried by the send_sms action;
#                                  permanent: refused for good, do not retry
#     ("fix", fix)                 nmea.Fix or dict/object with lat_e7/lon_e7 (or
#                                  lat/lon), hdop, sats, valid (False is ignored)
#     ("cell", dict)               atparse.parse_ceng() serving cell
#     ("battery", percent)         AT+CBC percent 0..100 (others logged, ignored)
#     ("signal", csq_rssi)
#     ("gps_silent", bool)         no NMEA sentence from the GPS for a while it was listened
#                                  to (True: a fault, ESTADO and the daily report say "GPS
#                                  no responde"; False: it talks again). Logged: gps silent|talks
#     ("network", up)              the module registered again (True) or lost the network
#                                  (+CREG URC): this alert's SMS that found no network go
#                                  to whoever it has not reached yet
#     ("voice", ok)                whether the network carries a call from this button:
#                                  True, False (registered for SMS only: an LTE SIM
#                                  without VoLTE where 2G is gone) or None (unknown).
#                                  False: the texts tell her contacts to call 911, and a
#                                  running alert sends them an update saying so
#     ("power_warning", kind)      from the modem's supply URCs (both families; the
#                                  A7670's after AT+CVALARM): "under_voltage" (UNDER-VOLTAGE
#                                  WARNNING), "power_down" (UNDER-VOLTAGE POWER DOWN),
#                                  "over_voltage" (OVER-VOLTAGE WARNNING or POWER DOWN).
#                                  Not for NORMAL POWER DOWN (AT+CPOWD / PWRKEY: ours)
#     ("call_kept", state)         after a reset: the modem kept a call ("active",
#                                  "dialing", "alerting"; "callback": one to her, answered
#                                  and reported "active" next) the saved state knew of no
#                                  alert for (a call-back answered after her alert): the
#                                  driver reports its state next.  A resumed alert is
#                                  told through from_state's call_kept instead
#     ("off_gap", ms)              how long the board was off before a power-on, from the
#                                  first real time since (the restore had none): an
#                                  alert past its end ends; the report period shrinks
#     ("timer", name)              a timer set by set_timer expired
#     ("sms_command", sender, text[, age_s])   age_s: seconds since the SMSC took it (its
#                                  SCTS by the RTC), None if unknown. A CANCELAR sent before
#                                  the alert began (more than STALE_SLACK_S) is not obeyed:
#                                  the network held it for an earlier alert; C4 gets the status
#     ("incoming_call", number)    "" if withheld
# Actions out
#     ("covert_audio",)            speaker off / ringer off / mic on, before dial/answer
#     ("dial", number)   ("hangup",)   ("answer",)   ("reject",)
#     ("send_sms", number, text, n)    one at a time; report ("sms_sent", n, ok)
#     ("set_timer", name, ms)   ("cancel_timer", name)   one timer per name
#     ("vibrate", "alert" | "cancel" | "unsent")
#     ("gesture_active", bool)     keep gesture.Button.set_active() in step
#     ("log", event, detail)       phone numbers masked to their last 4 digits;
#                                  ("error", "<event> <ExceptionName>"): an event
#                                  the machine could not take (the brain goes on);
#                                  ("call_refused", "<state>:<event>"): a call move
#                                  the call-state table does not allow;
#                                  supervision: low_battery "<pct>%"|kind [" test"],
#                                  battery_ok, battery?, power_warning, power_warning?,
#                                  daily_status "...1111"|"skipped alert"|"off"
#     ("refresh_cell",)            read the serving cell again (after the alert's dial:
#                                  the dial goes first)
#     ("test_done", sms_ok, sms_failed)  test mode: C4 answered and every alert SMS was
#                                  accepted or refused for good (sms_ok: accepted SMS,
#                                  sms_failed: alert SMS refused); once per boot
#     ("persist", state_dict)      write it; pass it to from_state() after a reset (None:
#                                  no heap to build it: save it again soon)
#                                  (her last position is in it only during an alert;
#                                  bat_low, rep_alerts, daily_left_ms: supervision)
# Timer names: "redial", "dial_timeout", "update", "max_alert", "unsent", "sms_timeout",
# "sms_retry", "daily" (armed by start(); at most daily_status_s * 1000 ms).
# The driver must deliver some event at least daily (e.g. battery).
#
# Supervision (supervision.py)
#   Low battery: a "battery" reading at or below a low_battery_pct threshold not yet
#     warned about queues sms.low_battery_text to every trusted contact (one SMS per
#     contact even if it fell past several thresholds at once); the warned thresholds
#     are persisted, so a reset does not resend.  In test mode nothing is sent, only
#     logged ("low_battery", "<pct>% test"): test-mode devices are on a bench or in
#     training, and the delivery test removes the state file, so it would nag her
#     contacts on every test.  During an alert it is queued behind the alert's SMS.
#   Power warnings: logged.  During an alert "under_voltage" / "over_voltage" /
#     "power_down" move a location update for every recipient to the front of the
#     outbox (behind the SMS in flight; at most once per power_update_gap_s) - the
#     modem is about to switch off.  "under_voltage" / "power_down" also queue the
#     low-battery SMS (without a percentage: the reading may be stale) right after
#     them if no low-battery SMS was sent yet (outside an alert: if none was sent for
#     the lowest threshold), and mark every threshold as warned.
#   Daily status: start() arms the "daily" timer; on expiry it is re-armed and the
#     silent (no vibration, not to her contacts) sms.daily_status_text - battery,
#     signal, age of the last fix (never the position), firmware, alerts since the
#     last delivered report, hours since boot - goes to programme_number.  Skipped
#     (logged, re-armed for a whole period) while an alert is active.  Sent in test
#     mode too, marked PRUEBA: it goes to the programme, not to her contacts, and
#     shows that a training device is alive.  What was left of the period is
#     persisted (restored no sooner than 60 s after boot), so a reset postpones a
#     report by at most the time since the last persist; "Encendido <h>h" in the
#     report shows C4 that the device restarted.
#
#
# The machine is composed of parts that own their state: callstate.CallState (the
# call and the dial list, moves through a table), outbox.Outbox (SMS records),
# supervision.Supervision (battery, power warnings, daily status) and
# smscommands.SmsCommands (the SMS commands and their PIN lockout); alerttexts renders
# the texts and alertsms reads numbers and fixes.  This module holds the alert itself
# and routes events to the parts.
# Comments instead of docstrings: the .mpy deploy keeps code in the heap.

from gesture import ticks_diff, ticks_add
from alertsms import digits, same_number, mask, read_fix
import alerttexts
import outbox as ob
from outbox import Outbox
from callstate import CallState
from supervision import Supervision
from smscommands import SmsCommands

DEFAULTS = {
    "c4_numbers": [], "contacts": [], "authorized": [], "pin": "", "pin_hash": "",
    "country_code": "+52",
    "allow_911": False, "emergency_number": "911",
    "alias": "", "device_id": "", "fw": "", "test_mode": False, "sms_c4": True,
    "redial_backoff_s": [5, 10, 20], "attempts_per_number": 3, "cycle_backoff_s": 60,
    "dial_timeout_s": 60, "update_every_s": 300, "max_alert_s": 3600,
    "fix_fresh_s": 30, "last_fix_max_s": 86400, "callback_window_s": 3600,
    "sms_retries": 2, "sms_retry_s": 20, "sms_timeout_s": 150,
    "pin_max_failures": 5, "pin_lockout_s": 900, "vibrate": True, "unsent_warn_s": 90,
    "low_battery_pct": [20, 10], "battery_hysteresis_pct": 5, "power_update_gap_s": 120,
    "programme_number": "", "daily_status_s": 86400,
    "gesture": {"debounce_ms": 30, "pressed_level": 0, "mode": "hold",
                "hold_ms": 2000, "count": 3, "window_ms": 2000, "cancel": "hold",
                "cancel_ms": 5000},
}

def _nothing(e):
    return False


# The longest time off a restore is told (from_state's gap_ms, off_gap), in s: longer
# than any alert (max_alert_s <= 1 day), and short of ticks_diff's reach (6.2 days: ten
# days off read as minus two, a fresh alert).
MAX_GAP_S = 172800

_TIMERS = ("redial", "dial_timeout", "update", "max_alert", "unsent")
# How far an SMS's time stamp (the SMSC's clock) and the RTC (GPS or network time) may
# disagree before a CANCELAR counts as sent before the alert began.
STALE_SLACK_S = 60
# In an alert her newest fix reaches the flash at most this often (a fix alone changes
# nothing else): a reset resumes with a position this old at worst, not the alert's first.
FIX_SAVE_MS = 30000
# A dial that goes out this long after the machine asked (it waited behind a slow SMS on
# the one UART) gets its dial timeout anew from then
LATE_DIAL_MS = 5000


class AlertMachine:
    def __init__(self, config=None):
        # Every attribute is made here, at boot: a first assignment mid-alert grew the
        # instance's dict past 29 entries, a new 296-byte table at the heap's peak (the
        # worst alert's MemoryError at the edge of a 56 KB heap).
        self.log_head = None     # callable() -> (seq, hex) of the event log, for the daily SMS
        self.gps_silent = False
        self._now = 0
        self._dirty = False
        # the delivery-day test's progress (C4 answered, SMS outcomes), reported once a boot
        self._answered = False
        self._sms_ok = 0
        self._sms_failed = 0
        self._test_reported = False
        self._fix_saved_t = None  # ticks at which the fix last went into a persisted state
        self.unsent_due = False  # this alert got nothing out yet (no SMS taken, C4's phone
        # never rang) and she has not been told: the "unsent" timer may tell her
        c = dict(DEFAULTS)
        c.update(config or {})
        self.cfg = c
        self.contacts = [n for n in c["contacts"] if n][:5]
        self.c4 = [n for n in c["c4_numbers"] if n]
        dial_list = list(self.c4)
        self.cc = digits(c["country_code"]) or "52"
        if c["allow_911"] and c["emergency_number"]:
            dial_list.append(c["emergency_number"])
        self.dial_list = dial_list
        self._fresh()

    def _fresh(self):
        # the parts and the alert's own state as a new machine has them (also what a
        # damaged state file leaves)
        self.active = False
        self.test = False
        self.start_t = 0
        self.alerts = 0
        self.cancel_by = None
        self.end_t = None       # when the last alert ended (callback window)
        self.off_alert = None   # the alert (its number) restored with no time off: the one off_gap may end
        # [number, kind, arg]: an end text (CANCEL) or a low-battery text that ran out of
        # tries: it goes again with the network's return or the next text it takes
        self.owed = []
        self.fix = None         # read_fix() list
        self.fix_t = 0
        self.fix_dated = True   # False: restored with an age the RTC could not vouch for
        self.cell = None
        self.battery = None
        self.rssi = None
        self.voice = None       # the network carries a call from here: True/False/None
        self.calls = CallState(self.dial_list)
        self.outbox = Outbox()
        self.seq0 = 0           # the outbox's count at the press: texts after it are this alert's
        self.sup = Supervision(self.cfg)
        self.commands = SmsCommands(self.cfg, self.cc)
        self.got_gps = []       # recipients whose latest location SMS had a fresh GPS fix
        # recipients the network took a location SMS for in this alert: to the others a
        # later one is still the alert ("pidio ayuda"), not an update (alerttexts.render)
        self.told = []
        self.failing = []       # recipients whose SMS failed, logged once (_sms_done)

    # ------------------------------------------------------------------ API
    def handle(self, ev, now):
        self._now = now
        acts = []
        self._housekeeping(now)
        h = getattr(self, "_on_" + str(ev[0]), None)
        if h is None:
            acts.append(("log", "unknown_event", str(ev[0])))
        else:
            try:
                h(ev, now, acts)
            except Exception as e:  # a malformed event must not kill the alert: logged
                acts.append(("log", "error", "%s %s" % (ev[0], type(e).__name__)))
        return self._finish(now, acts)

    def _finish(self, now, acts):
        self._pump(now, acts)
        if (self._answered and not self._test_reported and self.cfg["test_mode"]
                and not self.outbox.has_kind(ob.ALERT)):
            # the alert SMS stay in the outbox until accepted or refused for good
            self._test_reported = True
            acts.append(("test_done", self._sms_ok, self._sms_failed))
        if self._dirty or self.commands.changed:
            self._dirty = self.commands.changed = False
            try:
                st = self.to_state(now)
            except MemoryError:
                # no block for its table at the heap's peak: this event's actions (her
                # dial, her SMS) still go out, and the App saves the state again shortly
                st = None
            acts.append(("persist", st))
        return acts

    def to_state(self, now=None):
        now = self._now if now is None else now
        fx = None
        if self.fix is not None and self.active:   # her position is kept only in an alert
            fx = self.fix + [ticks_diff(now, self.fix_t)]
            self._fix_saved_t = now
        calls = self.calls
        # Every key of the saved state in one literal, the table made once at its size: a
        # dict that gains keys takes a new table each time it is full (19 -> 23 -> 29
        # entries), at the alert's heap peak. sup.save fills its three; app._save_state
        # "loc" (her position, sealed) and "at" (the RTC at the save).
        st = {
            "v": 1, "active": self.active, "test": self.test,
            "elapsed_ms": ticks_diff(now, self.start_t) if self.active else 0,
            "alerts": self.alerts, "call_done": calls.done, "reached": calls.reached, "ni": calls.ni,
            "att": calls.att, "dials": calls.dials, "seq": self.outbox.seq, "seq0": self.seq0, "by": self.cancel_by,
            "out": self.outbox.rows(), "got_gps": list(self.got_gps), "told": list(self.told),
            # her cell (a location too) likewise; radio.init reads it again after a reset
            "fix": fx, "cell": self.cell if self.active else None, "battery": self.battery,
            "end_ago_ms": None if self.end_t is None else ticks_diff(now, self.end_t),
            "pin_fails": self.commands.save(now),
            "unsent_due": self.unsent_due, "owed": self.owed,
            "bat_low": None, "pw_low": False, "rep_alerts": 0, "daily_left_ms": None, "loc": None, "at": None,
        }
        self.sup.save(st, now)
        return st

    def from_state(self, st, now, call_kept=False, gap_ms=None):
        # Restore a persisted state (after a reset) and return the actions that
        # resume it: an active alert redials C4 (unless C4 had already answered and
        # hung up, or call_kept: the modem kept the call through the reset), sends an
        # immediate location update and re-arms its timers.  gap_ms: the time from the
        # save to now by the RTC (None: unknown); the state's ages are as of the save.
        self._now = now
        acts = []
        if not isinstance(st, dict) or st.get("v") != 1:
            acts.append(("log", "state_ignored", ""))
            return acts
        try:
            self._restore(st, now, gap_ms)
        except Exception as e:  # a damaged file must not stop the button from working
            self._fresh()
            acts.append(("log", "state_ignored", type(e).__name__))
            return acts
        if self.active and not self.resumes(st):
            # the delivery-day test, cut short (the technician's Ctrl-C, a reset): over, not
            # carried on as an hour of PRUEBA updates to her contacts and calls to C4
            acts.append(("log", "test_abandoned", "%ds" % (ticks_diff(now, self.start_t) // 1000)))
            self.active = self.test = self.unsent_due = False
            self.outbox.keep(_nothing)  # its PRUEBA SMS: none goes now
            # not one of hers in the daily report (a test that ends removes its count too)
            self.alerts = max(0, self.alerts - 1)
            self.sup.rep_alerts = min(self.sup.rep_alerts, self.alerts)
            self.told, self.got_gps = [], []
        if self.active:
            el = ticks_diff(now, self.start_t)
            left = self.cfg["max_alert_s"] * 1000 - el
            if left <= 0:
                self._expire(now, acts)
            else:
                acts.append(("log", "resume", "%ds" % (el // 1000)))
                acts.append(("gesture_active", True))
                acts.append(("set_timer", "max_alert", left))
                acts.append(("set_timer", "update",
                             min(self.cfg["update_every_s"] * 1000, left)))
                if self.unsent_due:     # what was left of the wait before the reset
                    acts.append(("set_timer", "unsent",
                                 max(1, self.cfg["unsent_warn_s"] * 1000 - el)))
                self._queue_location("update")
                if not self.calls.done and self.dial_list and not call_kept:
                    self._dial(acts)
        if call_kept:
            self._on_call_kept((None, call_kept), now, acts)
        if self.sup.daily_len:          # start() came first: re-arm what was left
            self.sup.arm_daily(now, acts, self.sup.daily_left)
        self._dirty = True
        return self._finish(now, acts)

    def resumes(self, st):
        """Whether from_state carries st's alert on: an active one; a delivery-day test
        only on a boot in test mode."""
        return bool(st.get("active")) and not (st.get("test") and not self.cfg["test_mode"])

    def _restore(self, st, now, gap_ms):
        saved_at = now if gap_ms is None else ticks_add(now, -int(gap_ms))
        self.active = bool(st.get("active"))
        self.test = bool(st.get("test"))
        self.alerts = int(st.get("alerts") or 0)
        calls = self.calls
        calls.done = bool(st.get("call_done"))
        calls.reached = bool(st.get("reached"))  # a call-back kept through the reset is judged by it
        calls.ni = int(st.get("ni") or 0)
        if not 0 <= calls.ni < len(self.dial_list):
            calls.ni = 0
        calls.att = int(st.get("att") or 0)
        calls.dials = int(st.get("dials") or 0)  # her contacts' "C4 no contesta" (alerttexts) stays
        seq = int(st.get("seq") or 0)
        self.seq0 = int(st.get("seq0") or 0)  # texts after it are this alert's (_got_out)
        self.cancel_by = st.get("by")
        self.unsent_due = bool(st.get("unsent_due"))
        self.outbox.restore(st.get("out"), seq)
        # the one in flight at the reset goes again only if it is still true
        self.outbox.drop((ob.CANCEL,) if self.active else ob.LOC)
        # and only to whom her configuration still sends: a contact removed since the save
        # (provisioned again) got her alert and where she is from what was waiting
        self.outbox.keep(self._still_sent_to)
        # what ran out of tries still waits for the network: only to a number that this
        # configuration still sends it to
        owed = st.get("owed")
        self.owed = [[x[0], x[1], x[2]] for x in owed if isinstance(x, list) and len(x) == 3
                     and isinstance(x[0], str)
                     and x[1] in (ob.CANCEL, ob.LOWBAT) and self._still_sent_to(ob.Sms(0, x[0], x[1]))
                     ] if isinstance(owed, list) else []
        self.got_gps = list(st.get("got_gps") or [])
        self.told = list(st.get("told") or [])
        self.cell = st.get("cell")
        self.battery = st.get("battery")
        fx = st.get("fix")
        if fx:
            self.fix = list(fx[:5])
            self.fix_t = ticks_add(saved_at, -int(fx[5]))
            # without the gap its age is a floor, never "fresh": said with no age
            self.fix_dated = gap_ms is not None
        ea = st.get("end_ago_ms")
        self.end_t = None if ea is None else ticks_add(saved_at, -int(ea))
        self.start_t = ticks_add(saved_at, -int(st.get("elapsed_ms") or 0))
        self.commands.restore(st.get("pin_fails"), saved_at)
        self.sup.restore(st, self.alerts, gap_ms)
        self.off_alert = self.alerts if self.active and gap_ms is None else None
        calls.reset()
        self._housekeeping(now)

    def start(self, now):
        # Call once at boot, after from_state(): arms the daily status timer with
        # what was left of the period before a reset, if a state was restored.
        self._now = now
        acts = []
        self.sup.start(now, acts)
        return self._finish(now, acts)

    # --------------------------------------------------------------- helpers
    def _log(self, acts, what, detail=""):
        acts.append(("log", what, detail))

    def _housekeeping(self, now):
        # forget what is too old (also keeps wrapping tick differences sane)
        if self.fix is not None:
            age = ticks_diff(now, self.fix_t)
            if age < 0 or age > self.cfg["last_fix_max_s"] * 1000:
                self.fix = None
        if self.end_t is not None and self.cfg["callback_window_s"] >= 0:
            d = ticks_diff(now, self.end_t)
            if d < 0 or d > self.cfg["callback_window_s"] * 1000:
                self.end_t = None
        self.commands.housekeeping(now)

    def is_c4(self, number):
        for n in self.c4:
            if same_number(n, number, self.cc):
                return True
        return False

    def _authorized(self, number):
        if self.is_c4(number):
            return True
        for n in self.cfg["authorized"]:
            if same_number(n, number, self.cc):
                return True
        return False

    def _still_sent_to(self, e):
        # an outbox record's number is one this configuration sends its kind to
        if e.kind == ob.DAILY:
            return same_number(e.number, self.cfg["programme_number"], self.cc)
        if self._authorized(e.number):  # C4 and who may send commands: replies, cancels
            return True
        for n in self.recipients():
            if same_number(n, e.number, self.cc):
                return True
        return False

    def recipients(self):
        r = list(self.contacts)
        if self.cfg["sms_c4"] and self.c4:
            p = self.c4[0]
            if not any(same_number(p, x) for x in r):
                r.append(p)
        return r

    def fix_kind(self, now):
        # -> (kind, age_s): "gps" | "last" | "cell" | "none".
        if self.fix is not None:
            age = ticks_diff(now, self.fix_t)
            if not self.fix_dated:
                return "last", None
            if 0 <= age <= self.cfg["fix_fresh_s"] * 1000:
                return "gps", age // 1000
            if 0 <= age <= self.cfg["last_fix_max_s"] * 1000:
                return "last", age // 1000
        if self.cell:
            return "cell", None
        return "none", None

    def test_now(self):
        return self.test if self.active else bool(self.cfg["test_mode"])

    # --------------------------------------------------------------- alert
    def _on_gesture(self, ev, now, acts):
        if ev[1] == "alert":
            self._alert(now, acts, "gesture")
        elif ev[1] == "cancel":
            self._cancel(now, acts, "device")

    def _alert(self, now, acts, source):
        c = self.cfg
        calls = self.calls
        if self.active:
            self._log(acts, "alert_repeat", source)
            if c["vibrate"]:
                acts.append(("vibrate", "alert"))
            self._queue_location("update")
            if calls.state == "idle" and self.dial_list:
                calls.done = False
                acts.append(("cancel_timer", "redial"))
                self._dial(acts)
            else:
                self.drop_callback(acts)
            return
        self.active = True
        self.test = bool(c["test_mode"])
        self.start_t = now
        self.alerts += 1
        calls.start_series()
        self.got_gps = []
        self.told = []
        self.failing = []       # recipients whose SMS failed, logged once (_sms_done)
        self.cancel_by = None
        self.owed = []
        self.seq0 = self.outbox.seq
        self._log(acts, "alert", source)
        if c["vibrate"]:
            acts.append(("vibrate", "alert"))
        acts.append(("gesture_active", True))
        if not self.dial_list:
            self._log(acts, "no_c4_number", "")
        elif calls.can("dial"):
            self._dial(acts)
        else:
            self.drop_callback(acts)
        # location SMS are rendered when sent: never wait for the GPS. They go first
        # (a failed SMS waiting for its retry must not hold them); the last alert's end
        # is no news now: "CANCELADA" after them would tell her contacts she is safe
        self.outbox.drop((ob.CANCEL,))
        self._queue_location("alert", True)
        acts.append(("set_timer", "update", c["update_every_s"] * 1000))
        acts.append(("set_timer", "max_alert", c["max_alert_s"] * 1000))
        # after the dial and the SMS: a bad value here must not keep them from going out
        self.unsent_due = c["unsent_warn_s"] > 0
        if self.unsent_due:
            acts.append(("set_timer", "unsent", c["unsent_warn_s"] * 1000))
        acts.append(("refresh_cell",))  # her cell for the SMS, once the dial is out
        self._dirty = True

    def _got_out(self):
        # something of this alert got out: she need not be told it did not
        if self.unsent_due:
            self.unsent_due = False
            self._dirty = True

    def _owed_out(self, number, kind):
        self.owed = [x for x in self.owed if x[0] != number or x[1] != kind]

    def _pay_owed(self):
        # what ran out of tries goes again, with no alert on (a new alert began: its texts
        # carry her battery, and the last one's end is no longer true); a low-battery text
        # only while the battery is still low
        if self.active or not self.owed:
            return                      # (no flash write at every registration)
        for n, kind, arg in self.owed:
            if (kind == ob.CANCEL or self.sup.bat_low) and not self.outbox.pending(n, (kind,)):
                self.outbox.queue(n, kind, arg)
        self.owed = []
        self._dirty = True

    def _stop(self, now, acts, by):
        self.active = False
        self.cancel_by = by
        self.end_t = now
        acts.append(("gesture_active", False))
        self.outbox.drop(ob.LOC)
        self._dirty = True

    def _cancel(self, now, acts, by, reply_to=None):
        if not self.active:
            self._log(acts, "cancel_ignored", by)
            return
        self._stop(now, acts, by)
        for t in _TIMERS:
            acts.append(("cancel_timer", t))
        if self.calls.state != "idle":
            acts.append(("hangup",))
            self._move(acts, "hangup")
        if self.cfg["vibrate"]:
            acts.append(("vibrate", "cancel"))
        rcpt = self.recipients()
        if reply_to and not any(same_number(reply_to, x, self.cc) for x in rcpt):
            rcpt.append(reply_to)
        for n in rcpt:
            self.outbox.queue(n, ob.CANCEL, by)
        self._log(acts, "cancel", by)

    def _expire(self, now, acts):
        self._stop(now, acts, "timeout")
        for t in ("redial", "update", "unsent"):
            acts.append(("cancel_timer", t))
        for n in self.recipients():
            self.outbox.queue(n, ob.CANCEL, "timeout")
        self._log(acts, "expired", "%ds" % self.cfg["max_alert_s"])

    # --------------------------------------------------------------- calls
    def _move(self, acts, event):
        # a call-state move; one the table refuses is logged and changes nothing
        calls = self.calls
        was = calls.state
        if calls.move(event) is None:
            self._log(acts, "call_refused", "%s:%s" % (was, event))
            return False
        return True

    def _dial(self, acts):
        calls = self.calls
        if not self._move(acts, "dial"):
            return
        num = calls.number()
        calls.att += 1
        calls.dials += 1
        calls.connected = calls.callback = calls.redial = False
        calls.dial_t = self._now
        acts.append(("covert_audio",))
        acts.append(("dial", num))
        acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
        if not calls.quiet():
            self._log(acts, "dial", "%s #%d" % (mask(num), calls.dials))
        self._dirty = True

    def drop_callback(self, acts):
        if self.dial_list and self.calls.drop_callback():
            acts.append(("hangup",))
            acts.append(("set_timer", "redial", 5000))   # if its end is never reported
            self._log(acts, "callback_dropped", "press")

    def _call_failed(self, acts, cause):
        if not self.calls.quiet():
            self._log(acts, "call_failed", str(cause))
        if not self.active or not self.dial_list:
            return
        acts.append(("set_timer", "redial", self.calls.next_delay_s(self.cfg) * 1000))
        self._dirty = True

    def _on_call_state(self, ev, now, acts):
        st = ev[1]
        cause = ev[2] if len(ev) > 2 else None
        calls = self.calls
        prev, was = calls.state, calls.connected
        if st in ("dialing", "alerting"):
            if st == "dialing" and prev == "dialing" and ticks_diff(now, calls.dial_t) > LATE_DIAL_MS:
                # the dial went out only now (behind a slow SMS): C4 rings its whole time.
                # Only then: a timer task anew at every dial is heap at the alert's peak
                calls.dial_t = now
                acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
            calls.move(st)              # progress of a call we did not place: kept
            if st == "alerting":
                self._got_out()         # the network carried it: C4's phone rings
            return
        if st == "active":
            if prev == "hangup":
                return                  # we are hanging it up
            calls.move("active")
            calls.connected = True
            if not calls.callback:
                calls.reached = True
            self._got_out()
            calls.att = 0               # answered: a later drop starts a new series
            self._answered = True
            acts.append(("cancel_timer", "dial_timeout"))
            self._log(acts, "call_active", "")
            return
        if st != "ended":
            self._log(acts, "call_state?", str(st))
            return
        if prev == "idle":
            return
        calls.move("ended")
        calls.connected = False
        acts.append(("cancel_timer", "dial_timeout"))
        if prev == "hangup":
            self._log(acts, "call_ended", "local")
            if calls.redial and self.active:
                acts.append(("cancel_timer", "redial"))
                self._dial(acts)
            return
        if was and cause == "remote":
            self._log(acts, "call_ended", "remote")
            if self.active and calls.reached:
                calls.done = True
                self._dirty = True
            elif self.active and self.dial_list:
                # a call-back hung up before C4 answered any call of hers: a caller ID (which
                # anyone can fake) is all that said it was C4, so her dialling goes on
                acts.append(("set_timer", "redial", calls.next_delay_s(self.cfg) * 1000))
                self._dirty = True
            return
        self._call_failed(acts, cause)

    def _on_call_kept(self, ev, now, acts):
        # the driver reports the kept call's state next (True: "active"); one still
        # ringing at C4 is ours, unanswered: its dial timeout runs anew
        acts.append(("log", "call_kept", ""))
        # a call to her kept (a caller ID said C4): not her call answered (CallState.reached)
        self.calls.callback = ev[1] == "callback"
        if ev[1] in ("dialing", "alerting") and self._move(acts, "kept_" + ev[1]):
            acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
        self._dirty = True

    def _on_incoming_call(self, ev, now, acts):
        num = ev[1] if len(ev) > 1 else ""
        calls = self.calls
        if calls.state == "answering":
            return                      # RING repeats for the call being answered
        if calls.in_call():
            # (a ring while we wait for our hang-up to be confirmed means the line is free)
            self._log(acts, "incoming_ignored", mask(num))
            return
        window = self.active or self.cfg["callback_window_s"] < 0 or self.end_t is not None
        if num and self.is_c4(num) and window:
            acts.append(("cancel_timer", "redial"))
            acts.append(("covert_audio",))
            acts.append(("answer",))
            acts.append(("set_timer", "dial_timeout", self.cfg["dial_timeout_s"] * 1000))
            self._move(acts, "answer")
            calls.connected = False
            calls.callback = True
            for i in range(len(self.c4)):   # a drop calls back the desk that called her
                if same_number(self.c4[i], num, self.cc):
                    calls.ni, calls.att = i, 0
                    break
            self._log(acts, "callback_answered", mask(num))
        else:
            acts.append(("reject",))
            self._log(acts, "incoming_rejected", mask(num))

    # ---------------------------------------------------------------- SMS
    def _queue_location(self, kind, first=False):
        box = self.outbox
        front = []
        for n in self.recipients():
            if not box.pending(n, ob.LOC):
                if first:
                    front.append(box.new(n, kind))
                else:
                    box.queue(n, kind)
                self._dirty = True
        if front:
            box.put_front(front)

    def _pump(self, now, acts):
        box = self.outbox
        e = box.head()
        if e is None:
            return
        if e is ob.ARM_RETRY:
            acts.append(("set_timer", "sms_retry", self.cfg["sms_retry_s"] * 1000))
            return
        try:
            text, kind = alerttexts.render(self, e, now)
        except MemoryError:
            # no block for the text at the alert's burst (the heap full): it stays first
            # in the outbox, rendered again a second later; the brain does not die (that
            # was a reset mid-alert, and the resume met the same burst again)
            if e.tries:
                box.retry_ready = True      # head() took its turn: give it back
            # with nothing in flight this timer's firing only runs the outbox again
            acts.append(("set_timer", "sms_timeout", 1000))
            self._log(acts, "sms_retry", "MemoryError")
            return
        box.sent(e, kind)
        acts.append(("send_sms", e.number, text, e.n))
        acts.append(("set_timer", "sms_timeout", self.cfg["sms_timeout_s"] * 1000))

    def _sms_done(self, ok, acts, now, permanent=False):
        box = self.outbox
        fix_sent = box.inflight_fix
        acts.append(("cancel_timer", "sms_timeout"))
        e = box.take_inflight()
        if e is None:
            return
        self._dirty = True
        what = "%s %s" % (e.label(), mask(e.number))
        # A recipient whose SMS failed is logged once until one gets through: an hour
        # without network is hundreds of tries, and her alert's start would leave the log.
        quiet = e.number in self.failing
        if ok:
            if quiet:
                self.failing.remove(e.number)
            self._sms_ok += 1
            if e.kind in ob.LOC or e.n > self.seq0:
                self._got_out()         # not a text on its way before her press
            self._log(acts, "sms_ok", what)
            self.sup.delivered(e)
            if e.kind in ob.LOC and e.number not in self.told:
                self.told.append(e.number)
            self._owed_out(e.number, e.kind)
            if self.owed:
                self._pay_owed()        # the network takes texts again
            if e.kind in ob.LOC:
                if fix_sent == "gps":
                    if e.number not in self.got_gps:
                        self.got_gps.append(e.number)
                    return
                # their latest SMS has no fresh position (her GPS lost, or her position
                # lost at a reset): the next fix goes to them again
                if e.number in self.got_gps:
                    self.got_gps.remove(e.number)
                if self.active and self.fix_kind(now)[0] == "gps":
                    # the fix came while this one was on its way without it
                    box.queue(e.number, ob.UPDATE)
            return
        e.tries += 1
        # an SMS that is no longer true is not tried again: her location after the alert
        # ended, or its end once a new alert began
        stale = self.active if e.kind == ob.CANCEL else e.kind in ob.LOC and not self.active
        if permanent or stale or e.tries > self.cfg["sms_retries"]:
            if e.kind == ob.ALERT:
                self._sms_failed += 1
            if (e.kind == ob.CANCEL or e.kind == ob.LOWBAT) and not (permanent or stale):
                # out of tries (an outage, an SMS centre's congestion): it goes again, or one
                # contact reads "cerrada" and the others "pidio ayuda", or one is never told
                # her battery is low
                self._owed_out(e.number, e.kind)
                self.owed.append([e.number, e.kind, e.arg])
            if not quiet:
                self._log(acts, "sms_failed", what)
                self.failing.append(e.number)
        else:
            if e.tries == 1 and not quiet:
                self._log(acts, "sms_retry", what)
            box.retry_later(e)

    def _on_sms_sent(self, ev, now, acts):
        if ev[1] != self.outbox.inflight:
            self._log(acts, "sms_stale", str(ev[1]))
            return
        # ev[3] (optional): the network refused it for good (aterrors.sms_retry_class):
        # retrying would only delay the others
        self._sms_done(bool(ev[2]), acts, now, len(ev) > 3 and bool(ev[3]))

    # --------------------------------------------------------------- inputs
    def _on_fix(self, ev, now, acts):
        f = read_fix(ev[1])
        if f is None:
            return
        self.fix = f
        self.fix_t = now
        self.fix_dated = True
        if not self.active:
            return
        if self._fix_saved_t is None or ticks_diff(now, self._fix_saved_t) >= FIX_SAVE_MS:
            self._dirty = True
        # the first fresh fix after a location-less alert: tell who lacks it. Not whose
        # SMS failed (refused for good, or out of retries): that was every fix, 1 Hz, for
        # the whole alert; the 5-minute updates and the network's return try them again.
        for n in self.recipients():
            if n not in self.got_gps and n not in self.failing and not self.outbox.pending(n, ob.LOC):
                self.outbox.queue(n, ob.UPDATE)
                self._dirty = True

    def _on_off_gap(self, ev, now, acts):
        # A power-on resumed her alert before any clock said how long the board had been
        # off (ev[1] ms, from the first real time since): past the alert's end, it was her
        # battery going flat days ago, not a cut in her alert now. It ends, C4's call too.
        # Only the alert restored: one she started since is new (the gap comes with the
        # first real time, maybe an hour later, when she ran outside and got a fix)
        same, self.off_alert = self.active and self.off_alert == self.alerts, None
        if same and ticks_diff(now, self.start_t) + ev[1] >= self.cfg["max_alert_s"] * 1000:
            if self.calls.state != "idle":
                acts.append(("hangup",))
                self._move(acts, "hangup")
            acts.append(("cancel_timer", "max_alert"))
            self._expire(now, acts)
        # and what was left of the report period, as a gap known at the resume shrinks it
        if self.sup.shorten(now, ev[1], acts):
            self._dirty = True

    def _on_network(self, ev, now, acts):
        # the module registered again: whoever this alert has not reached yet (its SMS
        # failed its retries with no network) gets it now, not at the next update; with
        # no alert on, whoever the last one's end did not reach gets that
        if not ev[1]:
            return
        if not self.active:
            self._pay_owed()
            return
        for n in self.recipients():
            if n not in self.told and not self.outbox.pending(n, ob.LOC):
                self.outbox.queue(n, ob.UPDATE)
                self._dirty = True

    def _on_cell(self, ev, now, acts):
        cell = ev[1]
        if not cell:
            return
        moved = cell != self.cell
        self.cell = cell
        if not (moved and self.active and self.fix_kind(now)[0] == "cell"):
            return
        # No fix: who was sent the cell before this one (her first SMS carries the last
        # standby poll's, up to 10 minutes old) gets this one now, not at the next update
        box = self.outbox
        for n in self.recipients():
            e = box.pending(n, ob.LOC)
            if e is None and n in self.told or e is not None and e.n == box.inflight:
                box.queue(n, ob.UPDATE)
                self._dirty = True

    def _on_signal(self, ev, now, acts):
        self.rssi = ev[1]

    def _on_gps_silent(self, ev, now, acts):
        self.gps_silent = ev[1]
        self._log(acts, "gps", "silent" if ev[1] else "talks")

    def _on_voice(self, ev, now, acts):
        was, self.voice = self.voice, ev[1]
        if self.voice is False and was is not False:
            self._log(acts, "no_voice", "")
            if self.active:
                self._queue_location("update")  # they were told C4 was being called

    def _on_battery(self, ev, now, acts):
        p = int(ev[1])
        if p < 0 or p > 100:
            self._log(acts, "battery?", str(p))
            return
        self.battery = p
        if self.sup.on_battery(self, p, acts):
            self._dirty = True

    def _on_power_warning(self, ev, now, acts):
        if self.sup.on_power_warning(self, ev[1], now, acts):
            self._dirty = True

    def _on_timer(self, ev, now, acts):
        name = ev[1]
        c = self.cfg
        calls = self.calls
        if name == "sms_timeout":
            if self.outbox.inflight is not None:
                self._log(acts, "sms_timeout", str(self.outbox.inflight))
                self._sms_done(False, acts, now)
        elif name == "sms_retry":
            self.outbox.retry_due()
        elif name == "redial":
            if self.active and self.dial_list and calls.can("dial"):
                self._dial(acts)
        elif name == "dial_timeout":
            if calls.ringing_out():
                acts.append(("hangup",))
                self._move(acts, "hangup")
                self._call_failed(acts, "timeout")
        elif name == "update":
            if self.active:
                self._queue_location("update")
                left = c["max_alert_s"] * 1000 - ticks_diff(now, self.start_t)
                if left > 0:
                    acts.append(("set_timer", "update",
                                 min(c["update_every_s"] * 1000, left)))
        elif name == "max_alert":
            if self.active:
                self._expire(now, acts)
        elif name == "unsent":
            if self.active and self.unsent_due:
                self.unsent_due = False
                self._dirty = True
                self._log(acts, "alert_unsent", "%ds" % c["unsent_warn_s"])
                if c["vibrate"]:
                    acts.append(("vibrate", "unsent"))
        elif name == "daily":
            if self.sup.on_daily(self, now, acts):
                self._dirty = True
        else:
            self._log(acts, "unknown_timer", str(name))

    # --------------------------------------------------------------- SMS commands
    def _on_sms_command(self, ev, now, acts):
        sender = ev[1]
        cmd = self.commands.check(sender, ev[2], now, acts, self._authorized(sender))
        if cmd is None:
            return
        self._dirty = True
        if cmd == "UBICACION":
            self._reply(sender, ob.LOCATION)
        elif cmd == "ESTADO" or not self.active:   # CANCELAR with no alert: the status
            self._reply(sender, ob.STATUS)
        elif len(ev) > 3 and ev[3] is not None and \
                ev[3] - STALE_SLACK_S > ticks_diff(now, self.start_t) // 1000:
            acts.append(("log", "sms_ignored", "stale_%ds %s" % (ev[3], mask(sender))))
            self._reply(sender, ob.STATUS)
        else:
            self._cancel(now, acts, "c4", reply_to=sender)

    def _reply(self, sender, kind):
        # One reply of a kind waiting per number: it is written when it goes, with what
        # the machine knows then, so a command repeated (C4 sent it twice, or thirty
        # times) is answered by it, and the outbox does not grow with each.
        if not self.outbox.pending(sender, (kind,)):
            self.outbox.queue(sender, kind)
