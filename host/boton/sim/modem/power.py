"""Power command group: PWRKEY/RESET/supply pins, boot to "UART ready", AT+CFUN, AT+CPOWD,
AT+CBC, sleep (AT+CSCLK, DTR), AT+CBATCHK, AT+CNETLIGHT. Timings come from the family class."""
from .at import ASYNC, _int


class PowerGroup:
    """The module's power: pins, boot, CFUN, power-down, battery, sleep.

    A mixin: the family class holds the state (__init__, _reset_runtime) and the
    timings these methods read."""

    def power_on(self):
        """Start booting (the rig at start, or a PWRKEY pulse). No-op if already on."""
        if self.powered or not self.supplied:
            return
        self.powered = True
        self._gen += 1
        self._reset_runtime()
        # Assumption: the RTC is not backed up (the T-Call's VRTC has no cell): every boot
        # starts it from the default.
        self._clock = (self.CLOCK_DEFAULT, 0, self.sched.now())
        self._tx_last = self.sched.now()
        self._later(self.T_UART_READY, self._boot_uart_ready)

    def power_off(self):
        """Power gone at once (battery pulled, supply cut): no URC, everything lost."""
        if not self.powered:
            return
        self.powered = False
        self._latched = False
        self._gen += 1  # cancels every pending reply, URC and timer of this power cycle
        had_network = self._call is not None or self._reg_stat != 0
        self._call = None
        self._reset_runtime()
        self._tx_last = self.sched.now()
        if had_network:
            self.network.modem_unreachable(self.number)

    def pwrkey(self, level, at=None):
        """PWRKEY pin level from the ESP32 (HD V1.10 §4.2).

        An off module turns on once the key has been low for 1 s, while it is still held;
        holding it low for ever keeps it on (PWRKEY tied to GND = power on at supply). An
        on module turns off when a 1-33 s press is released: NORMAL POWER DOWN. Pulses
        shorter than 1 s do nothing. Durations are scaled like every other delay, because
        the firmware's own sleeps run at the same time_scale. at: when the firmware drove
        the pin (the rig reads its lines late when busy), None: now."""
        at = self._when(at)
        level = 1 if level else 0
        if level == self._pwrkey_level:
            return
        self._pwrkey_level = level
        held_timer_due = self._pwrkey_timer is not None
        self.sched.cancel(self._pwrkey_timer)
        self._pwrkey_timer = None
        if level == 0:
            self._pwrkey_down_at = at
            self._pwrkey_was_on = self.powered
            self._pwrkey_turned_on = False
            # Hardware timing: not bound to a power cycle, so not via _later().
            self._pwrkey_timer = self.sched.at(at + self.PWRKEY_MIN_S * self.sched.time_scale,
                                               self._pwrkey_held)
        elif self._pwrkey_down_at is not None:
            held = max(0.0, at - self._pwrkey_down_at) / self.sched.time_scale
            self._pwrkey_down_at = None
            if held_timer_due and held >= self.PWRKEY_MIN_S:
                # held long enough, but the release reached us before the hold timer ran (a
                # busy host; at time_scale 0.1 the A7670's 50 ms is 5 ms): the key decides
                self._turn_on_if_off()
            result = "on" if self._pwrkey_turned_on else "none"
            if self._pwrkey_was_on and self.powered and \
                    self.PWRKEY_OFF_MIN_S <= held <= self.PWRKEY_OFF_MAX_S:
                self._normal_power_down()
                result = "off"
            self._record_press(self._pwrkey_was_on, held, result)

    def _record_press(self, was_on, held, result):
        press = {"kind": "modem_pwrkey", "t": self.sched.now(), "powered": was_on,
                 "held_s": round(held, 3), "result": result}
        self.pwrkey_presses.append(press)
        self._notify(press)

    def _notify(self, event):
        if self.on_event is not None:
            self.on_event(dict(event))

    def reset_pin(self, level, at=None):
        """RESET pin: a low pulse of >= 105 ms restarts a running module (on release).
        at: when the firmware drove it, as for pwrkey()."""
        at = self._when(at)
        if not level:
            self._reset_down_at = at
        elif self._reset_down_at is not None:
            held = max(0.0, at - self._reset_down_at) / self.sched.time_scale
            self._reset_down_at = None
            if held >= self.RESET_MIN_S and self.powered and not self._latched:
                self._restart(1)

    def supply(self, on):
        """VBAT switched (the T-Call's POWER_ON pin). Off: everything stops at once. On: the
        module stays off until PWRKEY, unless PWRKEY is already held low."""
        self.supplied = bool(on)
        if not on:
            self.power_off()
        elif self._pwrkey_level == 0:
            self.sched.cancel(self._pwrkey_timer)
            self._pwrkey_was_on = False  # a key held through the supply cut: a press on an off module
            self._pwrkey_turned_on = False
            self._pwrkey_down_at = self.sched.now()
            self._pwrkey_timer = self.sched.after(self.PWRKEY_MIN_S, self._pwrkey_held)

    def dtr(self, level):
        """DTR pin from the ESP32; only matters with AT+CSCLK=1."""
        self._dtr_level = 1 if level else 0
        if self.csclk != 1 or not self.powered:
            return
        if self._dtr_level:
            self._try_sleep()
        else:
            self._later(self.T_DTR_WAKE, self._wake)

    def _when(self, at):
        """A pin change's time: when the firmware drove it (never later than now), or now."""
        now = self.sched.now()
        return now if at is None else min(at, now)

    def _pwrkey_held(self):
        self._pwrkey_timer = None
        if self._pwrkey_level == 0:
            self._turn_on_if_off()

    def _turn_on_if_off(self):
        """PWRKEY held for PWRKEY_MIN_S: an off module (with its supply) switches on."""
        if not self._pwrkey_was_on:
            self._pwrkey_turned_on = self.supplied and not self.powered
            self.power_on()

    def _normal_power_down(self):
        self._urc("NORMAL POWER DOWN", force=True)
        self._uart_ready = False  # stops taking commands while it shuts down
        self._later(self.T_POWER_DOWN, self.power_off)

    def _boot_uart_ready(self):
        self._uart_ready = True
        if self.baud:
            self._urc("RDY")  # only at a fixed baud rate (manual URC table)
        self._urc(f"+CFUN: {self.cfun}")
        if self.cfun == 1:
            self._later(self.T_SIM_READY - self.T_UART_READY, self._sim_init)
        else:
            self._reg_update()

    def _activity(self):
        if self.csclk == 2:
            self.sched.cancel(self._sleep_timer)
            self._sleep_timer = self._later(self.T_SLEEP_IDLE, self._try_sleep)

    def _try_sleep(self):
        self._sleep_timer = None
        wanted = self.csclk == 2 or (self.csclk == 1 and self._dtr_level == 1)
        if not wanted or self.sleeping:
            return
        if self._call is not None or self._busy or self._mode != "cmd":
            # Never asleep during a call, a command or SMS entry: try again later.
            self._sleep_timer = self._later(self.T_SLEEP_IDLE, self._try_sleep)
            return
        self.sleeping = True
        self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": True})

    def _wake(self):
        if self.sleeping:
            self._notify({"kind": "modem_sleep", "t": self.sched.now(), "sleeping": False})
        self.sleeping = False
        self._activity()

    def _x_cfun(self, cmd):
        if cmd.kind == "read":
            return [f"+CFUN: {self.cfun}"]
        if cmd.kind == "test":
            return ["+CFUN: (0,1,4),(0,1)"]
        fun = _int(cmd.args[0], (0, 1, 4))
        rst = _int(cmd.args[1], (0, 1)) if len(cmd.args) > 1 else 0
        if rst:
            # Capture L2: OK at once, and the module still answers a few commands before
            # it resets. T_RESTART_OK: how long the OK takes (the manual allows 10 s).
            self._took(self.T_RESTART_OK)
            self._later(self.T_RESTART_OK + self.T_RESTART, self._restart, fun)
            return None
        self._took(self.T_CFUN)
        return self._set_fun(fun)

    def _set_fun(self, fun):
        infos = []
        if fun == self.cfun:
            return infos
        self.cfun = fun
        if fun != 1 and self._call is not None:
            self.network.modem_unreachable(self.number)  # the radio off: its call is gone
        if fun == 0 and self._sim != "off":
            infos.append("+CPIN: NOT READY")  # capture L2: before the OK
            self._sim = "off"
            self._call_ready = self._sms_ready = False
        if fun == 1 and self._sim == "off":
            self._later(self.T_CFUN, self._sim_init)
        self._reg_update()
        return infos

    def _restart(self, fun):
        self.power_off()
        self.power_on()
        self.cfun = fun

    def _x_cpowd(self, cmd):
        mode = _int(cmd.args[0], (0, 1)) if cmd.args else 1
        self._uart_ready = False
        if mode == 1:
            self._in_handler = False
            self._urc("NORMAL POWER DOWN")  # its only reply: no OK
            self._later(self.T_POWER_DOWN, self.power_off)
        else:
            self._later(0.05, self.power_off)  # urgent: no URC at all
        return ASYNC

    def _x_cbc(self, cmd):
        pct = max(0, min(100, round((self.battery_mv - 3500) / 7)))
        return [f"+CBC: {self.charging},{pct},{self.battery_mv}"]

    def _x_csclk(self, cmd):
        if cmd.kind == "read":
            return [f"+CSCLK: {self.csclk}"]
        if cmd.kind == "test":
            return ["+CSCLK: (0,1,2)"]
        self.csclk = _int(cmd.args[0], (0, 1, 2))
        self.sched.cancel(self._sleep_timer)
        self._sleep_timer = None
        if self.csclk == 2:
            self._activity()
        elif self.csclk == 1 and self._dtr_level:
            self._sleep_timer = self._later(self.T_RESPONSE * 2, self._try_sleep)

    def _x_cbatchk(self, cmd):
        return self._setting(cmd, "cbatchk", (0, 1), "+CBATCHK")

    def _x_cnetlight(self, cmd):
        """The network-status LED on NETLIGHT: 1 flashes (64 ms every 0.8 s searching,
        every 3 s registered: AT+SLEDS defaults), 0 dark; saved by AT&W (SIM800 manual
        V1.09 6.2.51). A breakout board wires an LED to it."""
        return self._setting(cmd, "netlight", (0, 1), "+CNETLIGHT")


HANDLERS = {
    "+CFUN": "_x_cfun",
    "+CPOWD": "_x_cpowd",
    "+CBC": "_x_cbc",
    "+CSCLK": "_x_csclk",
    "+CBATCHK": "_x_cbatchk",
    "+CNETLIGHT": "_x_cnetlight",
}
