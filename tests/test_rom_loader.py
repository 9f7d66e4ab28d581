"""ESP32 ROM download-mode emulation: sans-IO protocol tests, then the real esptool
(CLI subprocess and Python API) against RomServer over socket:// and rfc2217://."""
import hashlib
import os
import random
import re
import socket
import struct
import subprocess
import time
import zlib

import pytest

from rigkit import ESPTOOL, esptool

from boton.sim.rom_loader import (CMD, ERR_CHECKSUM, ERR_DEFLATE, ERR_FAILED, ERR_FLASH_WRITE,
                                  ERR_INVALID, ERR_READ_LEN, SYNC_PAYLOAD, RomLoader,
                                  SlipDecoder, checksum, mac_crc8, slip_encode)
from boton.sim.rom_server import AutoResetCircuit, RomServer

MAC = bytes.fromhex("240ac4000042")
MB = 1024 * 1024


# ----------------------------------------------------------------------------- helpers
def request(op, data=b"", chk=0, size=None):
    size = len(data) if size is None else size
    return slip_encode(struct.pack("<BBHI", 0, op, size, chk) + data)


def parse(out: bytes):
    """SLIP responses -> [(op, value, body, status, error)] (ESP32 ROM: 4 status bytes)."""
    res = []
    for p in SlipDecoder().push(out):
        direction, op, size, value = struct.unpack_from("<BBHI", p)
        assert direction == 1 and size == len(p) - 8, p.hex()
        payload = p[8:]
        res.append((op, value, payload[:-4], payload[-4], payload[-3]))
    return res


def one(rom, op, data=b"", chk=0):
    (r,) = parse(rom.feed(request(op, data, chk)))
    assert r[0] == op
    return r


def ok(rom, op, data=b"", chk=0):
    _, value, body, status, err = one(rom, op, data, chk)
    assert (status, err) == (0, 0), f"{op:#x} failed with {err:#x}"
    return value, body


def read_reg(rom, addr):
    return ok(rom, CMD["READ_REG"], struct.pack("<I", addr))[0]


def write_reg(rom, addr, value, mask=0xFFFFFFFF):
    ok(rom, CMD["WRITE_REG"], struct.pack("<IIII", addr, value, mask, 0))


def block(seq, data):
    return struct.pack("<IIII", len(data), seq, 0, 0) + data, checksum(data)


