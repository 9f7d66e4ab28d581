# The modem service: the alert machine's modem actions (covert audio, dial, hang up,
# answer, SMS), what the modem says (URCs, SMS commands, the sweep after a sleep), the
# status poll, cell and network time, carried out through the family's dialect
# (dialect_<family>.py).  Bringing the module up and the recovery ladder are in
# modemup.py, loaded only while they run (_up).  What the modem says goes back to the
# app as events through post(); what a refusal means is decided by aterrors and the
# dialect, not here.
import asyncio
import sys
import time

import atparse
import aterrors
import eventlog
import hw
import sms
from modem import RESTARTED, Modem, ModemError, ModemTimeout

FAMILIES = ("sim800", "a7670")  # dialect_<family>.py modules in this firmware
VOICE_RECHECK_S = 300            # a refused dial looks at the voice service at most this often
# Our call ended this soon after ATD's OK, never ringing (no +CLCC alerting), and not BUSY
# or NO ANSWER: the network would not carry it. On an A7670 on LTE that is VoLTE failing
# silently: "+CLCC: 1,0,2,..." then "immediately after" "+CLCC: 1,0,6,...", on a VoLTE SIM
# registered on LTE, while 2G calls work (LilyGO-Modem-Series #240). How soon is unknown
# ("immediately"; the rig's 0.3 s): 5 s is far below a ring's wait and above any real
# "at once". SILENT_FAILS such calls in a row: 2G where there is some (modemup.lte_calls_fail)
QUICK_END_MS = 5000
SILENT_FAILS = 2
# A dial refused with these +CME codes says nothing of the voice service: not allowed yet
# (3: before the module takes calls, or a call up), no network (30: recheck_voice's case).
DIAL_NOT_YET = (3, 30)
# Refusals that say the SIM stopped answering (27.007 9.2: +CME 10 not inserted, 13
# failure; 27.005 3.2.5: +CMS 310, 313): Radio.sim_lost.
SIM_GONE = {"CME": (10, 13), "CMS": (310, 313)}
# One of those refusals (her alert's dial or SMS, C4's reply) reads the SIM again if the
# last try is this old (s), whatever the growing wait of standby (modemup.sim_again) says:
# a SIM back in contact must not leave her alert unheard for up to an hour
SIM_AGAIN_ASKED_S = 30
# While a call of ours is out or up, the module is asked after this much silence (idle:
# the health check's 60 s). A hung module, or a SIM800 restarted at autobaud, says nothing
# and carries no call: C4 is called again only once the firmware knows.
CALL_CHECK_MS = 10000
# One SMS's text as GSM 03.38 bytes: sms.MAX characters, each an escape pair at worst.
SMS_BUF = 2 * sms.MAX
MAX_SMS_DUE = 64  # slot numbers waiting to be read: more than a SIM's storage holds


CMGL_UNREAD = 'AT+CMGL="REC UNREAD",1'     # 1: leave them unread until each is read
CMGL_UNREAD_UCS2 = 'AT+CMGL="00520045004300200055004E0052004500410044",1'
GATE_MS = 30000  # an SMS waits this long for a recovery of the module to end, then tries

# A command is its word and the PIN (smscommands): the first 40 characters of an SMS
# (UCS2 hex digits) are all that is ever read of it.
COMMAND_HEX = 160
# AT+CMGL's worst reply (SIM800 manual 4.2.3: 20 s for 50 SMS); a shorter wait left its
# late OK to complete whichever command came next
LIST_MS = 20000


def dialect_for(family, log=None):
    """The board profile's modem.family -> its dialect module; an unknown family is
    logged and the SIM800's is used (the button must still try)."""
    family = family or "sim800"
    if family not in FAMILIES:
        if log:
            log.add("modem_family_unknown", str(family)[:16])
        family = "sim800"
    return __import__("dialect_" + family)


