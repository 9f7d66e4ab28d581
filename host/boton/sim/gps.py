"""The simulated GPS receiver of the virtual device (CPython).

``GpsSim(scheduler, emit)`` writes NMEA-0183 to the device's GPS UART through
``emit(bytes)``.  It never sleeps: every burst is a ``scheduler.after`` callback,
so the period follows ``scheduler.time_scale`` and tests drive it with a
``ManualClock``.

Simulated receiver::

    gps = GpsSim(sched, emit, utc=datetime(2025, 6, 1, 18, 0, tzinfo=timezone.utc))
    gps.set_position(21.88234, -102.29143)          # or set_route([...], speed_kmh=5)
    gps.start(mode="cold")                          # or start(ttff_s=2.0)

* One burst per period (1 s of simulated time): a u-blox's default set, RMC VTG GGA
  GSA GSV GLL (``gga``/``gsa`` False leave those out), with TXT banners at power-on, real
  formatting (ddmm.mmmmm, hemisphere letters, hhmmss.ss, ddmmyy) and checksums.
* Before the fix (time to first fix: ``TTFF`` presets cold 30 s, warm 25 s,
  hot 1 s of simulated time; a named ``receiver=`` has its datasheet's, ``RECEIVERS``;
  or any ``ttff_s``) the sentences have empty
  positions and status V, like real receivers; a cold start also has no time
  or date yet (no RTC), warm/hot starts do.
* UTC starts at the settable ``utc`` (default: now) and advances with simulated
  time: burst k after ``start()`` carries ``utc + k * period``.
* Faults: ``silent(True)`` (time goes on, nothing is sent), ``never_fix(True)``
  (status V forever, also drops a fix already obtained), ``dead_reckoning(True)``
  (the sky is lost and the receiver only estimates: its fixes say so as a u-blox
  does, status A with RMC mode E and GGA quality 6, at wherever ``set_position``
  puts the estimate), ``corrupt_checksums(rate)`` (that fraction of sentences get a
  wrong ``*HH``; applies to replays too), ``wrong_baud(baud)`` (the receiver talks at
  ``baud`` while the board reads 9600: the bytes arrive as a UART decodes the bits,
  ``misread``).

Replay of a captured log::

    gps.replay(path, realtime=False)

skips ``#`` lines (gpsd metadata) and sends everything else byte-exact:
``realtime=False`` as fast as the consumer takes it (``chunk`` bytes per
scheduler step), ``realtime=True`` at the log's 1 Hz cadence (a new burst
starts at each RMC sentence, one burst per period).
"""
from __future__ import annotations

import math
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

TTFF = {"cold": 30.0, "warm": 25.0, "hot": 1.0}
# The boards' receivers, from their datasheets (autonomous, open sky):
#  NEO-6M: u-blox, NEO-6 Data Sheet (GPS.G6-HW-09005), "Time-To-First-Fix": cold 27 s,
#          warm 27 s, hot 1 s.
#  L76K:   Quectel's L76K specification (as Seeed's and Waveshare's L76K pages quote it):
#          cold 30 s, hot 5.5 s without AGNSS. No warm figure: a warm start downloads the
#          ephemeris as a cold one does, so it is taken as the cold figure.
RECEIVERS = {"NEO-6M": {"cold": 27.0, "warm": 27.0, "hot": 1.0},
             "L76K": {"cold": 30.0, "warm": 30.0, "hot": 5.5}}
# How long a receiver's ephemeris stays good for a hot start after its last fix (Quectel:
# "within 2 hours"; u-blox: up to 4 h): the shorter.
EPHEMERIS_VALID_S = 7200


def restart_mode(backup: bool, since_fix_s: float | None) -> str:
    """How a receiver starts when its supply comes back. Only its backup supply (V_BCKP)
    keeps its RTC, almanac and ephemeris while the supply is off (u-blox NEO-6 data sheet,
    "Power management"; Quectel: a hot start needs V_BCKP held, a cold one follows a cut of
    every supply): without one, every power-up is cold. With one: hot if its last fix is
    recent enough for the ephemeris, warm if it ever had one, else cold.
    since_fix_s: seconds since the receiver last had a fix (None: never)."""
    if not backup or since_fix_s is None:
        return "cold"
    return "hot" if since_fix_s < EPHEMERIS_VALID_S else "warm"