def flash_write(rom, offset, image, block_size=0x400, compressed=False):
    """What esptool does on the ROM path: *_BEGIN (erase) then numbered blocks."""
    if compressed:
        payload = zlib.compress(image, 9)
        erase = -(-len(image) // block_size) * block_size
        begin, data_cmd = CMD["FLASH_DEFL_BEGIN"], CMD["FLASH_DEFL_DATA"]
    else:
        payload, erase = image, len(image)
        begin, data_cmd = CMD["FLASH_BEGIN"], CMD["FLASH_DATA"]
    blocks = -(-len(payload) // block_size)
    ok(rom, begin, struct.pack("<IIII", erase, blocks, block_size, offset))
    for seq in range(blocks):
        chunk = payload[seq * block_size:(seq + 1) * block_size]
        if not compressed:
            chunk += b"\xff" * (block_size - len(chunk))
        ok(rom, data_cmd, *block(seq, chunk))


def flash_bytes(path, offset, n):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


@pytest.fixture
def rom(tmp_path):
    r = RomLoader(tmp_path / "flash.bin")
    yield r
    r.close()


def firmware_like(n=50_000, seed=7):
    """Deterministic pseudo-firmware: random 'instructions' reused, so it deflates ~8x."""
    rnd = random.Random(seed)
    words = [rnd.randbytes(64) for _ in range(64)]
    data = b"".join(rnd.choice(words) for _ in range(n // 64 + 1))
    return b"\x00" + data[1:n]  # not 0xE9: esptool leaves non-image data untouched


# ----------------------------------------------------------------------------- sans-IO
def test_flash_file_is_created_erased_and_persists(tmp_path):
    path = tmp_path / "flash.bin"
    rom = RomLoader(path, flash_size=MB)
    assert path.stat().st_size == MB and set(path.read_bytes()) == {0xFF}
    flash_write(rom, 0x2000, b"persist!")
    rom.close()
    rom = RomLoader(path, flash_size=MB)
    ok(rom, CMD["SPI_SET_PARAMS"], struct.pack("<6I", 0, MB, 0x10000, 0x1000, 256, 0xFFFF))
    assert flash_bytes(path, 0x2000, 8) == b"persist!"
    rom.close()
    with pytest.raises(ValueError):
        RomLoader(path, flash_size=4 * MB)  # an image of another size is refused


def test_sync_answers_eight_times_with_a_nonzero_value(rom):
    res = parse(rom.feed(request(CMD["SYNC"], SYNC_PAYLOAD)))
    assert len(res) == 8
    assert all(r[0] == CMD["SYNC"] and r[1] != 0 and r[3:] == (0, 0) for r in res)
    (r,) = parse(rom.feed(request(CMD["SYNC"], b"\x07\x07\x12\x20")))
    assert r[3:] == (1, ERR_INVALID)


def test_unsupported_commands_are_refused_like_the_esp32_rom(rom):
    for op in (0x14, 0xD0, 0xD2):  # GET_SECURITY_INFO, stub-only ERASE_FLASH, READ_FLASH
        res = parse(rom.feed(request(op)))
        assert len(res) == 8
        # esptool's UnsupportedCommandError path: another command byte, status 1, error 5
        assert all(r[0] != op and r[3:] == (1, ERR_INVALID) for r in res)
    assert read_reg(rom, 0x40001000) == 0x00F01D83  # and the ROM still answers


def test_efuse_words_decode_like_esptool(rom):
    w = [read_reg(rom, 0x3FF5A000 + 4 * i) for i in range(7)]
    # esptool ESP32ROM.read_mac(): pack(">II", word2, word1)[2:8]
    assert struct.pack(">II", w[2], w[1])[2:8] == MAC
    assert (w[2] >> 16) & 0xFF == mac_crc8(MAC)
    assert (w[3] >> 9) & 7 == 1 and w[3] & 3 == 0          # D0WD package, BT and dual core on
    assert (w[3] >> 15) & 1 and (w[5] >> 20) & 1            # revision bits 0 and 1
    assert read_reg(rom, 0x3FF6607C) >> 31 == 1             # revision bit 2: v3
    assert read_reg(rom, 0x3FF40014) == round(40e6 / 115200)  # UART_CLKDIV: 40 MHz crystal
    assert mac_crc8(bytes.fromhex("240ac4000042")) != mac_crc8(bytes.fromhex("240ac4000043"))


def test_efuse_blk3_words_6_7_carry_the_virtual_chip_signature(rom):
    """What `boton flash` reads to keep to the ROM loader (no stub) on the virtual chip;
    the rest of BLK3 (custom MAC, ADC calibration, MAC_VERSION) reads 0, as from the factory."""
    blk3 = [read_reg(rom, 0x3FF5A078 + 4 * i) for i in range(8)]
    assert struct.pack("<2I", *blk3[6:]) == b"BOTONSIM" and blk3[:6] == [0] * 6
    write_reg(rom, 0x3FF5A090, 0)  # eFuse read registers are read-only
    assert read_reg(rom, 0x3FF5A090) == blk3[6]


def test_slip_escapes_0xc0_and_0xdb_both_ways(rom):
    ram = 0x3FFB0000
    write_reg(rom, ram, 0xDBC0C0DB)  # the request carries C0/DB escaped
    out = rom.feed(request(CMD["READ_REG"], struct.pack("<I", ram)))
    assert b"\xdb\xdc" in out and b"\xdb\xdd" in out  # and so does the reply
    assert out.count(b"\xc0") == 2                    # only the frame delimiters
    assert parse(out)[0][1] == 0xDBC0C0DB
    tricky = bytes([0xC0, 0xDB, 0xDC, 0xDD, 0xDB, 0xC0, 0x00]) * 10
    flash_write(rom, 0x3000, tricky)
    assert flash_bytes(rom.flash.path, 0x3000, len(tricky)) == tricky


def test_bad_checksum_is_refused_and_nothing_written(rom):
    ok(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 0x400, 1, 0x400, 0x4000))
    data, chk = block(0, b"\x5a" * 0x400)
    _, _, _, status, err = one(rom, CMD["FLASH_DATA"], data, chk ^ 0x01)
    assert (status, err) == (1, ERR_CHECKSUM)
    assert flash_bytes(rom.flash.path, 0x4000, 0x400) == b"\xff" * 0x400
    ok(rom, CMD["FLASH_DATA"], data, chk)  # esptool's retry of the same block succeeds
    assert flash_bytes(rom.flash.path, 0x4000, 0x400) == b"\x5a" * 0x400


def test_malformed_requests_are_invalid(rom):
    r = parse(rom.feed(request(CMD["READ_REG"], struct.pack("<I", 0x40001000), size=8)))
    assert r[0][3:] == (1, ERR_INVALID)                       # size field lies
    assert one(rom, CMD["READ_REG"], b"\x00\x10")[3:] == (1, ERR_INVALID)  # short
    assert one(rom, CMD["FLASH_DATA"], *block(0, b"x"))[3:] == (1, ERR_FAILED)  # no BEGIN
    assert rom.feed(b"\xc0\xdb\x00\xc0") == b""               # invalid escape: dropped
    assert rom.feed(b"line noise") == b""                     # outside a frame: ignored
    assert one(rom, CMD["READ_FLASH_SLOW"], struct.pack("<II", 0, 65))[3:] == (1, ERR_READ_LEN)


def test_any_chunking_gives_the_same_responses(tmp_path):
    image = firmware_like(5000)
    session = b"".join([
        request(CMD["SYNC"], SYNC_PAYLOAD),
        request(CMD["READ_REG"], struct.pack("<I", 0x40001000)),
        request(CMD["SPI_ATTACH"], bytes(8)),
        request(CMD["FLASH_BEGIN"], struct.pack("<IIII", len(image), 5, 0x400, 0x1000)),
        *[request(CMD["FLASH_DATA"], *block(i, (image[i * 0x400:(i + 1) * 0x400]).ljust(0x400, b"\xff")))
          for i in range(5)],
        request(CMD["SPI_FLASH_MD5"], struct.pack("<IIII", 0x1000, len(image), 0, 0)),
    ])
    outputs = []
    for n, chunks in enumerate(([session], [session[i:i + 1] for i in range(len(session))],
                                [session[i:i + 7] for i in range(0, len(session), 7)])):
        rom = RomLoader(tmp_path / f"flash{n}.bin")
        outputs.append(b"".join(rom.feed(c) for c in chunks))
        rom.close()
    assert outputs[0] == outputs[1] == outputs[2]
    res = parse(outputs[0])
    assert len(res) == 8 + 1 + 1 + 1 + 5 + 1 and all(r[3] == 0 for r in res)
    assert res[-1][2] == hashlib.md5(image).hexdigest().encode()  # ROM: 32 hex ASCII chars


def test_flash_is_nor_writes_without_erase_fail_readback(rom):
    flash_write(rom, 0x5000, b"\x0f" * 0x400)
    # FLASH_DATA again without a new erase: bits cannot go back to 1
    ok(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 0, 1, 0x400, 0x5000))  # erases nothing
    _, _, _, status, err = one(rom, CMD["FLASH_DATA"], *block(0, b"\xf0" * 0x400))
    assert (status, err) == (1, ERR_FLASH_WRITE)
    assert flash_bytes(rom.flash.path, 0x5000, 4) == b"\x00" * 4  # 0x0f AND 0xf0
    # FLASH_BEGIN erases whole sectors, up front
    ok(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 1, 0, 0x400, 0x5000))
    assert flash_bytes(rom.flash.path, 0x5000, 0x1000) == b"\xff" * 0x1000
    assert one(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 1, 0, 0x400, 0x5100))[3:] == (1, ERR_FAILED)


