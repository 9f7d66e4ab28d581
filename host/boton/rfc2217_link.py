"""The server side of RFC 2217 (telnet COM-port control) for a virtual board's UART.

pyserial's ``serial.rfc2217.PortManager`` does the protocol; this adapter feeds it and hands
the virtual board what matters: the bytes, the DTR/RTS line changes (the auto-reset circuit)
and the baud rate. It lives on the transport side so that the virtual device (sim/) imports
pyserial only when an rfc2217:// port is asked for.
"""
import serial.rfc2217 as rfc2217


class _Connection:
    """What PortManager writes telnet negotiation to."""

    def __init__(self, send_raw):
        self.write = send_raw


class Rfc2217Link:
    """One host's RFC 2217 session with a port.

    ``port``: the device side of the USB-UART bridge as PortManager sees a serial port
    (settable ``baudrate``, ``dtr``, ``rts``; ``bytesize``, ``parity``, ...). ``send_raw``:
    writes bytes to the host unchanged (the telnet replies).
    """

    def __init__(self, port, send_raw):
        self._pm = rfc2217.PortManager(port, _Connection(send_raw))

    def feed(self, data: bytes, pending: bytearray):
        """The host's bytes, telnet taken out, appended to ``pending``. A DTR/RTS or baud
        change met on the way reaches ``port`` at once: its owner flushes ``pending``
        there, so bytes sent before the change reach the chip first."""
        pm = self._pm
        if pm.mode == rfc2217.M_NORMAL and pm.suboption is None and b"\xff" not in data:
            pending += data  # plain data, no telnet in it
            return
        for b in pm.filter(data):
            pending += b

    def escape(self, data: bytes) -> bytes:
        """The board's bytes as the host must receive them (0xFF doubled)."""
        return b"".join(self._pm.escape(data)) if b"\xff" in data else data
