"""Sans-IO NMEA-0183 parser for the GPS receiver (MicroPython and CPython).

No I/O, no asyncio, no threads: the caller reads bytes from wherever (UART,
file, socket, test vector) and hands them over::

    p = NMEAParser()
    n = p.feed(uart.read())     # any size, any chunking; returns new fixes
    while True:                 # pull each new fix as it arrives ...
        f = p.pop_fix()
        if f is None:
            break
        use(f)
    p.fix                       # ... or just look at the latest one (or None)
    p.flush()                   # end of stream: finish an unterminated line

Design (for a microcontroller)
------------------------------
* One preallocated ``bytearray`` holds the sentence being received (default
  128 bytes; NMEA's limit is 82).  A longer candidate is dropped and counted
  in ``stats.overlong``: memory never grows with the input.
* ``feed`` costs a few integer operations per byte and allocates nothing per
  byte.  The checksum is a running XOR.  Fields are located by index in the
  buffer (a preallocated table of comma offsets, no ``split``) and only the
  fields needed are converted; floats, tuples and the ``Fix`` object are
  allocated only for RMC with status A and for GGA.
* ``feed`` never raises because of the bytes it is given: anything that is
  not understood is counted and skipped.  As a last line of defence a bug in
  a sentence handler is caught and counted in ``stats.internal_errors``
  (the tests require it to stay 0).
* Fixes are queued in a bounded FIFO for ``pop_fix`` (``queue`` entries,
  default 8; the oldest is dropped and counted in ``stats.fix_dropped``).
  Pass ``queue=0`` to use ``fix``/``feed``'s return value only.

Framing rules (identical to ``data/nmea/expected.json`` ``_definitions``)
--------------------------------------------------------------------------------
* The stream is split into lines on LF; trailing CRs of a line are removed.
* A line whose first byte is ``#`` is a comment (gpsd metadata) and skipped.
* A line is split at every ``$`` or ``!``; each piece starting there is a
  candidate sentence (``stats.sentences``).  Text before the first ``$``/``!``
  of a line is an ignored fragment; a lone ``$`` (as in ``$$GNGSA``) is a
  stray start (``stats.stray``), not a candidate.
* checksum_ok: the candidate ends in ``*HH`` (2 hex digits, any case) equal to
  the XOR of all bytes between the leading ``$``/``!`` and that ``*``;
  checksum_bad: it ends in ``*HH`` that differs; checksum_missing: no
  ``*HH`` at the end.  Only checksum_ok sentences are interpreted.
  Invariant: ``sentences == checksum_ok + checksum_bad + checksum_missing
  + overlong``.
* ``!`` sentences (AIS etc.) are candidates but otherwise ignored, and so are
  proprietary ``$P...`` sentences and every type but RMC and GGA.
* RMC/GGA of any talker (GP, GN, GL, GA, GB, BD, ...): ``$`` + 2 talker
  characters (ASCII letters, digits or ``_``, first one not ``P``) + ``RMC,``
  or ``GGA,``, with no ``*`` other than the checksum's.
* ``stats.rmc_valid``: checksum_ok RMC whose status field (field 2) is
  exactly ``A``, unless its mode (field 12, NMEA 2.3) is ``N`` (no fix) or
  ``E`` (estimated: dead reckoning; NMEA wants status V with both, u-blox
  sends A with E; no sentence of the real logs has either with ``A``); the
  others are ``stats.rmc_invalid``.  Each valid RMC yields
  a new ``Fix``, unless its position is empty, impossible (|lat| > 90,
  |lon| > 180, minutes >= 60, hemisphere not N/S resp. E/W) or exactly 0,0
  (a receiver's placeholder): then no fix is produced and
  ``stats.rmc_nopos`` is counted.
* ``stats.gga``: checksum_ok GGA sentences.  GGA quality, satellites, HDOP
  and altitude are merged into the fix with the same time of day, whichever
  of RMC and GGA comes first in the epoch.  A GGA arriving after its RMC
  updates that ``Fix`` object in place (``fix.gga`` becomes True).

Fix
---
``lat``/``lon``: float degrees, S/W negative, computed like pynmea2
(``deg + minutes/60``).  NB: the ESP32 port has single-precision floats
(~1e-5 degrees at 100 degrees), so ``lat_e7``/``lon_e7`` also give the exact
value in 1e-7 degrees (rounded half away from zero) and ``deg_str(e7, 6)``
formats it without floats (for SMS / URLs).
``time``: (hh, mm, ss, ms) or None; ``utc``: (y, m, d, hh, mm, ss, ms) or None
when the date (ddmmyy; yy < 80 -> 20yy else 19yy) or time is unusable.
``valid`` (RMC status A; False once its epoch's GGA says quality 0, no fix,
or 6, estimated), ``quality`` (GGA fix quality, 1 if no GGA was merged),
``sats``, ``hdop``, ``alt`` (metres), ``speed_knots``, ``course`` (None when absent), ``gga`` (a GGA was merged), ``seq`` (1, 2, ...
per parser), ``tod`` (time of day as the int hhmmssmmm, -1 if none).

Where the parser knowingly differs from the reference (never in the captures)
-----------------------------------------------------------------------------
* A candidate longer than the buffer is only counted (``overlong``), not
  classified by checksum nor interpreted.
* Talker characters are ASCII only; pynmea2's regex also takes Unicode
  letters/digits.
* A valid RMC with an empty/impossible/0,0 position yields no fix (the
  reference would report lat/lon null or 0.0 for it); status A with mode N
  or E is rmc_invalid (the reference counts it valid).
* Fractions of a second >= .9995 give 999 ms, not the reference's 1000.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# const() names starting with "_" are folded into the bytecode by MicroPython's compiler:
# no global, no qstr, no dictionary lookup in feed()'s per-byte loop.
_CAP = const(128)        # default sentence buffer
_MAXF = const(24)        # comma offsets kept per sentence (RMC has 12-13 fields)

# receiver states
_BOL = const(0)          # at the beginning of a line
_TEXT = const(1)         # in a fragment (text before any '$'/'!')
_COMMENT = const(2)      # in a '#' line
_IN = const(3)           # in a candidate sentence


class Stats:
    """Counters; every one only ever increases."""

    NAMES = ("sentences", "checksum_ok", "checksum_bad", "checksum_missing",
             "overlong", "stray", "rmc_valid", "rmc_invalid", "rmc_nopos",
             "gga", "fixes", "fix_dropped", "internal_errors")

    def __init__(self):
        for k in self.NAMES:
            setattr(self, k, 0)

    def as_dict(self):
        d = {}
        for k in self.NAMES:
            d[k] = getattr(self, k)
        return d


class Fix:
    """One position fix (from an RMC with status A, plus its epoch's GGA)."""

    # defaults live in the class: fewer instance attributes, less allocation
    valid = True
    quality = 1
    sats = None
    hdop = None
    alt = None
    gga = False

    def __init__(self, seq, lat, lon, lat_e7, lon_e7, time, utc, tod,
                 speed_knots, course):
        self.seq = seq
        self.lat = lat
        self.lon = lon
        self.lat_e7 = lat_e7
        self.lon_e7 = lon_e7
        self.time = time
        self.utc = utc
        self.tod = tod            # time of day as int hhmmssmmm, or -1
        self.speed_knots = speed_knots
        self.course = course

    def as_dict(self):
        return {
            "seq": self.seq, "lat": self.lat, "lon": self.lon,
            "lat_e7": self.lat_e7, "lon_e7": self.lon_e7,
            "time": self.time, "utc": self.utc, "valid": self.valid,
            "quality": self.quality, "sats": self.sats, "hdop": self.hdop,
            "alt": self.alt, "speed_knots": self.speed_knots,
            "course": self.course, "gga": self.gga,
        }

    def __repr__(self):
        return "Fix(%d, %s, %s, %s)" % (
            self.seq, deg_str(self.lat_e7), deg_str(self.lon_e7), self.utc)


def deg_str(e7, places=6):
    """Format 1e-7 degree units as a decimal string, rounded half away from
    zero to `places` (0..7) decimals, without using floats."""
    neg = e7 < 0
    v = -e7 if neg else e7
    if places < 7:
        div = 10 ** (7 - places)
        v = (v + div // 2) // div
    s = str(v)
    if places > 0:
        if len(s) <= places:
            s = "0" * (places + 1 - len(s)) + s
        s = s[:-places] + "." + s[-places:]
    if neg and v:
        s = "-" + s
    return s


def _hex(b):
    if 48 <= b <= 57:
        return b - 48
    if 65 <= b <= 70:
        return b - 55
    if 97 <= b <= 102:
        return b - 87
    return -1


def _word(b):
    # ASCII \w: letters, digits, '_'
    return 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b == 95


def _uint(buf, a, b):
    """Unsigned decimal integer in buf[a:b] (1..9 digits), else -1."""
    if b <= a or b - a > 9:
        return -1
    v = 0
    while a < b:
        c = buf[a] - 48
        if c < 0 or c > 9:
            return -1
        v = v * 10 + c
        a += 1
    return v


def _float(buf, a, b):
    """[-]digits[.digits] in buf[a:b] (at most 15 bytes) as float, else None."""
    if b <= a or b - a > 15:
        return None
    neg = buf[a] == 45
    if neg:
        a += 1
    m = 0
    k = -1          # digits after '.', -1 while no '.' seen
    nd = 0
    while a < b:
        c = buf[a]
        if c == 46:
            if k >= 0:
                return None
            k = 0
        elif 48 <= c <= 57:
            m = m * 10 + c - 48
            nd += 1
            if k >= 0:
                k += 1
        else:
            return None
        a += 1
    if not nd:
        return None
    v = m / _P10[k] if k > 0 else float(m)
    return -v if neg else v


_P10 = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15)
_MAXFRAC = const(12)  # minute decimals beyond this are ignored (receivers give <= 7)


def _coord(buf, a, b, h, pos, neg, maxdeg):
    """ddmm.mmmm / dddmm.mmmm in buf[a:b] with hemisphere byte h ->
    (float degrees, int 1e-7 degrees), or None if empty/invalid."""
    if h == pos:
        sign = 1
    elif h == neg:
        sign = -1
    else:
        return None
    ip = 0          # integer part (ddmm)
    ni = 0
    m = 0           # minute fraction digits
    k = -1
    while a < b:
        c = buf[a]
        if c == 46:
            if k >= 0:
                return None
            k = 0
        elif 48 <= c <= 57:
            if k < 0:
                if ni > 9:
                    return None
                ip = ip * 10 + c - 48
                ni += 1
            elif k < _MAXFRAC:
                m = m * 10 + c - 48
                k += 1
        else:
            return None
        a += 1
    if ni < 3:
        return None
    if k < 0:
        k = 0
    deg = ip // 100
    mint = ip % 100
    if mint >= 60 or deg > maxdeg:
        return None
    mm = mint * 10 ** k + m          # minutes * 10**k, exactly
    den = 60 * 10 ** k
    q, r = divmod(mm * 10000000, den)
    if 2 * r >= den:
        q += 1
    if deg == maxdeg and mm:
        return None
    e7 = deg * 10000000 + q
    f = deg + (mm / _P10[k] if k else float(mm)) / 60
    if sign < 0:
        return -f, -e7
    return f, e7


def _tod(buf, a, b):
    """hhmmss[.s+] in buf[a:b] -> the int hhmmssmmm (a small int, keeps a
    leap second 60 distinct), or -1.
    Milliseconds are the fraction rounded half up (as the reference), except
    that .9995 and above give 999 rather than 1000."""
    if b - a < 6:
        return -1
    hh = _uint(buf, a, a + 2)
    mi = _uint(buf, a + 2, a + 4)
    ss = _uint(buf, a + 4, a + 6)
    if hh < 0 or mi < 0 or ss < 0 or hh > 23 or mi > 59 or ss > 60:
        return -1
    ms = 0
    a += 6
    if a < b:
        if buf[a] != 46 or b - a < 2:
            return -1
        a += 1
        k = 0
        while a < b:
            c = buf[a] - 48
            if c < 0 or c > 9:
                return -1
            if k < 3:
                ms = ms * 10 + c
            elif k == 3 and c >= 5:
                ms += 1         # the rest is >= .5 ms: round up
            k += 1
            a += 1
        while k < 3:
            ms *= 10
            k += 1
        if ms > 999:
            ms = 999
    return ((hh * 100 + mi) * 100 + ss) * 1000 + ms


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(buf, a, b):
    """ddmmyy -> (y, m, d) or None."""
    if b - a != 6:
        return None
    d = _uint(buf, a, a + 2)
    m = _uint(buf, a + 2, a + 4)
    y = _uint(buf, a + 4, a + 6)
    if d < 1 or m < 1 or m > 12 or y < 0:   # _uint: -1 for what is no number
        return None
    y += 2000 if y < 80 else 1900
    n = _MDAYS[m - 1]
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        n = 29
    if d > n:
        return None
    return y, m, d


class NMEAParser:
    """Incremental NMEA-0183 parser; see the module docstring."""

    def __init__(self, bufsize=_CAP, queue=8):
        if not 8 <= bufsize <= 255:
            raise ValueError("bufsize must be 8..255")
        self._buf = bytearray(bufsize)
        self._f = bytearray(_MAXF + 1)    # field end offsets (',' or '*')
        self._st = _BOL
        self._n = 0         # bytes in _buf
        self._x = 0         # running XOR of the bytes after '$'/'!'
        self._ovf = 0       # bytes beyond the buffer: 1 only CRs, 2 other
        self._q = []
        self._qmax = queue
        self._seq = 0
        self._g_tod = -1    # pending GGA (seen before its RMC)
        self._g = None
        self.stats = Stats()
        self.fix = None

    # -- public -----------------------------------------------------------
    def feed(self, data):
        """Consume bytes; return how many new fixes they completed."""
        if isinstance(data, str):
            data = data.encode()
        before = self.stats.fixes
        buf = self._buf
        cap = len(buf)
        st = self._st
        n = self._n
        x = self._x
        for b in data:
            if st == _IN:
                if b == 10:
                    self._end(n, x, True)
                    st = _BOL
                elif b == 36 or b == 33:
                    self._end(n, x, False)
                    buf[0] = b
                    n = 1
                    x = 0
                    self._ovf = 0
                elif n < cap:
                    buf[n] = b
                    n += 1
                    x ^= b
                elif b == 13:
                    self._ovf |= 1
                else:
                    self._ovf = 2
            elif b == 36 or b == 33:
                if st != _COMMENT:
                    buf[0] = b
                    n = 1
                    x = 0
                    self._ovf = 0
                    st = _IN
            elif b == 10:
                st = _BOL
            elif st == _BOL:
                st = _COMMENT if b == 35 else _TEXT
        self._st = st
        self._n = n
        self._x = x
        return self.stats.fixes - before

    def flush(self):
        """End of stream: handle an unterminated last line as if LF followed.
        Returns the number of new fixes."""
        before = self.stats.fixes
        if self._st == _IN:
            self._end(self._n, self._x, True)
        self._st = _BOL
        return self.stats.fixes - before

    def pop_latest(self):
        """Drain the queue; the newest fix (or None). For a consumer that wants only
        the current position, not every epoch."""
        q = self._q
        if not q:
            return None
        f = q[-1]
        del q[:]
        return f

    def pop_fix(self):
        """Oldest fix not yet popped, or None."""
        if self._q:
            return self._q.pop(0)
        return None

    # -- internals --------------------------------------------------------
    def _end(self, n, x, eol):
        """A candidate of n bytes (running XOR x) ended; eol: at end of line."""
        buf = self._buf
        st = self.stats
        if eol:
            if self._ovf == 1:
                self._ovf = 0       # only trailing CRs overflowed
            while n > 1 and buf[n - 1] == 13:
                n -= 1
                x ^= 13
        if n == 1:
            st.stray += 1
            return
        st.sentences += 1
        if self._ovf:
            st.overlong += 1
            return
        if n >= 4 and buf[n - 3] == 42:
            h1 = _hex(buf[n - 2])
            h2 = _hex(buf[n - 1])
            if h1 >= 0 and h2 >= 0:
                if x ^ 42 ^ buf[n - 2] ^ buf[n - 1] != h1 * 16 + h2:
                    st.checksum_bad += 1
                    return
                st.checksum_ok += 1
                if (n >= 10 and buf[0] == 36 and buf[6] == 44
                        and buf[1] != 80 and buf[1] != 112
                        and _word(buf[1]) and _word(buf[2])):
                    t3, t4, t5 = buf[3], buf[4], buf[5]
                    try:
                        if t3 == 82 and t4 == 77 and t5 == 67:
                            self._rmc(n)
                        elif t3 == 71 and t4 == 71 and t5 == 65:
                            self._gga(n)
                    except Exception:
                        st.internal_errors += 1
                return
        st.checksum_missing += 1

    def _fields(self, n):
        """Record the end offset of each field after the sentence ID in
        self._f; return the field count, or -1 if there is a stray '*'."""
        buf = self._buf
        f = self._f
        end = n - 3             # the checksum's '*'
        nf = 0
        i = 7
        while i < end:
            c = buf[i]
            if c == 44:
                if nf < _MAXF:
                    f[nf] = i
                    nf += 1
            elif c == 42:
                return -1
            i += 1
        if nf < _MAXF:
            f[nf] = end
            nf += 1
        return nf

    # After _fields(), field i (1-based, after the sentence ID) is
    # buf[7 if i == 1 else f[i - 2] + 1 : f[i - 1]]

    def _rmc(self, n):
        st = self.stats
        nf = self._fields(n)
        if nf < 0:
            return              # not an RMC for the reference either
        buf = self._buf
        f = self._f
        # status = field 2; an NMEA 2.3+ mode (field 12) "N" (no fix) or "E" (dead
        # reckoning: u-blox and SiRF keep status A while they extrapolate her last speed
        # indoors) is no fix either.  (NMEA 4.1's field 13 "V" is not that: u-blox
        # sends it with every fix, "no navigational status information".)
        if (nf < 2 or f[1] - f[0] != 2 or buf[f[0] + 1] != 65
                or nf >= 12 and f[11] - f[10] == 2 and buf[f[10] + 1] in b"EN"):
            st.rmc_invalid += 1
            return
        st.rmc_valid += 1
        if nf < 6:
            st.rmc_nopos += 1
            return
        h = buf[f[2] + 1] if f[3] - f[2] == 2 else 0
        lat = _coord(buf, f[1] + 1, f[2], h, 78, 83, 90)
        h = buf[f[4] + 1] if f[5] - f[4] == 2 else 0
        lon = _coord(buf, f[3] + 1, f[4], h, 69, 87, 180)
        if lat is None or lon is None or not (lat[1] or lon[1]):  # 0,0: a placeholder
            st.rmc_nopos += 1
            return
        tod = _tod(buf, 7, f[0])
        tm = None
        utc = None
        if tod >= 0:
            tm = (tod // 10000000, tod // 100000 % 100, tod // 1000 % 100,
                  tod % 1000)
            if nf >= 9:
                d = _date(buf, f[7] + 1, f[8])
                if d is not None:
                    utc = d + tm
        spd = _float(buf, f[5] + 1, f[6]) if nf >= 7 else None
        crs = _float(buf, f[6] + 1, f[7]) if nf >= 8 else None
        self._seq += 1
        fix = Fix(self._seq, lat[0], lon[0], lat[1], lon[1], tm, utc, tod,
                  spd, crs)
        if tod >= 0 and tod == self._g_tod:
            self._merge(fix, self._g)
            self._g_tod = -1
        self.fix = fix
        st.fixes += 1
        q = self._q
        if self._qmax > 0:
            if len(q) >= self._qmax:
                q.pop(0)
                st.fix_dropped += 1
            q.append(fix)

    def _gga(self, n):
        self.stats.gga += 1
        nf = self._fields(n)
        if nf < 1:
            return
        buf = self._buf
        f = self._f
        tod = _tod(buf, 7, f[0])
        if tod < 0 or nf < 9:
            return
        g = (_uint(buf, f[4] + 1, f[5]), _uint(buf, f[5] + 1, f[6]),
             _float(buf, f[6] + 1, f[7]), _float(buf, f[7] + 1, f[8]))
        fix = self.fix
        if fix is not None and fix.tod == tod:
            self._merge(fix, g)
        else:
            self._g_tod = tod
            self._g = g

    @staticmethod
    def _merge(fix, g):
        q, sats, hdop, alt = g
        if q >= 0:
            fix.quality = q
            if q == 0 or q == 6:  # no fix / estimated (dead reckoning): not where she is
                fix.valid = False
        fix.sats = sats if sats >= 0 else None
        fix.hdop = hdop
        fix.alt = alt
        fix.gga = True
