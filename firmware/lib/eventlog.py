# The device's event log: a bounded ring of segment files on flash. Each entry carries a
# counter and a hash chained to the previous entry, so the host can show the retained
# log was not altered or spliced. No phone numbers or names are ever written here.
#
# Line format:  <seq> <unix_s> <event> <detail> <hash16>
# hash16 = first 16 hex of sha256(prev_hash16 + " " + "<seq> <unix_s> <event> <detail>")
# unix_s: UTC Unix seconds by the chip's RTC. Until the firmware set the RTC (from a GPS
# fix, clock_correction, or else the network's time, radio.network_clock: "clock gps" /
# "clock network" in the log) it counts from 2000-01-01 at power-on: such a stamp ends in
# "?" ("946684812?": 12 s after power-on, real time unknown). Networks that send no time
# and no fix indoors leave every stamp so.
import binascii
import hashlib
import os

SEGMENTS = 4
PER_SEGMENT = 64
LINE_MAX = 256  # far above an entry's length; a longer line is damage
ENOMEM = 12     # errno of an entry that found no heap (MemoryError), as the flash's errors are counted
GENESIS = "0" * 16
SYNCED_AFTER = 1577836800  # 2020-01-01: an RTC before it was never set
NETWORK_TIME_AFTER = 1704067200  # 2024-01-01: an AT+CCLK? before it is the module's default
GPS_ROLLOVER_S = 1024 * 7 * 86400
# Entries anyone can cause: an SMS or a call from any number. Spam, or someone who has
# the button's number, must not rotate her alerts and the registry's anchor out of the
# ring (docs/registry.md), so at most STRANGER_PER_DAY of them a day go to the flash; the
# rest are counted, and the count goes in as one "not_logged" entry ahead of the next
# entry written. The console still shows each one.
# An entry the flash refuses (full, worn, corrupt: OSError) is counted the same way, with
# the error ("errno=28"), and never raised: a log that cannot be written must not stop
# her alert, nor the boot. It is left out of the chain, so the log on the flash stays whole.
STRANGER = ("sms_ignored", "sms_locked", "incoming_rejected", "incoming_ignored")
STRANGER_PER_DAY = 4
# A fault retried for as long as it lasts (a SIM knocked loose: every hour; a dead module:
# every ~10 minutes) writes the same entries each round, and would rotate her alerts out
# of the ring in a day or two. One of each (event and detail) a day goes to the flash, the
# rest are counted as above; her next alert starts anew (its own faults are news).
# event -> the details this applies to (None: all).
REPEATS = {"sim_again": None, "sim_problem": None, "init_error": None, "not_registered": None,
           "modem_silent": None, "modem_hung": None, "modem_dead": None, "sweep_error": None,
           "power": ("modem_sleep",),
           # an SMS text with no heap to render it, tried again every second while it lasts
           "sms_retry": ("MemoryError",)}
REPEAT_S = 86400


def stamp(unix_s):
    return "%d" % unix_s if unix_s >= SYNCED_AFTER else "%d?" % unix_s


def unix_from_utc(utc):
    """(y, m, d, hh, mm, ss, ...) UTC -> Unix seconds (days from civil, no time module)."""
    y, m, d = utc[0], utc[1], utc[2]
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + utc[3] * 3600 + utc[4] * 60 + utc[5]


def clock_correction(rtc_s, utc):
    """A GPS fix's UTC (y, m, d, hh, mm, ss, ...) against the RTC's Unix seconds ->
    (the Unix seconds to set the RTC to, or None: it is within a minute; whether that is
    news for the log: only its first setting, a drift fix is not worth a log slot)."""
    if not utc:
        return None, False
    now = unix_from_utc(utc)
    if now < SYNCED_AFTER:
        # a receiver past its week-number rollover (the 1024-week counter, last wrapped
        # in April 2019) dates its fixes 19.6 years early; a date older still is none
        now += GPS_ROLLOVER_S
        if now < SYNCED_AFTER:
            return None, False
    if abs(rtc_s - now) <= 60:
        return None, False
    return now, rtc_s < SYNCED_AFTER


def _now():
    try:
        import hw
        return hw.unix_time()
    except Exception:  # a firmware tree too broken to import (safe mode) still logs
        import time
        return int(time.time())


def chain(prev, body):
    h = hashlib.sha256(prev.encode() + b" " + body.encode())
    return binascii.hexlify(h.digest()).decode()[:16]


