"""Calls on LTE that end before they ring (VoLTE failing silently: LilyGO-Modem-Series #240,
"+CLCC: 1,0,2,..." then at once "+CLCC: 1,0,6,..."): the rule in Radio.call_ended that
notices them, and modemup.lte_calls_fail, the GSM fallback it starts. On the real MicroPython
unix port, the modem service without its UART (a stand-in module that answers from state).
The whole path on the virtual device: tests/scenarios/test_sc_a7670.py."""
import pytest

RIG = r'''
import asyncio, json, time
import dialect_a7670, dialect_sim800, modemup, radio

class Log:
    def __init__(self):
        self.entries = []
    def add(self, name, detail):
        self.entries.append([name, detail])

class Module:
    """AT+CREG?/+CEREG?/+CPSI? as an A7670 answers them, on LTE or, pinned to GSM
    (AT+CNMP=13), on 2G where there is some."""
    def __init__(self, on_gsm=False, gsm=True, volte=True):
        self.cnmp, self.gsm, self.volte, self.sent = 13 if on_gsm else 2, gsm, volte, []
        self.on_chup = None
    def rat(self):
        if self.cnmp == 13:
            return "GSM" if self.gsm else None
        return "LTE"
    async def cmd(self, c, ms=0, expect=None, check=True):
        self.sent.append(c)
        if c.startswith("AT+CNMP="):
            self.cnmp = int(c[8:])
        if c == "AT+CHUP" and self.on_chup:  # the call's end reported before CHUP's OK
            await self.on_chup()
        rat = self.rat()
        creg = 2 if not rat else 6 if rat == "LTE" and not self.volte else 1  # 6: SMS only
        lines = {"AT+CREG?": ["+CREG: 0,%d" % creg],
                 "AT+CEREG?": ["+CEREG: 0,%d" % (rat == "LTE")],
                 "AT+CPSI?": ["+CPSI: %s,Online,334-020,0x1A2B,1234,5" % rat if rat else
                              "+CPSI: NO SERVICE,Online"]}.get(c, [])
        return ("OK", None, lines)

class Radio(radio.Radio):
    def __init__(self, dialect=dialect_a7670, module=None):
        self.dialect, self.modem, self.log, self.posted = dialect, module or Module(), Log(), []
        self.post = self.posted.append
        self.call_active = self.call_out = self._recovering = self._voice_checking = False
        self._dialed_ms = self._end_cause = self._answered_id = None
        self.unrung = self._hangups = self._dials = 0
        self.fallbacks = 0
        self.no_2g = None
    async def _recover_once(self, step):   # the real one also holds new modem work back
        self.fallbacks += 1
        try:
            await getattr(modemup, step)(self)
        finally:
            self._recovering = False
    def _in_call_audio(self):
        return asyncio.sleep_ms(0)
    def watch_call(self):
        pass
    def dialled(self, ago_ms=0):   # ATD's OK came ago_ms ago
        self.call_out = True
        self._dialed_ms = time.ticks_add(time.ticks_ms(), -ago_ms)
        self._end_cause = None
    async def ends(self, cause=None, ago_ms=0):
        self.dialled(ago_ms)
        self._end_cause = cause
        await self.call_ended()
        await asyncio.sleep_ms(0)
        while self._recovering:              # the fallback it started, to its end
            await asyncio.sleep_ms(1)

def out(obj):
    print(json.dumps(obj))
'''


@pytest.fixture
def fw(mpy, monkeypatch):
    monkeypatch.setenv("BOTON_TIME_SCALE", "0.001")   # the fallback's waits for registration
    # radio compiles with the SMS alphabet from source here: more than the chip holds frozen
    return lambda code: mpy.json(RIG + code, timeout=60, heap="400k")


def test_two_calls_ending_at_once_without_ringing_fall_back_once_and_a_ring_starts_afresh(fw):
    r = fw('''
async def main():
    r = Radio()
    await r.ends("no_carrier")
    one = r.fallbacks
    await r.ends()                       # no final code seen: counted too
    two = r.fallbacks
    for _ in range(4):                   # still failing (no 2G): never again, no loop
        await r.ends("no_carrier")
    more = r.fallbacks
    r.posted.clear()
    r.dialled()
    r._call_moved("alerting")            # a call rings: the network carries calls again
    rang = [r.unrung, list(r.posted)]
    await r.ends("no_carrier")
    await r.ends("no_carrier")
    return [one, two, more, rang, r.fallbacks]
out(asyncio.run(main()))
''')
    assert r == [0, 1, 1, [0, [["voice", True], ["call_state", "alerting", None]]], 2]


