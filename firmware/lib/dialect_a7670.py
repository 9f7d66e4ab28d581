# The SIMCom A76XX family's (A7670SA/E/G, LTE Cat-1 with GSM fallback) AT dialect as data,
# the same names as dialect_sim800.py. Facts from data/at/a76xx.md (section numbers below).

from atargs import split_args, parse_creg, registered
from powerpolicy import battery_pct as _pct_of_mv
from at3gpp import (SIGNAL_QUERY, CALL_END_CAUSE_QUERY, CLCC_STATE,  # noqa: F401
                    POWER_WARNING, POWER_DOWN, CSMP, our_call, answered_id, ringing,
                    end_cause, sim_state)
from atparse import CALL_END  # noqa: F401

FAMILY = "a7670"

# Supply warnings come only after AT+CVALARM (off by default, §6); AT+CPMVT's power-down
# is left off: a module that switches itself off at a sag could not finish her call.
# AT+CVALARM repeats its warning every 10 s while the supply is out of range: the same
# one again within 5 minutes is not passed on (the log would fill with it).
WARNING_REPEAT_MS = 300000

# Init as on the SIM800 (§4, §8), without what a76xx.md does not list for the A76XX
# (CENG, CBATCHK, COLP, CLTS): a refused init command costs the init's retries.
# AT+CVALARM=1,3500,4300 (§6: low 3300-4000, high 4001-4300): warn at 3.5 V, 200 mV above
# the default 3.3 V (where the warning would come too late to act on), while a call can
# still be finished: the last word after the gauge's 20% and 10%; 4.3 V, the top of the
# range, is above a charging cell's 4.2 V, so charging never warns.
INIT_FIRST = ("ATE0", "AT+CMEE=1")
# AT+CMGD=1,3 deletes the SIM's read, sent and draft SMS, as on the SIM800 (a full storage
# refuses C4's commands): <delflag> 3 is 3GPP TS 27.005 §3.5.4's, on the AT+CMGD the firmware already
# sends the A76XX for each SMS it reads; a76xx.md has no A76XX source for the flag.
# No CLVL/CRSL/CMIC (§3, §8): mic gain up, output gain (speaker and ring tone) 0 before
# ATD, and in the set-up: C4 calling back rings before anything is answered.
COVERT_AUDIO = "AT+CMICGAIN=7;+COUTGAIN=0"
INIT = ("AT+CMGF=1", 'AT+CSCS="GSM"', CSMP, "AT+CNMI=2,1,0,0,0", "AT+CMGD=1,3", "AT+CLIP=1",
        "AT+CLCC=1", "AT+CVALARM=1,3500,4300", "AT+CREG=1", COVERT_AUDIO)

CELL_QUERY = ("AT+CPSI?", "+CPSI")        # no AT+CENG (§5)
BATTERY_QUERY = ("AT+CBC", "+CBC")        # +CBC: 3.749V (§6)
HANGUP = "AT+CHUP"                        # ATH is ignored unless AT+CVHU=0 (§3)
ANSWER = "ATA"
# The speaker mute is accepted only once the call is connected, and resets when it ends,
# so the radio sends it each time a call becomes active.
IN_CALL_AUDIO = ("AT+VMUTE=1",)
PWRKEY_ON_MS = 100      # LilyGO's press (§2: typ 50 ms; >= 2.5 s switches it OFF)
OFF_MS = 2000           # supply off at least 2 s before the PWRKEY press (§2)
# A press this long switches a running module off, hung or not (§2: Toff >= 2.5 s;
# LilyGO's 3000 ms), and its on-press (100 ms) is far shorter: where the supply cannot be
# cut, the two in turn are the supply cycle.
PWRKEY_OFF_MS = 3000
POWER_DOWN_MS = 3000    # after that press, until it is off (§2: Toff(uart) typ 2 s)
BOOT_MS = 12000         # *ATREADY ~11.1 s after power-on (§2 Ton(uart))
# Calls wait for PB DONE, about 10 s after *ATREADY (§2, as LilyGO's examples do).
BOOT_URC = "*ATREADY"
CALL_READY_URC = "PB DONE"
SMS_READY_URC = "SMS DONE"   # its SMS settings are taken from here on
RESTART_MS = 15000      # back after AT+CFUN=1,1 or the RESET pin: a whole boot
POWER_ON_MS = 15000
RESET_MS = 2500         # RESET pulse (§2: 2-2.5 s)
SLEEP_SET = "AT+CSCLK=%d"   # 2: RX sleep, woken by data; not saved (§2)
SLEEP_ON, SLEEP_OFF = 2, 0

