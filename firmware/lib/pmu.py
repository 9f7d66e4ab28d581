# The board's power chip on I2C: which one answers, keeping its outputs on; and the battery
# from the board's gauge (the AXP192's ADC, or the ESP32's behind a divider). Imported
# lazily (boot, status polls): small and allocation-light.
# Sources (data/boards.md; LilyGO T-Call examples; X-Powers AXP192 datasheet, register
# map as XPowersLib's AXP192Constants.h spells it):
#   IP5306 at 0x75: REG 0x00 SYS_CTL0 = 0x37 keeps the boost on at light load.
#   AXP192 at 0x34: REG 0x03 IC type reads 0x03; REG 0x12 output switches (bit 6 EXTEN,
#   4 DC-DC2, 3 LDO3, 2 LDO2, 1 DC-DC3, 0 DC-DC1): DC-DC3 feeds the ESP32 on the T-Call,
#   the rest is unused there (LilyGO's Arduino_TinyGSM_AXP192 example switches it off);
#   REG 0x82 bit 7 battery-voltage ADC on; REG 0x78/0x79 battery voltage, 12 bits
#   (high 8, low 4), 1.1 mV per LSB.
IP5306_ADDR = 0x75
AXP192_ADDR = 0x34
AXP192_ID = 0x03
_UNUSED = 0x5D      # EXTEN | DC-DC2 | LDO3 | LDO2 | DC-DC1
_DCDC3 = 0x02


def expected(board):
    """(chip name, I2C spec) the board profile says it carries, or (None, None)."""
    for name in ("axp192", "ip5306"):
        spec = board.get(name)
        if spec:
            return name, spec
    return None, None


def _read(spec, addr, reg, n=1):
    import hw
    return hw.i2c_read(spec["sda"], spec["scl"], addr, reg, n)


def detect(sda, scl):
    """"axp192", "ip5306" or None: which chip answers on the I2C bus at sda/scl."""
    spec = {"sda": sda, "scl": scl}
    try:
        if _read(spec, AXP192_ADDR, 0x03)[0] == AXP192_ID:
            return "axp192"
    except OSError:
        pass  # no ACK at 0x34 (ENODEV): not an AXP192
    try:
        _read(spec, IP5306_ADDR, 0x00)
        return "ip5306"
    except OSError:
        return None


def keep_on(chip, spec):
    """Keep the supply up in standby: the IP5306's boost, the AXP192's DC-DC3 (and its
    battery ADC on, the unused rails off). OSError if the chip does not answer."""
    import hw
    sda, scl = spec["sda"], spec["scl"]
    if chip == "ip5306":
        hw.i2c_write(sda, scl, IP5306_ADDR, 0x00, 0x37)
    elif chip == "axp192":
        out = _read(spec, AXP192_ADDR, 0x12)[0]
        hw.i2c_write(sda, scl, AXP192_ADDR, 0x12, (out & ~_UNUSED & 0xFF) | _DCDC3)
        adc = _read(spec, AXP192_ADDR, 0x82)[0]
        hw.i2c_write(sda, scl, AXP192_ADDR, 0x82, adc | 0x80)


def battery_mv(spec):
    """Battery voltage (mV) from the AXP192's ADC."""
    b = _read(spec, AXP192_ADDR, 0x78, 2)
    return ((b[0] << 4) | (b[1] & 0x0F)) * 11 // 10


# A gauge reading below this is no reading: the board browns out well above it (a divider
# missing or open, a sense pin that reads 0 V)
GAUGE_MIN_MV = 3000


def gauge_mv(board, chip, spec):
    """The battery (mV) from the board's own gauge: the ESP32's ADC behind the profile's
    divider, or the AXP192 (chip: the one that answered). None where the board has none or
    the PMU does not answer; the reading as it is otherwise (GAUGE_MIN_MV: the caller's)."""
    bat = board.get("battery") or {}
    if bat.get("source") == "adc":
        import hw
        from powerpolicy import adc_battery_mv
        return adc_battery_mv(hw.battery_adc(bat["pin"]), bat.get("divider", 2.0))
    if bat.get("source") == "pmu" and chip == "axp192":
        try:
            return battery_mv(spec)
        except OSError:
            pass  # the PMU stopped answering: the modem's reading still knows
    return None