def test_busy_unanswered_slow_or_hung_up_calls_and_the_sim800_start_no_fallback(fw):
    r = fw('''
async def main():
    r = Radio()
    for cause in ("busy", "no_answer", "busy"):   # C4's line said so: not the network
        await r.ends(cause)
    await r.ends("no_carrier", radio.QUICK_END_MS + 500)   # rang out its time: not at once
    await r.ends("no_carrier", radio.QUICK_END_MS + 500)
    r.modem.on_chup = r.call_ended
    for _ in range(2):                   # we hung up (her cancel), its end before the OK
        r.dialled()
        await r.hangup()
    s = Radio(dialect_sim800)            # 2G only: nothing to fall back from
    await s.ends()
    await s.ends()
    return [r.unrung, r.fallbacks, s.unrung, s.fallbacks]
out(asyncio.run(main()))
''')
    assert r == [0, 0, 2, 0]


@pytest.mark.parametrize("module, expected", [
    # 2G here: GSM only, said once, and the machine's redial goes over it
    ("Module()", [13, [["voice_fallback", "lte_calls_end"], ["voice", "2g"]], ["voice", True]]),
    # no 2G: back to automatic (LTE still carries her SMS); the machine tells her contacts to
    # call 911 (alert.py "voice")
    ("Module(gsm=False)", [2, [["voice_fallback", "lte_calls_end"], ["voice", "none"]], ["voice", False]]),
])
def test_the_fallback_pins_gsm_where_there_is_2g_else_says_there_is_no_voice(fw, module, expected):
    r = fw('''
async def main():
    r = Radio(module=%s)
    await r.ends()
    await r.ends()
    return [r.modem.cnmp, r.log.entries, r.posted[-1]]
out(asyncio.run(main()))
''' % module)
    assert r == expected


def test_not_on_lte_there_is_nothing_to_fall_back_from(fw):
    r = fw('''
async def main():
    r = Radio(module=Module(on_gsm=True))
    await r.ends()
    await r.ends()
    return [r.fallbacks, [c for c in r.modem.sent if c.startswith("AT+CNMP")], r.log.entries]
out(asyncio.run(main()))
''')
    assert r == [1, [], [["voice", "2g"]]]


def test_where_2g_was_found_missing_the_fallback_waits_longer_each_time(fw):
    """No VoLTE for her SIM and no 2G here: each fallback takes the module off the network
    for 40 s (no SMS, no 911) and writes its flash. The standby recheck and a refused dial
    (every 5 minutes) try it again only after 30 minutes, then 1 h, 2 h... up to 8 h; where
    2G answers, the wait starts afresh."""
    r = fw('''
async def main():
    r = Radio(module=Module(gsm=False, volte=False))
    ms = lambda s: int(s * 1000 * hw.TIME_SCALE)
    def pins():
        return sum(1 for c in r.modem.sent if c == "AT+CNMP=13")
    await modemup.recheck_voice(r)            # the first look: no 2G
    first = [pins(), r.no_2g[1], r.posted[-1]]
    await modemup.recheck_voice(r)            # 5 minutes on: not again
    await modemup.lte_calls_fail(r)           # nor for calls ending at once: no voice, said
    soon = [pins(), r.posted[-1]]
    waits = []
    for _ in range(6):                        # each wait passed: tried, and the next longer
        r.no_2g = (time.ticks_add(r.no_2g[0], -ms(r.no_2g[1])), r.no_2g[1])
        await modemup.recheck_voice(r)
        waits.append(r.no_2g[1])
    r.modem.gsm = True                        # she is where 2G is
    r.no_2g = (time.ticks_add(r.no_2g[0], -ms(r.no_2g[1])), r.no_2g[1])
    await modemup.recheck_voice(r)
    return [first, soon, waits, pins(), r.no_2g, r.posted[-1]]
import hw
out(asyncio.run(main()))
''')
    assert r == [[1, 1800, ["voice", False]], [1, ["voice", False]],
                 [3600, 7200, 14400, 28800, 28800, 28800], 8, None, ["voice", True]]
