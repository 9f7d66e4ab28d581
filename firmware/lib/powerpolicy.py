# Standby power, decided sans-IO (like gesture.Button): the app feeds it what it sees
# and carries out what it says.
#
#     p = PowerPolicy(cfg, has_gps_switch, now)
#     for what, on in p.feed(now, alert_active, call_active, fix_ms, modem_sleepy):
#         what: "modem_sleep" (AT+CSCLK) | "gps" (the receiver's supply switch)
#     p.next_deadline()      # ticks when the GPS duty cycle next changes by itself
#     p.heard(now, sentences)  # before feed(): True/False when the GPS fell silent /
#                              # talks again (sentences: the parser's checksum_ok count)
#
# The modem sleeps whenever no alert and no call needs it (config modem_sleep).  The
# GPS runs until it has a fresh fix or gps_max_on_s passed, then rests gps_every_s;
# during an alert it stays on.  Without a supply switch (the T-A7670X's L76K) only the
# listening rests: the receiver stays powered and keeps its fix hot, and the chip may
# light-sleep meanwhile (its UART deaf).  Also the light-sleep timing and battery mV -> %.
# Comments instead of docstrings: the .mpy deploy keeps code in the heap.

from gesture import ticks_diff, ticks_add


# Light sleep (ms).  The chip hears nothing on its UARTs while asleep: it wakes on the
# button (ext0), the modem's RI (ext1, where wired) and a timer, and sweeps what the
# modem may have said meanwhile.  With RI: after every RI wake, plus a slow safety
# sweep.  Without RI: a sweep every poll, so a ring is heard within it (C4's callback
# rings ~30 s) at the cost of waking the modem (it then stays up T_SLEEP_IDLE, 5 s).
SLEEP_CHUNK_MS = 2000
SWEEP_RI_MS = 600000
SWEEP_NO_RI_MS = 20000


def sleep_timing(cfg, has_ri, scale=1.0):
    # (chunk_ms, sweep_ms): one light sleep's length, and how often the modem is swept
    # when nothing woke the chip (config light_sleep_ms, sweep_s; scaled on the rig).
    chunk = int(cfg.get("light_sleep_ms", SLEEP_CHUNK_MS))
    sweep = cfg.get("sweep_s")
    sweep = int(sweep * 1000) if sweep else (SWEEP_RI_MS if has_ri else SWEEP_NO_RI_MS)
    return chunk, max(1, int(sweep * scale))


def may_light_sleep(alert_active, call_active, gps_on, events_waiting, modem_sleepy,
                    modem_busy, ringing, gesture_pending):
    # Never during an alert, a call, a GPS acquisition, with events to handle, while
    # the modem is awake or a command waits, while RI is low (a call rings), or with a
    # gesture being read.
    return not (alert_active or call_active or gps_on or events_waiting or not modem_sleepy
                or modem_busy or ringing or gesture_pending)


def adc_battery_mv(uv, divider=2.0):
    # the ADC's reading at the pin (microvolts) behind the board's divider -> battery mV
    return uv * divider / 1000


# One LiPo cell's resting voltage (mV) at 100, 95 .. 5, 0 % left: the common discharge
# chart (e.g. blog.ampow.com/lipo-voltage-chart). A straight line from 3.3 to 4.2 V put
# "10%" at 3.39 V, where a SIM800 switches itself off (its warning: 3.49 V): the low-battery
# SMS could not go out. Here 20% is 3.73 V and 10% 3.69 V: a tenth of the cell still left.
# A discharge curve measured on the programme's own cell should replace it.
LIPO_MV = (4200, 4150, 4110, 4080, 4020, 3980, 3950, 3910, 3870, 3850, 3840,
           3820, 3800, 3790, 3770, 3750, 3730, 3710, 3690, 3610, 3270)


def battery_pct(mv):
    """mV of the cell at rest -> percent left on LIPO_MV, straight between its points."""
    if mv >= LIPO_MV[0]:
        return 100
    for i in range(1, len(LIPO_MV)):
        lo = LIPO_MV[i]
        if mv >= lo:
            return 100 - 5 * i + int(5 * (mv - lo) // (LIPO_MV[i - 1] - lo))
    return 0


class PowerPolicy:
    def __init__(self, cfg, has_gps_switch, now):
        # every attribute made here (alert.AlertMachine.__init__ says why)
        self.quiet = 0          # ms listened to the GPS since its last sentence
        self.said = 0           # the parser's sentence count then
        self.silent = False
        self.modem_sleep = bool(cfg.get("modem_sleep", True))
        self.gps_every = int(cfg.get("gps_every_s", 900) * 1000)
        self.gps_max_on = int(cfg.get("gps_max_on_s", 120) * 1000)
        self.has_gps_switch = has_gps_switch
        self.gps_on = True      # listened to (and powered, where switched) from boot
        self.gps_on_at = now
        self.gps_off_at = None
        self.fix_at_on = None   # the app's fix ticks when the receiver was switched on
        self.silent_ms = int(cfg.get("gps_silent_s", 60) * 1000)
        self.heard_at = now

    def heard(self, now, said):
        # A receiver talks every second, fix or not: none for gps_silent_s is a dead,
        # unplugged or wrong-baud GPS. Only time listened counts (gps_on, still as since
        # the last call): resting, the chip may light-sleep, its UART deaf.
        if said != self.said:
            self.said = said
            self.quiet = 0
        elif self.gps_on:
            self.quiet += ticks_diff(now, self.heard_at)
        self.heard_at = now
        if (self.quiet >= self.silent_ms) != self.silent:
            self.silent = not self.silent
            return self.silent

    def feed(self, now, alert_active, call_active, fix_ms, modem_sleepy):
        # -> [(what, on)]: what to switch now.  modem_sleepy: the modem's sleep mode as
        # the driver knows it (None: unknown), so a refused AT+CSCLK is asked again.
        out = []
        want_sleep = self.modem_sleep and not alert_active and not call_active
        if want_sleep != modem_sleepy:
            out.append(("modem_sleep", want_sleep))
        if self.gps_on:
            # a fix since it was switched on means the receiver did its job: rest.  (Not
            # "a fix younger than 5 s": a week-old fix's tick difference wraps to "young".)
            fresh = fix_ms is not None and fix_ms != self.fix_at_on
            if not alert_active and (fresh or ticks_diff(now, self.gps_on_at) > self.gps_max_on):
                self.gps_on = False
                self.gps_off_at = now
                if self.has_gps_switch:  # without one only the listening rests
                    out.append(("gps", False))
        elif alert_active or self.gps_off_at is None or ticks_diff(now, self.gps_off_at) > self.gps_every:
            self.gps_on = True
            self.gps_on_at = now
            self.fix_at_on = fix_ms
            if self.has_gps_switch:
                out.append(("gps", True))
        return out

    def next_deadline(self):
        # ticks at which the duty cycle switches the GPS by itself (a fix or an alert
        # may come sooner), or None
        if self.gps_on:
            return ticks_add(self.gps_on_at, self.gps_max_on + 1)
        if self.gps_off_at is None:
            return None
        return ticks_add(self.gps_off_at, self.gps_every + 1)
