"""What C4 receives, for docs/guia-c4.md: every SMS example there is made by the firmware's
own alert machine (firmware/lib/alert.py with alerttexts.py and sms.py), driven through an
alert as the device drives it, and read off the send_sms actions to C4's number. So C4's
copy is shown as C4 gets it (its cancel notice without the "llame al 911" advice her
contacts get), not as a formatter could write it.

    c4_sms_markdown()      the SMS C4's first number receives during and after an alert
    c4_replies_markdown()  the replies to UBICACION, ESTADO and CANCELAR
    c4_cell_markdown()     the cell of the location-less SMS in decimal, for OpenCelliD
    c4_redial_markdown()   when the button calls which number if nobody answers
    Story(**cfg)           the driver (tests/test_docs.py uses it too)
"""
from ..rules import build_config, firmware_module
from .common import DocsError

C4 = "+524499100000"            # the technician guide's example C4 (449 910 0000)
C4_2 = "+524499100001"          # a second C4 number
CONTACT = "+524491112233"
PIN = "482916"                  # the technician guide's example PIN
POINT = {"lat_e7": 218823400, "lon_e7": -1022914300, "hdop": 1.2, "sats": 8, "valid": True}
# the serving cell as the modems report it (atargs.parse_ceng, dialect_a7670.serving_cell):
# MCC and MNC decimal, the rest hexadecimal
CELL_GSM = {"cell": 0, "mcc": "334", "mnc": "020", "lac": "1A2B", "cellid": "3C4D"}
CELL_LTE = {"cell": 0, "mcc": "334", "mnc": "020", "tac": "7764", "eci": "1A2B3C4"}


class Story:
    """AlertMachine (cfg: over her provisioned configuration) with its timers kept and every
    SMS reported accepted at once; wait() takes seconds. sent: (number, text) in sending
    order; dials: (ms, number)."""

    def __init__(self, **cfg):
        # her configuration as `boton provision` writes it (its defaults: the update
        # interval, the alert's length), with what app.py adds (the firmware's version)
        c = build_config(alias="Luna", contacts=[CONTACT], c4=[C4, C4_2], device_id="BS-0042", pin=PIN)
        c["fw"] = firmware_module("version").VERSION
        c.update(cfg)
        self.m = firmware_module("alert").AlertMachine(c)
        self.ms = 1000
        self.timers = {}
        self.sent = []
        self.dials = []         # (ms, number)
        self._run(self.m.start(self.ms))

    def _run(self, acts):
        for a in acts:
            if a[0] == "set_timer":
                self.timers[a[1]] = self.ms + a[2]
            elif a[0] == "cancel_timer":
                self.timers.pop(a[1], None)
            elif a[0] == "dial":
                self.dials.append((self.ms, a[1]))
            elif a[0] == "send_sms":
                self.sent.append((a[1], a[2]))
                self._run(self.m.handle(("sms_sent", a[3], True), self.ms))

    def ev(self, *e):
        self._run(self.m.handle(e, self.ms))
        return self

    def wait(self, s):
        """s seconds on, the timers firing in time order."""
        end = self.ms + int(s * 1000)
        while True:
            due = [(t, n) for n, t in self.timers.items() if t <= end]
            if not due:
                break
            t, name = min(due)
            del self.timers[name]
            self.ms = t
            self._run(self.m.handle(("timer", name), self.ms))
        self.ms = end
        return self

    def command(self, text, sender=C4):
        """C4 texts the button: -> the SMS the button sent sender for it (none: [])."""
        n = len(self.to(sender))
        self.ev("sms_command", sender, text)
        return self.to(sender)[n:]

    def reply(self, text, sender=C4):
        """The one reply to a command, or DocsError."""
        got = self.command(text, sender)
        if len(got) != 1:
            raise DocsError(f"{text.split()[0]} from {sender[-4:]}: {len(got)} replies, not one")
        return got[0]

    def to(self, number=C4):
        return [t for n, t in self.sent if n == number]

    def last(self, number=C4):
        return self.to(number)[-1]


def _alert(cfg, *before, wait=4):
    s = Story(**cfg).ev("battery", 86).ev("signal", 20)
    for e in before:
        s.ev(*e)
    return s.wait(wait).ev("gesture", "alert")


