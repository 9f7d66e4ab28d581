# GSM 03.38 (GSM-7) character handling for SMS, sans-IO.
#
# "Safe GSM-7" is the subset of the GSM-7 basic alphabet that every phone shows
# correctly: printable ASCII without @ $ _ ` [ ] { } \ ^ ~ | (they map to odd codes
# or to the escape table), plus ñ Ñ ü Ü (Spanish names: Begoña, Güera).  to_gsm7()
# produces it.
#
#     to_gsm7(text) -> str            transliterate to safe GSM-7 ("\n" kept)
#     oneline(text, maxlen=None)      to_gsm7 on one line, spaces collapsed
#     is_gsm7(text) -> bool           encodable in GSM-7 (basic + extension table)
#     gsm7_septets(text) -> int|None  septets (extension chars count 2), None if not GSM-7
#     segments(text) -> int           SMS segments (GSM-7 160/153, else UCS-2 70/67)
#     encode(text, charset="GSM") -> bytes   bytes to type after the text-mode prompt
#     encode_into(text, buf, charset="GSM") -> int   the same into buf, making no object
#     maybe_ucs2(text) -> str         decode a UCS-2 hex body ("0055004200..."), else as is
#     ucs2_ascii(field) -> str        "002B0035..." -> "+5..." (a number read in UCS2)

MAX = 160

# GSM 03.38 default alphabet, code point order 0x00..0x7F.
GSM7_BASIC = ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
              "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
              " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
              "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
              "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
# Extension table (ESC + code): char -> code.
GSM7_EXT_CHARS = "\x0c^{}\\[~]|\u20ac"
GSM7_EXT_CODES = b"\x0a\x14\x28\x29\x2f\x3c\x3d\x3e\x40\x65"

_AVOID = "@$_`[]{}\\^~|"

# Single-character transliterations: _TR_SRC[i] -> _TR_DST[i].
_TR_SRC = ("\u00e1\u00e0\u00e2\u00e4\u00e3\u00e5\u0101\u0105"
           "\u00c1\u00c0\u00c2\u00c4\u00c3\u00c5\u0100\u0104"
           "\u00e9\u00e8\u00ea\u00eb\u0113\u0119\u011b"
           "\u00c9\u00c8\u00ca\u00cb\u0112\u0118\u011a"
           "\u00ed\u00ec\u00ee\u00ef\u012b\u0131"
           "\u00cd\u00cc\u00ce\u00cf\u012a\u0130"
           "\u00f3\u00f2\u00f4\u00f6\u00f5\u00f8\u014d\u0151"
           "\u00d3\u00d2\u00d4\u00d6\u00d5\u00d8\u014c\u0150"
           "\u00fa\u00f9\u00fb\u00fc\u016b\u016f\u0171"
           "\u00da\u00d9\u00db\u00dc\u016a\u016e\u0170"
           "\u00e7\u0107\u010d\u00c7\u0106\u010c\u00fd\u00ff\u00dd"
           "\u0161\u015b\u015f\u0160\u015a\u015e\u017e\u017a\u017c\u017d\u0179\u017b"
           "\u0142\u0141\u0144\u0148\u0143\u0147\u0159\u0158\u0111\u0110\u011f\u011e\u0165\u0164"
           "\u2018\u2019\u201a\u2032\u00b4`\u201c\u201d\u201e\u2033\u00ab\u00bb"
           "\u2010\u2011\u2012\u2013\u2014\u2015\u2212~_\u00b7\u2022"
           "[{]}\\|@$\u00b0\u00ba\u00aa\u00d7\u00f7\u00a0\t\u2009\u202f")
_TR_DST = ("aaaaaaaa"
           "AAAAAAAA"
           "eeeeeee"
           "EEEEEEE"
           "iiiiii"
           "IIIIII"
           "oooooooo"
           "OOOOOOOO"
           "uuuuuuu"
           "UUUUUUU"
           "cccCCCyyY"
           "sssSSSzzzZZZ"
           "lLnnNNrRdDgGtT"
           "''''''\"\"\"\"\"\""
           "---------"
           "--"
           "(())//aSooax/    ")
# Multi-character ones: _TRM_SRC[i] -> the i-th word of _TRM_DST (two strings cost a
# fraction of the heap a dict literal of 20 strings does).
_TRM_SRC = "\u20ac\u00df\u00e6\u00c6\u0153\u0152\u2026\u00a3\u00a5\u00a7"
_TRM_DST = "EUR ss ae AE oe OE ... L Y S"


def _safe(ch):
    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return ch not in _AVOID
    return ch in "\u00f1\u00d1\u00fc\u00dc\n"


def _intern_alphabet():
    # MicroPython makes each 1-character str a qstr, kept for ever: the characters of
    # the first SMS texts became new qstrs mid-alert, and a full qstr pool then took
    # its successor (1.3 KB in one piece at 160 entries) at the alert's heap peak: a
    # MemoryError on a fragmented 56 KB heap. Made at import, while the heap is whole.
    for o in range(0x20, 0x7F):
        chr(o)
    for _ in "\u00f1\u00d1\u00fc\u00dc\n":
        pass


_intern_alphabet()


def to_gsm7(text):
    # Transliterate to safe GSM-7 basic: accents dropped (ñ/Ñ/ü/Ü kept), @ $ _ and the
    # extension characters replaced, CR dropped, other unknown characters
    # (emoji, CJK, control) removed.
    if not text:
        return ""
    for ch in text:
        if not _safe(ch):
            break
    else:
        return text  # already safe (the usual case): no copy on the heap
    out = []
    for ch in text:
        if _safe(ch):
            out.append(ch)
            continue
        i = _TR_SRC.find(ch)
        if i >= 0:
            out.append(_TR_DST[i])
            continue
        i = _TRM_SRC.find(ch)
        if i >= 0:
            out.append(_TRM_DST.split()[i])
    return "".join(out)


