"""ESP32 ROM download-mode emulation: sans-IO protocol tests, then the real esptool
(CLI subprocess and Python API) against RomServer over socket:// and rfc2217://."""
import hashlib
import random
import struct
import zlib

import pytest

from boton.sim.rom_loader import (CMD, ERR_CHECKSUM, ERR_DEFLATE, ERR_FAILED, ERR_FLASH_WRITE,
                                  ERR_INVALID, ERR_READ_LEN, SYNC_PAYLOAD, RomLoader,
                                  SlipDecoder, checksum, mac_crc8, slip_encode)

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


def test_change_baudrate_moves_uart_clkdiv(rom):
    ok(rom, CMD["CHANGE_BAUDRATE"], struct.pack("<II", 460800, 0))
    assert rom.baud == 460800 and read_reg(rom, 0x3FF40014) == round(40e6 / 460800)