def test_compressed_stream_spans_blocks(rom):
    image = firmware_like(40_000)
    flash_write(rom, 0x10000, image, compressed=True)
    assert flash_bytes(rom.flash.path, 0x10000, len(image)) == image
    _, body = ok(rom, CMD["SPI_FLASH_MD5"], struct.pack("<IIII", 0x10000, len(image), 0, 0))
    assert body.decode() == hashlib.md5(image).hexdigest()
    # a corrupt stream is a deflate error
    ok(rom, CMD["FLASH_DEFL_BEGIN"], struct.pack("<IIII", 0x400, 1, 0x400, 0x20000))
    assert one(rom, CMD["FLASH_DEFL_DATA"], *block(0, b"not zlib at all"))[3:] == (1, ERR_DEFLATE)


def test_rom_refuses_flash_past_the_size_it_was_told(rom):
    # until SPI_SET_PARAMS the ESP32 ROM assumes 2 MB (esptool sets the real size first)
    assert one(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 0x1000, 1, 0x400, 0x300000))[3:] == (1, ERR_FAILED)
    ok(rom, CMD["SPI_SET_PARAMS"], struct.pack("<6I", 0, 4 * MB, 0x10000, 0x1000, 256, 0xFFFF))
    flash_write(rom, 0x300000, b"above 2 MB")
    assert flash_bytes(rom.flash.path, 0x300000, 10) == b"above 2 MB"


