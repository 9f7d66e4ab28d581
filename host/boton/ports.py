"""Serial ports and the boards they look like, by the USB bridge's VID:PID."""
import os

from serial.tools import list_ports

# USB-UART bridges found on ESP32 boards (VID, PID) -> what it is.
BRIDGES = {
    (0x10C4, 0xEA60): "CP210x (Silicon Labs): LilyGO T-Call, DevKitC",
    (0x1A86, 0x7523): "CH340 (WCH): many ESP32 clones",
    (0x1A86, 0x55D4): "CH9102 (WCH): newer LilyGO / DevKitC v4",
    (0x0403, 0x6001): "FT232R (FTDI)",
    (0x0403, 0x6015): "FT231X (FTDI)",
    (0x303A, 0x1001): "ESP32-S3/C3 native USB (Espressif)",
}


def board_ports():
    """[(device, description)] of ports whose USB bridge is one an ESP32 board uses."""
    out = []
    for p in list_ports.comports():
        what = BRIDGES.get((p.vid, p.pid)) if p.vid is not None else None
        if what:
            out.append((p.device, what, f"{p.vid:04x}:{p.pid:04x}", p.serial_number or ""))
    return sorted(out)


def all_ports():
    return [(p.device, BRIDGES.get((p.vid, p.pid), p.description or "?"),
             f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else "-", p.serial_number or "")
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]


def pick_port(given=None):
    """The port to use: --port, else BOTON_PORT, else the one board plugged in.
    Returns (port, None) or (None, reason)."""
    port = given or os.environ.get("BOTON_PORT")
    if port:
        return port, None
    boards = board_ports()
    if len(boards) == 1:
        return boards[0][0], None
    if not boards:
        return None, ("no board found: plug one in (check the cable carries data) or give --port "
                      "(a serial path, socket://HOST:PORT, rfc2217://HOST:PORT) or set BOTON_PORT")
    names = ", ".join(b[0] for b in boards)
    return None, f"{len(boards)} boards are plugged in ({names}): choose one with --port"
