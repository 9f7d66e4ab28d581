"""The ESP32 ROM serial bootloader ("download mode") of the virtual device (CPython).

``RomLoader`` is sans-IO: it owns no socket and no thread. Bytes from the host go in,
SLIP-framed responses come out, in any chunking::

    rom = RomLoader("flash.bin")                 # 4 MB flash file, created all 0xFF
    out = rom.feed(bytes_from_host)              # -> bytes for the host ("" if none)
    if rom.exited: ...                           # FLASH_END / MEM_END left the loader

It speaks what the real ``esptool --no-stub`` needs from an ESP32 (rev v3.0, D0WD-V3)
ROM, with the ROM's framing and status bytes (4 status bytes: status, error, 0, 0):

* SYNC: 8 identical replies with a non-zero value (esptool reads 7 extra replies and
  takes value 0 for "flasher stub already running").
* READ_REG / WRITE_REG (mask, grouped writes): chip magic 0x40001000 = 0x00F01D83, the
  eFuse BLK0 read words at 0x3FF5A000+ (MAC and its CRC, package D0WD, rev v3.0, 240 MHz,
  Vref, coding scheme none; BLK3 words 6-7 spell "BOTONSIM": the virtual chip's
  signature, which `boton flash` reads), APB_CTL_DATE, UART_CLKDIV (follows the baud rate, so the
  crystal reads 40 MHz), RTC calibration, GPIO strapping; other words are plain memory.
* The SPI1 controller registers (0x3FF42000+): a write of SPI_USR (bit 18) to SPI_CMD runs
  the programmed flash command on the simulated chip: JEDEC id (0x9F, default 0x1640EF,
  a Winbond 4 MB part), SFDP (0x5A), status registers (05/35/15, 01/31/11, 06/04/50),
  reset / power-down no-ops, READ (0x03). That is how esptool's ``flash-id``, flash size
  detection, ``read-flash-status`` and ``write-flash-status`` work on the ROM.
* SPI_ATTACH, SPI_SET_PARAMS (the ROM refuses flash access past the size it was given;
  until then it assumes 2 MB, as esptool's comments say), CHANGE_BAUDRATE. Each SYNC
  re-detects the host's baud rate (``host_baud``: a transport that knows it, like
  RFC2217, sets it; otherwise 115200), which UART_CLKDIV then reflects.
* FLASH_BEGIN (erases whole 4 KB sectors up front; the offset must be sector aligned)
  / FLASH_DATA / FLASH_END, FLASH_DEFL_BEGIN / FLASH_DEFL_DATA / FLASH_DEFL_END (one zlib
  stream across the blocks), SPI_FLASH_MD5 (32 lowercase hex ASCII characters, as the
  ROM answers), READ_FLASH_SLOW (64-byte blocks), MEM_BEGIN / MEM_DATA / MEM_END.
* Data blocks carry the 0xEF-seeded XOR checksum; a mismatch is refused with 0x07.
* Flash is NOR: programming only clears bits (new = old AND data) and the ROM reads each
  block back, so writing over unerased flash fails with 0x08 like the real chip. Addresses
  past the chip's size wrap around, as on a real SPI flash.
* Anything else (GET_SECURITY_INFO, the stub-only 0xD0.. commands) is refused the way
  esptool expects from an ESP32 ROM: status 1, error 0x05, in a reply whose command byte
  differs from the request (its UnsupportedCommandError path), sent 8 times.

Not emulated: code uploaded to RAM (esptool's flasher stub, ``load-ram``) cannot run.
MEM_END with an entry point is acknowledged, then the loader stops answering and
``exited == "ram"``; the transport tells the user to pass ``--no-stub``. `boton flash`
never gets there: it reads the BOTONSIM signature and keeps to the ROM loader.

ROM error codes (esptool docs, "Serial Protocol"): 0x05 invalid message, 0x06 failed to
act, 0x07 bad checksum, 0x08 flash write (read-back) error, 0x09 flash read error,
0x0A flash read length error, 0x0B deflate error.
"""
from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