def test_read_flash_slow_returns_64_byte_buffers(rom):
    flash_write(rom, 0x7000, bytes(range(100)))
    _, body = ok(rom, CMD["READ_FLASH_SLOW"], struct.pack("<II", 0x7000 + 10, 20))
    assert len(body) == 64 and body[:20] == bytes(range(10, 30))


def spi_command(rom, cmd, read_bits=0, data=b"", addr=None, addr_len=0, dummy_len=0):
    """esptool's ESPLoader.run_spiflash_command(), register for register (ESP32)."""
    base = 0x3FF42000
    flags = 1 << 31
    if read_bits:
        flags |= 1 << 28
    if data:
        flags |= 1 << 27
        write_reg(rom, base + 0x28, len(data) * 8 - 1)
    if read_bits:
        write_reg(rom, base + 0x2C, read_bits - 1)
    usr1 = (dummy_len - 1 if dummy_len else 0) | ((addr_len - 1) << 26 if addr_len else 0)
    if usr1:
        write_reg(rom, base + 0x20, usr1)
    if addr_len:
        flags |= 1 << 30
    if dummy_len:
        flags |= 1 << 29
    write_reg(rom, base + 0x1C, flags)
    write_reg(rom, base + 0x24, 7 << 28 | cmd)
    if addr_len:
        write_reg(rom, base + 0x04, addr << (32 - addr_len))
    if data:
        padded = data + bytes(-len(data) % 4)
        for i in range(0, len(padded), 4):
            write_reg(rom, base + 0x80 + i, int.from_bytes(padded[i:i + 4], "little"))
    else:
        write_reg(rom, base + 0x80, 0)
    write_reg(rom, base, 1 << 18)
    assert read_reg(rom, base) & (1 << 18) == 0  # the "transfer" is done
    return read_reg(rom, base + 0x80)


def test_spi_registers_drive_the_flash_chip(rom):
    assert spi_command(rom, 0x9F, read_bits=24) == 0x1640EF  # Winbond, 4 MB
    assert spi_command(rom, 0x5A, read_bits=32, addr=0, addr_len=24, dummy_len=8) == 0x50444653  # "SFDP"
    assert spi_command(rom, 0x05, read_bits=8) == 0
    spi_command(rom, 0x06)                                   # WREN
    assert spi_command(rom, 0x05, read_bits=8) == 0x02       # WEL
    spi_command(rom, 0x01, data=bytes([0x1C]))               # WRSR: block protect bits
    assert spi_command(rom, 0x05, read_bits=8) == 0x1C
    spi_command(rom, 0x01, data=bytes([0x00]))               # no WREN: ignored
    assert spi_command(rom, 0x05, read_bits=8) == 0x1C
    spi_command(rom, 0x50)                                   # volatile write enable
    spi_command(rom, 0x01, data=bytes([0x00, 0x02]))         # 16-bit WRSR: SR1, SR2
    assert (spi_command(rom, 0x05, read_bits=8), spi_command(rom, 0x35, read_bits=8)) == (0, 2)
    rom.reset()                                              # power cycle: volatile bits lost
    assert (spi_command(rom, 0x05, read_bits=8), spi_command(rom, 0x35, read_bits=8)) == (0x1C, 0)


def test_flash_id_follows_the_size(tmp_path):
    rom = RomLoader(tmp_path / "f.bin", flash_size=2 * MB)
    assert spi_command(rom, 0x9F, read_bits=24) == 0x1540EF
    rom.close()


