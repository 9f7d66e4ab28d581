# What every SIMCom family this firmware drives answers the same way (3GPP TS 27.007: the
# call list, the end cause, the SIM state): shared by the dialects (dialect_<family>.py),
# which re-export these names, so that a board imports only its own family's dialect.

from atparse import parse_clcc, UV_WARN, UV_DOWN, OV_WARN, OV_DOWN, NORMAL_DOWN

SIGNAL_QUERY = ("AT+CSQ", "+CSQ")
# Text-mode SMS parameters: SMS-SUBMIT with a validity period (17, 167 = 1 day), the
# GSM 7-bit alphabet (dcs 0). A module keeps what a bench test saved (AT&W): with dcs 8
# the GSM bytes of her alert would go out as UCS2 nonsense.
CSMP = "AT+CSMP=17,167,0,0"
# supply warning URC (atparse) -> the alert machine's ("power_warning", kind)
POWER_WARNING = {UV_WARN: "under_voltage", UV_DOWN: "power_down",
                 OV_WARN: "over_voltage", OV_DOWN: "over_voltage"}
POWER_DOWN = (UV_DOWN, OV_DOWN, NORMAL_DOWN)   # the module is switching itself off
CALL_END_CAUSE_QUERY = ("AT+CEER", "+CEER")
# +CLCC <stat> -> the alert machine's call state
CLCC_STATE = {0: "active", 2: "dialing", 3: "alerting", 6: "ended"}


def our_call(lines, answered_id=None):
    """AT+CLCC lines -> the state ("dialing", "alerting", "active") of our call (one we
    placed, or the incoming call of id answered_id), or None: no call of ours."""
    for ln in lines:
        c = parse_clcc(ln)
        if c and c[2] in (0, 2, 3) and (c[1] == 0 or c[0] == answered_id):
            return CLCC_STATE[c[2]]
    return None


def answered_id(lines):
    """AT+CLCC lines just after ATA's OK -> the id of the incoming call now active, or
    None (it ended meanwhile)."""
    for ln in lines:
        c = parse_clcc(ln)
        if c and c[1] == 1 and c[2] == 0:
            return c[0]
    return None


def ringing(lines):
    """AT+CLCC lines -> the numbers of incoming calls ringing now."""
    return [c[5] for c in (parse_clcc(ln) for ln in lines) if c and c[1] == 1 and c[2] == 4]


def end_cause(was_active, code_cause, ceer_lines):
    """Why our call ended: a call that was up and ended with AT+CEER's 'Normal call
    clearing' (cause 16) was hung up by the far end ("remote"); one that was up otherwise was
    "dropped"; one never answered ended as its final code said (default no_carrier)."""
    if not was_active:
        return code_cause or "no_carrier"
    for ln in ceer_lines:
        # the text's case differs between firmware versions; some give only the cause number
        low = ln.lower()
        if "normal call clearing" in low or _cause_number(low) == 16:
            return "remote"
    return "dropped"


def _cause_number(ceer):
    """'+ceer: 16' or '+ceer: cc,16,...' (lower case) -> the first number after the
    colon that is a cause, or None."""
    for f in ceer[ceer.find(":") + 1:].replace(",", " ").split():
        if f.isdigit():
            return int(f)
    return None


def sim_state(reply):
    """AT+CPIN? reply (or the error's reply()) -> "ready", "stuck" (a PIN, a PUK or no
    SIM: waiting will not help, the technician must fix it) or "wait"."""
    if reply[:6] == "+CPIN:":
        value = reply[6:].strip()
        if value == "READY":
            return "ready"
        # NOT READY: the SIM starting, or just pulled; any other asks for a PIN or a SIM
        return "wait" if value == "NOT READY" else "stuck"
    if reply[:4] == "CME ":
        # AT+CMEE=1: 10 no SIM, 11 PIN, 12 PUK (27.007 9.2); 13, 14 come and go at boot
        why = reply[4:]
        if why.isdigit():
            return "stuck" if int(why) in (10, 11, 12) else "wait"
        if "not inserted" in why or "PIN" in why or "PUK" in why:
            return "stuck"
    return "wait"
