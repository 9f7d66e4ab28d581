# SMS commands to the device (UBICACION, ESTADO, CANCELAR + the PIN), a part of the
# alert machine that owns the wrong-PIN lockout table.  It decides whether a command
# is taken; the machine carries it out.  Sans-IO; alert.py documents the config.

from gesture import ticks_diff, ticks_add
from alertsms import mask, command_words, canon, pin_ok

COMMANDS = ("UBICACION", "ESTADO", "CANCELAR")
PIN_SENDERS = 8     # senders tracked by the wrong-PIN lockout
# A day with no wrong PIN from anyone forgets the counts short of a lock: C4's operator
# mistyping once a month must not lock C4's number out at the fifth typo, months on.
FORGET_MS = 86400000


class SmsCommands:
    def __init__(self, cfg, cc):
        self.cfg = cfg
        self.cc = cc
        self.pin_fails = []     # [sender (canon), wrong PINs, lock time or None]
        self.fail_t = None      # ticks of the last wrong PIN, while counts are kept
        self.changed = False    # the table changed: the machine persists it

    def save(self, now):
        return [[e[0], e[1], None if e[2] is None else ticks_diff(now, e[2])]
                for e in self.pin_fails]

    def restore(self, rows, now):
        pf = []
        for e in (rows or [])[-PIN_SENDERS:]:
            # a lock's age: it goes on from where the last persist left it
            pf.append([str(e[0]), int(e[1]), None if e[2] is None else ticks_add(now, -int(e[2]))])
        self.pin_fails = pf
        self.fail_t = now if pf else None  # after a reset, the day without one starts over

    def housekeeping(self, now):
        if self.fail_t is not None:
            d = ticks_diff(now, self.fail_t)
            if d < 0 or d >= FORGET_MS:  # negative: older than half the ticks period
                kept = [e for e in self.pin_fails if e[2] is not None]
                if len(kept) != len(self.pin_fails):
                    self.pin_fails = kept
                    self.changed = True
                self.fail_t = None
        pf = self.pin_fails
        for i in range(len(pf) - 1, -1, -1):
            if pf[i][2] is not None:
                d = ticks_diff(now, pf[i][2])
                if d < 0 or d >= self.cfg["pin_lockout_s"] * 1000:
                    pf.pop(i)           # lock served: the count starts over
                    self.changed = True

    def check(self, sender, text, now, acts, authorized):
        # -> the command word to carry out, or None (logged why)
        if not authorized:
            acts.append(("log", "sms_ignored", "unauthorized " + mask(sender)))
            return None
        w = command_words(text)
        if not w or w[0] not in COMMANDS:
            acts.append(("log", "sms_ignored", "unknown " + mask(sender)))
            return None
        who = canon(sender, self.cc)
        e = None
        for x in self.pin_fails:
            if x[0] == who:
                e = x
        if (e is not None and e[2] is not None) or (e is None and self._full_of_locks()):
            # a new sender with every tracked sender locked is not heard either: its wrong
            # PINs could not be counted, so its guesses would never end
            acts.append(("log", "sms_ignored", "locked " + mask(sender)))
            return None
        if not pin_ok(self.cfg, w[1] if len(w) > 1 else ""):
            self._pin_failed(e, who, now, acts, sender)
            return None
        if e is not None:               # the right PIN: this sender's count starts over
            self.pin_fails.remove(e)
            self.changed = True
        acts.append(("log", "sms_command", w[0] + " " + mask(sender)))
        return w[0]

    def _full_of_locks(self):
        if len(self.pin_fails) < PIN_SENDERS:
            return False
        for x in self.pin_fails:
            if x[2] is None:
                return False
        return True

    def _pin_failed(self, e, who, now, acts, sender):
        c = self.cfg
        pf = self.pin_fails
        if e is None:
            if len(pf) >= PIN_SENDERS:
                # make room: the least recent sender that is not locked (dropping a locked
                # one would lift its lock: nine faked numbers, guessed without end)
                i = 0
                for j in range(len(pf)):
                    if pf[j][2] is None:
                        i = j
                        break
                pf.pop(i)               # check() heard no new sender with all locked
            e = [who, 0, None]
        else:
            pf.remove(e)
        pf.append(e)                    # most recent last
        e[1] += 1
        self.fail_t = now
        self.changed = True
        acts.append(("log", "sms_ignored", "bad_pin " + mask(sender)))
        if e[1] >= c["pin_max_failures"]:
            e[2] = now
            acts.append(("log", "sms_locked", "%ds %s" % (c["pin_lockout_s"], mask(sender))))
