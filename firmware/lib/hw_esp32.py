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


def setup_wake(button_pin, active_level, ri_pin, modem_uart):
    """Wake from light sleep on the button (ext0) or the SIM800's RI going low (ext1)."""
    import esp32
    esp32.wake_on_ext0(pin=machine.Pin(button_pin), level=active_level)
    if ri_pin is not None:
        esp32.wake_on_ext1(pins=(machine.Pin(ri_pin),), level=esp32.WAKEUP_ALL_LOW)


def lightsleep(ms):
    machine.lightsleep(ms)


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