class Radio:
    def __init__(self, board, log, post):
        self.board = board
        self.log = log
        self.post = post  # an event for the alert machine
        m = board["modem"]
        self.dialect = dialect_for(m.get("family"), log)
        self.uart = hw.UART(m["uart"], m["baud"], m["tx"], m["rx"])
        self.modem = Modem(self.uart, self._urc, hw.TIME_SCALE)
        self.call_active = False    # the modem reports our call as up
        self.call_out = False       # our ATD went out and its call has not ended
        self._watching = False      # watch_call's task runs
        self.call_ready = True      # False from a (re)start until the module takes calls
        self.ok = asyncio.Event()   # no recovery running: new modem work may start
        self.ok.set()
        # Cleared while the boot sets the module up (App's _main): the machine starts
        # before that, so that a press then is acted on at once, and its modem work
        # (her dial, her SMS) waits for the set-up however long it takes: a dial that
        # timed out in it would start a recovery ladder beside the set-up's own.
        self.set_up = asyncio.Event()
        self.set_up.set()
        self._end_cause = None
        self._answered_id = None    # +CLCC id of the incoming call answer() picked up
        self._recovering = False
        self.settled = False        # set up by init: a boot URC from here on is a restart
        self._reinit_due = False    # it restarted by itself: init again after any recovery
        # a bring-up or recovery (modemup) is running: the chip must stay awake to hear
        # the module's URCs ("Call Ready"), and the set-up decides its sleep mode
        self.bringing_up = 0
        self.settings_due = ()      # set-up commands the module refused (finish_settings)
        self._sms_error = None      # the last SMS refusal logged, until one goes out
        self._sms_read_error = None  # the same for reading SMS, until one is read
        self.sms_missed = False     # an SMS may wait unread that no +CMTI will name again
        self._cmgl = CMGL_UNREAD    # the sweep's listing, in the form the module takes
        self._modem_off = False     # known to be off (power-down URC, or supply cut)
        self.gave_up_rx = None      # modem.last_rx_ms when the ladder last gave up on it
        self._sms_due = []          # SMS indexes to read, in order (+CMTI, sweep); one reader
        self._sms_reader = None     # the task reading them, while there are any
        self._warned = None         # (supply warning URC, ticks) last passed on
        self._voice_checked_ms = None  # when a refused dial last looked at the voice service
        self._voice_checking = False
        self.no_2g = None           # (ticks, wait s): the 2G fallback last found none (modemup)
        self.sim_out = None         # (ticks, wait s): the SIM lost, and last read again (modemup)
        self._dialed_ms = None      # ticks of ATD's OK, until its call rings or ends
        self._hangups = 0           # our hang-ups so far: a dial waiting at the gate drops on one
        self._adopt = None          # (dial number, state): a kept call that dial takes as its own
        self._dials = 0             # dials so far: whether a dropped one is the latest
        self.unrung = 0             # our calls in a row that ended at once, never ringing
        self._sms_lock = asyncio.Lock()
        self._sms_buf = bytearray(SMS_BUF)  # GSM 03.38 bytes of the SMS being sent

    def unreachable(self):
        """The ladder gave up on the module (modem_dead, modem_hung) and it has not said a
        word since: standby leaves it alone (asking it to sleep every few seconds kept the
        ESP32 awake) until the health check brings it back."""
        return self.gave_up_rx is not None and self.gave_up_rx == self.modem.last_rx_ms

    async def _up(self, step, *args):
        """modemup.<step>(self, *args). Its code is loaded for the step and dropped after:
        bring-up and recovery are rare, and an .mpy firmware would keep ~4 KB of code in
        the heap through every alert (frozen, the module costs only its dict)."""
        import modemup
        self.bringing_up += 1
        try:
            return await getattr(modemup, step)(self, *args)
        finally:
            self.bringing_up -= 1
            sys.modules.pop("modemup", None)

    async def init(self, poll_status):
        """Bring the module up and configure it (modemup.init), again if it restarted in the
        middle. True if registered."""
        self._reinit_due = False
        ok = await self._up("init", poll_status)
        return await self._init_again(ok)

    async def _init_again(self, ok=None):
        """Set the module up again while it restarted in the middle of the last set-up
        (or by itself, during a recovery). Returns the last set-up's result, else ok."""
        while self._reinit_due:
            self._reinit_due = False
            ok = await self._up("init", self._poll_status)
        return ok

    # ------------------------------------------------------------ the machine's actions
    async def covert_audio(self):
        """Mic up, speaker and ringer silent before ATD/ATA; retried, because a call with
        the speaker on could give her away."""
        await self._gate()
        # one lock hold for every try: the dial (or answer) queued behind it waits for them
        if await self.modem.batch((self.dialect.COVERT_AUDIO,), attempts=3):
            self.log.add("audio_error", "covert_settings_refused")

    async def dial(self, number):
        self._end_cause = None
        self._answered_id = None
        hung = self._hangups
        self._dials += 1
        mine = self._dials
        await self._gate()
        kept, self._adopt = self._adopt, None
        if kept is not None and kept[0] == mine and hung == self._hangups:
            # the call the modem kept through a reset (C4's call-back) is this dial's: she
            # pressed while the boot set the module up (appboot.kept_call). An ATD would
            # put C4 on hold, hanging up would cut C4 off
            self.post(("call_state", kept[1], None))
            return
        if hung != self._hangups:
            # hung up while this dial waited for a recovery (her cancel, C4's CANCELAR): the
            # ATD after it was a call to C4 nobody ended, her microphone open. Its end is
            # news only if no newer dial (her next alert's) waits too: that one's call
            if mine == self._dials:
                self.post(("call_state", "ended", "local"))
            return
        try:
            await self.modem.cmd("ATD%s;" % number, 20000)
            self.call_out = True
            self._dialed_ms = time.ticks_ms()
            self.watch_call()
        except ModemError as e:
            self.log.add("dial_error", e.log_name())
            self.post(("call_state", "ended", "error"))
            if isinstance(e, ModemTimeout):
                self.kick_recovery()
                return
            if self._sim_refused(e):
                return
            if e.kind in ("NO CARRIER", "ERROR") or (e.kind == "CME" and e.code not in DIAL_NOT_YET):
                # refused at once though registered for voice: on LTE, VoLTE gone (no IMS
                # registration); ATD fails so (M109 p.47-48) and recheck_voice sees "voice"
                self._never_rang()
            if self.dialect.RAT_QUERY and self._voice_check_due():
                asyncio.create_task(self._up("recheck_voice"))

    def _never_rang(self):
        """Our call went nowhere (refused, or ended before it rang): SILENT_FAILS in a row
        and an A7670 on LTE falls back to 2G where there is some (modemup.lte_calls_fail)."""
        self.unrung += 1
        if self.unrung == SILENT_FAILS and self.dialect.GSM_ONLY:
            self.kick_recovery("lte_calls_fail")

    def _sim_refused(self, e):
        """A dial or an SMS refused because the SIM stopped answering: True, and the
        SIM is read again (sim_lost)."""
        if e.code in SIM_GONE.get(e.kind, ()):
            self.sim_lost(e.log_name(), SIM_AGAIN_ASKED_S)
            return True
        return False

    def sim_lost(self, why, wait_max=None):
        """The SIM stopped answering (a knock, a worn holder: +CPIN: NOT READY, or a dial
        or SMS refused for it). The module does not read it again by itself, and until
        it does there is no call and no SMS, her alert's included: AT+CFUN=0 then 1 reads
        it (modemup.sim_again), at once the first time, then at growing waits (wait_max
        s at most: a refusal)."""
        if self.sim_out is None:
            self.log.add("sim_lost", why)
            self.sim_out = (time.ticks_ms(), 0)
        if self._sim_again_due(wait_max):
            self.kick_recovery("sim_again")

    def sim_back(self):
        if self.sim_out is not None:
            self.sim_out = None
            self.log.add("sim_back", "")

    def _sim_again_due(self, wait_max=None):
        s = self.sim_out
        if s is None or self._recovering or self.call_active or self.call_out:
            return False  # never AT+CFUN=0 under a call: 911 with no SIM needs none
        wait = s[1] if wait_max is None else min(s[1], wait_max)
        return time.ticks_diff(time.ticks_ms(), s[0]) >= int(wait * 1000 * hw.TIME_SCALE)

    def _voice_check_due(self):
        """A refused dial looks at the voice service (modemup.recheck_voice) at most every
        VOICE_RECHECK_S, one look at a time."""
        now = time.ticks_ms()
        last = self._voice_checked_ms
        if self._voice_checking or (last is not None and time.ticks_diff(now, last)
                                    < int(VOICE_RECHECK_S * 1000 * hw.TIME_SCALE)):
            return False
        self._voice_checking = True
        self._voice_checked_ms = now
        return True

    async def hangup(self, ours=True):
        # its end comes as a URC (maybe before CHUP's OK): ours, not the network's
        # (call_ended); the call watch need not wait for it. ours: our call's hang-up (not
        # a stranger's call rejected), which a dial still waiting at the gate gives up for
        if ours:
            self._hangups += 1
        self.call_out = False
        await self.at(self.dialect.HANGUP)

    async def answer(self):
        """ATA's OK: the call is connected. The modem reports an incoming call's progress
        with +CLCC lines of dir 1, which _urc takes only for the call answered here (by
        its id): a stranger's call ending must not end ours."""
        await self._gate()
        try:
            await self.modem.cmd(self.dialect.ANSWER, 20000)
        except ModemError as e:
            self.log.add("at_error", str(e))
        # the call list decides, also after an error: C4 may have given up just as we
        # picked up (NO CARRIER), and a machine left "answering" ignored C4's next call
        self._answered_id = self.dialect.answered_id(await self._query(("AT+CLCC", "+CLCC")))
        if self._answered_id is None:
            await self.call_ended()
            return
        self.call_active = True
        self.watch_call()
        self.post(("call_state", "active", None))
        await self._in_call_audio(True)

    async def _in_call_audio(self, answered=False):
        """What the family accepts only during a connected call (the A7670's speaker
        mute), each time a call becomes active: it resets when the call ends. Refused
        because the call already ended is no error."""
        d = self.dialect
        if d.IN_CALL_AUDIO and await self.modem.batch(d.IN_CALL_AUDIO, attempts=3) and \
                (answered or self.call_active):
            self.log.add("audio_error", "in_call_refused")

    async def at(self, command):
        try:
            await self.modem.cmd(command, 20000)
        except ModemError as e:
            self.log.add("at_error", str(e))

    async def send_sms(self, number, text, n):
        """Report ("sms_sent", n, ok, refused_for_good) back to the machine. One SMS at a
        time, encoded into one buffer made at boot: her alert's SMS (up to six at once)
        used to wait for the module each with its own bytes, at the alert's heap peak."""
        async with self._sms_lock:
            await self._send_sms(number, text, n)

    async def _send_sms(self, number, text, n):
        try:
            size = sms.encode_into(text, self._sms_buf, "GSM")
        except ValueError:  # the texts are built to sms.MAX characters: never one of hers
            self.log.add("sms_error", "too_long")
            self.post(("sms_sent", n, False, True))
            return
        refused = False
        await self._gate()
        await self.finish_settings()
        try:
            await self.modem.send_sms(number, memoryview(self._sms_buf)[:size])
            ok = True
            self._sms_error = None
        except ModemError as e:
            if e.log_name() != self._sms_error:  # a run of the same one is logged once
                self._sms_error = e.log_name()
                self.log.add("sms_error", self._sms_error)
            ok = False
            refused = aterrors.sms_retry_class(e.kind, e.code) == aterrors.REFUSED
            if isinstance(e, ModemTimeout):
                self.kick_recovery()
            self._sim_refused(e)
        self.post(("sms_sent", n, ok, refused))

    async def finish_settings(self):
        """Send again what the set-up could not set: a module not yet "SMS Ready" refuses
        text mode and +CMTI, and without them every SMS of her alert is refused (PDU mode)
        and C4's commands go unheard. On its SMS-ready URC, before each SMS, at each
        health check."""
        if not self.settings_due:
            return
        failed = tuple(await self.modem.batch(self.settings_due))
        if not failed:
            self.log.add("init_done", "")
        self.settings_due = failed

    async def _gate(self):
        await self.set_up.wait()
        try:
            await asyncio.wait_for_ms(self.ok.wait(), int(GATE_MS * hw.TIME_SCALE))
        except asyncio.TimeoutError:
            pass  # try anyway: the alert must not stall on a slow recovery

    # ------------------------------------------------------------ what the modem says
    def _urc(self, name, args):
        d = self.dialect
        if name == "+CLCC":
            c = atparse.parse_clcc(args)
            if not c:
                return
            state = d.CLCC_STATE.get(c[2])
            if c[1] != 0:
                # incoming calls ring through RING/+CLIP; only the end of the one we
                # answered is ours (answer() reported it active)
                if state == "ended" and c[0] == self._answered_id:
                    asyncio.create_task(self.call_ended())
                return
            if state == "ended":
                asyncio.create_task(self.call_ended())
            elif state:
                self._call_moved(state)
        elif name in d.CALL_END:
            self._end_cause = d.CALL_END[name]
        elif name == d.BOOT_URC:
            self.call_ready = False
            # set up and now booting again; or never set up (it booted after the set-up
            # had given up on it: an A7670 past its typical 11 s) and nobody is on it
            if self.settled or not (self.bringing_up or self._recovering):
                self._restarted("boot_urc")
        elif name == RESTARTED:
            if self.settled:
                self._restarted("echo")
            else:
                # in the middle of its set-up, after ATE0: what was set so far is gone
                # (echo on, numeric errors off). Set it up again once this one ends, or the
                # echo it kept would hide its next restart (PDU mode: every SMS refused).
                self.log.add("modem_restarted", "echo")
                self._reinit_due = True
        elif name == d.CALL_READY_URC:
            self.call_ready = True
        elif name == d.SMS_READY_URC:
            if self.settings_due and not self.bringing_up:
                asyncio.create_task(self.finish_settings())
        elif name == "+CREG":
            # AT+CREG=1 (the set-up): the network back is when SMS her alert could not
            # send go out, not at the next 5-minute update (stat 6/7: SMS only, enough)
            # Every "up" is told, not only a change: the "down" before it may have come
            # while the chip slept (its UART deaf), and the machine skips whoever has it.
            reg = atparse.parse_creg(args)
            if reg is not None:
                self.post(("network", reg[0] in (1, 5, 6, 7)))
        elif name == "+CPIN":
            # not during a set-up or a ladder: a module starting, or our own AT+CFUN=0,
            # says NOT READY too
            if not self.settled or self.bringing_up or self._recovering:
                return
            v = args.strip()
            if v == "READY":
                self.sim_back()
            elif v in ("NOT READY", "NOT INSERTED"):
                self.sim_lost(v.replace(" ", "_"))
        elif name == "+CLIP":
            # ucs2_ascii: a call ringing while an SMS is read in UCS2 may show its number
            # so ("002B0035..."), and C4 calling back would not be known
            self.post(("incoming_call", sms.ucs2_ascii(atparse.parse_clip(args) or "")))
        elif name == "+CMTI":
            self._sms_arrived(atparse.parse_cmti(args))
        elif name in d.POWER_WARNING or name in d.POWER_DOWN:
            if name not in d.POWER_DOWN and self._repeated(name):
                return
            self.log.add("modem_power", name.replace(" ", "_"))
            if name in d.POWER_WARNING:  # not our own power-off: the supply is failing
                self.post(("power_warning", d.POWER_WARNING[name]))
            if name in d.POWER_DOWN:
                self.modem.abort("power down")
                self.call_lost()
                asyncio.create_task(self._power_back())

    def _call_moved(self, state):
        """Our call's state, as a +CLCC line reports it."""
        if state != "dialing":  # it rings: the network carries our calls
            self._dialed_ms = None
            if self.unrung >= SILENT_FAILS:
                self.post(("voice", True))  # lte_calls_fail may have said none
            self.unrung = 0
        if state == "active" and not self.call_active:
            asyncio.create_task(self._in_call_audio())
            self.watch_call()
        self.call_active = state == "active"
        self.post(("call_state", state, None))

    async def _check_listed(self, lines):
        """AT+CLCC's lines against what we believe of our call: gone, its end is handled
        (end lines lost on the UART left it "up" for the rest of her alert); up while we
        believe it rings, C4 answered (its +CLCC came in the middle of this answer and was
        read as part of it: the dial timeout would hang up on C4). Only forward: a list
        read before a URC must not undo it."""
        state = self.dialect.our_call(lines, self._answered_id)
        if state is None:
            await self.call_ended()
        elif state == "active" and self.call_out and not self.call_active:
            self._call_moved(state)

    def _repeated(self, warning):
        """The same supply warning again within the dialect's WARNING_REPEAT_MS (the A7670
        repeats AT+CVALARM's every 10 s while the supply is out of range): not news."""
        now = time.ticks_ms()
        last = self._warned
        # a stamp older than half the ticks period (6.2 days) reads negative: not a repeat
        if last and last[0] == warning and \
                0 <= time.ticks_diff(now, last[1]) < int(self.dialect.WARNING_REPEAT_MS * hw.TIME_SCALE):
            return True
        self._warned = (warning, now)
        return False

    async def call_ended(self):
        """Tell a normal hang-up by the far end from a drop: only AT+CEER knows."""
        was_active, self.call_active = self.call_active, False
        t, self._dialed_ms = self._dialed_ms, None
        # ended by the network (not our hang-up), at once, never ringing: see QUICK_END_MS.
        # Once per run of them, so the modes never alternate (reset when a call rings)
        if self.call_out and t is not None and self._end_cause in (None, "no_carrier") and \
                time.ticks_diff(time.ticks_ms(), t) < int(QUICK_END_MS * hw.TIME_SCALE):
            self._never_rang()
        self.call_out = False
        self._answered_id = None
        lines = ()
        if was_active:
            cmd, prefix = self.dialect.CALL_END_CAUSE_QUERY
            try:
                _, _, lines = await self.modem.cmd(cmd, 2000, expect=prefix, check=False)
            except ModemError:
                pass
        self.post(("call_state", "ended", self.dialect.end_cause(was_active, self._end_cause, lines)))

    def _restarted(self, how):
        """The module restarted by itself (a supply dip under a transmit burst): its call is
        gone and its settings are back to their defaults (echo on, no call-state reports,
        PDU mode). Set it up again, as after a recovery, new modem work waiting for it."""
        self.settled = False
        self.log.add("modem_restarted", how)
        self.call_lost()
        self._reinit_due = True
        if not self._recovering:  # else the recovery running sets it up when it is done
            self._recovering = True
            asyncio.create_task(self._recover_once(None))

    def call_lost(self):
        """The module switched itself off, or the ladder restarted it: any call it carried
        is gone, and no NO CARRIER or +CLCC will say so. In idle the machine ignores it."""
        was_active, self.call_active = self.call_active, False
        self.call_out = False
        self._answered_id = None
        self.post(("call_state", "ended", "dropped" if was_active else "no_carrier"))

    def _sms_arrived(self, index):
        """Read the SMS at index in turn. One reader and a list of slot numbers, not a task
        per +CMTI: a burst (the SMSC hands over what it held once she is back in coverage)
        left 30 tasks waiting on the UART, and a MemoryError reset the chip in her alert.
        A slot named again while it is read is read again: a new SMS in a freed slot is
        not lost, and the same one twice finds the slot empty."""
        due = self._sms_due
        if index is not None and index not in due and len(due) < MAX_SMS_DUE:
            due.append(index)
        elif index is None or index not in due:
            self.sms_missed = True  # past MAX_SMS_DUE, or a garbled line: a sweep finds it
        if self._sms_reader is None and due:
            self._sms_reader = asyncio.create_task(self._read_due())

    async def _read_due(self):
        due = self._sms_due
        try:
            while due:
                await self.read_sms(due.pop(0))
        finally:
            self._sms_reader = None

    def _read_error(self, e):
        """A read or delete the module refused: logged once a run (a slot that keeps
        failing is tried at each health check), and swept again, in an alert too."""
        self.sms_missed = True
        if str(e) != self._sms_read_error:
            self._sms_read_error = str(e)
            self.log.add("sms_read_error", self._sms_read_error)

    async def read_sms(self, index):
        # ",1": the SMS stays unread until it is handed over and deleted. A read that fails
        # half-way (a line of it or its header found no heap, at the alert's burst) then
        # leaves it for the next sweep, which lists unread ones: marked read at once, C4's
        # CANCELAR was lost, and the next set-up's AT+CMGD=1,3 deleted it unanswered.
        try:
            _, _, lines = await self.modem.read_texts("AT+CMGR=%d,1" % index, 5000, "+CMGR",
                                                      hex_cut=COMMAND_HEX)
        except ModemError as e:
            self._read_error(e)
            return
        if not lines:
            return  # an empty slot: read and deleted already (a +CMTI and a sweep)
        try:
            head = atparse.reply_line(lines, "+CMGR:")
            i = lines.index(head) if head else 0  # what comes before the header is no SMS's
            hdr = atparse.parse_cmgr(lines[i])
            sender = sms.ucs2_ascii(hdr[1]) if hdr else ""  # read in UCS2: "002B0035..."
            # its age by its time stamp (SCTS: when the SMSC took it), if the RTC knows it
            sent = atparse.parse_cclk(hdr[3]) if hdr else None
            now = hw.unix_time()
            age = now - sent if sent is not None and now >= eventlog.SYNCED_AFTER else None
            self.post(("sms_command", sender, "\n".join(lines[i + 1:]), age))
        except MemoryError as e:
            self._read_error(e)  # still unread: the next sweep reads it again
            return
        self._sms_read_error = None
        try:
            await self.modem.cmd("AT+CMGD=%d" % index, 5000)
        except ModemError as e:
            self._read_error(e)
            # marked read instead (read ones go at the next set-up's AT+CMGD=1,3): left
            # unread, every sweep would hand the same command over again
            try:
                await self.modem.read_texts("AT+CMGR=%d" % index, 5000, "+CMGR", False)
            except ModemError:
                pass

    async def sweep(self):
        """What the modem said while the ESP32 slept: a call ringing or gone (AT+CLCC) and
        unread SMS (AT+CMGL, left unread until each is read and deleted)."""
        self.sms_missed = False
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
            for number in self.dialect.ringing(lines):
                self.post(("incoming_call", sms.ucs2_ascii(number)))
            if self.call_active or self.call_out:
                await self._check_listed(lines)  # its NO CARRIER or +CLCC was lost
            # listed only when the SIM holds one: each listing switches the module's
            # character set there and back (the A76XX saves it to its flash each time)
            _, _, lines = await self.modem.cmd("AT+CPMS?", 3000, expect="+CPMS", check=False)
            if atparse.sms_stored(lines):
                # the listing carries every unread text: each header queues its slot
                kind, _, _ = await self.modem.read_texts(self._cmgl, LIST_MS, "+CMGL",
                                                         False, self._listed)
                if kind != "OK":
                    # SIMCom modules take the status in plain text in UCS2 (real A7682E
                    # and SIM868 logs); 27.005 would have it in the set too: the other
                    # form is tried, and kept if the module takes it
                    self.log.add("sweep_error", "CMGL_" + kind)
                    other = CMGL_UNREAD_UCS2 if self._cmgl == CMGL_UNREAD else CMGL_UNREAD
                    kind, _, _ = await self.modem.read_texts(other, LIST_MS, "+CMGL",
                                                             False, self._listed)
                    if kind == "OK":
                        self._cmgl = other
        except ModemError as e:
            self.log.add("sweep_error", str(e))
            self.sms_missed = True
            return
        if self._sms_reader is not None:
            await self._sms_reader  # read before the chip may sleep again

    def _listed(self, line):
        """A listing's line: a header's slot is queued to be read as it comes, and nothing
        is kept (a full SIM's 30 headers held at once found no heap in her alert)."""
        if line[:6] == "+CMGL:":
            try:
                self._sms_arrived(int(line[6:].split(",")[0]))
            except ValueError:
                self.sms_missed = True  # a garbled header: that SMS waits for the next sweep
        return False

    async def call_survived(self):
        """After an ESP32 reset: the modem kept its power, so our call may still be up:
        its state ("active", "dialing", "alerting"), "callback" (a call to her answered
        before the reset), or None."""
        try:
            _, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
        except ModemError:
            return None
        state = self.dialect.our_call(lines)
        if state is None:
            # an incoming call that is up was answered by us (auto-answer is off): C4
            # calling back. Not seen, the resumed alert dialled C4 over it
            self._answered_id = self.dialect.answered_id(lines)
            if self._answered_id is not None:
                state = "callback"  # not her call reaching C4: a caller ID said C4
        return state

    # ------------------------------------------------------------ lifecycle
    async def _query(self, query):
        cmd, prefix = query
        try:
            return (await self.modem.cmd(cmd, 3000, expect=prefix, check=False))[2]
        except ModemError:
            return ()

    async def refresh_cell(self):
        """Serving cell id + LAC: the location of last resort when there is no fix
        (AT+CIPGSMLOC no longer works; C4 can resolve a cell id with the carrier)."""
        cmd, prefix = self.dialect.CELL_QUERY
        try:
            _, _, lines = await self.modem.cmd(cmd, 3000, expect=prefix, check=False)
        except ModemError:
            return
        cell = self.dialect.serving_cell(lines)
        if cell:
            self.post(("cell", cell))

    async def poll(self, battery_known):
        """The module's battery reading (unless the board's gauge gave one) and signal."""
        d = self.dialect
        for (cmd, prefix), read, kind in ((d.BATTERY_QUERY, d.battery_pct, "battery"),
                                          (d.SIGNAL_QUERY, _rssi, "signal")):
            if kind == "battery" and battery_known:
                continue
            try:
                _, _, lines = await self.modem.cmd(cmd, 2000, expect=prefix)
            except ModemError:
                continue
            line = atparse.reply_line(lines, prefix)
            v = read(line) if line else None
            if v is not None:
                self.post((kind, v))

    async def network_clock(self):
        """Set an unset RTC from the network's time (AT+CCLK? after NITZ): a button kept
        indoors may never see a GPS fix. GPS UTC wins: this never overrides a set clock.
        Many networks send no time, and the module's clock then counts from its 2004
        default: never trusted (False is returned then; None when the RTC was set or the
        module did not answer)."""
        if hw.unix_time() >= eventlog.SYNCED_AFTER:
            return None
        try:
            _, _, lines = await self.modem.cmd("AT+CCLK?", 2000, expect="+CCLK")
        except ModemError:
            return None
        line = atparse.reply_line(lines, "+CCLK")
        now = atparse.parse_cclk(line) if line else None
        if now is None or now < eventlog.NETWORK_TIME_AFTER:
            return False
        if hw.unix_time() < eventlog.SYNCED_AFTER:  # a GPS fix may have set it meanwhile
            hw.set_rtc(now)
            self.log.add("clock", "network")
        return True

    async def save_settings(self):
        """AT&W: the module starts with its set-up's time switch on (the dialect's
        NETWORK_TIME_ON: the network's time at its first registration). AT&W saves the echo too: saved off, the module's next silent
        restart (a SIM800 at autobaud says no RDY) would show no echo, its only sign, and
        its set-up would be lost. Saved on, then off again."""
        self.modem.echo_expected()
        try:
            await self.modem.cmd("ATE1", 2000)
            await self.modem.cmd("AT&W", 2000)
        except ModemError:
            pass
        try:
            await self.modem.cmd("ATE0", 2000)
        except ModemError:
            pass

    async def set_sleep(self, on):
        """The module's own sleep mode; True if it took it."""
        d = self.dialect
        try:
            await self.modem.cmd(d.SLEEP_SET % (d.SLEEP_ON if on else d.SLEEP_OFF), 2000)
        except ModemError:
            return False
        self.modem.sleepy = on
        self.log.add("power", "modem_sleep" if on else "modem_awake")
        return True

    def watch_call(self):
        """A call of ours went out or up: check the module every CALL_CHECK_MS of silence
        until the call is over (one task however many calls follow)."""
        if not self._watching:
            self._watching = True
            asyncio.create_task(self._call_watch())

    async def _call_watch(self):
        try:
            while self.call_active or self.call_out:
                await asyncio.sleep_ms(CALL_CHECK_MS)
                await self.check(CALL_CHECK_MS)
                await self._call_listed()
        finally:
            self._watching = False

    async def _call_listed(self):
        """The module's call list read during our call (_check_listed)."""
        if self._recovering or self.bringing_up:
            return
        try:
            kind, _, lines = await self.modem.cmd("AT+CLCC", 3000, expect="+CLCC", check=False)
        except ModemError:
            return
        if kind == "OK" and (self.call_active or self.call_out):
            await self._check_listed(lines)

    async def check(self, every_ms):
        """Health check: silent for every_ms and no answer to AT: run the recovery ladder.
        Else what the set-up could not set, if anything."""
        if time.ticks_diff(time.ticks_ms(), self.modem.last_rx_ms) > every_ms:
            try:
                ok = (await self.modem.cmd("AT", 1000, check=False))[0] == "OK"
            except ModemTimeout:
                ok = False
            if not ok:
                if not self._recovering:
                    self._recovering = True
                    await self._recover_once()
                return
        if not (self.bringing_up or self._recovering):
            if self._sim_again_due():
                self.kick_recovery("sim_again")
                return
            await self.finish_settings()
            # The voice service looked at in standby too, not only when a dial is refused:
            # 2G switched off after a fallback pinned the module to it left the button with
            # no network (no SMS command, no daily report) until she pressed
            if self.dialect.RAT_QUERY and self._voice_check_due():
                await self._up("recheck_voice")

    # ------------------------------------------------------------ recovery ladder
    def kick_recovery(self, step="recover"):
        """A command timed out: start the recovery ladder now, not at the next health check.
        (Or another modemup step that holds new modem work back while it runs.)"""
        if not self._recovering:
            self._recovering = True
            asyncio.create_task(self._recover_once(step))

    async def _recover_once(self, step="recover"):
        self.ok.clear()  # new modem work waits for the ladder instead of queueing before it
        try:
            if step:
                await self._up(step)
            await self._init_again()  # it restarted by itself: set it up again
        finally:
            self._recovering = False
            self.ok.set()

    async def _power_back(self):
        """The module switched itself off (supply sag, or someone's PWRKEY): try to bring
        it back once the supply may have recovered; the ladder ends in a power-on."""
        self._modem_off = True  # it said so: PWRKEY may switch it on without a supply cut
        await asyncio.sleep_ms(int(5000 * hw.TIME_SCALE))
        self.kick_recovery()

def _rssi(line):
    v = atparse.parse_csq(line)
    return v[0] if v else None