KNOTS_PER_MPS = 3600 / 1852
EARTH_R = 6371008.8


def nmea_checksum(body: bytes | str) -> int:
    if isinstance(body, str):
        body = body.encode("ascii")
    c = 0
    for b in body:
        c ^= b
    return c


def nmea_sentence(body: str | bytes) -> bytes:
    """'$' + body + '*HH\\r\\n' (body without '$' and checksum)."""
    if isinstance(body, str):
        body = body.encode("ascii")
    return b"$%s*%02X\r\n" % (body, nmea_checksum(body))


def fmt_lat(lat: float, decimals: int = 5) -> tuple[str, str]:
    """Degrees -> ('ddmm.mmmmm', 'N'|'S'), minutes rounded (with carry)."""
    return _fmt_dm(lat, 2, decimals), ("N" if lat >= 0 else "S")


def fmt_lon(lon: float, decimals: int = 5) -> tuple[str, str]:
    return _fmt_dm(lon, 3, decimals), ("E" if lon >= 0 else "W")


def _fmt_dm(value: float, deg_digits: int, decimals: int) -> str:
    scale = 10 ** decimals
    total = round(abs(value) * 60 * scale)          # minutes * 10**decimals
    deg, mins = divmod(total, 60 * scale)
    whole, frac = divmod(mins, scale)
    return "%0*d%02d.%0*d" % (deg_digits, deg, whole, decimals, frac)


def _distance_m(a, b) -> float:
    """Equirectangular distance: plenty for the short legs of a walk."""
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    x = (lon2 - lon1) * math.cos((lat1 + lat2) / 2)
    return EARTH_R * math.hypot(x, lat2 - lat1)


def _bearing(a, b) -> float:
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return math.degrees(math.atan2(x, y)) % 360.0


def misread(data: bytes, ratio: float) -> bytes:
    """What a UART makes of `data` sent `ratio` times faster than it reads (38400 read
    at 9600: 4.0): 8N1 frames on an idle-high line, each bit sampled mid-way, bytes with
    a framing error delivered too (as MicroPython's UART does)."""
    line = []
    for b in data:
        line += [0] + [(b >> i) & 1 for i in range(8)] + [1]
    out, i, n = bytearray(), 0.0, len(line)
    while i < n:
        if line[int(i)]:
            i += 1
            continue
        c = i + ratio / 2               # the middle of the start bit, in sent bits
        if int(c + 8 * ratio) >= n:
            break
        out.append(sum(line[int(c + k * ratio)] << (k - 1) for k in range(1, 9)))
        i = c + 9.5 * ratio              # past the stop bit's middle
    return bytes(out)


_CS_TAIL = re.compile(rb"\*([0-9A-Fa-f]{2})(\r?)$")


# What a u-blox says once at power-on: the u-blox 5 of data/nmea/ublox-lea-5h.log, word
# for word (a NEO-6M names its own chip and firmware in the same sentences)
BANNER = ("GPTXT,01,01,02,u-blox ag - www.u-blox.com", "GPTXT,01,01,02,HW  UBX-G50xx  00040005 ",
          "GPTXT,01,01,02,EXT CORE 6.00 (33247) May 13 2009 17:35:46",
          "GPTXT,01,01,02,ROM BASE 4.00 (25682) Jan 14 2008 16:29:23", "GPTXT,01,01,02,MOD LEA-5H-0",
          "GPTXT,01,01,02,ANTSUPERV=AC SD PDoS SR", "GPTXT,01,01,02,ANTSTATUS=OK")
# The sky the simulated receiver sees: (PRN, elevation, azimuth), the ones it uses first
SKY = ((2, 63, 45), (5, 41, 301), (7, 22, 118), (9, 55, 201), (13, 12, 80), (15, 33, 250),
       (18, 70, 330), (20, 18, 160), (21, 8, 20), (26, 47, 95), (29, 27, 275), (30, 5, 190))


