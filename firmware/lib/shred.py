# Crypto-shredding of her position on the flash.
#
# LittleFS is copy-on-write: every rewrite of alert.json leaves the previous copy in freed
# blocks until they are reused, so her positions would outlive the alert on the chip.  The
# locating fields are therefore written sealed under a per-alert random key that is never
# written to the flash: it lives in the ESP32's RTC slow memory (hw.rtc_memory: kept
# through soft and watchdog resets, lost at power-on and brown-out) and is dropped when
# the alert ends.  Every copy the flash still holds is then unreadable.
#
#     key = new_key();  hw.rtc_memory(rtc_record(key))
#     blob = seal(key, b"...")              # str: hex of nonce | ciphertext | tag
#     unseal(rtc_key(hw.rtc_memory()), blob) -> the bytes, or None (no key, wrong key,
#                                              damaged blob)
#
# Cipher: SHA-256 in counter mode, keystream block i = sha256(key | nonce | i), and an
# 8-byte tag sha256(key | sha256(key | nonce | ciphertext)) so that a wrong or stale key
# reads as "no location" rather than as garbage.  Not cryptolib.aes: the 32-bit build the
# virtual device runs has no cryptolib, while hashlib.sha256 is on every port.  Key-prefix
# SHA-256 over an input of fixed length is a PRF (length extension needs a longer input);
# the tag's nesting covers its variable-length input.  The nonce is random per seal, so a
# keystream is never reused under one key.
import binascii
import hashlib
import os

KEY_LEN = 16
NONCE_LEN = 8
TAG_LEN = 8
MAX_PLAIN = 255 * 32        # one counter byte: bounded, and far above a fix + cell
RTC_MAGIC = b"BSk1"         # RTC memory holds RTC_MAGIC + key, or nothing


def new_key():
    # os.urandom is the ESP32's RNG, which ESP-IDF calls pseudo-random only while Wi-Fi
    # and Bluetooth are off (as here): the CPU's cycle count at this moment, after the
    # radio's and the GPS's varying delays since her press, is mixed in
    import time
    tick = time.ticks_cpu() if hasattr(time, "ticks_cpu") else time.time_ns()  # (CPython)
    return hashlib.sha256(os.urandom(32) + str(tick).encode()).digest()[:KEY_LEN]


def rtc_record(key):
    return RTC_MAGIC + key


def position_step(st, have_key):
    """What saving the alert state st does with her position: "seal" (an alert with a fix
    or cell: sealed under the alert's key), "forget" (no alert, and a key is left: drop
    it, and every copy on the flash becomes unreadable) or None."""
    if st.get("active"):
        return "seal" if st.get("fix") or st.get("cell") else None
    return "forget" if have_key else None


def rtc_key(mem):
    # The key in an RTC memory record, or None (empty after power-on, or not ours).
    if mem and len(mem) == len(RTC_MAGIC) + KEY_LEN and mem[:len(RTC_MAGIC)] == RTC_MAGIC:
        return bytes(mem[len(RTC_MAGIC):])
    return None


def _xor_stream(key, nonce, buf):
    # XOR the keystream into buf (a bytearray or a memoryview of one) in place: one
    # 32-byte digest at a time, no other copies.
    for i in range(0, len(buf), 32):
        h = hashlib.sha256(key)
        h.update(nonce)
        h.update(bytes((i // 32,)))
        d = h.digest()
        for j in range(min(32, len(buf) - i)):
            buf[i + j] ^= d[j]


def _tag(key, nonce, ct):
    h = hashlib.sha256(key)
    h.update(nonce)
    h.update(ct)
    outer = hashlib.sha256(key)
    outer.update(h.digest())
    return outer.digest()[:TAG_LEN]


def seal(key, plain):
    # nonce | ciphertext | tag built in one buffer: it runs at every save of her alert,
    # at the heap's peak, and each concatenation would be one more copy of her position
    n = len(plain)
    if n > MAX_PLAIN:
        raise ValueError("too long to seal")
    raw = bytearray(NONCE_LEN + n + TAG_LEN)
    mv = memoryview(raw)
    nonce, ct = mv[:NONCE_LEN], mv[NONCE_LEN:NONCE_LEN + n]
    nonce[:] = os.urandom(NONCE_LEN)
    ct[:] = plain
    _xor_stream(key, nonce, ct)
    mv[NONCE_LEN + n:] = _tag(key, nonce, ct)
    return binascii.hexlify(raw).decode()


def unseal(key, blob):
    if key is None or not isinstance(blob, str):
        return None
    try:
        raw = binascii.unhexlify(blob)
    except ValueError:
        return None
    if len(raw) < NONCE_LEN + TAG_LEN or len(raw) > NONCE_LEN + TAG_LEN + MAX_PLAIN:
        return None
    nonce, ct, tag = raw[:NONCE_LEN], raw[NONCE_LEN:-TAG_LEN], raw[-TAG_LEN:]
    want = _tag(key, nonce, ct)
    diff = 0
    for i in range(TAG_LEN):
        diff |= want[i] ^ tag[i]
    if diff:
        return None
    buf = bytearray(ct)
    _xor_stream(key, nonce, buf)
    return bytes(buf)
