# What a refused AT command means (3GPP TS 27.005/27.007, any modem family): names of
# the numeric +CME/+CMS codes for the log, and which refused SMS are worth retrying.
# Pure; runs on MicroPython and CPython.

# Numeric codes the device log names, so a technician reads why; per kind, as the same
# number means different things (+CME 21: invalid index; +CMS 21: the network refused
# the message).  +CME: 27.007 9.2; +CMS: 27.005 3.2.5 (below 128: 24.011 RP causes).
_CME = {10: "sim_missing", 11: "sim_pin", 12: "sim_puk", 13: "sim_failure", 14: "sim_busy",
        30: "no_network", 100: "unknown_error"}
_CMS = {8: "operator_barred", 10: "call_barred", 21: "rejected", 41: "temporary_failure",
        42: "congestion", 310: "sim_missing", 311: "sim_pin", 313: "sim_failure",
        314: "sim_busy", 316: "sim_puk", 330: "smsc_unknown", 331: "no_network",
        332: "network_timeout", 500: "unknown_error"}
_NAMES = {"CME": _CME, "CMS": _CMS}

# What the driver should do about a refused SMS.
RETRY = "retry"                 # SIM, network service, memory, unknown: try again later
REFUSED = "refused"             # refused for good: retrying would only delay the others


def code_of(text):
    """'310' -> 310; a verbose message ('SIM busy') or '' -> None."""
    t = (text or "").strip()
    return int(t) if t.isdigit() else None


def log_name(kind, code, text=""):
    """('CMS', 310) -> 'CMS_310_sim_missing': the log entry's detail for a refused command."""
    s = ("%s %s" % (kind, text if code is None else code)).strip().replace(" ", "_")
    name = _NAMES.get(kind, {}).get(code) if code is not None else None
    return s + "_" + name if name else s


def sms_retry_class(kind, code):
    """RETRY or REFUSED for an AT+CMGS that failed with kind/code.  Refused for good: the
    network or the recipient refused it (3GPP causes < 300 other than the temporary
    38/41/42/47), or the modem says the message itself is invalid (302-305)."""
    if kind != "CMS" or code is None:
        return RETRY
    if (code < 300 and code not in (38, 41, 42, 47)) or 302 <= code <= 305:
        return REFUSED
    return RETRY