# Registration: +CREG stat 6/7 is "SMS only" (no voice: VoLTE not provisioned), +CEREG
# the LTE attach (§5). Without voice on LTE, AT+CNMP=13 (GSM only, saved by the module)
# brings calls back where there is 2G; AT+CNMP=2 (auto) is the factory mode.
REG_QUERIES = (("AT+CREG?", "+CREG"), ("AT+CEREG?", "+CEREG"))
# AT+CTZU=1: NITZ updates the clock (M109 §4, in the gasagna/A76XX library: not in
# a76xx.md); refused by a module without it, which only costs this command.
NETWORK_TIME_ON = "AT+CTZU=1"
NETWORK_TIME_QUERY = ("AT+CTZU?", "+CTZU")
RAT_QUERY = ("AT+CPSI?", "+CPSI")
GSM_ONLY = "AT+CNMP=13"
RAT_MODE_QUERY = ("AT+CNMP?", "+CNMP")
RAT_AUTO = "AT+CNMP=2"
RAT_AUTO_REPLY = "2"


def _cpsi(line):
    """'+CPSI: LTE,Online,...' -> its fields, or None."""
    if not line.startswith("+CPSI:"):
        return None
    return split_args(line[6:].strip())


def _hex(s):
    """'0x7764' or '7764' -> '7764' (upper case), or None."""
    s = s[2:] if s[:2] in ("0x", "0X") else s
    try:
        return "%X" % int(s, 16)
    except ValueError:
        return None


def serving_cell(lines):
    """AT+CPSI? lines -> the serving cell as the SIM800's (atargs.parse_ceng): mcc, mnc
    (decimal strings), lac and cellid (hex strings); on LTE tac and eci instead, so the SMS
    says so (a TAC/ECI looked up as a GSM LAC/CI finds no cell, or the wrong one); or None.
    GSM,<op>,<mcc>-<mnc>,<lac>,<cellid>,...  LTE,<op>,<mcc>-<mnc>,<tac>,<scellid>,..."""
    for ln in lines:
        f = _cpsi(ln)
        if not f or f[0] not in ("GSM", "LTE") or len(f) < 5:
            continue
        plmn = f[2].split("-")
        lac = _hex(f[3])
        try:
            cellid = "%X" % int(f[4])
        except ValueError:
            continue
        if len(plmn) != 2 or not plmn[0].isdigit() or not plmn[1].isdigit() or lac is None:
            continue
        k = ("lac", "cellid") if f[0] == "GSM" else ("tac", "eci")
        return {"cell": 0, "mcc": plmn[0], "mnc": plmn[1], k[0]: lac, k[1]: cellid}
    return None


def battery_pct(line):
    """+CBC: 3.749V (the module's supply) -> percent on the power policy's curve, or None."""
    s = line.strip()
    if s.startswith("+CBC:"):
        s = s[5:].strip()
    if not s.endswith("V"):
        return None
    try:
        volts = float(s[:-1])
    except ValueError:
        return None
    if not 0 < volts < 10:  # also inf and nan, which float() takes: no supply reads so
        return None
    return _pct_of_mv(volts * 1000)


def reg_state(lines):
    """The REG_QUERIES' reply lines -> "voice" (+CREG 1/5), "sms_only" (+CREG 6/7, or
    attached on LTE by +CEREG without a voice registration) or None."""
    state = None
    for ln in lines:
        lte = ln.startswith("+CEREG:")
        if not (lte or ln.startswith("+CREG:")):
            continue
        reg = parse_creg(ln[ln.find(":") + 1:])
        if not reg:
            continue
        if not lte and registered(reg[0]):
            return "voice"
        if reg[0] in (6, 7) or (lte and registered(reg[0])):
            state = "sms_only"
    return state


def rat_of(lines):
    """AT+CPSI? lines -> "GSM", "LTE" or None (no service)."""
    for ln in lines:
        f = _cpsi(ln)
        if f and f[0] in ("GSM", "LTE"):
            return f[0]
    return None


def voice_of(state, rat):
    """(voice, voice_via) as the technician's service calls report them."""
    if state == "voice":
        return True, {"LTE": "VoLTE", "GSM": "2G"}.get(rat)
    if state == "sms_only":
        return False, None
    return None, None
