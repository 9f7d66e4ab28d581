# Persistence on flash: every file is replaced whole (write a temp, rename over), so a
# reset or a flat battery mid-write leaves the old version, never half of the new one.
import json
import os

# Her configuration and the board profile are at most this long (bytes). The longest
# legitimate ones are ~650 (5 contacts, 10 C4 numbers) and ~720 (the T-A7670X profile);
# a longer one (a bad provision, a damaged flash) filled the heap at every boot, a crash
# loop. Mirrored in bootcheck.JSON_MAX; the host refuses to write longer (rules, release).
JSON_MAX = 2048
# alert.json at most: the worst state the machine saves is under 4 KB (test_alert_parts).
# A longer one is damaged and is not parsed (mirrored in bootcheck.STATE_MAX).
STATE_MAX = 8192


def write_json(path, obj):
    # json.dump streams the text to the file in small pieces: no copy of the whole
    # document on the heap (a big transient block fragments a small heap).
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f)
    except Exception:
        remove(tmp)  # a full flash, no heap: what was written of it goes, not kept holding blocks
        raise
    os.rename(tmp, path)


def read_json(path, default=None, most=0):
    """The decoded file, `default` if it is missing, or raise ValueError if it is corrupt
    ("corrupt <path>") or longer than `most` bytes, when given ("too_big <path>")."""
    try:
        if most and os.stat(path)[6] > most:
            raise ValueError("too_big " + path)
    except OSError:
        return default
    # json.load parses from the stream: the file's text is never whole on the heap
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default
    except ValueError:
        raise ValueError("corrupt " + path)


def remove(path):
    """True if the file went (False: missing, or the flash refused)."""
    try:
        os.remove(path)
        return True
    except OSError:
        return False
