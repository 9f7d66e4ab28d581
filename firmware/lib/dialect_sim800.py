# The SIMCom SIM800 family's AT dialect as data: what the modem service (radio.py) sends
# and how it reads the answers that differ between modem families.  One module per
# family (dialect_<family>.py, chosen by the board profile's modem.family), constants
# and tiny pure functions only, like esptool's targets/.

from atargs import parse_ceng, parse_cbc, parse_clcc

FAMILY = "sim800"

# Call-end codes (-> the cause the alert machine is told) and power URCs: defined once,
# in the SIM800 parser that recognises them.
from atparse import (CALL_END, UV_WARN, UV_DOWN, OV_WARN, OV_DOWN,  # noqa: F401
                     NORMAL_DOWN)
# supply warning URC -> the alert machine's ("power_warning", kind)
POWER_WARNING = {UV_WARN: "under_voltage", UV_DOWN: "power_down",
                 OV_WARN: "over_voltage", OV_DOWN: "over_voltage"}
POWER_DOWN = (UV_DOWN, OV_DOWN, NORMAL_DOWN)   # the module is switching itself off

# Init: numeric +CME/+CMS codes first (the driver decides on them), then, once the SIM
# is ready, AT+CLTS=1 before registration brings the network's time (NITZ), text-mode
# SMS in the GSM alphabet, +CMTI for new SMS, +CLIP/+CLCC for calls, the cell report
# (AT+CENG) and the module's own battery check.
INIT_FIRST = ("ATE0", "AT+CMEE=1")
INIT = ("AT+CLTS=1", "AT+CMGF=1", 'AT+CSCS="GSM"', "AT+CNMI=2,1,0,0,0", "AT+CLIP=1",
        "AT+CLCC=1", "AT+COLP=0", "AT+CENG=1,0", "AT+CBATCHK=1")

CELL_QUERY = ("AT+CENG?", "+CENG")
BATTERY_QUERY = ("AT+CBC", "+CBC")
SIGNAL_QUERY = ("AT+CSQ", "+CSQ")
HANGUP = "ATH"
ANSWER = "ATA"
# Mic up so C4 hears the surroundings; speaker and ringer silent so nobody near her does.
# One command line: fewer round trips before ATD.
COVERT_AUDIO = "AT+CMIC=0,15;+CLVL=0;+CRSL=0"
CALL_END_CAUSE_QUERY = ("AT+CEER", "+CEER")
PWRKEY_ON_MS = 1200             # PWRKEY low this long switches an off module on
SLEEP_SET = "AT+CSCLK=%d"       # 2: sleep after 5 s of UART silence; 0: stay awake
SLEEP_ON, SLEEP_OFF = 2, 0

# +CLCC <stat> -> the alert machine's call state
CLCC_STATE = {0: "active", 2: "dialing", 3: "alerting", 6: "ended"}


def serving_cell(lines):
    """AT+CENG? lines -> the serving cell (atargs.parse_ceng dict), or None."""
    for ln in lines:
        cell = parse_ceng(ln)
        if cell and cell.get("cell") == 0:
            return cell
    return None


def battery_pct(line):
    """+CBC: <charging>,<percent>,<mV> -> percent, or None."""
    v = parse_cbc(line)
    return v[1] if v else None


def our_call_up(lines):
    """AT+CLCC lines -> True if a call of ours (mobile-originated) is dialing, alerting
    or active."""
    for ln in lines:
        c = parse_clcc(ln)
        if c and c[1] == 0 and c[2] in (0, 2, 3):
            return True
    return False


def ringing(lines):
    """AT+CLCC lines -> the numbers of incoming calls ringing now."""
    return [c[5] for c in (parse_clcc(ln) for ln in lines) if c and c[1] == 1 and c[2] == 4]


def end_cause(was_active, code_cause, ceer_lines):
    """Why our call ended: a call that was up and ended with AT+CEER's 'Normal call
    clearing' was hung up by the far end ("remote"); one that was up otherwise was
    "dropped"; one never answered ended as its final code said (default no_carrier)."""
    if not was_active:
        return code_cause or "no_carrier"
    for ln in ceer_lines:
        if "Normal call clearing" in ln:
            return "remote"
    return "dropped"


def sim_state(reply):
    """AT+CPIN? reply (or the error's reply()) -> "ready", "stuck" (a PIN, a PUK or no
    SIM: waiting will not help, the technician must fix it) or "wait"."""
    if "READY" in reply:
        return "ready"
    if "SIM PIN" in reply or "not inserted" in reply or "PUK" in reply:
        return "stuck"
    return "wait"
