"""The tester's hands: the button, the fault injector and the GPS.

Button (fixture `button`): a driver closes and opens the button contact; the Button turns
that into gestures and puts every action on the timeline.

    button.alert()            the configured alert gesture (a hold, or N presses)
    button.cancel()           the cancel gesture (a long hold)
    button.press(hold_s)      one press and release
    button.presses(n, hold_s, gap_s)
    button.noise(pulses, width_s)    short spikes that must never raise an alert

Drivers:
    VirtualButtonDriver       the rig's button line (with contact bounce)
    RtsJigDriver              a USB-serial adapter whose RTS drives an opto-coupler across the
                              button (--button rts:/dev/ttyUSB2)
    RefGpioJigDriver          a GPIO of the reference SIM800 (AT+SGPIO) driving the same
                              opto-coupler (--button ref-gpio:1)
    ManualButton              asks the tester to press by hand: only when stdin is a
                              terminal, otherwise the test is skipped

Faults (fixture `faults`): every fault of the issue has a method; on hardware the ones that
cannot be injected skip the test with the reason (FaultUnavailable is a pytest skip). The
names are the same for every modem family; a fault the family cannot have (VoLTE on a
SIM800) skips the test, naming the family.
"""
import sys
import threading
import time

import pytest

from .timeline import Timeline


class Button:
    def __init__(self, driver, config, timeline: Timeline):
        self.driver = driver
        g = dict(config.get("gesture") or {})
        self.mode = g.get("mode", "hold")
        self.hold_ms = g.get("hold_ms", 2000)
        self.count = g.get("count", 3)
        self.cancel_ms = g.get("cancel_ms", 5000)
        self.timeline = timeline

    def _log(self, text):
        self.timeline.add("BUTTON", text)

    def press(self, hold_s=0.12):
        self._log(f"press {hold_s:.2f} s")
        self.driver.press(hold_s)
        self._log("released")

    def hold(self, seconds):
        self.press(seconds)

    def presses(self, n, hold_s=0.12, gap_s=0.25):
        self._log(f"{n} presses of {hold_s:.2f} s, {gap_s:.2f} s apart")
        self.driver.presses(n, hold_s, gap_s)
        self._log("released")

    def alert(self):
        """The alert gesture as the device is configured, with a margin."""
        if self.mode == "presses":
            self.presses(self.count)
        else:
            self.press(self.hold_ms / 1000 + 0.3)

    def cancel(self):
        self.press(self.cancel_ms / 1000 + 0.5)

    def noise(self, pulses=20, width_s=0.003):
        self._log(f"noise: {pulses} spikes of ~{width_s * 1000:.0f} ms")
        self.driver.noise(pulses, width_s)


class _TimedDriver:
    """A driver that can only close/open the contact: timing is done here."""

    def set(self, pressed):  # pragma: no cover - interface
        raise NotImplementedError

    def press(self, hold_s):
        self.set(True)
        time.sleep(hold_s)   # the button is held this long: actuation, not a wait
        self.set(False)

    def presses(self, n, hold_s, gap_s):
        for i in range(n):
            self.press(hold_s)
            if i < n - 1:
                time.sleep(gap_s)

    def noise(self, pulses, width_s):
        for _ in range(pulses):
            self.set(True)
            time.sleep(width_s)
            self.set(False)
            time.sleep(0.02)


class VirtualButtonDriver:
    def __init__(self, vd):
        self.vd = vd

    def press(self, hold_s):
        self.vd.press(hold_s)

    def presses(self, n, hold_s, gap_s):
        self.vd.press_sequence(n, hold_s, gap_s)

    def noise(self, pulses, width_s):
        self.vd.noise(pulses, width_s)


class RtsJigDriver(_TimedDriver):
    """RTS of a USB-serial adapter -> opto-coupler across the button (RTS asserted = pressed)."""

    def __init__(self, port):
        import serial
        self.ser = serial.serial_for_url(port, do_not_open=True)
        self.ser.rts = False
        self.ser.dtr = False
        self.ser.open()

    def set(self, pressed):
        self.ser.rts = bool(pressed)

    def close(self):
        self.ser.close()