class EventLog:
    def __init__(self, prefix="log", echo=True, clock=_now):
        self.prefix = prefix
        self.clock = clock
        self.echo = echo  # mirror entries on the console, where a technician's tool follows them
        self.seq = 0
        self.last = GENESIS
        self.seg = 0
        self.in_seg = 0
        self.day_t = None       # clock() when this day's stranger quota began
        self.day_n = 0          # stranger entries this day
        self.unlogged = {}      # event -> stranger entries past the quota, not yet told
        self.repeated = {}      # "event detail" -> clock() when a REPEATS entry was written
        self._resume()

    def _path(self, i):
        return "%s.%d" % (self.prefix, i)

    def _resume(self):
        for i in range(SEGMENTS):
            n, last = 0, None
            for last in self._lines(i):
                n += 1
            if last:
                seq = int(last.split(" ", 1)[0])
                if seq > self.seq:
                    self.seq, self.seg, self.in_seg = seq, i, n
                    self.last = last.rsplit(" ", 1)[1]

    def _lines(self, i):
        """The lines of segment i that parse, one at a time: a whole segment read at once
        took kilobytes in one piece from the heap at every boot, and split it. A torn last
        line (power cut mid-write) is dropped, and so is a line a flipped bit left invalid
        UTF-8 (read as text, the whole file raised UnicodeError at every boot: a crash loop)
        or too long to be one of ours."""
        try:
            with open(self._path(i), "rb") as f:
                skip = False
                while True:
                    raw = f.readline(LINE_MAX)
                    if not raw:
                        return
                    whole = raw[-1] == 10  # b"\n"
                    if skip or not whole and len(raw) == LINE_MAX:
                        skip = not whole  # the rest of an overlong line follows
                        continue
                    try:
                        line = raw.decode()
                    except UnicodeError:
                        continue
                    parts = line.rstrip("\n").split(" ")
                    if len(parts) >= 5 and len(parts[-1]) == 16 and parts[0].isdigit():
                        yield line.rstrip("\n")
        except OSError:
            return

    def add(self, event, detail="-"):
        detail = str(detail).replace(" ", "_").replace("\n", "_") or "-"
        if event == "alert":
            self.repeated = {}
        if (event in STRANGER and not self._admit(event)
                or event in REPEATS and not self._news(event, detail)):
            if self.echo:
                print("EV", event, detail)
            return self.seq
        told = self.unlogged
        if told:
            # kept until written: a flash that refused it still owes the count
            if self._write("not_logged", ",".join("%s=%d" % kv for kv in sorted(told.items()))):
                self.unlogged = told = {}
        if told or not self._write(event, detail):
            self.unlogged[event] = self.unlogged.get(event, 0) + 1
            if self.echo:
                print("EV", event, detail)
        return self.seq

    def _news(self, event, detail):
        only = REPEATS[event]
        if only is not None and detail not in only:
            return True
        key = event + " " + detail
        now = self.clock()
        t = self.repeated.get(key)
        if t is not None and 0 <= now - t < REPEAT_S:
            self.unlogged[event] = self.unlogged.get(event, 0) + 1
            return False
        if len(self.repeated) >= 16:  # bounded: a fault's details are few
            self.repeated = {}
        self.repeated[key] = now
        return True

    def _admit(self, event):
        now = self.clock()
        # a day by the RTC: the RTC set back or first set (2000 -> now), or a reset, starts anew
        if self.day_t is None or now < self.day_t or now - self.day_t >= 86400:
            self.day_t, self.day_n = now, 0
        self.day_n += 1
        if self.day_n <= STRANGER_PER_DAY:
            return True
        self.unlogged[event] = self.unlogged.get(event, 0) + 1
        return False

    def _write(self, event, detail):
        """Whether the entry reached the flash; one that did not takes no number."""
        if self.in_seg >= PER_SEGMENT:
            self.seg = (self.seg + 1) % SEGMENTS
            self.in_seg = 0
            try:
                os.remove(self._path(self.seg))  # the oldest segment goes
            except OSError:
                pass
        try:
            body = "%d %s %s %s" % (self.seq + 1, stamp(self.clock()), event, detail)
            h = chain(self.last, body)
            with open(self._path(self.seg), "a") as f:
                f.write(body + " " + h + "\n")
        except OSError as e:  # LittleFS keeps the file as it was: nothing torn to mend
            self.unlogged["errno"] = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            return False
        except MemoryError:   # no heap for it (the press, on a full heap): the dial after
            self.unlogged["errno"] = ENOMEM  # it must not wait on the log
            return False
        self.seq += 1
        self.last = h
        self.in_seg += 1
        if self.echo:
            print("EV", event, detail)
        return True

    def each(self):
        """Every retained line, oldest first, one at a time: the whole log (~16 KB) held
        at once did not fit the heap a technician's session leaves (status, test call)."""
        first = []
        for i in range(SEGMENTS):
            for line in self._lines(i):
                first.append((int(line.split(" ", 1)[0]), i))
                break
        first.sort()
        for _, i in first:
            for line in self._lines(i):
                yield line

    def entries(self):
        """All retained lines, oldest first."""
        return list(self.each())


def verify(lines):
    """(ok, reason) for a list of log lines: counters contiguous and hashes chained."""
    prev = None
    prev_seq = None
    for line in lines:
        body, h = line.rsplit(" ", 1)
        seq = int(body.split(" ", 1)[0])
        if prev_seq is not None and seq != prev_seq + 1:
            return False, "gap before entry %d" % seq
        if prev is not None and chain(prev, body) != h:
            return False, "entry %d does not chain to the one before" % seq
        if prev is None and seq == 1 and chain(GENESIS, body) != h:
            return False, "first entry altered"
        prev, prev_seq = h, seq
    return True, "%d entries intact" % len(lines)
