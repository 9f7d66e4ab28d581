# Pure helpers for SIM800 AT argument texts (the part after "+XXX: "), sans-IO.
# They accept the argument text or the whole line ("+CSQ: 5,0") and return None on
# malformed input instead of raising.  Re-exported by atparse.
#
#     split_args('1,"a,b", 3') -> ['1', 'a,b', '3']
#     parse_csq -> (rssi, ber)            csq_dbm(rssi) -> dBm | None
#     parse_cbc -> (charging, percent, mV)
#     parse_creg -> (stat, lac, ci)       registered(stat) -> bool
#     parse_clcc -> (idx, dir, stat, mode, mpty, number)
#     parse_clip -> number                parse_cmti -> index
#     parse_cmgs -> message reference     parse_cmgr -> (status, sender, alpha, ts)
#     parse_ceng -> {cell, mcc, mnc, lac, cellid}
#     sms_stored(AT+CPMS? lines) -> bool


def split_args(args):
    # '1,"a,b", 3' -> ['1', 'a,b', '3']: split on commas outside quotes, strip
    # spaces and the quotes.
    out = []
    cur = []
    q = False
    for ch in args:
        if ch == '"':
            q = not q
        elif ch == "," and not q:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _args_of(line_or_args, prefix):
    s = line_or_args.strip()
    if s.startswith(prefix):
        s = s[len(prefix):].lstrip(":").strip()
    return s


def _int(s):
    try:
        return int(s)
    except (ValueError, TypeError):
        return None


def parse_csq(args):
    # '5,0' -> (rssi, ber); rssi 0..31 or 99 unknown.
    f = split_args(_args_of(args, "+CSQ"))
    if len(f) != 2:
        return None
    a, b = _int(f[0]), _int(f[1])
    if a is None or b is None:
        return None
    return (a, b)


def csq_dbm(rssi):
    # CSQ rssi -> dBm (None for 99/unknown).
    if rssi is None or rssi < 0 or rssi > 31:
        return None
    return -113 + 2 * rssi


def parse_cbc(args):
    # '0,97,4177' -> (charging_state, percent, millivolts).
    f = split_args(_args_of(args, "+CBC"))
    if len(f) != 3:
        return None
    v = (_int(f[0]), _int(f[1]), _int(f[2]))
    if None in v:
        return None
    return v


def parse_creg(args):
    # +CREG reply ('n,stat[,lac,ci]') or URC ('stat[,lac,ci]') -> (stat, lac, ci);
    # lac/ci are upper-case hex strings or None.  stat 1 = home, 5 = roaming.
    f = split_args(_args_of(_args_of(args, "+CREG"), "+CGREG"))
    if len(f) in (2, 4):
        f = f[1:]
    if len(f) not in (1, 3):
        return None
    stat = _int(f[0])
    if stat is None:
        return None
    if len(f) == 3:
        return (stat, f[1].upper(), f[2].upper())
    return (stat, None, None)


def registered(stat):
    return stat == 1 or stat == 5


def parse_clcc(args):
    # '1,0,2,0,0,"num",129,""' -> (idx, dir, stat, mode, mpty, number).
    # stat: 0 active 1 held 2 dialing 3 alerting 4 incoming 5 waiting 6 disconnect.
    f = split_args(_args_of(args, "+CLCC"))
    if len(f) < 5:
        return None
    v = [_int(x) for x in f[:5]]
    if None in v:
        return None
    v.append(f[5] if len(f) > 5 else "")
    return tuple(v)


def parse_clip(args):
    # '"+521449...",145,"",0,"",0' -> '+521449...' ('' if withheld).
    s = _args_of(args, "+CLIP")
    if not s:
        return None
    return split_args(s)[0]


def parse_cmti(args):
    # '"SM",2' -> 2.
    f = split_args(_args_of(args, "+CMTI"))
    if len(f) != 2:
        return None
    return _int(f[1])


def parse_cmgs(args):
    # '12' -> message reference 12.
    return _int(_args_of(args, "+CMGS"))


def parse_cmgr(args):
    # Text-mode +CMGR header '"REC UNREAD","+52...","","24/05/01,10:20:30-24"'
    # -> (status, sender, alpha, ts); the body is on the following line(s).
    f = split_args(_args_of(args, "+CMGR"))
    if len(f) < 2:
        return None
    ts = ",".join(f[3:5]) if len(f) > 3 else ""
    return (f[0], f[1], f[2] if len(f) > 2 else "", ts)


def sms_stored(lines):
    # AT+CPMS? lines ('+CPMS: "SM",1,30,"SM",1,30,...') -> False only if the storage
    # read from is known to be empty (a reply not understood: look anyway).
    for ln in lines:
        if ln.startswith("+CPMS"):
            f = split_args(_args_of(ln, "+CPMS"))
            used = _int(f[1]) if len(f) > 1 else None
            return used is None or used > 0
    return True


def parse_ceng(args):
    # AT+CENG? cell line.  Serving cell (index 0):
    # '0,"<arfcn>,<rxl>,<rxq>,<mcc>,<mnc>,<bsic>,<cellid>,<rla>,<txp>,<lac>,<TA>"';
    # neighbour (index >0): '<n>,"<arfcn>,<rxl>,<bsic>,<cellid>,<mcc>,<mnc>,<lac>"'
    # -> dict(cell=index, mcc, mnc, lac, cellid): what her SMS says of a cell, the shape
    # dialect_a7670.serving_cell gives too (the rest took heap in the alert's state and
    # doubled the position sealed at each save).  mcc/mnc stay decimal strings,
    # cellid/lac hex strings (as the modem prints them, upper-cased).  None if malformed
    # or the cell is empty (cellid ffff/0000).
    s = _args_of(args, "+CENG")
    i = s.find(",")
    if i < 0:
        return None
    idx = _int(s[:i])
    if idx is None:
        return None
    f = split_args(s[i + 1:].strip().strip('"'))
    if len(f) < (11 if idx == 0 else 7):
        return None
    # (mcc, mnc, cellid, lac) field indexes of each form
    m, n, c, l = (3, 4, 6, 9) if idx == 0 else (4, 5, 3, 6)
    d = {"cell": idx, "mcc": f[m], "mnc": f[n], "lac": f[l].upper(), "cellid": f[c].upper()}
    if not d["cellid"] or d["cellid"] in ("FFFF", "0000") or not d["mcc"].isdigit():
        return None
    return d
