# The memory bench's worst alert outside the virtual device (boton.bench.memory), run by
# MicroPython. Frozen into the 32-bit interpreters the bench measures with (boton.frozen):
# on a chip this harness does not exist and `machine` is C, so neither its code nor its
# names (qstrs) may take heap there. From source (the 64-bit PyPI interpreter) they do, and
# the figure errs high.
#
#     worstalert.main(nmea_log, pin, "esp32")   hw.py + lib/hw_esp32.mpy over the stand-in
#                                               machine, as a board loads them
#     worstalert.main(nmea_log, pin, "frozen")  `import hw` (the frozen build's hw_sim)
#
# Prints SEEN (what the alert did), STEPS (live heap after each step), mem_info and qstr_info.
import gc
import json
import sys

import micropython


class _Uart:
    def write(self, b):
        return len(b)

    def read(self, n=-1):
        return None

    def readinto(self, b):
        return None

    def ioctl(self, req, arg):
        return 0


class _Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, *a, **k):
        self.v = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v

    def irq(self, handler=None, trigger=None, wake=None):
        pass

    def init(self, mode=None, pull=None, value=None):
        pass


def _uart(uart_id=1, baudrate=9600, tx=None, rx=None, rxbuf=256, timeout=0):
    return _Uart()


# The ESP32 port's machine and esp32 as hw_esp32 uses them: C modules on a chip, whose
# names are in the image's own qstr table (the attributes below are only named, not run).
class machine:
    Pin = _Pin
    UART = _uart
    WDT = _Pin           # only read at import: the scenario runs no watchdog task

    class ADC:
        ATTN_11DB = 3

        def atten(self, a):
            pass

        def read_uv(self):
            return 0

    class Timer:
        PERIODIC = 1

        def init(self, period=0, mode=0, callback=None):
            pass

        def deinit(self):
            pass

    class RTC:
        def datetime(self, t=None):
            pass

        def memory(self, data=None):
            pass

    class SoftI2C:
        def __init__(self, sda=None, scl=None, freq=0, timeout=0):
            pass

        def writeto_mem(self, addr, reg, data):
            pass

        def readfrom_mem(self, addr, reg, n):
            pass

    EXT1_WAKE = 3
    lightsleep = reset = unique_id = wake_reason = None


class esp32:
    WAKEUP_ALL_LOW = 0
    wake_on_ext0 = wake_on_ext1 = None

    class Partition:
        TYPE_DATA = 1
        find = None


_steps = []
_base = 0


def mark(name):
    gc.collect()
    a = gc.mem_alloc()
    _steps.append([name, a - _base, a])


def _load_hw(hw_mode):
    if hw_mode != "esp32":
        import hw
        return hw
    # hw.py picks its backend by sys.platform ("linux" here): registering hw_esp32 under
    # the name hw_sim makes its `from hw_sim import *` copy hw_esp32's names, as
    # `from hw_esp32 import *` does on the chip
    sys.modules["machine"] = machine
    sys.modules["esp32"] = esp32
    import hw_esp32
    sys.modules["hw_sim"] = hw_esp32
    import hw
    del sys.modules["hw_sim"]
    return hw


def main(nmea_log, pin, hw_mode):
    global _base
    gps = open(nmea_log, "rb")      # read 64 bytes at a time, as from the GPS UART
    buf = bytearray(64)
    gc.collect()
    _base = gc.mem_alloc()
    hw = _load_hw(hw_mode)
    print("HW", "hw_sim" if hw.VIRTUAL else "hw_esp32")
    hw.UART = _uart
    hw.Pin = _Pin
    # as main.py starts the firmware: bootcheck.check() imports it (the check's own qstrs
    # stay interned), then bootcheck is dropped; safe mode's module is loaded only if it
    # must run
    import bootcheck
    why = bootcheck.check()
    del sys.modules["bootcheck"], bootcheck
    if why:
        raise SystemExit("safe mode: " + why)
    import app
    import nmea
    import store
    from eventlog import EventLog
    mark("import")

    # as app._main starts the firmware
    board = store.read_json("board.json")
    log = EventLog(echo=False)
    log.add("boot", app.VERSION)
    import appboot
    cfg, safe_mode = appboot.load_config(board, log)
    assert not safe_mode
    a = app.App(board, cfg, log)
    del sys.modules["appboot"], appboot  # keep_power_on (I2C) is not run here
    parser = nmea.NMEAParser()
    mark("boot")

    # The worst alert: 5 contacts, GPS streaming, the first C4 call not answered (one
    # redial), an SMS command from C4 and a low-battery warning while the alert runs.
    mv = memoryview(buf)
    now = [1000]
    pending = []
    seen = {"sms": 0, "dial": 0, "logged": []}

    def run(ev):
        now[0] += 50
        for act in a.machine.handle(ev, now[0]):
            k = act[0]
            if k == "log":
                log.add(act[1], act[2])
                if act[1] not in seen["logged"]:
                    seen["logged"].append(act[1])
            elif k == "persist":
                store.write_json("alert.json", act[1])
            elif k == "send_sms":
                seen["sms"] += 1
                pending.append(("sms_sent", act[3], True))
            elif k == "dial":
                seen["dial"] += 1
                end = (("call_state", "ended", "no_answer") if seen["dial"] == 1
                       else ("call_state", "active", None))
                pending.extend([("call_state", "dialing", None),
                                ("call_state", "alerting", None), end])
            elif k == "set_timer" and act[1] == "redial":
                pending.append(("timer", "redial"))

    def gps_second():
        # about one second of a 9600-baud receiver: 480 bytes, in 64-byte reads
        for _ in range(8):
            n = gps.readinto(buf)
            if not n:
                gps.seek(0)
                n = gps.readinto(buf)
            if parser.feed(mv[:n]):
                run(("fix", parser.pop_latest()))

    for _ in range(5):
        gps_second()
    mark("gps")
    run(("battery", 80))
    run(("signal", 20))
    run(("gesture", "alert"))
    mark("alert")
    n = 0
    while pending and n < 300:
        run(pending.pop(0))
        gps_second()
        n += 1
        if n == 4:
            run(("sms_command", cfg["c4_numbers"][0], "UBICACION " + pin))
        elif n == 8:
            run(("battery", 15))
            # the SIM800's own supply warning at the same low cell (3.49 V and below)
            run(("power_warning", "under_voltage"))
        mark("step")
    for _ in range(20):
        gps_second()
    mark("end")
    # The report streams out (json.dump): building it as one string would be the
    # harness's own allocation, and could decide the smallest heap instead of the firmware.
    print("SEEN", end=" ")
    json.dump(seen, sys.stdout)
    print()
    print("STEPS", end=" ")
    json.dump(_steps, sys.stdout)
    print()
    micropython.mem_info()
    micropython.qstr_info()
    print("DONE")
