# ESP32 backend of the hardware layer: thin aliases over machine.
import asyncio

import machine

# Set from a pin IRQ (outside the asyncio loop), awaited by a task.
IrqFlag = asyncio.ThreadSafeFlag

Pin = machine.Pin
WDT = machine.WDT
TIME_SCALE = 1.0
VIRTUAL = False


def UART(uart_id, baudrate, tx, rx, rxbuf=1024):
    return machine.UART(uart_id, baudrate=baudrate, tx=tx, rx=rx, rxbuf=rxbuf, timeout=0)


def unique_id():
    return machine.unique_id()


def reset():
    machine.reset()


_inputs = {}  # input pin -> (pull, handler): what after_wake() puts back


def input_pin(num, pull=None, handler=None):
    """An input pin, with handler on both edges; after_wake() restores it after a sleep."""
    _inputs[num] = (pull, handler)
    p = machine.Pin(num, machine.Pin.IN, pull)
    if handler:
        p.irq(handler=handler, trigger=machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
    return p


_wake_args = []  # setup_wake's arguments: after_wake() arms the same again


def setup_wake(button_pin, active_level, ri_pin=None, modem_uart=None):
    """Wake from light sleep on the button (ext0) or the SIM800's RI going low (ext1)."""
    import esp32
    _wake_args[:] = (button_pin, active_level, ri_pin, modem_uart)
    esp32.wake_on_ext0(pin=machine.Pin(button_pin), level=active_level)
    if ri_pin is not None:
        esp32.wake_on_ext1(pins=(machine.Pin(ri_pin),), level=esp32.WAKEUP_ALL_LOW)


def lightsleep(ms):
    """machine.lightsleep(ms); returns why it ended: "button", "ri" or "timer"."""
    machine.lightsleep(ms)
    why = machine.wake_reason()
    if why == getattr(machine, "EXT1_WAKE", 3):
        return "ri"
    if why == getattr(machine, "PIN_WAKE", 2):
        return "button"
    return "timer"


def after_wake():
    """ESP-IDF leaves ext0/ext1 wake pins in RTC mode after a light sleep: they read 0 and
    raise no IRQ until re-initialised. Re-create them as GPIO inputs, IRQs included, then
    arm the wake sources again: an edge IRQ set on the ext0 pin disarms its wake
    (machine_pin_irq in ports/esp32/machine_pin.c), and the next press would be lost."""
    for num in _inputs:
        pull, handler = _inputs[num]
        input_pin(num, pull, handler)
    if _wake_args:
        setup_wake(*_wake_args)


_hold = []


def hold_watchdog(timeout_ms, hold_ms):
    """A host's REPL session: the firmware's loop no longer feeds the watchdog, which a soft
    reset does not stop. Feed it from a hardware timer (its callback runs while the REPL
    waits for input) for hold_ms at most, so a board its host abandoned still resets
    into its firmware. A soft reset ends the timer."""
    import time
    wdt = machine.WDT(timeout=timeout_ms)
    until = time.ticks_add(time.ticks_ms(), hold_ms)

    def feed(t):
        if time.ticks_diff(until, time.ticks_ms()) > 0:
            wdt.feed()
        else:
            t.deinit()
    if _hold:  # renewed by each command of the session: one timer
        _hold[0].deinit()
    t = machine.Timer(0)
    t.init(period=max(100, timeout_ms // 4), mode=machine.Timer.PERIODIC, callback=feed)
    _hold[:] = [t]


_EPOCH = 946684800 if __import__("time").gmtime(0)[0] == 2000 else 0


def unix_time():
    """UTC Unix seconds by the RTC (2000-01-01 plus uptime until someone sets it)."""
    import time
    return time.time() + _EPOCH


def set_rtc(unix_s):
    import time
    y, mo, d, h, mi, s, wd, _ = time.gmtime(unix_s - _EPOCH)
    machine.RTC().datetime((y, mo, d, wd, h, mi, s, 0))


def battery_adc(pin):
    adc = machine.ADC(machine.Pin(pin))
    adc.atten(machine.ADC.ATTN_11DB)
    return adc.read_uv()


async def run():
    # Nothing to pump on real hardware: UARTs and pin IRQs are the chip's own.
    pass


def i2c_write(sda, scl, addr, reg, value):
    i2c = machine.SoftI2C(sda=machine.Pin(sda), scl=machine.Pin(scl))
    i2c.writeto_mem(addr, reg, bytes((value,)))


def i2c_read(sda, scl, addr, reg, n):
    # OSError(ENODEV) when no chip ACKs at addr
    i2c = machine.SoftI2C(sda=machine.Pin(sda), scl=machine.Pin(scl))
    return i2c.readfrom_mem(addr, reg, n)


def vfs_partition():
    """(block device, mount point, flash offset, size) of the flash filesystem: the `vfs`
    data partition, as _boot.py mounts it; None if the table has none."""
    import esp32
    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")
    if not found:
        return None
    p = found[0]
    info = p.info()  # (type, subtype, addr, size, label, encrypted)
    return p, "/", info[2], info[3]


def rtc_memory(data=None):
    """RTC slow memory (machine.RTC().memory(), up to 2 KB): kept through soft, watchdog
    and panic resets and deep sleep, lost at power-on and brown-out. rtc_memory() reads
    it (b"" after a power-on), rtc_memory(data) replaces it."""
    if data is None:
        return machine.RTC().memory()
    machine.RTC().memory(data)
