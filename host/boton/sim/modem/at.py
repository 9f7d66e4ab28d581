"""AT command syntax shared by the simulated modems: result-code and error tables, the
GSM 03.38 alphabet, the command-line parser and argument helpers. Pure functions and
data, no state."""
import re
from collections import namedtuple

CR, LF, BS, CTRL_Z, ESC = 0x0D, 0x0A, 0x08, 0x1A, 0x1B
ASYNC = object()  # a handler's return value: "I will send the final result code later"
LINE_MAX = 556    # command line buffer, manual §1.4.4

# Numeric forms (ATV0) of the V.25ter result codes.
NUMERIC = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
           "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8}

CME_TEXT = {
    0: "phone failure", 1: "no connection to phone", 2: "phone-adaptor link reserved",
    3: "operation not allowed", 4: "operation not supported", 5: "PH-SIM PIN required",
    10: "SIM not inserted", 11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure",
    14: "SIM busy", 15: "SIM wrong", 16: "incorrect password", 17: "SIM PIN2 required",
    18: "SIM PUK2 required", 20: "memory full", 21: "invalid index", 22: "not found",
    23: "memory failure", 24: "text string too long", 25: "invalid characters in text string",
    26: "dial string too long", 27: "invalid characters in dial string", 30: "no network service",
    31: "network timeout", 32: "network not allowed - emergency calls only", 100: "unknown",
    765: "invalid input value",
}
CMS_TEXT = {
    21: "Short message transfer rejected", 27: "Destination out of service",
    38: "Network out of order", 41: "Temporary failure", 42: "Congestion",
    300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    303: "operation not supported", 304: "invalid PDU mode parameter",
    305: "invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
    313: "SIM failure", 314: "SIM busy", 316: "SIM PUK required", 320: "memory failure",
    321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 500: "unknown error",
    765: "invalid input value",
}

# GSM 03.38 default alphabet, codes 0x00-0x7F (0x1B is the escape to the extension
# table; in text entry it is ESC, which cancels the message, as the manual says).
GSM7 = ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
        "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
        " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
        "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
        "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
TEXT_CODECS = {"PCCP": "cp437", "PCDN": "cp850", "8859-1": "latin-1"}

BAUD_RATES = (0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)
CSCS_SETS = ("IRA", "GSM", "UCS2", "HEX", "PCCP", "PCDN", "8859-1")
CLCC_STATS = {0: "active", 2: "dialing", 3: "alerting", 4: "incoming"}

Cmd = namedtuple("Cmd", "name kind args")  # kind: exec | read | test | set


class AtError(Exception):
    """A command failed; `text` is the final result code to print."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


def luhn_complete(digits: str) -> str:
    """digits + the Luhn check digit (IMEIs and ICCIDs carry one)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


# ====================================================================== parsing helpers
def parse_line(body: str):
    """Split what follows "AT" into commands. Raises ValueError on a syntax error."""
    s = _strip_spaces(body)
    cmds, i = [], 0
    while i < len(s):
        c = s[i]
        if c == ";":
            i += 1
        elif c in "+*":
            j = i + 1
            while j < len(s) and (s[j].isalnum() or s[j] == "_"):
                j += 1
            if j == i + 1:
                raise ValueError(body)
            name = s[i:j].upper()
            if s.startswith("=?", j):
                cmds.append(Cmd(name, "test", []))
                i = j + 2
            elif s.startswith("=", j):
                end = _arg_end(s, j + 1)
                cmds.append(Cmd(name, "set", split_args(s[j + 1:end])))
                i = end
            elif s.startswith("?", j):
                cmds.append(Cmd(name, "read", []))
                i = j + 1
            else:
                cmds.append(Cmd(name, "exec", []))
                i = j
        elif c.upper() == "D":
            end = s.find(";", i) + 1 or len(s)  # a voice dial string ends with its ';'
            cmds.append(Cmd("D", "exec", [s[i + 1:end]]))
            i = end
        elif c.upper() == "S":
            m = re.match(r"[sS](\d+)(\?|=(\d*))", s[i:])
            if not m:
                raise ValueError(body)
            kind = "read" if m.group(2) == "?" else "set"
            cmds.append(Cmd("S", kind, [m.group(1), m.group(3) or "0"]))
            i += m.end()
        elif c == "&" or c.isalpha():
            m = re.match(r"(&?[a-zA-Z])(\d*)", s[i:])
            if not m:
                raise ValueError(body)
            cmds.append(Cmd(m.group(1).upper(), "exec", [m.group(2)] if m.group(2) else []))
            i += m.end()
        else:
            raise ValueError(body)
    return cmds


def split_args(text):
    """Comma-separated arguments; quoted ones keep their quotes (use _str to unquote)."""
    args, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            args.append(cur)
            cur = ""
        else:
            cur += ch
    if quoted:
        raise ValueError(text)
    args.append(cur)
    return args


def _strip_spaces(s):
    out, quoted = [], False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        if ch != " " or quoted:
            out.append(ch)
    return "".join(out)


def _arg_end(s, start):
    quoted = False
    for k in range(start, len(s)):
        if s[k] == '"':
            quoted = not quoted
        elif s[k] == ";" and not quoted:
            return k
    return len(s)


def _int(arg, allowed=None):
    try:
        value = int(arg)
    except (TypeError, ValueError):
        raise AtError("ERROR") from None
    if allowed is not None and value not in allowed:
        raise AtError("ERROR")
    return value


def _str(arg):
    if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
        return arg[1:-1]
    return arg


def _basic_int(cmd, default, allowed):
    return _int(cmd.args[0], allowed) if cmd.args else default


def _range_text(allowed):
    values = list(allowed)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _toa(number):
    """Type of address: 145 international ("+..."), 129 otherwise."""
    return 145 if number.startswith("+") else 129