class GpsSim:
    """A 1 Hz NMEA receiver (fixed point or route) or a log replayer."""

    def __init__(self, scheduler, emit, *, utc: datetime | None = None, period_s: float = 1.0,
                 talker: str = "GP", gga: bool = True, gsa: bool = True, sats: int = 8, hdop: float = 0.9,
                 alt_m: float = 1880.0, seed=None, receiver: str | None = None):
        if receiver is not None and receiver not in RECEIVERS:
            raise ValueError("receiver must be one of %s, not %r" % (", ".join(RECEIVERS), receiver))
        self.sched = scheduler
        self.ttff = RECEIVERS[receiver] if receiver else TTFF  # this receiver's presets
        self.emit = emit
        self.period_s = period_s
        self.talker = talker
        self.gga = gga      # False: RMC (and GSA) only, as magellan-ec10.log's receiver
        self.gsa = gsa
        self.sats = sats
        self.hdop = hdop
        self.alt_m = alt_m
        self._rand = random.Random(seed)
        if utc is None:
            utc = datetime.now(timezone.utc).replace(microsecond=0)
        self._utc0 = utc
        self._utc_tick = 0
        self._off_since = None   # scheduler time the receiver was switched off (None: on, or never on)
        self._waypoints = [(21.88234, -102.29143)]
        self._speed_mps = 0.0
        self._loop = False
        self._route_tick = 0
        self._handle = None
        self._tick = 0
        self.mode = "cold"
        self.ttff_s = self.ttff["cold"]
        self.running = False
        self.replaying = False
        self._silent = False
        self._never_fix = False
        self._dead_reckoning = False
        self._corrupt = 0.0
        self._baud_ratio = None
        self.bursts_sent = 0
        self.sentences_sent = 0
        self.bytes_sent = 0
        self.corrupted = 0

    # -- configuration ---------------------------------------------------
    def set_utc(self, utc: datetime):
        """UTC of the current moment; it then advances with simulated time."""
        self._utc0 = utc
        self._utc_tick = self._tick
        if self._off_since is not None:
            self._off_since = self.sched.now()

    def set_position(self, lat: float, lon: float, alt_m: float | None = None):
        self.set_route([(lat, lon)], speed_kmh=0.0)
        if alt_m is not None:
            self.alt_m = alt_m

    def set_route(self, waypoints, speed_kmh: float = 5.0, loop: bool = False):
        """Walk the (lat, lon) waypoints at speed_kmh from now on (simulated
        time), stopping at the last one (or starting over if loop)."""
        pts = [(float(a), float(b)) for a, b in waypoints]
        if not pts:
            raise ValueError("route needs at least one waypoint")
        self._waypoints = pts
        self._speed_mps = speed_kmh / 3.6
        self._loop = loop
        self._route_tick = self._tick

    # -- faults ------------------------------------------------------------
    def silent(self, on: bool = True):
        self._silent = bool(on)

    def never_fix(self, on: bool = True):
        self._never_fix = bool(on)

    def dead_reckoning(self, on: bool = True):
        self._dead_reckoning = bool(on)

    def wrong_baud(self, baud: int | None, board_baud: int = 9600):
        """The receiver talks at `baud` (None: at the board's own speed again)."""
        self._baud_ratio = None if baud in (None, board_baud) else baud / board_baud

    def corrupt_checksums(self, rate: float):
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        self._corrupt = rate

    # -- state -------------------------------------------------------------
    @property
    def sim_seconds(self) -> float:
        """Simulated seconds since start() (or replay())."""
        return self._tick * self.period_s

    @property
    def utc(self) -> datetime:
        t = self._utc0 + timedelta(seconds=(self._tick - self._utc_tick) * self.period_s)
        if self._off_since is not None:
            # satellites keep the time while the receiver is off: whole seconds, as it says them
            off_s = (self.sched.now() - self._off_since) / self.sched.time_scale
            t += timedelta(seconds=round(off_s))
        return t

    @property
    def fixed(self) -> bool:
        return (self.running and not self._never_fix
                and self.sim_seconds >= self.ttff_s)

    def position_at(self, seconds: float):
        """((lat, lon), speed m/s, course deg or None) after `seconds` on the route."""
        pts = self._waypoints
        if len(pts) == 1 or self._speed_mps <= 0:
            return pts[0], 0.0, None
        legs = [(a, b, _distance_m(a, b)) for a, b in zip(pts, pts[1:])]
        total = sum(d for _, _, d in legs)
        dist = self._speed_mps * max(0.0, seconds)
        if total <= 0:
            return pts[0], 0.0, None
        if self._loop:
            dist %= total
        elif dist >= total:
            return pts[-1], 0.0, None
        for a, b, d in legs:
            if dist <= d and d > 0:
                f = dist / d
                return ((a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f),
                        self._speed_mps, _bearing(a, b))
            dist -= d
        return pts[-1], 0.0, None

    @property
    def position(self):
        return self.position_at((self._tick - self._route_tick) * self.period_s)[0]

    # -- receiver ----------------------------------------------------------
    def start(self, ttff_s: float | None = None, *, mode: str = "cold"):
        """Power up: the first burst comes one period later; the fix after
        ttff_s simulated seconds (default: the mode's preset for this receiver)."""
        if mode not in TTFF:
            raise ValueError("mode must be one of %s" % ", ".join(TTFF))
        self.stop()
        self.mode = mode
        self.ttff_s = self.ttff[mode] if ttff_s is None else float(ttff_s)
        self._utc0 = self.utc
        self._off_since = None
        self._tick = 0
        self._utc_tick = 0
        self._route_tick = 0
        self.running = True
        self._handle = self.sched.after(self.period_s, self._burst)

    def stop(self):
        self.sched.cancel(self._handle)
        self._handle = None
        if self.running and self._off_since is None:
            self._off_since = self.sched.now()
        self.running = False
        self.replaying = False

    def _burst(self):
        self._tick += 1
        self._handle = self.sched.after(self.period_s, self._burst)
        if self._silent:
            return
        self._send(self.sentences())

    def sentences(self) -> list[bytes]:
        """The sentences of the burst at the current tick."""
        t = self.talker
        fixed = self.fixed
        known_time = fixed or self.mode != "cold"
        u = self.utc
        hms = u.strftime("%H%M%S") + ".%02d" % (u.microsecond // 10000) if known_time else ""
        date = u.strftime("%d%m%y") if known_time else ""
        # a u-blox's default output (data/nmea/ublox-lea-5h.log): VTG, GSV and GLL besides
        # RMC/GGA/GSA, the banner at power-on: ~750 bytes a second in a fix, as the
        # firmware's UART and parser really carry
        out = list(BANNER) if self._tick == 1 else []
        if not fixed:
            out.append(t + "RMC,%s,V,,,,,,,%s,,,N" % (hms, date))
            out.append(t + "VTG,,,,,,,,,N")
            if self.gga:
                out.append(t + "GGA,%s,,,,,0,00,99.99,,,,,," % hms)
            if self.gsa:
                out.append(t + "GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99")
            out += self._gsv(0)
            out.append(t + "GLL,,,,,%s,V,N" % hms)
            return [nmea_sentence(s) for s in out]
        (lat, lon), speed, course = self.position_at((self._tick - self._route_tick) * self.period_s)
        la, ns = fmt_lat(lat)
        lo, ew = fmt_lon(lon)
        crs = "%.2f" % course if course is not None else ""
        mode, quality = ("E", 6) if self._dead_reckoning else ("A", 1)
        knots = speed * KNOTS_PER_MPS
        out.append(t + "RMC,%s,A,%s,%s,%s,%s,%.3f,%s,%s,,,%s" % (hms, la, ns, lo, ew, knots, crs, date, mode))
        out.append(t + "VTG,%s,T,,M,%.3f,N,%.3f,K,%s" % (crs, knots, knots * 1.852, mode))
        if self.gga:
            out.append(t + "GGA,%s,%s,%s,%s,%s,%d,%02d,%.2f,%.1f,M,-9.4,M,," % (hms, la, ns, lo, ew, quality, self.sats,
                                                                             self.hdop, self.alt_m))
        if self.gsa:
            prns = ["%02d" % sat[0] for sat in SKY[:self.sats]]
            prns += [""] * (12 - len(prns))
            out.append(t + "GSA,A,3,%s,%.2f,%.2f,%.2f" % (",".join(prns), self.hdop * 1.6, self.hdop, self.hdop * 1.3))
        out += self._gsv(self.sats)
        out.append(t + "GLL,%s,%s,%s,%s,%s,A,%s" % (la, ns, lo, ew, hms, mode))
        return [nmea_sentence(s) for s in out]

    def _gsv(self, used):
        """Satellites in view, four to a sentence, as a u-blox lists them: the `used` ones
        with a signal, and the rest of the sky without (SKY); none before a fix
        (data/nmea/ublox-lea-5q.log: "$GPGSV,1,1,00*79")."""
        if not used:
            return [self.talker + "GSV,1,1,00"]
        n = (len(SKY) + 3) // 4
        out = []
        for i in range(n):
            sats = ""
            for j, (prn, elev, azim) in enumerate(SKY[4 * i:4 * i + 4], 4 * i):
                sats += ",%02d,%02d,%03d,%s" % (prn, elev, azim, "%02d" % (42 - j) if j < used else "")
            out.append(self.talker + "GSV,%d,%d,%02d%s" % (n, i + 1, len(SKY), sats))
        return out

    def _maybe_corrupt(self, line: bytes) -> bytes:
        if self._corrupt <= 0 or self._rand.random() >= self._corrupt:
            return line
        m = _CS_TAIL.search(line.rstrip(b"\n"))
        if not m:
            return line
        wrong = int(m.group(1), 16) ^ self._rand.randint(1, 255)
        self.corrupted += 1
        return line[:m.start(1)] + b"%02X" % wrong + line[m.end(1):]

    def _send(self, lines):
        data = b"".join(self._maybe_corrupt(l) for l in lines)
        if self._baud_ratio:
            data = misread(data, self._baud_ratio)
        self.bursts_sent += 1
        self.sentences_sent += len(lines)
        self.bytes_sent += len(data)
        if data:
            self.emit(data)

    # -- replay ------------------------------------------------------------
    @staticmethod
    def load_log(path) -> list[bytes]:
        """The log's lines (with their line endings), '#' lines removed."""
        raw = Path(path).read_bytes()
        return [l for l in raw.splitlines(keepends=True) if not l.startswith(b"#")]

    def replay(self, path, realtime: bool = False, *, chunk: int = 256, loop: bool = False):
        """Send a captured log instead of simulated sentences (see module doc)."""
        self.stop()
        lines = self.load_log(path)
        self._tick = 0
        self._utc_tick = 0
        self.running = False
        self.replaying = True
        if realtime:
            bursts, cur = [], []
            for l in lines:
                if l[:1] == b"$" and l[3:7] == b"RMC," and cur:
                    bursts.append(cur)
                    cur = []
                cur.append(l)
            if cur:
                bursts.append(cur)
            self._handle = self.sched.after(0, self._replay_burst, bursts, 0, loop)
        else:
            self._handle = self.sched.after(0, self._replay_chunk, lines, 0, chunk, loop)

    def _replay_burst(self, bursts, i, loop):
        if i >= len(bursts):
            if not loop or not bursts:
                self.replaying = False
                self._handle = None
                return
            i = 0
        self._handle = self.sched.after(self.period_s, self._replay_burst, bursts, i + 1, loop)
        self._tick += 1
        if not self._silent:
            self._send(bursts[i])

    def _replay_chunk(self, lines, i, chunk, loop):
        if i >= len(lines):
            if not loop or not lines:
                self.replaying = False
                self._handle = None
                return
            i = 0
        out, size = [], 0
        while i < len(lines) and (size < chunk or not out):
            out.append(lines[i])
            size += len(lines[i])
            i += 1
        self._handle = self.sched.after(0, self._replay_chunk, lines, i, chunk, loop)
        if not self._silent:
            self._send(out)