def test_flash_end_and_mem_end_leave_the_loader(rom):
    ok(rom, CMD["FLASH_BEGIN"], struct.pack("<IIII", 0, 0, 0x400, 0))
    out = rom.feed(request(CMD["FLASH_END"], struct.pack("<I", 1)) + request(CMD["SYNC"], SYNC_PAYLOAD))
    assert [r[0] for r in parse(out)] == [CMD["FLASH_END"]]  # jumped: the SYNC finds no ROM
    assert rom.exited == "run" and rom.feed(request(CMD["SYNC"], SYNC_PAYLOAD)) == b""
    rom.reset()
    ok(rom, CMD["MEM_BEGIN"], struct.pack("<IIII", 8, 1, 0x1800, 0x40090000))
    ok(rom, CMD["MEM_DATA"], *block(0, b"\x01\x02\x03\x04\x05\x06\x07\x08"))
    assert read_reg(rom, 0x40090004) == 0x08070605
    ok(rom, CMD["MEM_END"], struct.pack("<II", 0, 0x40090000))
    assert rom.exited == "ram" and rom.entry == 0x40090000


def test_change_baudrate_moves_uart_clkdiv_until_the_next_sync(rom):
    ok(rom, CMD["CHANGE_BAUDRATE"], struct.pack("<II", 460800, 0))
    assert rom.baud == 460800 and read_reg(rom, 0x3FF40014) == round(40e6 / 460800)
    parse(rom.feed(request(CMD["SYNC"], SYNC_PAYLOAD)))  # a new session: autobaud
    assert rom.baud == 115200 and read_reg(rom, 0x3FF40014) == round(40e6 / 115200)


# ----------------------------------------------------------------------------- reset circuit
def drive(circuit, steps):
    """steps: (t, dtr, rts) line changes in order; returns the boot events, polled after."""
    events = []
    for t, dtr, rts in steps:
        events += circuit.set_lines(t, dtr=dtr, rts=rts)
    events += circuit.poll(steps[-1][0] + 10)
    return events


def classic_reset(t0, step):
    """esptool's ClassicReset as it reaches the board, `step` seconds per line change."""
    return [(t0, False, None), (t0 + step, None, True),          # IO0 high, EN low
            (t0 + 0.1 + 2 * step, True, None),                   # IO0 low ((on, on) glitch)
            (t0 + 0.1 + 3 * step, None, False),                  # EN released, IO0 low
            (t0 + 0.15 + 5 * step, False, None)]                 # IO0 high again


@pytest.mark.parametrize("step,en_delay", [
    (0.0005, 0.005),  # a USB-UART bridge: sub-ms line changes, a board's few-ms EN RC
    (0.05, None),     # RFC2217: pyserial polls each change's ack every 50 ms (server default)
    (0.07, None),     # ... on a loaded machine
])
def test_classic_reset_enters_download_mode(step, en_delay):
    c = AutoResetCircuit() if en_delay is None else AutoResetCircuit(en_delay)
    assert drive(c, classic_reset(0.0, step)) == ["reset", "download"]
    # esptool's second attempt holds IO0 low 0.5 s longer: also download
    assert drive(AutoResetCircuit(), classic_reset(0.0, step)[:-1] + [(0.7 + 5 * step, False, None)]) \
        == ["reset", "download"]


def test_reset_with_io0_high_boots_the_app():
    c = AutoResetCircuit()
    assert drive(c, [(0.0, False, True), (0.1, None, False)]) == ["reset", "run"]  # HardReset
    # opening a port asserts DTR then RTS: neither alone pulls EN low -> no reset
    assert drive(AutoResetCircuit(), [(0.0, True, None), (0.05, None, True)]) == []
    held = AutoResetCircuit()
    assert held.set_lines(0.0, rts=True) == ["reset"] and held.poll(99.0) == [] and held.in_reset


# ----------------------------------------------------------------------------- real esptool
class Board:
    """A RomServer plus a record of its boot-mode hook and app traffic."""

    def __init__(self, tmp_path, **kw):
        self.flash_path = tmp_path / "flash.bin"
        self.modes, self.app_in = [], bytearray()
        self.server = RomServer(self.flash_path, on_boot_mode=self.modes.append,
                                on_app_data=self.app_in.extend, **kw).start()
        self.url = self.server.url

    def flash(self, offset, n):
        return flash_bytes(self.flash_path, offset, n)


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path)
    yield b
    b.server.stop()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "micropython-like.bin"
    path.write_bytes(firmware_like(50_000))
    return path


def test_esptool_detects_esp32_and_reads_the_mac(board):
    _, out = esptool(board.url, "chip-id")
    assert "Detecting chip type... ESP32" in out
    assert "ESP32-D0WD-V3 (revision v3.0)" in out
    assert re.search(r"Features:\s+Wi-Fi, BT, Dual Core \+ LP Core, 240MHz", out)
    assert re.search(r"Crystal frequency:\s+40MHz", out)
    assert re.search(r"MAC:\s+24:0a:c4:00:00:42", out)
    assert "Staying in bootloader." in out and board.modes == ["download"]