class RefGpioJigDriver(_TimedDriver):
    """A GPIO of the reference SIM800 (AT+SGPIO) -> opto-coupler across the button.
    An AT command takes ~20-50 ms, so spikes shorter than that cannot be made."""

    def __init__(self, ref, pin):
        self.ref = ref
        self.pin = pin
        self.ref.gpio(pin, 0)

    def set(self, pressed):
        self.ref.gpio(self.pin, 1 if pressed else 0)


class ManualButton:
    """A person presses the button when asked. Needs a terminal; otherwise skips."""

    def __init__(self, ask=None, stdin=None):
        self._ask = ask or input
        self._stdin = stdin if stdin is not None else sys.__stdin__

    def _check(self):
        if self._stdin is None or not self._stdin.isatty():
            pytest.skip("the button is pressed by hand (--button manual) but stdin is not a "
                        "terminal: run pytest from a terminal with -s, or use a jig "
                        "(--button rts:PORT or --button ref-gpio:PIN)")

    def _prompt(self, text):
        self._check()
        self._ask(f"\n>>> {text} Then press Enter here. ")

    def press(self, hold_s):
        if hold_s >= 0.5:
            self._prompt(f"HOLD the button for {hold_s:.0f} s (count them), then let go.")
        else:
            self._prompt("Give the button one short tap.")

    def presses(self, n, hold_s, gap_s):
        self._prompt(f"Press the button {n} times, quickly (about {gap_s + hold_s:.1f} s apart).")

    def noise(self, pulses, width_s):
        pytest.skip("contact noise cannot be made by hand: use a jig (--button rts:PORT)")


class FaultUnavailable(pytest.skip.Exception):
    pass


def _unavailable(name, why):
    pytest.skip(f"fault '{name}' cannot be injected on hardware: {why}")


_REF_POLICY = {"busy": "reject", "reject": "reject", "no_answer": "ignore", "answer": "answer"}


