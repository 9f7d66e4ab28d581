"""SMS command group, text mode: AT+CMGF, AT+CSCS, AT+CNMI, AT+CMGS (the framer runs the
"> " prompt), AT+CMGR/CMGL/CMGD/CMGDA, AT+CPMS, AT+CSCA and incoming messages."""
from .at import ASYNC, GSM7, TEXT_CODECS, AtError, _int, _str, _toa

GSM7_EXTENSION = "\f^{}\\[~]|\u20ac"


def _from_hex(raw, codec):
    """Typed hex digits -> the text they encode (ValueError if they are not)."""
    return bytes.fromhex(raw.decode("ascii")).decode(codec)


def _ucs2_coded(text):
    """The sender's phone had to send this text in UCS2 (dcs 8): GSM-7 cannot carry it."""
    return any(c not in GSM7 and c not in GSM7_EXTENSION for c in text)


class SmsGroup:
    """Text-mode SMS: sending, storage and incoming messages.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    def _need_sms(self):
        if not self._sms_ready:
            # Capture L12: "operation not allowed" before "SMS Ready", even while AT+CPIN?
            # still says "SIM busy".
            raise self._cme(3)

    def store_sms(self, sender, text, read=False):
        """Put a message in SIM storage as if received earlier (no URC). Returns its index."""
        index = self._free_index()
        if index is None:
            raise RuntimeError("SIM SMS storage is full")
        self.inbox[index] = {"stat": "REC READ" if read else "REC UNREAD", "from": sender,
                             "text": text, "scts": self._scts()}
        return index

    def net_incoming_sms(self, sender, text, sent=None):
        """The SMSC delivers a message (sent: when the SMSC took it, if it held it).
        Returns whether the module took it."""
        if not self.powered or self.cfun != 1 or not self._sms_ready:
            return False
        scts = self._scts(sent)
        if self.cnmi[1] == 2:  # routed straight to the host, not stored
            self._urc(f'+CMT: "{self._encode_text(sender)}","","{scts}"\r\n{self._shown(text)}')
            self._ri_pulse()
            return True
        index = self._free_index()
        if index is None:
            # memory full: the SMSC keeps it; the SIM remembers it refused one (EF_SMSS),
            # and the module tells the network once a slot is free again (RP-SMMA)
            self.sim_refused_sms = True
            return False
        self.inbox[index] = {"stat": "REC UNREAD", "from": sender, "text": text, "scts": scts}
        if self.cnmi[1] == 1:
            self._urc(f'+CMTI: "SM",{index}')
            self._ri_pulse()
        return True

    def _sms_send(self):
        to = self._draft_to
        self.sms_attempts += 1
        try:
            text = self._typed_text(bytes(self._draft))
        except (ValueError, UnicodeError):
            return self._finish([], self._cms(304).text, delay=0)  # assumption: refused
        if self._cms_faults:
            code = self._cms_faults.popleft()
            self._later(self.network.sms_submit_s, self._sms_failed, to, text, code)
        elif not self.registered:
            self._later(self.T_SMS_FAIL, self._sms_failed, to, text, 331)
        elif not self.smsc.lstrip("+"):  # AT+CSCA="": no SMS centre to send it to
            self._later(self.T_SMS_FAIL, self._sms_failed, to, text, 330)
        else:
            self._later(self.network.sms_submit_s, self._sms_submitted, to, text)

    def _sms_submitted(self, to, text):
        if not self.registered:  # lost the network while sending
            return self._sms_failed(to, text, 332)
        self.network.submit_sms(self.number, to, text)
        self.sent_sms += 1
        self._mr = self._mr % 255 + 1
        self._finish([f"+CMGS: {self._mr}"], "OK", delay=0)

    def _sms_failed(self, to, text, code):
        self.network.submit_sms(self.number, to, text, error=code)
        self._finish([], self._cms(code).text, delay=0)

    def _typed_text(self, raw):
        """The text typed after the prompt -> what the recipient reads. With AT+CSMP's dcs 8
        (UCS2) the module takes the text as hex, whatever AT+CSCS says (27.005 3.1, <data>):
        GSM bytes are not hex (ValueError)."""
        if self.csmp[3] == 8:
            return _from_hex(raw, "utf-16-be")
        return self._decode_text(raw)

    def _decode_text(self, raw, strict=False):
        """Typed SMS text in the AT+CSCS character set -> what the recipient reads
        (strict: a UCS2/HEX text that is not hex raises ValueError)."""
        if self.cscs in ("UCS2", "HEX"):
            try:
                return _from_hex(raw, "utf-16-be" if self.cscs == "UCS2" else "latin-1")
            except (ValueError, UnicodeDecodeError):
                if strict:
                    raise
                return raw.decode("latin-1")  # not hex: the characters as typed
        if self.cscs == "GSM":
            return "".join(GSM7[b] if b < 0x80 else "?" for b in raw)
        if self.cscs == "IRA":
            return "".join(chr(b) if b < 0x80 else "?" for b in raw)
        return raw.decode(TEXT_CODECS[self.cscs])

    def _encode_text(self, text):
        """A received message as the module shows it (latin-1 str of the bytes)."""
        if self.cscs == "UCS2":
            return text.encode("utf-16-be").hex().upper()
        if self.cscs == "HEX":
            return text.encode("latin-1", "replace").hex().upper()
        if self.cscs == "GSM":
            return "".join(chr(GSM7.index(c)) if c in GSM7 and c != "\x1b" else "?" for c in text)
        if self.cscs == "IRA":
            return "".join(c if ord(c) < 0x80 else "?" for c in text)
        return text.encode(TEXT_CODECS[self.cscs], "replace").decode("latin-1")

    def _free_index(self):
        for i in range(1, self.SMS_CAPACITY + 1):
            if i not in self.inbox:
                return i
        return None

    def _scts(self, dt=None):
        dt = dt or self.network.now_datetime()
        quarters = int(dt.utcoffset().total_seconds() // 900)
        return dt.strftime("%y/%m/%d,%H:%M:%S") + f"{quarters:+03d}"

    def _sms_index(self, arg):
        index = _int(arg)
        if not 1 <= index <= self.SMS_CAPACITY:
            raise self._cms(321)
        return index

    def _shown(self, text):
        """A received text as the module prints it (27.005, <data>): one sent in UCS2 is
        hex whatever AT+CSCS says; a GSM-7 one is converted to the AT+CSCS set, so in
        the GSM set its lines come as they were typed, whatever they say."""
        if _ucs2_coded(text):
            return text.encode("utf-16-be").hex().upper()
        return self._encode_text(text)

    def _sms_entry(self, index, prefix):
        msg = self.inbox[index]
        # the sender's number is converted to the AT+CSCS set too: UCS2 prints "002B..."
        head = f'"{msg["stat"]}","{self._encode_text(msg["from"])}","","{msg["scts"]}"'
        if self.csdh:
            text = msg["text"]
            ucs2 = _ucs2_coded(text)
            length = len(text.encode("utf-16-be")) if ucs2 else len(text)  # octets / chars
            head += f',{_toa(msg["from"])},4,0,{8 if ucs2 else 0},' \
                    f'"{self._encode_text(self.smsc)}",145,{length}'
        return f"{prefix}{head}\r\n{self._shown(msg['text'])}"

    def _x_csca(self, cmd):
        if cmd.kind == "read":
            self._need_sim()
            return [f'+CSCA: "{self.smsc}",{_toa(self.smsc)}']
        self.smsc = _str(cmd.args[0])

    def _x_cmgf(self, cmd):
        if cmd.kind == "set":
            self._need_sms()
        return self._setting(cmd, "cmgf", (0, 1), "+CMGF")

    def _x_cscs(self, cmd):
        if cmd.kind == "read":
            return [f'+CSCS: "{self.cscs}"']
        if cmd.kind == "test":
            return ["+CSCS: (" + ",".join(f'"{s}"' for s in self.CSCS_SETS) + ")"]
        value = _str(cmd.args[0]).upper()
        if value not in self.CSCS_SETS:
            raise AtError("ERROR")
        self.cscs = value

    def _x_cnmi(self, cmd):
        if cmd.kind == "read":
            return ["+CNMI: " + ",".join(map(str, self.cnmi))]
        if cmd.kind == "test":
            return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
        self._need_sms()
        for i, arg in enumerate(cmd.args[:5]):
            self.cnmi[i] = _int(arg, range(4))

    def _x_csdh(self, cmd):
        return self._setting(cmd, "csdh", (0, 1), "+CSDH")

    def _x_csmp(self, cmd):
        if cmd.kind == "read":
            return ["+CSMP: " + ",".join(map(str, self.csmp))]
        self.csmp = [_int(a) for a in cmd.args[:4]] + self.csmp[len(cmd.args):]

    def _x_cpms(self, cmd):
        self._need_sms()
        used, cap = len(self.inbox), self.SMS_CAPACITY
        if cmd.kind == "read":
            return [f'+CPMS: "SM",{used},{cap},"SM",{used},{cap},"SM",{used},{cap}']
        if cmd.kind == "test":
            return ['+CPMS: ("SM","ME","SM_P","ME_P","MT"),("SM","ME","SM_P","ME_P","MT"),'
                    '("SM","ME","SM_P","ME_P","MT")']
        return [f"+CPMS: {used},{cap},{used},{cap},{used},{cap}"]

    def _x_cmgs(self, cmd):
        if cmd.kind == "test":
            return []
        if cmd.kind != "set":
            raise AtError("ERROR")
        if self.cmgf == 0:
            if not cmd.args[0].isdigit():
                raise self._cms(765)  # capture L12: a number given in PDU mode
            raise self._cms(304)      # PDU mode is not simulated
        if not cmd.args[0].startswith('"'):
            raise self._cms(765)
        self._need_sms_cms()
        to = _str(cmd.args[0])
        if self.cscs in ("UCS2", "HEX"):
            # the number is read in the AT+CSCS set too: "+52..." is not hex
            try:
                to = self._decode_text(to.encode("ascii"), strict=True)
            except (ValueError, UnicodeError):
                raise self._cms(304) from None  # assumption: the module's "invalid parameter"
        self._draft = bytearray()
        self._draft_to = to
        self._mode = "sms"
        self._flush_prompt()
        return ASYNC

    def _need_sms_cms(self):
        codes = {"absent": 310, "pin": 311, "puk": 316, "off": 314 if self.cfun == 1 else 302}
        if self._sim != "ready":
            raise self._cms(codes.get(self._sim, 314))
        if not self._sms_ready:
            raise self._cms(302)

    def _x_cmgr(self, cmd):
        self._need_sms_cms()
        if self.cmgf == 0:
            raise self._cms(303)
        index = self._sms_index(cmd.args[0])
        self._took(0.05)
        if index not in self.inbox:
            return []  # an empty slot: just OK
        out = [self._sms_entry(index, "+CMGR: ")]
        keep = len(cmd.args) > 1 and _int(cmd.args[1], (0, 1)) == 1
        if not keep and self.inbox[index]["stat"] == "REC UNREAD":
            self.inbox[index]["stat"] = "REC READ"
        return out

    def _x_cmgl(self, cmd):
        self._need_sms_cms()
        if cmd.kind == "test":
            return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
        if self.cmgf == 0:
            raise self._cms(303)
        which = _str(cmd.args[0]).upper() if cmd.args else "REC UNREAD"
        if which not in ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"):
            raise AtError("ERROR")
        keep = len(cmd.args) > 1 and _int(cmd.args[1], (0, 1)) == 1
        self._took(0.1)
        entries = []
        for index in sorted(self.inbox):
            msg = self.inbox[index]
            if which in ("ALL", msg["stat"]):
                entries.append(self._sms_entry(index, f"+CMGL: {index},"))
                if not keep and msg["stat"] == "REC UNREAD":
                    msg["stat"] = "REC READ"
        return ["\r\n".join(entries)] if entries else []

    def _x_cmgd(self, cmd):
        self._need_sms_cms()
        index = self._sms_index(cmd.args[0])
        flag = _int(cmd.args[1], range(5)) if len(cmd.args) > 1 else 0
        doomed = {0: lambda s: False, 1: lambda s: s == "REC READ",
                  2: lambda s: s in ("REC READ", "STO SENT"),
                  3: lambda s: s != "REC UNREAD", 4: lambda s: True}[flag]
        if flag == 0:
            self.inbox.pop(index, None)
        gone = [i for i, m in self.inbox.items() if doomed(m["stat"])]
        for i in gone:
            del self.inbox[i]
        self._took(0.15 + self.T_SMS_DELETE * len(gone))
        self._storage_freed()

    def _storage_freed(self):
        if self.sim_refused_sms and self._free_index() is not None:
            self.sim_refused_sms = False
            self.network.sms_ready(self.number)

    def _x_cmgda(self, cmd):
        self._need_sms_cms()
        what = _str(cmd.args[0]).upper()
        kinds = {"DEL READ": ("REC READ",), "DEL UNREAD": ("REC UNREAD",),
                 "DEL SENT": ("STO SENT",), "DEL UNSENT": ("STO UNSENT",),
                 "DEL INBOX": ("REC READ", "REC UNREAD"), "DEL ALL": None}
        if what not in kinds:
            raise AtError("ERROR")
        gone = [i for i, m in self.inbox.items() if kinds[what] is None or m["stat"] in kinds[what]]
        for i in gone:
            del self.inbox[i]
        self._took(0.3 + self.T_SMS_DELETE * len(gone))
        self._storage_freed()


HANDLERS = {
    "+CSCA": "_x_csca",
    "+CMGF": "_x_cmgf",
    "+CSCS": "_x_cscs",
    "+CNMI": "_x_cnmi",
    "+CSDH": "_x_csdh",
    "+CSMP": "_x_csmp",
    "+CPMS": "_x_cpms",
    "+CMGS": "_x_cmgs",
    "+CMGR": "_x_cmgr",
    "+CMGL": "_x_cmgl",
    "+CMGD": "_x_cmgd",
    "+CMGDA": "_x_cmgda",
}