# ----------------------------------------------------------------------------- SLIP
SLIP_END, SLIP_ESC = 0xC0, 0xDB
MAX_FRAME = 2 * (0x10000 + 16) + 2  # a 64 KB packet, every byte escaped

CHECKSUM_SEED = 0xEF


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def slip_unescape(raw: bytes) -> bytes | None:
    """Undo SLIP escaping of one frame's body; None if it holds an invalid escape."""
    esc = raw.count(b"\xdb")
    if esc and esc != raw.count(b"\xdb\xdc") + raw.count(b"\xdb\xdd"):
        return None  # 0xDB is always an escape lead, so the counts must add up
    return raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")


def checksum(data: bytes, state: int = CHECKSUM_SEED) -> int:
    for b in data:
        state ^= b
    return state


class SlipDecoder:
    """Incremental SLIP deframer: push(bytes) -> list of complete packets (unescaped).

    Bytes outside a frame are ignored, like the ROM ignores line noise; a frame with an
    invalid escape or longer than MAX_FRAME is dropped.
    """

    def __init__(self):
        self._buf = bytearray()
        self._in_frame = False

    def push(self, data: bytes) -> list[bytes]:
        self._buf += data
        packets = []
        while True:
            if not self._in_frame:
                i = self._buf.find(SLIP_END)
                if i < 0:
                    self._buf.clear()
                    return packets
                del self._buf[: i + 1]
                self._in_frame = True
            j = self._buf.find(SLIP_END)
            if j < 0:
                if len(self._buf) > MAX_FRAME:
                    self._buf.clear()
                    self._in_frame = False
                return packets
            if j == 0:  # C0 C0: an empty frame; the second C0 opens the next one
                del self._buf[:1]
                continue
            raw = bytes(self._buf[:j])
            del self._buf[: j + 1]
            self._in_frame = False
            pkt = slip_unescape(raw)
            if pkt is not None:
                packets.append(pkt)


# ----------------------------------------------------------------------------- protocol
CMD = {
    "FLASH_BEGIN": 0x02, "FLASH_DATA": 0x03, "FLASH_END": 0x04,
    "MEM_BEGIN": 0x05, "MEM_END": 0x06, "MEM_DATA": 0x07,
    "SYNC": 0x08, "WRITE_REG": 0x09, "READ_REG": 0x0A,
    "SPI_SET_PARAMS": 0x0B, "SPI_ATTACH": 0x0D, "READ_FLASH_SLOW": 0x0E,
    "CHANGE_BAUDRATE": 0x0F,
    "FLASH_DEFL_BEGIN": 0x10, "FLASH_DEFL_DATA": 0x11, "FLASH_DEFL_END": 0x12,
    "SPI_FLASH_MD5": 0x13,
}
CMD_NAME = {v: k for k, v in CMD.items()}

ERR_INVALID = 0x05      # received message is invalid (parameters or length)
ERR_FAILED = 0x06       # failed to act on received message
ERR_CHECKSUM = 0x07     # invalid CRC (checksum) in message
ERR_FLASH_WRITE = 0x08  # flash read-back after write does not match
ERR_FLASH_READ = 0x09
ERR_READ_LEN = 0x0A
ERR_DEFLATE = 0x0B

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_VALUE = 0x20120707     # whatever the ROM left in the value register; never 0
SYNC_REPLIES = 8
UNSUPPORTED_REPLIES = 8     # esptool drains "8 times 14 bytes" after an unsupported command
UNSUPPORTED_OP = 0x00       # any byte other than the request's command; this one is a choice

SECTOR = 0x1000
READ_SLOW_BLOCK = 64
ROM_DEFAULT_FLASH_SIZE = 2 * 1024 * 1024
ROM_BAUD = 115200
APB_HZ = 40_000_000         # the ROM runs the APB from the 40 MHz crystal