class VirtualFaults:
    """Every fault of the simulated parts (boton.sim.modem / gps / network)."""

    def __init__(self, vd, timeline, ref=None):
        self.vd = vd
        self.timeline = timeline
        self.ref = ref  # --virtual-ref-modem: C4 is a simulated SIM800 driven by RefModem

    def _do(self, text, fn, *args):
        self.timeline.add("FAULT", text)
        return self.vd.call(fn, *args)

    def _family_fault(self, name, text, *args):
        """A fault only some modem families have (the A7670's VoLTE and LTE registration)."""
        fn = getattr(self.vd.modem, name, None)
        if fn is None:
            pytest.skip(f"fault '{name}': the simulated {self.vd.modem_family} has no such "
                        f"condition")
        return self._do(text, fn, *args)

    # modem / SIM / network
    def sim_missing(self):
        self._do("SIM removed", self.vd.modem.sim_missing)

    def pin_locked(self, pin="1234"):
        """A SIM that asks for its PIN: takes effect at the next power-on (power_cycle())."""
        self._do(f"SIM locked with PIN {pin}", self.vd.modem.pin_locked, pin)

    def no_network(self, lost=True):
        self._do("network lost" if lost else "network back", self.vd.modem.no_network, lost)

    def registration_denied(self, denied=True):
        self._do("registration denied" if denied else "registration allowed",
                 self.vd.modem.registration_denied, denied)

    def emergency_without_sim(self, taken=True):
        """The network takes an emergency call from a module with no SIM (or a locked
        one): the operator's option, off by default (boton.sim.network)."""
        self._do("network takes SIM-less emergency calls" if taken
                 else "network refuses SIM-less emergency calls",
                 setattr, self.vd.network, "emergency_without_sim", bool(taken))

    def signal_lost(self, lost=True):
        """The radio link goes (a basement, a lift): a call in progress drops."""
        self._do("signal lost" if lost else "signal back", self.vd.modem.no_network, lost)

    def signal(self, level):
        self._do(f"signal CSQ {level}", self.vd.modem.signal, level)

    def drop_call(self):
        self._do("call dropped by the network", self.vd.modem.drop_call)

    def volte_unavailable(self, unavailable=True):
        """The SIM or the network stops doing VoLTE: on LTE the module is registered for SMS
        only (it still has 2G for calls if the network has it: rig(modem_options={"gsm": ..}))."""
        self._family_fault("volte_unavailable", "VoLTE unavailable" if unavailable else "VoLTE back",
                           unavailable)

    def lte_calls_drop(self, on=True):
        """VoLTE fails silently: every call on LTE ends before it rings (dialing, then
        disconnected), registered for voice all the same (LilyGO-Modem-Series #240)."""
        self._family_fault("lte_calls_drop", "calls on LTE end before ringing" if on else
                           "calls on LTE work", on)

    def sms_only(self, on=True):
        """The network registers the module for SMS only, on any radio technology."""
        self._family_fault("sms_only", "registered for SMS only" if on else "voice allowed", on)

    def emergency_only(self, on=True):
        """Where the module would be searching it reads 'emergency calls only' (+CREG 11)."""
        self._family_fault("emergency_only", "emergency calls only" if on else "emergency-only off", on)

    def next_call_result(self, result):
        """How the device's next call ends: busy | no_answer | reject | unreachable | answer."""
        if self.ref is not None and result in _REF_POLICY:
            self.timeline.add("FAULT", f"reference modem: next call {result}")
            self.ref.set_incoming(_REF_POLICY[result], once=True)
            return
        self._do(f"next call: {result}", self.vd.modem.next_call_result, result)

    def cms_error(self, code, count=1):
        self._do(f"next {count} SMS fail with +CMS ERROR: {code}", self.vd.modem.cms_error, code, count)

    def modem_silent(self):
        self._do("modem hangs (silent until power-cycled)", self.vd.modem.go_silent)

    def refuse_next(self, command, count=1):
        """The module answers its next `count` `command` ('+CMGD', '+CSCS="UCS2"') ERROR."""
        self._do(f"next {count} {command} refused (ERROR)", self.vd.modem.refuse_next, command, count)

    def caller_gives_up_on_answer(self):
        """The next call the device answers is hung up by its caller as ATA arrives."""
        self._do("the caller hangs up as the device answers", self.vd.modem.caller_gives_up_on_answer)

    def lose_urcs(self, prefix, count=1):
        """The next `count` unsolicited lines starting with `prefix` never reach the ESP32."""
        self._do(f"next {count} '{prefix}' line(s) lost on the UART", self.vd.modem.lose_urcs, prefix, count)

    def garble_lines(self, prefix, count=1):
        """The next `count` lines starting with `prefix` reach the ESP32 with their last
        character garbled ("+CMGS: 1?")."""
        self._do(f"next {count} '{prefix}' line(s) garbled on the UART", self.vd.modem.garble_lines,
                 prefix, count)

    def urc_into_reply(self, prefix, command, count=1):
        """The next `count` unsolicited lines starting with `prefix` come out in the middle
        of the module's next answer to `command` ("+CLCC"), before its own lines."""
        self._do(f"next {count} '{prefix}' line(s) held for the next {command} answer",
                 self.vd.modem.urc_into_reply, prefix, command, count)

    def modem_brown_out(self):
        self._do("modem restarts by itself (supply dip under a transmit burst)", self.vd.modem.brown_out)

    def sim_holds_sms(self, count, read=True):
        """The SIM holds `count` more SMS (read ones by default), as a card that lived in a
        phone does."""
        def store():
            for i in range(count):
                self.vd.modem.store_sms("+5215550000%03d" % i, "Promocion %d" % i, read=read)
        self._do(f"the SIM holds {count} {'read' if read else 'unread'} SMS more", store)

    def modem_dead(self, dead=True):
        """The module is dead for good (burnt, a cracked joint): silent whatever the pins do."""
        self._do("modem dead for good" if dead else "modem makes contact again", self.vd.modem.break_down, dead)

    def uart_garbage(self, data=b"\x00\xff\x13\xfe$#@!\x80\r\n\xaa\x55"):
        self._do(f"garbage on the modem UART: {data!r}", self.vd.modem.garbage, data)

    def under_voltage(self, power_down_after_s=5.0):
        self._do(f"battery sags: UNDER-VOLTAGE warning, power down after {power_down_after_s} s",
                 self.vd.battery_sags, power_down_after_s)

    def set_battery(self, mv):
        self._do(f"battery {mv} mV", self.vd.modem.set_battery, mv)

    # GPS
    def gps_silent(self, on=True):
        self._do("GPS silent" if on else "GPS talks again", self.vd.gps.silent, on)

    def gps_never_fix(self, on=True):
        self._do("GPS never fixes" if on else "GPS may fix", self.vd.gps.never_fix, on)

    def gps_dead_reckoning(self, on=True):
        self._do("GPS loses the sky, reports estimates (mode E)" if on else "GPS sees the sky again",
                 self.vd.gps.dead_reckoning, on)

    def gps_corrupt(self, rate=1.0):
        self._do(f"GPS checksums corrupted ({rate:.0%})", self.vd.gps.corrupt_checksums, rate)

    def gps_wrong_baud(self, baud=38400):
        """The receiver talks at `baud` (a u-blox M9N's default 38400), the board reads at
        its own speed: bytes, never a sentence (None: the board's speed again)."""
        self._do(f"GPS talks at {baud} baud" if baud else "GPS at the board's baud again",
                 self.vd.gps.wrong_baud, baud)

    # ESP32 / board
    def esp32_reset(self):
        self.timeline.add("FAULT", "ESP32 reset (EN pulled low)")
        self.vd.hard_reset()

    def power_cycle(self):
        """The whole board loses power: modem and ESP32 start from scratch."""
        self.timeline.add("FAULT", "power cycle (modem and ESP32)")
        self.vd.power_cycle()  # the ESP32's RTC memory is lost with the power, too


