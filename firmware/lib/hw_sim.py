# Virtual-device backend of the hardware layer (MicroPython unix port).
# The rig (host side) simulates the parts; each UART is a TCP stream to it and the pins
# travel as "P <pin> <level>" lines on one more stream. Drivers use these exactly like
# machine.UART / machine.Pin, so the same driver code runs on the ESP32.
import os
import socket
import time
import asyncio

VIRTUAL = True
TIME_SCALE = float(os.getenv("BOTON_TIME_SCALE") or "1")
_RIG = os.getenv("BOTON_RIG") or "127.0.0.1:0"


def _connect(hello):
    host, port = _RIG.split(":")
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    # A UART sends each byte as it is written. Without TCP_NODELAY, Nagle holds a write
    # while the one before is unacknowledged and Linux acks 40 ms late: a command right
    # after the modem's wake byte arrived 40 ms late (IPPROTO_TCP 6, TCP_NODELAY 1: the
    # unix port's socket module has no names for them).
    s.setsockopt(6, 1, 1)
    s.write(hello)
    s.setblocking(False)
    return s


_gpio = None
_levels = {}
_irqs = {}
# Pins ESP-IDF left in RTC mode after a light sleep with ext0/ext1 wake: they read 0 and
# raise no IRQ until re-initialised (Pin(n, mode, ...) or Pin.init), as on the chip.
_rtc_mode = {}
_inputs = {}   # input pin -> (pull, handler): what after_wake() puts back
_pulls = {}    # input pin -> its pull (Pin.PULL_UP, Pin.PULL_DOWN or None)
_released = set()  # pins whose line nothing drives ("P <pin> Z"): they read their pull
_ext0 = []     # [pin, level]: the button's wake source, while armed
_ext1 = []     # [pin, level]: the modem's RI (where wired)
_wake_args = []  # setup_wake's arguments: after_wake() arms the same again


def _gpio_sock():
    global _gpio
    if _gpio is None:
        _gpio = _connect(b"gpio\n")
        _sync(_gpio)
    return _gpio


def _sync(s):
    # The lines' levels as the rig has them now, applied before any pin is made, as the
    # chip's Pin reads its line at once: a button held through a reset reads pressed and
    # raises no edge (the pump used to deliver it later, as an edge the chip never has).
    import select
    p = select.poll()
    p.register(s, select.POLLIN)
    part = b""
    deadline = time.ticks_add(time.ticks_ms(), 2000)
    while time.ticks_diff(deadline, time.ticks_ms()) > 0:
        if not p.poll(50):
            continue
        line = s.readline()
        if not line:
            return
        line = part + line
        if line[-1:] != b"\n":
            part = line  # the rest of the line is on its way
            continue
        part = b""
        if line == b"SYNC\n":
            return
        _apply(line)


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, pin, mode=IN, pull=None, value=None):
        self.pin = pin
        self.init(mode, pull, value)

    def init(self, mode=IN, pull=None, value=None):
        self.mode = mode
        _gpio_sock()
        _rtc_mode.pop(self.pin, None)  # back to a digital GPIO
        if mode == Pin.IN:
            _pulls[self.pin] = pull
        if self.pin not in _levels or self.pin in _released:
            _levels[self.pin] = _pulled(self.pin)
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return 0 if self.pin in _rtc_mode else _levels.get(self.pin, 0)
        v = 1 if v else 0
        _levels[self.pin] = v
        if self.mode == Pin.OUT:
            # with the time it happened: a busy rig may read two lines at once, and a
            # PWRKEY press lasts what the firmware held it, not the gap between the reads
            _gpio_sock().write(b"P %d %d %d\n" % (self.pin, v, time.ticks_ms()))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        _irqs[self.pin] = (handler, trigger, self)
        if _ext0 and _ext0[0] == self.pin:
            # An edge IRQ on the ext0 pin disarms its wake on the chip (machine_pin_irq in
            # ports/esp32/machine_pin.c sets ext0_pin to -1): sleeps end on the timer only.
            _ext0[:] = []
            _arm()


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


def hold_watchdog(timeout_ms, hold_ms):
    """Keep the watchdog fed for hold_ms from a timer that outlives the asyncio loop (a
    host's REPL session): on the chip, a machine.Timer; here the rig plays it. It ends at
    the next reset."""
    _gpio_sock().write(b"HOLD %d %d\n" % (timeout_ms, hold_ms))


