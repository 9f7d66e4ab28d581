"""The board's power chip on the virtual device's I2C bus, as the firmware sees it.

Two register models (data/boards.md; the sources are named in firmware/lib/pmu.py):

* IP5306 at 0x75: SYS_CTL0 (0x00) resets to 0x35; 0x37 sets "boost keep on".
* AXP192 at 0x34: IC type (0x03) reads 0x03; output switches (0x12) with DC-DC1 and
  DC-DC3 on after power-up; ADC enable (0x82) with the battery-voltage bit on; battery
  voltage in 0x78 (high 8 bits) / 0x79 (low 4 bits), 1.1 mV per LSB, read from the
  rig's one battery (VirtualDevice.set_battery_mv).

A chip that is not on the board does not ACK: read() returns None (the firmware's
hw_sim turns that into OSError ENODEV, as machine.I2C does)."""

CHIPS = ("ip5306", "axp192")


class Ip5306:
    name, addr = "ip5306", 0x75

    def __init__(self, battery_mv):
        self.regs = {0x00: 0x35}

    def read_reg(self, reg):
        return self.regs.get(reg, 0)

    @property
    def kept_on(self):
        return bool(self.regs[0x00] & 0x02)


class Axp192:
    name, addr = "axp192", 0x34

    def __init__(self, battery_mv):
        self._battery_mv = battery_mv
        self.regs = {0x03: 0x03, 0x12: 0x01 | 0x02 | 0x04 | 0x08, 0x82: 0x83}

    @property
    def kept_on(self):
        """DC-DC3 (the ESP32's supply on the T-Call) on and the battery ADC running."""
        return bool(self.regs[0x12] & 0x02) and bool(self.regs[0x82] & 0x80)

    def read_reg(self, reg):
        if reg in (0x78, 0x79):
            raw = 0
            if self.regs[0x82] & 0x80:   # the ADC measures only while enabled
                raw = min(0xFFF, int(round(self._battery_mv() / 1.1)))
            return raw >> 4 if reg == 0x78 else raw & 0x0F
        return self.regs.get(reg, 0)


def make(name, battery_mv):
    """The chip called name ("ip5306", "axp192"), or None for a board without one."""
    if name in (None, "none"):
        return None
    if name not in CHIPS:
        raise ValueError(f"power_chip must be one of {', '.join(CHIPS)} or 'none', not {name!r}")
    return {"ip5306": Ip5306, "axp192": Axp192}[name](battery_mv)


class I2cBus:
    """What answers on the board's I2C: at most one power chip."""

    def __init__(self, chip):
        self.chip = chip

    def read(self, addr, reg, n):
        """n register bytes from reg on, or None if nothing ACKs at addr."""
        c = self.chip
        if c is None or addr != c.addr:
            return None
        return bytes(c.read_reg(reg + i) & 0xFF for i in range(n))

    def write(self, addr, reg, value):
        if self.chip is not None and addr == self.chip.addr:
            self.chip.regs[reg] = value & 0xFF

    def request(self, line: bytes) -> bytes:
        """One "R addr reg n" line from the firmware's hw_sim.i2c_read -> its reply line."""
        parts = line.split()
        try:
            addr, reg, n = (int(x) for x in parts[1:4])
        except ValueError:
            return b"NAK\n"
        data = self.read(addr, reg, n) if parts[:1] == [b"R"] and 0 < n <= 32 else None
        return b"NAK\n" if data is None else data.hex().encode() + b"\n"