def test_esptool_read_mac_reports_the_board_mac(tmp_path):
    b = Board(tmp_path, mac=bytes.fromhex("a4cf12345678"))
    try:
        _, out = esptool(b.url, "read-mac")
    finally:
        b.server.stop()
    assert re.findall(r"MAC:\s+(\S+)", out) == ["a4:cf:12:34:56:78"] * 2


def test_esptool_flash_id_detects_4mb(board):
    _, out = esptool(board.url, "flash-id")
    assert re.search(r"Manufacturer:\s+ef", out) and re.search(r"Device:\s+4016", out)
    assert re.search(r"Detected flash size:\s+4MB", out)


def test_esptool_write_flash_rom_default_is_uncompressed(board, image):
    data = image.read_bytes()
    _, out = esptool(board.url, "write-flash", "0x1000", str(image))
    assert "compressed" not in out and "Hash of data verified." in out
    assert board.flash(0x1000, len(data)) == data
    assert board.flash(0x0, 0x1000) == b"\xff" * 0x1000        # nothing before
    end = 0x1000 + len(data)
    assert board.flash(end, 0x1000) == b"\xff" * 0x1000          # nor after


def test_esptool_write_flash_compressed_at_460800(board, image):
    data = image.read_bytes()
    _, out = esptool(board.url, "-b", "460800", "write-flash", "-z", "0x10000", str(image))
    assert "Changing baud rate to 460800" in out
    m = re.search(r"Wrote (\d+) bytes \((\d+) compressed\)", out)
    assert m and int(m.group(2)) < int(m.group(1)) // 4, out
    assert "Hash of data verified." in out
    assert board.flash(0x10000, len(data)) == data
    # the board stayed in the ROM; the next session at 115200 syncs and sees a 40 MHz crystal
    _, out = esptool(board.url, "verify-flash", "0x10000", str(image))
    assert re.search(r"Crystal frequency:\s+40MHz", out) and "WARNING" not in out


def test_esptool_write_flash_no_compress_then_verify_flash(board, image):
    data = image.read_bytes()
    esptool(board.url, "write-flash", "-u", "0x1000", str(image))
    assert board.flash(0x1000, len(data)) == data
    _, out = esptool(board.url, "verify-flash", "0x1000", str(image))
    assert "Verification successful (digest matched)." in out
    with open(board.flash_path, "r+b") as f:  # one flipped bit in "flash"
        f.seek(0x1000 + 1234)
        f.write(bytes([data[1234] ^ 0x10]))
    code, out = esptool(board.url, "verify-flash", "0x1000", str(image), check=False)
    assert code != 0 and "Verification failed" in out


def test_esptool_read_flash(board, tmp_path):
    payload = firmware_like(3000, seed=3)
    with open(board.flash_path, "r+b") as f:
        f.seek(0x3000)
        f.write(payload)
    out_file = tmp_path / "read.bin"
    _, out = esptool(board.url, "read-flash", "0x3000", str(len(payload)), str(out_file))
    assert out_file.read_bytes() == payload


def test_esptool_erase_region_and_erase_flash(board):
    with open(board.flash_path, "r+b") as f:
        f.seek(0x20000)
        f.write(b"\x00" * 0x4000)
    _, out = esptool(board.url, "erase-region", "0x21000", "0x2000")
    assert "erased successfully" in out
    assert board.flash(0x20000, 0x1000) == b"\x00" * 0x1000      # kept
    assert board.flash(0x21000, 0x2000) == b"\xff" * 0x2000      # erased
    assert board.flash(0x23000, 0x1000) == b"\x00" * 0x1000      # kept
    # like a real ESP32 ROM: whole-chip erase is a stub-only command
    code, out = esptool(board.url, "erase-flash", check=False)
    assert code != 0 and "ESP32 ROM does not support function erase_flash" in out


def test_esptool_run_boots_the_app_and_the_uart_goes_to_it(board):
    esptool(board.url, "run")
    board.server.wait_boot("run")
    assert board.modes == ["download", "run"] and board.server.mode == "run"
    host, port = board.url[len("socket://"):].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"print('hi')\r\n")
        board.server.send_console(b">>> ")
        s.settimeout(5)
        assert s.recv(100) == b">>> "
    deadline = time.monotonic() + 5
    while bytes(board.app_in) != b"print('hi')\r\n" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bytes(board.app_in) == b"print('hi')\r\n"