class HardwareFaults:
    """On a real board only some faults can be made; the others skip, saying why."""

    def __init__(self, dut, network, timeline):
        self.dut = dut
        self.network = network
        self.timeline = timeline

    def esp32_reset(self):
        self.timeline.add("FAULT", "ESP32 reset (EN pulled low through RTS)")
        self.dut.reset()

    def next_call_result(self, result):
        ref = getattr(self.network, "ref", None)
        if ref is None or result not in _REF_POLICY:
            _unavailable("next_call_result", f"the reference modem cannot make a call end '{result}'")
        self.timeline.add("FAULT", f"reference modem: next call {result}")
        ref.set_incoming(_REF_POLICY[result], once=True)

    def sim_missing(self):
        _unavailable("sim_missing", "the SIM must be pulled by hand; not automated")

    def pin_locked(self, pin="1234"):
        _unavailable("pin_locked", "needs a SIM with its PIN enabled fitted by hand")

    def power_cycle(self):
        _unavailable("power_cycle", "needs a switchable supply on the jig")

    def no_network(self, lost=True):
        _unavailable("no_network", "needs an RF-shielded box or a GSM test set")

    def registration_denied(self, denied=True):
        _unavailable("registration_denied", "needs a barred SIM or a GSM test set")

    def emergency_without_sim(self, taken=True):
        _unavailable("emergency_without_sim", "a live network's own choice; needs a GSM test set")

    def signal_lost(self, lost=True):
        _unavailable("signal_lost", "needs an RF-shielded box or a programmable attenuator")

    def signal(self, level):
        _unavailable("signal", "needs a programmable attenuator")

    def drop_call(self):
        _unavailable("drop_call", "a radio drop needs a GSM test set (a hang-up is not a drop)")

    def volte_unavailable(self, unavailable=True):
        _unavailable("volte_unavailable", "fit a SIM without VoLTE by hand, or use an LTE test set")

    def lte_calls_drop(self, on=True):
        _unavailable("lte_calls_drop", "fit a module whose firmware drops LTE calls "
                     "(A110B01A7670M7_F), or use an LTE test set")

    def sms_only(self, on=True):
        _unavailable("sms_only", "needs an LTE/GSM test set")

    def emergency_only(self, on=True):
        _unavailable("emergency_only", "needs an LTE/GSM test set")

    def cms_error(self, code, count=1):
        _unavailable("cms_error", "the real SMSC decides +CMS errors")

    def modem_silent(self):
        _unavailable("modem_silent", "needs a jig that cuts the modem's TXD line")

    def refuse_next(self, command, count=1):
        _unavailable("refuse_next", "a real module decides which commands it refuses")

    def caller_gives_up_on_answer(self):
        _unavailable("caller_gives_up_on_answer", "the hang-up must land within the ATA's few ms")

    def lose_urcs(self, prefix, count=1):
        _unavailable("lose_urcs", "needs a jig that filters the modem's TXD line")

    def garble_lines(self, prefix, count=1):
        _unavailable("garble_lines", "needs a jig that filters the modem's TXD line")

    def urc_into_reply(self, prefix, command, count=1):
        _unavailable("urc_into_reply", "the real module decides when its URCs come")

    def modem_brown_out(self):
        _unavailable("modem_brown_out", "needs a programmable supply that dips VBAT for a moment")

    def sim_holds_sms(self, count, read=True):
        _unavailable("sim_holds_sms", "fill the SIM's storage in a phone first, by hand")

    def modem_dead(self, dead=True):
        _unavailable("modem_dead", "needs a jig that disconnects the modem (its UART or its supply)")

    def uart_garbage(self, data=b""):
        _unavailable("uart_garbage", "needs a jig that injects bytes on the modem's TXD line")

    def under_voltage(self, power_down_after_s=5.0):
        _unavailable("under_voltage", "needs a programmable supply on VBAT")

    def set_battery(self, mv):
        _unavailable("set_battery", "needs a programmable supply on VBAT")

    def gps_silent(self, on=True):
        _unavailable("gps_silent", "needs a jig that cuts the GPS TXD line")

    def gps_never_fix(self, on=True):
        _unavailable("gps_never_fix", "needs a GPS simulator or a shielded antenna")

    def gps_dead_reckoning(self, on=True):
        _unavailable("gps_dead_reckoning", "needs a GPS simulator")

    def gps_corrupt(self, rate=1.0):
        _unavailable("gps_corrupt", "needs a GPS simulator")

    def gps_wrong_baud(self, baud=38400):
        _unavailable("gps_wrong_baud", "set the GPS module's own speed by hand (its config tool)")


