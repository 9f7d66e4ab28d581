"""The modem driver (firmware/lib/modem.py) on MicroPython, against a scripted module on a
fake UART: what a real module does that the rig's timing rarely shows (a reply later than
the firmware waited, a late answer arriving before AT+CMGS's prompt).

The driver runs on the real MicroPython unix port (its asyncio has wait_for_ms and
streams over any object with ioctl), never under CPython.
"""
import pytest

# A module on a fake UART: `answers` maps a command line to [(delay_ms, bytes)], sent
# that long after the line's CR (lines it has no answer for: OK at once; AT+CMGS: its
# prompt). An AT+CMGS answered with a prompt enters text entry: ESC leaves it with OK,
# Ctrl-Z sends with +CMGS, and every other byte is text, as on a real module.
MODULE = r'''
import io, asyncio, json, time
import modem

class Module(io.IOBase):
    def __init__(self, answers):
        self.answers = answers
        self.rx = bytearray()     # what the module says, for the driver to read
        self.tx = bytearray()     # every byte the driver wrote
        self.line = bytearray()
        self.text = None          # bytes typed in text entry, or None: command mode
        self.typed = []           # what each SMS text entry ended with

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return (arg & 1 if self.rx else 0) | (arg & 4)
        return 0

    def say(self, data, ms=0):
        async def later():
            await asyncio.sleep_ms(ms)
            self.rx += data
        asyncio.create_task(later())

    def write(self, data):
        data = bytes(data)
        self.tx += data
        for b in data:
            if self.text is not None:
                if b == 0x1B:
                    self.typed.append(("esc", bytes(self.text)))
                    self.text = None
                    self.say(b"\r\nOK\r\n", 5)
                elif b == 0x1A:
                    self.typed.append(("sent", bytes(self.text)))
                    self.text = None
                    self.say(b"\r\n+CMGS: 7\r\n\r\nOK\r\n", 5)
                else:
                    self.text.append(b)
            elif b == 13:
                line, self.line = bytes(self.line).decode(), bytearray()
                i = line.find("AT")
                if i >= 0:
                    self.run(line[i:])
            elif b != 10:
                self.line.append(b)
        return len(data)

    def run(self, line):
        cmgs = line.startswith("AT+CMGS=")
        said = self.answers.get(line, [(0, b"\r\n> " if cmgs else b"\r\nOK\r\n")])
        for ms, data in said:
            self.say(data, ms)
        if cmgs and said[-1][1].endswith(b"> "):
            self.text = bytearray()

def run(main):
    async def go():
        asyncio.create_task(m.reader())
        return await main()
    out(asyncio.run(go()))

def out(obj):
    print(json.dumps(obj))

def err(e):
    return [e.kind, e.text]
'''

CMGS = 'AT+CMGS="+524491112233"'


@pytest.fixture
def driver(mpy):
    def run(code):
        return mpy.json(MODULE + code, timeout=60)
    return run


def test_a_batch_waits_out_the_manuals_time_for_deleting_the_sims_read_sms(driver):
    # AT+CMGD=1,3 on a SIM with many read SMS: up to 25 s (SIM800 AT manual V1.09). At the
    # batch's 2 s it was given up, and its late OK answered AT+CLIP=1, whose own OK then
    # answered the command after that.
    r = driver('''
u = Module({"AT+CMGD=1,3": [(100, b"\\r\\nOK\\r\\n")],          # 10 s at scale 0.01
            "AT+CSQ": [(0, b"\\r\\n+CSQ: 21,0\\r\\n\\r\\nOK\\r\\n")]})
m = modem.Modem(u, lambda n, a: None, scale=0.01)
m.sleepy = False
async def main():
    failed = await m.batch(("AT+CMGD=1,3", "AT+CLIP=1"))
    _, _, lines = await m.cmd("AT+CSQ", expect="+CSQ")
    return [failed, lines]
run(main)
''')
    assert r == [[], ["+CSQ: 21,0"]]


