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

# +CMS codes that refuse the message for good (27.005 3.2.5). Below 128, the network's
# cause (24.011 8.1.4.2, 8.2.5.4): the number, the subscription, a barring, an invalid
# message; 128-176 and 193-199, the SMS centre's TP-FCS (23.040 9.2.3.22): PID, DCS or
# command unsupported, no SC subscription, a bad or barred destination, a duplicate,
# validity period unsupported (128-176 is tested apart); 303-305, the module's: not
# supported, invalid PDU or text. Every other code is temporary or unspecified (network
# failure 17, congestion 22/42, destination out of service 27, SC busy 192, SC failure
# 194, SIM toolkit busy 212, unspecified 111/127/255, not allowed yet 302...): retried.
_FOR_GOOD = (1, 8, 10, 21, 28, 29, 30, 50, 69, 95, 96, 97, 99,
             193, 195, 196, 197, 198, 199, 303, 304, 305)


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
    """RETRY or REFUSED for an AT+CMGS that failed with kind/code: refused for good only
    by a cause the standard gives as such (_FOR_GOOD): her contact's alert is not given
    up on a temporary one."""
    if kind == "CMS" and code is not None and (128 <= code <= 176 or code in _FOR_GOOD):
        return REFUSED
    return RETRY