# The chip's RTC: seconds since 2000-01-01, from 0 at power-on until set_rtc(); it keeps
# counting through resets. The rig passes the host time at which it read 0. It counts
# the rig's seconds (TIME_SCALE host seconds each), as the GPS's and the network's clocks
# do: an SMS's time stamp against it gives its age as the rest of the world sees it.
_EPOCH_2000 = 946684800
_rtc_base = float(os.getenv("BOTON_RTC_BASE") or "0")


def unix_time():
    """UTC Unix seconds by the RTC (2000-01-01 plus uptime until someone sets it)."""
    import time
    return int((time.time() - _rtc_base) / TIME_SCALE) + _EPOCH_2000


def set_rtc(unix_s):
    """Set the RTC to UTC Unix seconds (machine.RTC().datetime on the chip)."""
    global _rtc_base
    import time
    _rtc_base = time.time() - (unix_s - _EPOCH_2000) * TIME_SCALE
    ms = int(_rtc_base * 1000)
    _gpio_sock().write(b"RTC %d.%03d\n" % (ms // 1000, ms % 1000))


def UART(uart_id, baudrate=9600, tx=None, rx=None, rxbuf=1024):
    return _connect(b"uart %d\n" % uart_id)


def unique_id():
    # The virtual board's eFuse MAC, given by the rig (a real one comes from efuse).
    mac = os.getenv("BOTON_MAC") or "24:0a:c4:00:00:42"
    return bytes(int(x, 16) for x in mac.split(":"))


def reset():
    import sys
    sys.exit(1)  # the rig restarts the interpreter from power-on


def input_pin(num, pull=None, handler=None):
    """An input pin, with handler on both edges; after_wake() restores it after a sleep."""
    _inputs[num] = (pull, handler)
    p = Pin(num, Pin.IN, pull)
    if handler:
        p.irq(handler, Pin.IRQ_FALLING | Pin.IRQ_RISING)
    return p


def setup_wake(button_pin, active_level, ri_pin=None, modem_uart=None):
    """Light-sleep wake sources: the button (ext0) and, where the board wires it, the
    SIM800's RI line going low (ext1). The UARTs are no wake source: the rig drops what
    the modem or the host send while the chip sleeps."""
    _wake_args[:] = (button_pin, active_level, ri_pin, modem_uart)
    _ext0[:] = [button_pin, active_level]
    _ext1[:] = [ri_pin, 0] if ri_pin is not None else []
    _arm()


def _arm():
    _gpio_sock().write(b"WAKEON" + b"".join(b" %d %d" % tuple(w) for w in _wake_sources()) + b"\n")


def _wake_sources():
    return [w for w in (_ext0, _ext1) if w]


def lightsleep(ms):
    """Sleep up to ms, as machine.lightsleep() does: a wake pin at its level (the rig sends
    those only) or the timer ends it. Returns why: "button", "ri" or "timer". The wake
    pins are left in RTC mode (see after_wake)."""
    import select
    import time
    s = _gpio_sock()
    why = None
    wake = _wake_sources()
    for pin, level in wake:  # level-triggered: a pin already there wakes at once
        if _levels.get(pin) == level:
            why = "button" if _ext0 and pin == _ext0[0] else "ri"
    t0 = time.ticks_ms()
    try:
        s.write(b"SLEEP %d\n" % ms)
        if why is None:
            p = select.poll()
            p.register(s, select.POLLIN)
            why = "timer"
            if p.poll(ms):
                # The rig names the wake pin ("K <pin>") before its level; anything else is
                # a line it sent before it saw SLEEP: apply it, and count the sleep as over.
                line = s.readline() or b""
                if line[:2] == b"K ":
                    why = "button" if _ext0 and int(line[2:]) == _ext0[0] else "ri"
                else:
                    _apply(line)
                    why = "other"
    finally:
        # A Ctrl-C the UART took just before the sleep is raised here; on the chip it is
        # raised once awake, so the rig hears the wake whatever ended it (or its UARTs
        # stay deaf to the session that sent the Ctrl-C)
        s.write(b"WAKE %d\n" % time.ticks_diff(time.ticks_ms(), t0))
        for pin, _ in wake:
            _rtc_mode[pin] = 1
    return why


def after_wake():
    """Give the wake pins back to the GPIO matrix (and their IRQs), as the firmware must
    after every light sleep on the chip, then arm the wake sources again: the button's
    new IRQ disarmed its ext0."""
    for num in _inputs:
        pull, handler = _inputs[num]
        input_pin(num, pull, handler)
    if _wake_args:
        setup_wake(*_wake_args)


_adc = {}


def battery_adc(pin):
    """Microvolts at an ADC pin (machine.ADC.read_uv()), as the rig last set them. With no
    pump running (a host's session: the service), what the rig sent is read here first:
    the chip's ADC reads the pin whenever it is asked."""
    if not _pumping:
        import select
        s = _gpio_sock()
        p = select.poll()
        p.register(s, select.POLLIN)
        # the rig sends the level at the connection: wait for it once, then take what came
        while p.poll(0 if pin in _adc else 1000):
            line = s.readline()
            if not line:
                break
            _apply(line)
    return _adc.get(pin, 0)


def _pulled(pin):
    # An undriven line reads its pull. With none it floats, and reads anything on the
    # chip: 0 here, which an active-low button or RI takes for pressed or ringing.
    return 1 if _pulls.get(pin) == Pin.PULL_UP else 0


def _apply(line):
    """One line from the rig: a pin level (firing its IRQ, as the chip would) or an ADC value."""
    parts = line.split()
    if len(parts) != 3:
        return
    if parts[0] == b"A":
        _adc[int(parts[1])] = int(parts[2])
        return
    if parts[0] != b"P":
        return
    pin = int(parts[1])
    if parts[2] == b"Z":
        _released.add(pin)
        level = _pulled(pin)
    else:
        _released.discard(pin)
        level = int(parts[2])
    old = _levels.get(pin)
    _levels[pin] = level
    h = _irqs.get(pin)
    if h and h[0] and old != level and pin not in _rtc_mode:
        edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
        if h[1] & edge:
            h[0](h[2])


_pumping = False


async def run():
    """Pump pin levels from the rig and fire IRQ handlers, as the chip would."""
    global _pumping
    _pumping = True
    reader = asyncio.StreamReader(_gpio_sock())
    while True:
        line = await reader.readline()
        if not line:
            return
        _apply(line)


def i2c_write(sda, scl, addr, reg, value):
    """I2C register write; the rig keeps what the board's chips were told."""
    _gpio_sock().write(b"I2C %d %d %d\n" % (addr, reg, value))


_i2c = None


def i2c_read(sda, scl, addr, reg, n):
    """I2C register read from the rig's emulated chips, on a stream of its own (the gpio
    stream belongs to the pin pump task): OSError(ENODEV) when no chip ACKs, as
    machine.I2C raises."""
    global _i2c
    if _i2c is None:
        _i2c = _connect(b"i2c\n")
        _i2c.setblocking(True)
    _i2c.write(b"R %d %d %d\n" % (addr, reg, n))
    line = _i2c.readline().strip()
    if not line or line == b"NAK":
        raise OSError(19)  # ENODEV
    import binascii
    return binascii.unhexlify(line)


def vfs_partition():
    """(block device, mount point, flash offset, size) of the flash filesystem: the vfs
    region of the virtual chip's flash image, through the same extended block device
    protocol as esp32.Partition, mounted at "/" as _boot.py does on the chip. None on a
    flash folder: there are no raw blocks."""
    spec = os.getenv("BOTON_FLASH_IMAGE")
    if not spec:
        return None
    # the rig's block device (lfs_blockdev.py, which the rig's flashbdev also uses)
    g = {"__name__": "lfs_blockdev"}
    exec(open(os.getenv("BOTON_LFS_BLOCKDEV")).read(), g)
    path, offset, size = g["parse_spec"](spec)
    return g["FlashRegion"](path, offset, size), "/", offset, size


# The chip's RTC slow memory (machine.RTC().memory()): the rig keeps it across resets and
# clears it at a power cycle, as RTC slow memory behaves; each boot gets it in the env.
RTC_MEMORY_MAX = 2048  # the ESP32 port's MICROPY_HW_RTC_USER_MEM_MAX
_rtc_mem = None


def rtc_memory(data=None):
    """rtc_memory() -> bytes (b"" after a power-on); rtc_memory(data) replaces them."""
    global _rtc_mem
    if data is None:
        if _rtc_mem is None:
            import binascii
            _rtc_mem = binascii.unhexlify(os.getenv("BOTON_RTC_MEMORY") or "")
        return _rtc_mem
    if len(data) > RTC_MEMORY_MAX:
        raise ValueError("buffer too long")  # as machine.RTC().memory() says
    import binascii
    _rtc_mem = bytes(data)
    _gpio_sock().write(b"RTCMEM " + (binascii.hexlify(_rtc_mem) or b"-") + b"\n")