# ----------------------------------------------------------------------------- ESP32 map
CHIP_MAGIC_REG = 0x40001000
CHIP_MAGIC_ESP32 = 0x00F01D83
EFUSE_BASE = 0x3FF5A000     # EFUSE_BLK0_RDATA0_REG
EFUSE_WORDS = 0x100 // 4    # read registers of BLK0..BLK3 (unset ones read 0)
EFUSE_BLK3 = 0x3FF5A078     # EFUSE_BLK3_RDATA0_REG
VIRTUAL_CHIP_MARK = b"BOTONSIM"  # in BLK3 words 6-7 (see _efuse_words); flash.py reads it
APB_CTL_DATE = 0x3FF6607C   # bit 31: rev_bit2 of the chip revision
APB_CTL_DATE_VALUE = 0x96042000
UART_CLKDIV_REG = 0x3FF40014
RTCCALICFG1 = 0x3FF5F06C
GPIO_STRAP_REG = 0x3FF44038
STRAP_DOWNLOAD = 0x03       # "boot:0x3", also GPIO_STRAP_VDDSDIO (bit 5) = 0: 3.3 V flash
STRAP_SPI_BOOT = 0x13

CK8M_FREQ = 0x32            # EFUSE_RD_CK8M_FREQ; with RTC_CALI_VALUE below the ROM's
RTC_CALI_VALUE = 2048       # crystal estimate is exactly 40 MHz (esptool's change_baud)

SPI1_BASE = 0x3FF42000
SPI_CMD = SPI1_BASE + 0x00
SPI_ADDR = SPI1_BASE + 0x04
SPI_USR = SPI1_BASE + 0x1C
SPI_USR1 = SPI1_BASE + 0x20
SPI_USR2 = SPI1_BASE + 0x24
SPI_MOSI_DLEN = SPI1_BASE + 0x28
SPI_MISO_DLEN = SPI1_BASE + 0x2C
SPI_W0 = SPI1_BASE + 0x80
SPI_W_COUNT = 16
SPI_CMD_USR = 1 << 18
USR_COMMAND, USR_ADDR, USR_DUMMY, USR_MISO, USR_MOSI = 1 << 31, 1 << 30, 1 << 29, 1 << 28, 1 << 27

WINBOND = 0xEF


def mac_crc8(mac: bytes) -> int:
    """CRC-8 of the MAC as the ESP32 eFuse stores it (reflected poly 0x8C, init 0)."""
    crc = 0
    for b in mac:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def boot_banner(mode: str, reset: str = "poweron") -> bytes:
    """What the ESP32 ROM prints on UART0 when it boots (before any user code)."""
    rst = {"poweron": "rst:0x1 (POWERON_RESET)", "sw": "rst:0xc (SW_CPU_RESET)"}[reset]
    if mode == "download":
        boot = "boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n"
    elif mode == "run":
        boot = "boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    else:
        raise ValueError(f"mode must be 'download' or 'run', not {mode!r}")
    return f"ets Jun  8 2016 00:22:57\r\n\r\n{rst},{boot}".encode()


class RomError(Exception):
    """A command the ROM refuses: answered with status 1 and this error code."""

    def __init__(self, code: int, why: str = ""):
        super().__init__(f"ROM error {code:#04x}: {why}")
        self.code = code


