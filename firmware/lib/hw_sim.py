# Virtual-device backend of the hardware layer (MicroPython unix port).
# The rig (host side) simulates the parts; each UART is a TCP stream to it and the pins
# travel as "P <pin> <level>" lines on one more stream. Drivers use these exactly like
# machine.UART / machine.Pin, so the same driver code runs on the ESP32.
import os
import socket
import asyncio

VIRTUAL = True
TIME_SCALE = float(os.getenv("BOTON_TIME_SCALE") or "1")
_RIG = os.getenv("BOTON_RIG") or "127.0.0.1:0"


def _connect(hello):
    host, port = _RIG.split(":")
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    s.write(hello)
    s.setblocking(False)
    return s


_gpio = None
_levels = {}
_irqs = {}


def _gpio_sock():
    global _gpio
    if _gpio is None:
        _gpio = _connect(b"gpio\n")
    return _gpio


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, pin, mode=IN, pull=None, value=None):
        self.pin = pin
        self.mode = mode
        _gpio_sock()
        if pin not in _levels:
            _levels[pin] = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return _levels.get(self.pin, 0)
        v = 1 if v else 0
        _levels[self.pin] = v
        if self.mode == Pin.OUT:
            _gpio_sock().write(b"P %d %d\n" % (self.pin, v))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        _irqs[self.pin] = (handler, trigger, self)


class IrqFlag:
    """ThreadSafeFlag's contract (wait() clears it). Here the 'IRQ' handlers run inside
    the asyncio loop (the pin pump task), so a plain Event does: the unix port's
    ThreadSafeFlag would make the loop poll every millisecond while it waits."""

    def __init__(self):
        self._e = asyncio.Event()

    def set(self):
        self._e.set()

    async def wait(self):
        await self._e.wait()
        self._e.clear()


class WDT:
    # The rig plays the watchdog: it restarts the board when feeds stop for `timeout` ms.
    def __init__(self, id=0, timeout=5000):
        _gpio_sock().write(b"WDT %d\n" % timeout)

    def feed(self):
        _gpio_sock().write(b"FEED\n")


def UART(uart_id, baudrate=9600, tx=None, rx=None, rxbuf=1024):
    return _connect(b"uart %d\n" % uart_id)


def unique_id():
    # The virtual board's eFuse MAC, given by the rig (a real one comes from efuse).
    mac = os.getenv("BOTON_MAC") or "24:0a:c4:00:00:42"
    return bytes(int(x, 16) for x in mac.split(":"))


def reset():
    import sys
    sys.exit(1)  # the rig restarts the interpreter from power-on


_wake_streams = []


def setup_wake(button_pin, active_level, ri_pin, modem_uart):
    """Light-sleep wake sources: the button and the modem's RI line (here: any byte from
    the modem, which is what drives RI on the real part)."""
    _wake_streams[:] = [_gpio_sock(), modem_uart]


def lightsleep(ms):
    """Sleep up to ms, woken early by the wake sources, as machine.lightsleep() is. The
    rig is told, so it can account the time asleep."""
    import select
    import time
    s = _gpio_sock()
    s.write(b"SLEEP %d\n" % ms)
    p = select.poll()
    for st in _wake_streams:
        p.register(st, select.POLLIN)
    t0 = time.ticks_ms()
    p.poll(ms)
    s.write(b"WAKE %d\n" % time.ticks_diff(time.ticks_ms(), t0))


_adc = {}


def battery_adc(pin):
    """Microvolts at an ADC pin (machine.ADC.read_uv()), as the rig last set them."""
    return _adc.get(pin, 0)


async def run():
    """Pump pin levels from the rig and fire IRQ handlers, as the chip would."""
    reader = asyncio.StreamReader(_gpio_sock())
    while True:
        line = await reader.readline()
        if not line:
            return
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"A":
            _adc[int(parts[1])] = int(parts[2])
            continue
        if len(parts) != 3 or parts[0] != b"P":
            continue
        pin, level = int(parts[1]), int(parts[2])
        old = _levels.get(pin)
        _levels[pin] = level
        h = _irqs.get(pin)
        if h and h[0] and old != level:
            edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
            if h[1] & edge:
                h[0](h[2])


def i2c_write(sda, scl, addr, reg, value):
    """I2C register write; the rig keeps what the board's chips were told."""
    _gpio_sock().write(b"I2C %d %d %d\n" % (addr, reg, value))