def c4_sms(**cfg):
    """[(title, text)]: what C4's first number receives (the examples of the guide); cfg
    over her configuration (tests: the longest alias)."""
    out = []
    s = _alert(cfg, ("fix", POINT))
    out.append(("ALERTA con ubicación GPS (la primera)", s.to()[0]))
    s.wait(296).ev("fix", POINT).wait(4)
    out.append(("ACTUALIZACION (cada {} minutos)".format(s.m.cfg["update_every_s"] // 60), s.last()))
    s.ev("gesture", "cancel")
    out.append(("Ella canceló desde el botón", s.last()))
    out.append(("ALERTA con la última ubicación conocida (el GPS no tiene señal ahora)",
                _alert(cfg, ("fix", POINT), wait=12 * 60).to()[0]))
    out.append(("ALERTA sin GPS, red 2G (celda GSM)", _alert(cfg, ("cell", CELL_GSM)).to()[0]))
    out.append(("ALERTA sin GPS, red 4G (celda LTE)", _alert(cfg, ("cell", CELL_LTE)).to()[0]))
    out.append(("ALERTA sin ninguna ubicación", _alert(cfg).to()[0]))
    out.append(("ALERTA cuando la red no deja llamar al C4 desde el botón",
                _alert(cfg, ("fix", POINT), ("voice", False)).to()[0]))
    out.append(("ALERTA de prueba (día de entrega)", _alert(dict(cfg, test_mode=True), ("fix", POINT)).to()[0]))
    s = _alert(cfg, ("fix", POINT))
    out.append(("El C4 cerró la alerta con CANCELAR (confirmación)", s.reply("CANCELAR " + PIN)))
    s = _alert(cfg, ("fix", POINT))
    s.wait(s.m.cfg["max_alert_s"])
    out.append(("Terminó el tiempo máximo de la alerta ({} minutos)".format(s.m.cfg["max_alert_s"] // 60),
                s.last()))
    s = Story(**dict(cfg, programme_number=C4)).ev("battery", 86).ev("signal", 20).ev("fix", POINT)
    s.m.log_head = lambda: (57, "a1b2c3")   # the event log's head, as app.py hands it over
    s.wait(s.m.cfg["daily_status_s"])
    out.append(("Reporte diario (solo si el número del programa es del C4)", s.last()))
    return out


def c4_replies(**cfg):
    """[(command, when, reply)] as C4's first number gets them (cfg as c4_sms)."""
    out = []
    idle = Story(**cfg).ev("battery", 86).ev("signal", 20).ev("fix", POINT).wait(12 * 60)
    out.append(("UBICACION " + PIN, "sin alerta (la última ubicación conocida)", idle.reply("UBICACION " + PIN)))
    out.append(("ESTADO " + PIN, "sin alerta", idle.reply("ESTADO " + PIN)))
    out.append(("CANCELAR " + PIN, "sin alerta (responde con el ESTADO)", idle.reply("CANCELAR " + PIN)))
    s = _alert(cfg, ("fix", POINT)).wait(60).ev("fix", POINT).wait(3)
    out.append(("UBICACION " + PIN, "durante la alerta", s.reply("UBICACION " + PIN)))
    out.append(("ESTADO " + PIN, "durante la alerta", s.reply("ESTADO " + PIN)))
    s = Story(**cfg).ev("battery", 41).ev("signal", 9).ev("voice", False).ev("gps_silent", True)
    out.append(("ESTADO " + PIN, "GPS descompuesto y red sin voz", s.reply("ESTADO " + PIN)))
    return out


def _block(text):
    return ["```text", text, "```", ""]


def c4_sms_markdown():
    out = []
    for title, text in c4_sms():
        out += [f"*{title}:*", ""] + _block(text)
    return "\n".join(out).strip()


def c4_replies_markdown():
    out = []
    for cmd, when, text in c4_replies():
        out += [f"*`{cmd}`, {when}:*", ""] + _block(text)
    return "\n".join(out).strip()


def cell_decimal(cell):
    """The cell of an SMS as a public cell database takes it: [(field, SMS value, decimal)]."""
    rows = [("MCC", cell["mcc"], int(cell["mcc"])), ("MNC", cell["mnc"], int(cell["mnc"]))]
    for key, name in (("lac", "LAC"), ("tac", "TAC"), ("cellid", "CI"), ("eci", "ECI")):
        if key in cell:
            rows.append((name, cell[key], int(cell[key], 16)))
    return rows


def c4_cell_markdown():
    out = ["| red | dato del SMS | como llega (hex) | en decimal | campo en OpenCelliD |",
           "| --- | --- | --- | --- | --- |"]
    field = {"MCC": "mcc", "MNC": "mnc (net)", "LAC": "lac (area)", "TAC": "lac (area)",
             "CI": "cellid (cell)", "ECI": "cellid (cell)"}
    for radio, cell in (("2G (GSM)", CELL_GSM), ("4G (LTE)", CELL_LTE)):
        for name, raw, dec in cell_decimal(cell):
            shown = "— (decimal)" if name in ("MCC", "MNC") else f"`{raw}`"
            out.append(f"| {radio} | {name} `{raw}` | {shown} | {dec} | {field[name]} |")
    eci = int(CELL_LTE["eci"], 16)
    out += ["", f"En 4G el ECI `{CELL_LTE['eci']}` = {eci} es la radiobase (eNB) {eci >> 8} "
                f"por 256 más la celda {eci & 255} de esa radiobase ({eci >> 8} × 256 + {eci & 255} = {eci})."]
    return "\n".join(out)



def c4_dials(numbers=2, allow_911=True):
    """[(seconds since the press, number dialled)] of an alert that nobody answers: each call
    rings until the dial timeout and is hung up, as alert.py redials; the whole list once,
    then the first dial of the next round."""
    s = Story(c4_numbers=[C4, C4_2][:numbers], allow_911=allow_911)
    start = s.ms
    s.ev("gesture", "alert")
    want = len(s.m.dial_list) * s.m.cfg["attempts_per_number"] + 1
    while len(s.dials) < want and s.timers:
        s.wait((min(s.timers.values()) - s.ms) / 1000)
    return [((t - start) // 1000, n) for t, n in s.dials[:want]]


def _clock(sec):
    return "%d:%02d" % (sec // 60, sec % 60)


def c4_redial_markdown():
    names = {C4: "C4 n.º 1", C4_2: "C4 n.º 2", "911": "911"}
    out = ["| llamada | minuto:segundo desde que ella apretó | a qué número |", "| --- | --- | --- |"]
    for i, (sec, number) in enumerate(c4_dials(), 1):
        out.append(f"| {i} | {_clock(sec)} | {names[number]} |")
    return "\n".join(out)