# ----------------------------------------------------------------------------- flash chip
class SpiFlash:
    """A NOR flash chip backed by a regular file of `size` bytes (0xFF = erased)."""

    def __init__(self, path, size: int):
        self.path = Path(path)
        self.size = size
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as f:
                chunk = b"\xff" * 0x10000
                for _ in range(size // len(chunk)):
                    f.write(chunk)
                f.write(b"\xff" * (size % len(chunk)))
        elif self.path.stat().st_size != size:
            raise ValueError(f"{self.path} is {self.path.stat().st_size} bytes, expected a "
                             f"{size}-byte flash image")
        self._fd = os.open(self.path, os.O_RDWR)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _spans(self, addr: int, n: int):
        """(file offset, length) pieces of [addr, addr+n): addresses wrap at the chip size."""
        addr %= self.size
        while n > 0:
            k = min(n, self.size - addr)
            yield addr, k
            addr, n = 0, n - k

    def read(self, addr: int, n: int) -> bytes:
        return b"".join(os.pread(self._fd, k, off) for off, k in self._spans(addr, n))

    def erase(self, addr: int, n: int):
        for off, k in self._spans(addr, n):
            os.pwrite(self._fd, b"\xff" * k, off)

    def program(self, addr: int, data: bytes) -> bytes:
        """Page-program `data` (bits only go 1 -> 0); return what reads back."""
        old = self.read(addr, len(data))
        new = (int.from_bytes(old, "little") & int.from_bytes(data, "little")).to_bytes(len(data), "little")
        pos = 0
        for off, k in self._spans(addr, len(data)):
            os.pwrite(self._fd, new[pos:pos + k], off)
            pos += k
        return new

    def md5(self, addr: int, n: int) -> str:
        h = hashlib.md5()
        step = 0x10000
        for i in range(0, n, step):
            h.update(self.read(addr + i, min(step, n - i)))
        return h.hexdigest()


def _sfdp_table(size: int) -> bytes:
    """A minimal JESD216 SFDP area: header, one basic parameter header, density dword."""
    header = b"SFDP" + bytes([0x06, 0x01, 0x00, 0xFF])
    param = bytes([0x00, 0x06, 0x01, 0x09, 0x30, 0x00, 0x00, 0xFF])
    basic = bytearray(b"\xff" * 36)
    basic[4:8] = struct.pack("<I", size * 8 - 1)  # density in bits - 1
    table = bytearray(b"\xff" * 0x100)
    table[0:8] = header
    table[8:16] = param
    table[0x30:0x30 + len(basic)] = basic
    return bytes(table)


# ----------------------------------------------------------------------------- the ROM
class _Download:
    """State between a *_BEGIN and its data blocks."""

    def __init__(self, kind, offset, size, blocks, block_size):
        self.kind, self.offset, self.size = kind, offset, size
        self.blocks, self.block_size = blocks, block_size
        self.next_seq = 0
        self.written = 0
        self.inflate = zlib.decompressobj() if kind == "defl" else None


class RomLoader:
    """The ESP32 ROM UART download protocol over a file-backed SPI flash (see module doc)."""

    def __init__(self, flash_path, flash_size: int = 4 * 1024 * 1024,
                 mac: bytes = bytes.fromhex("240ac4000042"), chip: str = "esp32", *,
                 flash_id: int | None = None):
        if chip != "esp32":
            raise ValueError(f"only chip='esp32' is emulated, not {chip!r}")
        if flash_size < SECTOR or flash_size & (flash_size - 1):
            raise ValueError("flash_size must be a power of two of at least 4 KB")
        mac = bytes(mac)
        if len(mac) != 6:
            raise ValueError("mac must be 6 bytes")
        self.chip = chip
        self.mac = mac
        self.flash = SpiFlash(flash_path, flash_size)
        # JEDEC RDID bytes: manufacturer, memory type, capacity (log2 of the size)
        self.flash_id = flash_id if flash_id is not None else (
            (flash_size.bit_length() - 1) << 16 | 0x40 << 8 | WINBOND)
        self._sfdp = _sfdp_table(flash_size)
        self._efuse = self._efuse_words()
        self.host_baud = ROM_BAUD     # the rate the host talks at, found by SYNC (autobaud)
        self._status_nv = [0, 0, 0]   # flash status registers SR1..SR3 as stored (non-volatile)
        self._slip = SlipDecoder()
        self._handlers = {
            CMD["SYNC"]: self._sync,
            CMD["READ_REG"]: self._read_reg,
            CMD["WRITE_REG"]: self._write_reg,
            CMD["SPI_ATTACH"]: self._spi_attach,
            CMD["SPI_SET_PARAMS"]: self._spi_set_params,
            CMD["CHANGE_BAUDRATE"]: self._change_baudrate,
            CMD["FLASH_BEGIN"]: self._flash_begin,
            CMD["FLASH_DATA"]: self._flash_data,
            CMD["FLASH_END"]: self._flash_end,
            CMD["FLASH_DEFL_BEGIN"]: self._flash_defl_begin,
            CMD["FLASH_DEFL_DATA"]: self._flash_defl_data,
            CMD["FLASH_DEFL_END"]: self._flash_defl_end,
            CMD["SPI_FLASH_MD5"]: self._spi_flash_md5,
            CMD["READ_FLASH_SLOW"]: self._read_flash_slow,
            CMD["MEM_BEGIN"]: self._mem_begin,
            CMD["MEM_DATA"]: self._mem_data,
            CMD["MEM_END"]: self._mem_end,
        }
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self):
        """Chip reset into download mode: ROM state from scratch, flash contents kept."""
        self._slip = SlipDecoder()
        self.baud = ROM_BAUD
        self.attached = False
        self.flash_params_size = ROM_DEFAULT_FLASH_SIZE
        self.exited = None          # None, "run", "reboot" or "ram"
        self.entry = None           # MEM_END entry point when exited == "ram"
        self.log = []               # (command name, error code or 0), newest last
        self._mem = {}              # word address -> value (RAM, peripherals written)
        self._dl = None
        self._status = list(self._status_nv)  # SR1..SR3 as the chip uses them now
        self._wel = None            # write enable latch: None, "nv" (WREN) or "volatile" (WEVSR)

    def close(self):
        self.flash.close()

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in; the ROM's SLIP-framed responses out."""
        if self.exited:
            return b""
        out = bytearray()
        for pkt in self._slip.push(data):
            out += self._packet(pkt)
            if self.exited:  # the ROM jumped away: nobody reads the rest
                self._slip = SlipDecoder()
                break
        return bytes(out)

    # ------------------------------------------------------------------ dispatch
    def _packet(self, pkt: bytes) -> bytes:
        if len(pkt) < 8 or pkt[0] != 0x00:
            return b""  # not a request (or our own echo): the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", pkt)
        data = pkt[8:]
        handler = self._handlers.get(op)
        if handler is None:
            self.log.append((f"{op:#04x}", ERR_INVALID))
            reply = self._response(UNSUPPORTED_OP, 0, b"", 1, ERR_INVALID)
            return reply * UNSUPPORTED_REPLIES
        name = CMD_NAME[op]
        try:
            if size != len(data):
                raise RomError(ERR_INVALID, f"size field {size}, {len(data)} bytes of data")
            result = handler(data, chk)
        except RomError as e:
            self.log.append((name, e.code))
            return self._response(op, 0, b"", 1, e.code)
        self.log.append((name, 0))
        if isinstance(result, bytes):  # a handler that builds its own replies (SYNC)
            return result
        value, body = result
        return self._response(op, value, body)

    @staticmethod
    def _response(op, value=0, body=b"", status=0, error=0) -> bytes:
        payload = body + bytes([status, error, 0, 0])
        return slip_encode(struct.pack("<BBHI", 1, op, len(payload), value) + payload)

    @staticmethod
    def _words(data: bytes, n: int, name: str):
        if len(data) != 4 * n:
            raise RomError(ERR_INVALID, f"{name} takes {4 * n} bytes, got {len(data)}")
        return struct.unpack(f"<{n}I", data)

    # ------------------------------------------------------------------ handlers
    def _sync(self, data, chk):
        if data != SYNC_PAYLOAD:
            raise RomError(ERR_INVALID, "bad SYNC payload")
        self.baud = self.host_baud  # the 0x55 pattern lets the ROM measure the host's rate
        return self._response(CMD["SYNC"], SYNC_VALUE) * SYNC_REPLIES

    def _read_reg(self, data, chk):
        (addr,) = self._words(data, 1, "READ_REG")
        return self.read_word(addr), b""

    def _write_reg(self, data, chk):
        if not data or len(data) % 16:
            raise RomError(ERR_INVALID, "WRITE_REG takes groups of 16 bytes")
        for i in range(0, len(data), 16):
            addr, value, mask, _delay_us = struct.unpack_from("<IIII", data, i)
            self.write_word(addr, value, mask)
        return 0, b""

    def _spi_attach(self, data, chk):
        if len(data) not in (4, 8):
            raise RomError(ERR_INVALID, "SPI_ATTACH takes 4 or 8 bytes")
        self.attached = True
        return 0, b""

    def _spi_set_params(self, data, chk):
        _fl_id, total, _block, _sector, _page, _mask = self._words(data, 6, "SPI_SET_PARAMS")
        if total == 0:
            raise RomError(ERR_INVALID, "flash size 0")
        self.flash_params_size = total
        return 0, b""

    def _change_baudrate(self, data, chk):
        new, _old = self._words(data, 2, "CHANGE_BAUDRATE")
        if new == 0:
            raise RomError(ERR_INVALID, "baud rate 0")
        self.baud = new  # takes effect after this reply, which still goes out at the old rate
        return 0, b""

    def _begin(self, kind, data):
        if len(data) != 16:  # the ESP32 ROM has no 5th "encrypted" word
            raise RomError(ERR_INVALID, f"*_BEGIN takes 16 bytes on the ESP32 ROM, got {len(data)}")
        size, blocks, block_size, offset = struct.unpack("<IIII", data)
        if offset % SECTOR:
            raise RomError(ERR_FAILED, f"offset {offset:#x} is not sector aligned")
        if block_size == 0 and blocks:
            raise RomError(ERR_INVALID, "block size 0")
        self._check_range(offset, size, ERR_FAILED)
        erase = -(-size // SECTOR) * SECTOR  # whole sectors, up front
        if erase:
            self.flash.erase(offset, erase)
        self._dl = _Download(kind, offset, size, blocks, block_size)
        return 0, b""

    def _block(self, kind, data, chk):
        if len(data) < 16:
            raise RomError(ERR_INVALID, "data block header is 16 bytes")
        size, seq, _, _ = struct.unpack_from("<IIII", data)
        block = data[16:]
        if size != len(block):
            raise RomError(ERR_INVALID, f"block says {size} bytes, carries {len(block)}")
        if checksum(block) != chk & 0xFF:
            raise RomError(ERR_CHECKSUM, f"checksum {chk & 0xFF:#04x}, data gives {checksum(block):#04x}")
        dl = self._dl
        if dl is None or dl.kind != kind:
            raise RomError(ERR_FAILED, "no download in progress")
        if seq >= dl.blocks or size > dl.block_size:
            raise RomError(ERR_INVALID, f"block {seq} of {dl.blocks}, {size} > {dl.block_size} bytes")
        return dl, seq, block

    def _program(self, addr, data):
        self._check_range(addr, len(data), ERR_FLASH_WRITE)
        if self.flash.program(addr, data) != data:
            raise RomError(ERR_FLASH_WRITE, f"read-back mismatch at {addr:#x} (flash not erased?)")

    def _flash_begin(self, data, chk):
        return self._begin("flash", data)

    def _flash_data(self, data, chk):
        dl, seq, block = self._block("flash", data, chk)
        self._program(dl.offset + seq * dl.block_size, block)
        dl.written += len(block)
        return 0, b""

    def _flash_end(self, data, chk):
        (run_user_code,) = self._words(data, 1, "FLASH_END")
        self._dl = None
        self.exited = "run" if run_user_code else "reboot"
        return 0, b""

    def _flash_defl_begin(self, data, chk):
        return self._begin("defl", data)

    def _flash_defl_data(self, data, chk):
        dl, seq, block = self._block("defl", data, chk)
        if seq != dl.next_seq:
            raise RomError(ERR_INVALID, f"compressed block {seq}, expected {dl.next_seq}")
        try:
            out = dl.inflate.decompress(block)
        except zlib.error as e:
            raise RomError(ERR_DEFLATE, str(e)) from None
        if dl.written + len(out) > dl.size:
            raise RomError(ERR_DEFLATE, "inflates past the size given to FLASH_DEFL_BEGIN")
        if out:
            self._program(dl.offset + dl.written, out)
        dl.written += len(out)
        dl.next_seq += 1
        return 0, b""

    def _flash_defl_end(self, data, chk):
        (run_user_code,) = self._words(data, 1, "FLASH_DEFL_END")
        self._dl = None
        self.exited = "run" if run_user_code else "reboot"
        return 0, b""

    def _spi_flash_md5(self, data, chk):
        addr, size, _, _ = self._words(data, 4, "SPI_FLASH_MD5")
        self._check_range(addr, size, ERR_FAILED)
        return 0, self.flash.md5(addr, size).encode("ascii")

    def _read_flash_slow(self, data, chk):
        addr, size = self._words(data, 2, "READ_FLASH_SLOW")
        if size > READ_SLOW_BLOCK:
            raise RomError(ERR_READ_LEN, f"{size} > {READ_SLOW_BLOCK} bytes")
        self._check_range(addr, size, ERR_FLASH_READ)
        # always a 64-byte buffer; only the first `size` bytes are meaningful
        return 0, self.flash.read(addr, size) + bytes(READ_SLOW_BLOCK - size)

    def _mem_begin(self, data, chk):
        size, blocks, block_size, offset = self._words(data, 4, "MEM_BEGIN")
        self._dl = _Download("mem", offset, size, blocks, block_size)
        return 0, b""

    def _mem_data(self, data, chk):
        dl, seq, block = self._block("mem", data, chk)
        addr = dl.offset + seq * dl.block_size
        for i in range(0, len(block) - len(block) % 4, 4):
            self._mem[addr + i] = int.from_bytes(block[i:i + 4], "little")
        dl.written += len(block)
        return 0, b""

    def _mem_end(self, data, chk):
        no_exec, entry = self._words(data, 2, "MEM_END")
        self._dl = None
        if not no_exec:
            self.exited, self.entry = "ram", entry
        return 0, b""

    def _check_range(self, addr, size, code):
        if addr + size > self.flash_params_size:
            raise RomError(code, f"{addr:#x}+{size:#x} is past the {self.flash_params_size:#x}-byte "
                                 "flash the ROM was told about (SPI_SET_PARAMS)")

    # ------------------------------------------------------------------ memory map
    def _efuse_words(self) -> list[int]:
        m = self.mac
        words = [0] * EFUSE_WORDS
        words[1] = int.from_bytes(m[2:6], "big")                      # MAC bytes 2..5
        words[2] = mac_crc8(m) << 16 | m[0] << 8 | m[1]              # CRC, MAC bytes 0..1
        words[3] = (1 << 15) | (1 << 13) | (1 << 9)                   # rev bit0, 240 MHz, pkg D0WD
        words[4] = (5 << 8) | CK8M_FREQ                               # ADC Vref, CK8M frequency
        words[5] = 1 << 20                                            # rev bit1; pads default, minor 0
        # BLK3 (user data, zero on a chip from the factory) words 6-7: "I am the virtual chip",
        # which boton's flash.is_virtual_chip() reads to keep to the ROM loader (no stub).
        mark = (EFUSE_BLK3 - EFUSE_BASE) // 4 + 6
        words[mark:mark + 2] = struct.unpack("<2I", VIRTUAL_CHIP_MARK)
        return words

    def read_word(self, addr: int) -> int:
        addr &= 0xFFFFFFFC
        if addr == CHIP_MAGIC_REG:
            return CHIP_MAGIC_ESP32
        if EFUSE_BASE <= addr < EFUSE_BASE + 4 * EFUSE_WORDS:
            return self._efuse[(addr - EFUSE_BASE) // 4]
        if addr == APB_CTL_DATE:
            return APB_CTL_DATE_VALUE
        if addr == UART_CLKDIV_REG:
            return round(APB_HZ / self.baud) & 0xFFFFF
        if addr == RTCCALICFG1:
            return RTC_CALI_VALUE << 7
        if addr == GPIO_STRAP_REG:
            return STRAP_DOWNLOAD
        return self._mem.get(addr, 0)

    def write_word(self, addr: int, value: int, mask: int = 0xFFFFFFFF):
        addr &= 0xFFFFFFFC
        if EFUSE_BASE <= addr < EFUSE_BASE + 4 * EFUSE_WORDS or addr == CHIP_MAGIC_REG:
            return  # read-only
        new = (self._mem.get(addr, 0) & ~mask | value & mask) & 0xFFFFFFFF
        if addr == SPI_CMD and new & SPI_CMD_USR:
            self._spi_user_command()
            new &= ~SPI_CMD_USR  # the controller clears SPI_USR when the transfer is done
        self._mem[addr] = new

    # ------------------------------------------------------------------ SPI controller
    def _spi_user_command(self):
        mem = self._mem
        usr, usr1, usr2 = mem.get(SPI_USR, 0), mem.get(SPI_USR1, 0), mem.get(SPI_USR2, 0)
        if not usr & USR_COMMAND:
            return
        cmd = usr2 & 0xFF
        addr = None
        if usr & USR_ADDR:
            addr_len = ((usr1 >> 26) & 0x3F) + 1
            addr = mem.get(SPI_ADDR, 0) >> (32 - addr_len)
        mosi = b""
        if usr & USR_MOSI:
            nbytes = (mem.get(SPI_MOSI_DLEN, 0) + 1 + 7) // 8
            raw = b"".join(mem.get(SPI_W0 + 4 * i, 0).to_bytes(4, "little") for i in range(SPI_W_COUNT))
            mosi = raw[:nbytes]
        miso_bits = mem.get(SPI_MISO_DLEN, 0) + 1 if usr & USR_MISO else 0
        reply = self._flash_command(cmd, addr, mosi, (miso_bits + 7) // 8)
        if miso_bits:
            nbytes = (miso_bits + 7) // 8
            reply = (reply + b"\xff" * nbytes)[:nbytes]
            value = int.from_bytes(reply, "little") & ((1 << miso_bits) - 1)
            buf = value.to_bytes(-(-nbytes // 4) * 4, "little")
            for i in range(0, len(buf), 4):
                mem[SPI_W0 + i] = int.from_bytes(buf[i:i + 4], "little")

    def _flash_command(self, cmd, addr, mosi, nread) -> bytes:
        """One command on the SPI flash chip; returns the bytes it clocks out on MISO."""
        if cmd == 0x9F:  # RDID
            return self.flash_id.to_bytes(3, "little")
        if cmd == 0x5A:  # RDSFDP (24-bit address, 8 dummy cycles)
            a = (addr or 0) & 0xFFFFFF
            return (self._sfdp[a:a + nread] + b"\xff" * nread)[:nread]
        if cmd == 0x03:  # READ
            return self.flash.read((addr or 0) & 0xFFFFFF, nread)
        if cmd in (0x05, 0x35, 0x15):  # RDSR, RDSR2, RDSR3
            i = (0x05, 0x35, 0x15).index(cmd)
            sr = self._status[i] | (0x02 if i == 0 and self._wel else 0)
            return bytes([sr]) * max(1, nread)
        if cmd == 0x06:  # WREN
            self._wel = "nv"
        elif cmd == 0x50:  # write enable for volatile status register
            self._wel = "volatile"
        elif cmd == 0x04:  # WRDI
            self._wel = None
        elif cmd in (0x01, 0x31, 0x11):  # WRSR (1 or 2 bytes), WRSR2, WRSR3
            if self._wel and mosi:
                first = (0x01, 0x31, 0x11).index(cmd)
                for i, b in enumerate(mosi[:3 - first]):
                    self._status[first + i] = b & (0xFC if first + i == 0 else 0xFF)
                if self._wel == "nv":
                    self._status_nv = list(self._status)
            self._wel = None
        elif cmd in (0x66, 0x99):  # reset enable, reset
            self._wel = None
        # 0xB9 / 0x79 / 0xFF / 0xAB (power-down and release) and others: nothing to do
        return b""
