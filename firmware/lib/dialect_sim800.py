# The SIMCom SIM800 family's AT dialect as data: what the modem service (radio.py) sends
# and how it reads the answers that differ between modem families.  One module per
# family (dialect_<family>.py, chosen by the board profile's modem.family), constants
# and tiny pure functions only, like esptool's targets/.

from atargs import parse_ceng, parse_cbc, parse_creg, registered
# What the 3GPP families answer alike (the call list, the end cause, the SIM state, the
# supply warnings).
from at3gpp import (SIGNAL_QUERY, CALL_END_CAUSE_QUERY, CLCC_STATE,  # noqa: F401
                    POWER_WARNING, POWER_DOWN, CSMP, our_call, answered_id, ringing,
                    end_cause, sim_state)

FAMILY = "sim800"

# Call-end codes (-> the cause the alert machine is told): defined once, in the parser
# that recognises them.
from atparse import CALL_END  # noqa: F401
WARNING_REPEAT_MS = 0           # every supply warning is passed on

# Init: numeric +CME/+CMS codes first (the driver decides on them), then, once the SIM
# is ready, text-mode SMS in the GSM alphabet, +CMTI for new SMS, +CLIP/+CLCC for calls,
# the cell report (AT+CENG) and the module's own battery check. AT+CMGD=1,3 deletes the SIM's read,
# sent and draft SMS, keeping the unread (the firmware deletes each one it reads): a card
# that lived in a phone can arrive with its storage full of them, a full storage refuses
# every new SMS, C4's commands too, and any stored one makes each sweep list the SIM.
# Mic up so C4 hears the surroundings; speaker and ringer silent so nobody near her does.
# One command line: fewer round trips before ATD. In the set-up too: C4 calling back
# rings before anything is answered, and a restarted module rings at its default (100).
COVERT_AUDIO = "AT+CMIC=0,15;+CLVL=0;+CRSL=0"
INIT_FIRST = ("ATE0", "AT+CMEE=1")
INIT = ("AT+CMGF=1", 'AT+CSCS="GSM"', CSMP, "AT+CNMI=2,1,0,0,0", "AT+CMGD=1,3",
        "AT+CLIP=1", "AT+CLCC=1", "AT+COLP=0", "AT+CENG=1,0", "AT+CBATCHK=1", "AT+CREG=1",
        COVERT_AUDIO)

CELL_QUERY = ("AT+CENG?", "+CENG")
BATTERY_QUERY = ("AT+CBC", "+CBC")
HANGUP = "ATH"
ANSWER = "ATA"
IN_CALL_AUDIO = ()              # nothing the covert settings before ATD do not already
PWRKEY_ON_MS = 1200             # PWRKEY pressed this long switches an off module on
OFF_MS = 1000                   # supply cut this long before the module is surely off
# Its on-press (>= 1 s) is inside the off-press window (1-33 s, HD 4.2): pressed on a
# running module it switches it OFF, so only a module known to be off is pressed, and
# only a supply cut can make a hung one known to be off.
PWRKEY_OFF_MS = None
POWER_DOWN_MS = None
BOOT_MS = 5000                  # a module just powered needs ~3 s before its UART listens
RESTART_MS = 8000               # back after AT+CFUN=1,1 or the RESET pin
POWER_ON_MS = 10000             # back after the PWRKEY press
# A module that has just booted says RDY (at a fixed baud rate) and refuses calls
# (+CME ERROR: 3) until it says Call Ready.
BOOT_URC = "RDY"
CALL_READY_URC = "Call Ready"
SMS_READY_URC = "SMS Ready"   # its SMS settings are taken from here on
RESET_MS = 200                  # RESET pulse (>= 105 ms restarts it)
SLEEP_SET = "AT+CSCLK=%d"       # 2: sleep after 5 s of UART silence; 0: stay awake
SLEEP_ON, SLEEP_OFF = 2, 0

# Registration: AT+CREG? alone (stat 1 home, 5 roaming: voice and SMS).
REG_QUERIES = (("AT+CREG?", "+CREG"),)
# The network's time (NITZ) with each registration: switched on before INIT, as soon as
# the module listens (modemup.init), and saved where the query reads it off.
# With it the network LED (NETLIGHT: a breakout's LED flashing every 3 s, all through her
# call) goes dark: a light can give the button away at night. Both are read first (the
# third item: the LED's line when it was saved dark) and saved by AT&W if either was not.
NETWORK_TIME_ON = "AT+CLTS=1;+CNETLIGHT=0"
NETWORK_TIME_QUERY = ("AT+CLTS?;+CNETLIGHT?", "+CLTS", "+CNETLIGHT: 0")
RAT_QUERY = None                # GSM only: nothing to ask
GSM_ONLY = None                 # no other technology to leave
RAT_MODE_QUERY = None
RAT_AUTO = None
RAT_AUTO_REPLY = None


def serving_cell(lines):
    """AT+CENG? lines -> the serving cell (atargs.parse_ceng dict), or None."""
    for ln in lines:
        cell = parse_ceng(ln)
        if cell and cell.get("cell") == 0:
            return cell
    return None


def battery_pct(line):
    """+CBC: <charging>,<percent>,<mV> -> percent, or None (also for one past 0..100)."""
    v = parse_cbc(line)
    return v[1] if v and 0 <= v[1] <= 100 else None


def reg_state(lines):
    """The REG_QUERIES' reply lines -> "voice" (registered), "sms_only" or None."""
    for ln in lines:
        if ln.startswith("+CREG"):
            reg = parse_creg(ln)
            if reg and registered(reg[0]):
                return "voice"
    return None


def rat_of(lines):
    """The radio access technology: always GSM."""
    return "GSM"


def voice_of(state, rat):
    """(voice, voice_via) as the technician's service calls report them."""
    if state == "voice":
        return True, "2G"
    return None, None