def oneline(text, maxlen=None):
    # to_gsm7, newlines to spaces, runs of spaces collapsed, stripped, cut.
    s = " ".join(to_gsm7(text).replace("\n", " ").split())
    if maxlen is not None and len(s) > maxlen:
        s = s[:maxlen].rstrip()
    return s


def is_gsm7(text):
    for ch in text:
        if GSM7_BASIC.find(ch) < 0 and GSM7_EXT_CHARS.find(ch) < 0:
            return False
    return True


def gsm7_septets(text):
    n = 0
    for ch in text:
        if GSM7_BASIC.find(ch) >= 0:
            n += 1
        elif GSM7_EXT_CHARS.find(ch) >= 0:
            n += 2
        else:
            return None
    return n


def segments(text):
    # Number of SMS segments text needs (concatenated SMS lose 7 septets / 3 UCS-2
    # units per segment to the UDH; an escape pair or surrogate pair is never split).
    if gsm7_septets(text) is not None:
        units = [1 if GSM7_BASIC.find(ch) >= 0 else 2 for ch in text]
        single, multi = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    seg, used = 1, 0
    for u in units:
        if used + u > multi:
            seg += 1
            used = 0
        used += u
    return seg


def encode(text, charset="GSM"):
    # Bytes to type after the AT+CMGS prompt for the modem's AT+CSCS charset.
    # "GSM": GSM 03.38 codes (ñ -> 0x7D, extension chars as ESC pairs); "IRA": ASCII
    # (ñ -> n); "8859-1": Latin-1.  Other characters are transliterated with to_gsm7
    # first; what is still unencodable becomes '?'.  Never emits Ctrl-Z or ESC alone.
    # at most 3 bytes a character: a transliteration is up to 3 basic characters ("EUR")
    buf = bytearray(3 * len(text))
    return bytes(buf[:encode_into(text, buf, charset)])


def encode_into(text, buf, charset="GSM"):
    # encode(), written into buf: the number of bytes, or ValueError if they do not fit.
    # Makes no object for text that needs no transliteration (an SMS is sent at the
    # alert's heap peak: a bytes object per character and a growing bytearray split it).
    n = 0
    for ch in text:
        m = _put(ch, charset, buf, n)
        if m >= 0:
            n = m
            continue
        for c in to_gsm7(ch) or "?":
            m = _put(c, charset, buf, n)
            n = m if m >= 0 else _put("?", charset, buf, n)
    return n


def _put(ch, charset, buf, n):
    # ch's code(s) into buf at n -> the new n; -n - 1 if ch has none in the charset
    o = ord(ch)
    if charset == "GSM":
        i = GSM7_BASIC.find(ch)
        if i >= 0 and i != 0x1B and i != 0x1A:  # 0x1A is Xi, and Ctrl-Z ends the text
            o = i
        else:
            j = GSM7_EXT_CHARS.find(ch)
            if j < 0:
                return -n - 1
            _room(buf, n + 2)
            buf[n] = 0x1B
            buf[n + 1] = GSM7_EXT_CODES[j]
            return n + 2
    elif charset != "8859-1" and (ch == "\u00f1" or ch == "\u00d1"):
        o = 0x6E if ch == "\u00f1" else 0x4E  # IRA: n, N
    elif o >= (0x100 if charset == "8859-1" else 0x80) or o == 0x1A or o == 0x1B:
        return -n - 1
    _room(buf, n + 1)
    buf[n] = o
    return n + 1


def _room(buf, n):
    if n > len(buf):
        raise ValueError("SMS text longer than its buffer")


def ucs2_ascii(text):
    # A field printed in UCS2 hex (AT+CSCS="UCS2": "002B0035..." for "+5...") -> its
    # text, if every character is printable ASCII (a number); else as it came.
    s = text or ""
    if not s or len(s) % 4:
        return s
    out = bytearray()
    for i in range(0, len(s), 4):
        if s[i:i + 2] != "00" or not _hex2(s[i + 2:i + 4]):
            return s
        c = int(s[i + 2:i + 4], 16)
        if c < 0x20 or c > 0x7E:
            return s
        out.append(c)
    return out.decode()


def _hex2(t):
    return len(t) == 2 and t[0] in _HEX and t[1] in _HEX


_HEX = "0123456789abcdefABCDEF"  # index: the digit's value, A-F 6 past a-f


def maybe_ucs2(text):
    # SIM800 text mode shows UCS-2 messages as hex ("0055004200490043...").  If
    # text looks like that (>= 2 chars, all hex, length multiple of 4) decode it.
    # Built as UTF-8 bytes: a str per character is 160 objects on a 56 KB heap.
    s = text.strip() if text else ""
    n = len(s)
    if n < 8 or n % 4:
        return text
    out = bytearray()
    i = 0
    while i < n:
        c = _cp(s, i)
        if c < 0:
            return text
        i += 4
        if 0xD800 <= c < 0xDC00 and i < n:
            lo = _cp(s, i)
            if 0xDC00 <= lo < 0xE000:
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00)
                i += 4
        if 0xD800 <= c < 0xE000:
            c = 0x3F
        if c < 0x80:
            out.append(c)
        else:
            out.extend(chr(c).encode())
    return out.decode()


def _cp(s, i):
    # the code point in s[i:i + 4] (4 hex digits), or -1
    v = 0
    for k in range(i, i + 4):
        d = _HEX.find(s[k])
        if d < 0:
            return -1
        v = v * 16 + (d if d < 16 else d - 6)
    return v