class VirtualGps:
    """The rig's GPS receiver: where the device is, and its bursts as events."""

    def __init__(self, vd):
        self.vd = vd
        self.bursts = 0
        self._cond = threading.Condition()

        def tap():  # count the receiver's 1 Hz periods (silent or not): GPS time passing
            orig = vd.gps._burst

            def burst():
                orig()
                with self._cond:
                    self.bursts += 1
                    self._cond.notify_all()
            vd.gps._burst = burst
        vd.call(tap)

    @property
    def position(self):
        return self.vd.call(lambda: self.vd.gps.position)

    @property
    def fixed(self):
        """Whether the receiver has a fix now."""
        return self.vd.call(lambda: self.vd.gps.fixed)

    def set_position(self, lat, lon):
        self.vd.call(self.vd.gps.set_position, lat, lon)

    def start(self, ttff_s=0.0):
        """The receiver starts cold now, its fix ttff_s later (None: its datasheet's time)."""
        self.vd.call(lambda: self.vd.gps.start(ttff_s=ttff_s))

    def maps_q(self):
        lat, lon = self.position
        return "%.5f,%.5f" % (lat, lon)

    def wait_bursts(self, n, timeout=30):
        """Until n more 1 Hz periods of the receiver have passed (sent or, silent, not)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.bursts + n
            while self.bursts < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"GPS sent {n - (target - self.bursts)} of {n} bursts in {timeout}s")
                self._cond.wait(left)


class HardwareGps:
    def __init__(self, point=None):
        self._point = point

    @property
    def position(self):
        return self._point

    @property
    def fixed(self):
        return None  # unknown: the board's receiver is not ours to watch

    def maps_q(self):
        if self._point is None:
            return None
        return "%.5f,%.5f" % self._point

    def set_position(self, lat, lon):
        pytest.skip("moving the GPS needs a GPS simulator on the jig")

    def start(self, ttff_s=0.0):
        pytest.skip("restarting the GPS needs a GPS simulator on the jig")

    def wait_bursts(self, n, timeout=30):
        pytest.skip("counting GPS bursts needs a GPS simulator on the jig")