@pytest.mark.parametrize("prompt_ms", [0, 20], ids=["prompt_with_it", "prompt_after_it"])
def test_a_late_ok_before_the_prompt_leaves_the_module_out_of_text_entry(driver, prompt_ms):
    # An earlier command's late OK, then AT+CMGS's "> ": the driver took the OK for a
    # refusal and left the module in text entry, so every command after it (the dial to
    # C4 among them) was typed into an SMS
    r = driver(f'''
u = Module({{{CMGS!r}: [(0, b"\\r\\nOK\\r\\n"), ({prompt_ms}, b"\\r\\n> ")],
            "AT+CSQ": [(0, b"\\r\\n+CSQ: 21,0\\r\\n\\r\\nOK\\r\\n")]}})
m = modem.Modem(u, lambda n, a: None, scale=0.01)
m.sleepy = False
async def main():
    try:
        await m.send_sms("+524491112233", b"ALERTA")
        got = "sent"
    except modem.ModemError as e:
        got = err(e)
    try:
        lines = (await m.cmd("AT+CSQ", expect="+CSQ"))[2]
    except modem.ModemError as e:
        lines = err(e)
    return [got, [[k, t.decode()] for k, t in u.typed], lines]
run(main)
''')
    got, typed, lines = r
    assert got == ["stale", "OK"]
    assert typed == [["esc", ""]]           # cancelled, nothing typed into it
    assert lines == ["+CSQ: 21,0"]          # the next command has its own answer


def test_a_refusal_before_the_prompt_is_reported_at_once(driver):
    # +CMS ERROR 310 (no SIM) comes instead of the prompt: the driver waited out the whole
    # PROMPT_MS anyway, holding the UART from the dial to C4
    r = driver(f'''
u = Module({{{CMGS!r}: [(0, b"\\r\\n+CMS ERROR: 310\\r\\n")]}})
m = modem.Modem(u, lambda n, a: None)
m.sleepy = False
async def main():
    t = time.ticks_ms()
    try:
        await m.send_sms("+524491112233", b"ALERTA")
        got = "sent"
    except modem.ModemError as e:
        got = err(e)
    return [got, time.ticks_diff(time.ticks_ms(), t), modem.PROMPT_MS, u.typed]
run(main)
''')
    got, took_ms, prompt_ms, typed = r
    assert got == ["CMS", "310"]
    assert took_ms < prompt_ms / 5, took_ms
    assert typed == []


def test_a_prompt_then_text_sends_the_sms(driver):
    r = driver(f'''
u = Module({{}})
m = modem.Modem(u, lambda n, a: None, scale=0.01)
m.sleepy = False
async def main():
    mr = await m.send_sms("+524491112233", b"ALERTA")
    return [mr, [[k, t.decode()] for k, t in u.typed]]
run(main)
''')
    assert r == [7, [["sent", "ALERTA"]]]


def test_a_module_whose_cfun_reset_answers_after_3_s_is_recovered_by_it(driver):
    # The recovery ladder's AT+CFUN=1,1 (modemup.revive) got 2 s; the SIM800 AT manual gives
    # AT+CFUN 10 s (modem.SLOW). A live module that took 3 s to answer was taken for hung:
    # on to the RESET pin and the supply cut (here, a board with neither: left hung).
    r = driver('''
import dialect_sim800, modemup
u = Module({"AT+CFUN=1,1": [(300, b"\\r\\nOK\\r\\n")]})       # 3 s at scale 0.1
m = modem.Modem(u, lambda n, a: None, scale=0.1)
m.sleepy = False
class Log:
    def __init__(self):
        self.entries = []
    def add(self, name, detail):
        self.entries.append([name, detail])
class Radio:  # what revive reads of radio.Radio: no RESET, supply or PWRKEY pin wired
    modem, dialect, board, log, _modem_off = m, dialect_sim800, {"modem": {}}, Log(), False
async def main():
    r = Radio()
    return [await modemup.revive(r), r.log.entries]
run(main)
''')
    assert r == ["cfun", []]