def test_ram_code_halts_the_board_with_a_hint(board):
    host, port = board.url[len("socket://"):].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.settimeout(5)
        s.sendall(request(CMD["MEM_BEGIN"], struct.pack("<IIII", 4, 1, 0x1800, 0x40090000))
                  + request(CMD["MEM_DATA"], *block(0, b"\x00\x00\x00\x00"))
                  + request(CMD["MEM_END"], struct.pack("<II", 0, 0x40090000)))
        got = b""
        while b"--no-stub" not in got:
            got += s.recv(4096)
    *acks, hint = SlipDecoder().push(got)
    assert [a[1] for a in acks] == [CMD["MEM_BEGIN"], CMD["MEM_DATA"], CMD["MEM_END"]]
    assert hint.startswith(b"virtual ESP32") and hint.endswith(b"use esptool --no-stub")
    assert board.server.mode == "halted"


def test_esptool_without_no_stub_says_why_it_cannot_work(board):
    code, out = esptool(board.url, "chip-id", stub=True, check=False)
    assert code != 0 and "Failed to start stub flasher" in out and "use esptool --no-stub" in out


def test_esptool_python_api_writes_and_reads(board):
    from esptool.cmds import attach_flash, detect_chip, read_flash, write_flash
    data = firmware_like(9000, seed=11)
    esp = detect_chip(board.url, connect_mode="no-reset")
    try:
        assert esp.CHIP_NAME == "ESP32" and not esp.IS_STUB
        assert esp.read_mac() == tuple(MAC)
        attach_flash(esp)
        write_flash(esp, [(0x8000, data)], compress=True)
        assert read_flash(esp, 0x8000, 256) == data[:256]
        assert esp.flash_md5sum(0x8000, len(data)) == hashlib.md5(data).hexdigest()
    finally:
        esp._port.close()
    assert board.flash(0x8000, len(data)) == data


def test_rfc2217_reset_lines_enter_download_and_hard_reset_boots_app(tmp_path):
    from esptool.cmds import detect_chip
    b = Board(tmp_path, rfc2217=True, boot_mode="run")
    try:
        assert b.url.startswith("rfc2217://") and b.modes == ["run"]
        esp = detect_chip(b.url, connect_mode="default-reset")  # classic DTR/RTS dance
        try:
            assert esp.CHIP_NAME == "ESP32" and b.server.mode == "download"
            assert esp.read_mac() == tuple(MAC)
            n = len(b.server.boots)
            esp.hard_reset()                                  # RTS pulse, IO0 high
            b.server.wait_boot("run", after=n)
        finally:
            esp._port.close()
        assert b.modes == ["run", "download", "run"]
    finally:
        b.server.stop()


def test_espefuse_summary_reads_the_same_efuses(board):
    espefuse = ESPTOOL.with_name("espefuse")
    if not espefuse.exists():
        pytest.skip("espefuse not installed")
    p = subprocess.run([str(espefuse), "--port", board.url, "--before", "no-reset", "--chip", "esp32",
                        "summary"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"= 24:0a:c4:00:00:42 \(CRC 0x[0-9a-f]{2} OK\)", out), out
    assert re.search(r"WAFER_VERSION_MAJOR .*= 3 ", out) and re.search(r"PKG_VERSION .*= 1 ", out)


def test_reset_button_reboots_with_the_rom_banner(tmp_path):
    def broken_hook(mode):
        raise RuntimeError("the rig's bug must not kill the board")

    b = Board(tmp_path, boot_mode="run")
    b.server.on_app_data = broken_hook
    try:
        host, port = b.url[len("socket://"):].split(":")
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(5)
            s.sendall(b"x")  # goes to the (broken) app hook
            n = len(b.server.boots)
            b.server.reset("download")  # EN pressed with BOOT held
            assert b.server.wait_boot("download", after=n)[2] == "poweron"
            got = b""
            while b"waiting for download" not in got:
                got += s.recv(4096)
            assert b"rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT" in got
            s.sendall(request(CMD["SYNC"], SYNC_PAYLOAD))  # and the ROM answers
            got = b""
            while got.count(b"\xc0") < 16:
                got += s.recv(4096)
            assert len(parse(got)) == 8
        assert b.modes == ["run", "download"]
    finally:
        b.server.stop()
