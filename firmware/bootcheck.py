# What main.py asks at every boot before starting the firmware: is the board profile usable,
# and does the firmware import? Apart from safe mode (safe.py) so that safe mode's code is
# loaded only when it runs: while the firmware imports, its few KB count (issue 13). What
# safe mode would need is read here first (PLAN), and hw and asyncio are loaded before the
# firmware: a firmware too big for the heap leaves it full of names that are never freed,
# and safe mode must then need little more than its own code.
import gc
import sys

DETAIL_MAX = 60      # characters of the reason in the log
# While the firmware's .mpy load, collect every 4 KB allocated: each module's top-level
# code is garbage once run, and collected early its blocks are reused by the next module
# instead of being left as holes between long-lived objects (-5 KB of smallest heap).
IMPORT_GC_BYTES = 4096
# Heap held back while the firmware imports and handed back if the import fails: what
# a firmware too big for the heap leaves may be too little even to write safe_next.txt
# (check). Given back to the firmware when the import succeeds. Small: held below the
# import's objects it split the heap her alert runs in (the frozen worst alert's smallest
# heap on the virtual device: 56-57 KB with 6 KB, when safe mode ran on it; 52 with 1 KB).
SAFE_RESERVE = 1024
# What purge() leaves loaded: this module and safe mode, the ESP32's _boot.py mount
# (flashbdev), and what safe mode runs on (hw and its backend, asyncio and its parts).
KEEP = ("__main__", "flashbdev", "bootcheck", "safe", "hw", "hw_esp32", "hw_sim", "asyncio")
HOLD_MS = 2000       # the gesture when her configuration cannot be read (app's default)
# The pins both LilyGO T-Call SIM800L revisions share (boards/tcall_sim800l_*.json, the
# programme's boards): what a board whose profile is missing or corrupt is driven with,
# unless its image was built for its own profile (frozen_board). The
# IP5306 keep-on write is what the IP5306 revision needs; on the AXP192 revision nothing
# answers at that address and the AXP192 keeps the ESP32's rail on by default.
DEFAULT_BOARD = {"modem": {"uart": 1, "baud": 115200, "tx": 27, "rx": 26, "pwrkey": 4, "reset": 5,
                           "power_on": 23},
                 "button": {"pin": 14, "active": 0, "pull": "up"},
                 "ip5306": {"sda": 21, "scl": 22, "addr": 117, "keep_boost_on": True}}

PLAN = None  # (board to drive, C4 numbers, hold ms) for safe mode, read by check()
# A firmware that crashes this many times in a row (app.main counts each crash in
# CRASHES_PATH; a run that stays up STABLE_MS forgets them) is in a crash loop: a fault
# that recurs at the same point (a MemoryError mid-alert, a bug on one path) would keep the
# button restarting instead of calling. Safe mode takes over, and calls C4 at once if an
# alert was running.
CRASH_LOOP = 3
CRASHES_PATH = "crashes.json"
JSON_MAX = 2048  # board.json and config.json at most (store.JSON_MAX: this imports no lib/)
STATE_MAX = 8192  # alert.json at most (store.STATE_MAX)


def read_json(path, most=0):
    """(object, problem): problem is None, "missing", "corrupt", "no_memory" or "too_big"
    (longer than `most` bytes, when given)."""
    import json
    import os
    try:
        if most and os.stat(path)[6] > most:
            return None, "too_big"
        with open(path) as f:
            return json.load(f), None
    except OSError:
        return None, "missing"
    except ValueError:
        return None, "corrupt"
    except MemoryError:
        return None, "no_memory"


def board_problem(board):
    """Why this board profile cannot drive the button and the modem, or None. Every pin
    safe mode drives is checked here: one it found missing (a flipped bit in a key's name)
    stopped safe mode itself, and the button restarted for ever without calling."""
    try:
        m, b = board["modem"], board["button"]
        for v in (m["uart"], m["baud"], m["tx"], m["rx"], m["pwrkey"], b["pin"],
                  m.get("power_on", 0) or 0):
            if not isinstance(v, int):
                return "bad_pins"
        if b.get("active", 0) not in (0, 1):
            return "bad_pins"  # a level her press never reads: a dead button
        ip = board.get("ip5306")
        # (its address may be left out: the chip's, 0x75, as the host and pmu.py take it;
        # a literal, as a name would cost the .mpy firmware's table of names)
        if ip and not (isinstance(ip["sda"], int) and isinstance(ip["scl"], int)
                       and isinstance(ip.get("addr", 0x75), int)):
            return "bad_pins"
        board["gps"]["uart"]  # the firmware needs it; safe mode does not
    except (KeyError, TypeError, AttributeError):
        return "incomplete"
    return None


def c4_numbers(cfg, board):
    """Her configuration's C4 numbers (911 last only if she allowed it), else the board's
    safe_c4, else 911: what appboot.load_config falls back to for a missing or corrupt config."""
    if isinstance(cfg, dict):
        nums = cfg.get("c4_numbers")
        if isinstance(nums, list):
            nums = [n for n in nums if isinstance(n, str) and n]
            if nums:
                return nums + (["911"] if cfg.get("allow_911") else [])
    safe_c4 = board.get("safe_c4") if isinstance(board, dict) else None
    return [safe_c4 if isinstance(safe_c4, str) and safe_c4 else "911"]


def gesture(cfg):
    g = cfg.get("gesture") if isinstance(cfg, dict) else None
    hold = g.get("hold_ms") if isinstance(g, dict) else None
    return hold if isinstance(hold, int) and 500 <= hold <= 10000 else HOLD_MS


def frozen_board():
    """The profile frozen into a board's own release image (make firmware BOARD=...), or
    None: an .mpy firmware, or the virtual device's image, which serves every board."""
    try:
        import json
        import boton_frozen
        board = json.loads(boton_frozen.BOARD_JSON)
    except Exception:  # no stamp, no board in it (None), or a damaged one
        return None
    return board if board_problem(board) is None else None


def plan():
    """((board to drive, C4 numbers, hold ms), board problem or None) from the flash."""
    board, problem = read_json("board.json", JSON_MAX)
    if problem is None:
        problem = board_problem(board)
    if problem:
        board = frozen_board() or DEFAULT_BOARD
    cfg, _ = read_json("config.json", JSON_MAX)
    return (board, c4_numbers(cfg, board), gesture(cfg)), problem


def release(m, name):
    """The ESP32 level that leaves the modem's PWRKEY or RESET alone: <name>_active is the
    level that presses it (0 on the T-Call, 1 through the T-A7670X's transistors; anything
    else in the profile: the default, 0)."""
    return 0 if m.get(name + "_active") == 1 else 1


def modem_pins(board):
    """The board's power enable on (the T-A7670X V1.2 resets on battery unless GPIO12 goes
    high right after boot), the modem's RESET and PWRKEY released: before the firmware's
    imports, which take a while, and in safe mode too."""
    import hw
    m = board["modem"]
    for name, level in (("power_on", 1), ("reset", release(m, "reset")),
                        ("pwrkey", release(m, "pwrkey"))):
        if isinstance(m.get(name), int):
            hw.Pin(m[name], hw.Pin.OUT, value=level)


def alert_running():
    """Whether alert.json says an alert is running (what safe mode after a crash loop
    must carry on: the call to C4): False, True, or the Unix time its max_alert_s end
    falls at when the RTC cannot tell (unset since a power-on) but the save has real time:
    safe mode then asks the network's clock. One the RTC shows past its end (saved days
    ago, her battery flat since) is not running: the normal resume's gap
    (appboot.saved_gap_ms), or C4 and her contacts get a false alert."""
    st, _ = read_json("alert.json", STATE_MAX)
    if not (isinstance(st, dict) and st.get("active")):
        return False
    try:
        import appboot
        from alert import DEFAULTS
        cfg, _ = read_json("config.json")
        c = dict(DEFAULTS)
        c.update(cfg if isinstance(cfg, dict) else {})
        if st.get("test") and not c["test_mode"]:
            return False  # the delivery-day test, cut short: over (AlertMachine.resumes)
        left_ms = c["max_alert_s"] * 1000 - int(st.get("elapsed_ms") or 0)
        gap = appboot.saved_gap_ms(st)
        at = st.get("at")
        if gap is None and left_ms > 0 and isinstance(at, int) and at >= appboot.SYNCED_AFTER:
            return at + left_ms // 1000
        if (gap or 0) < left_ms:
            return True
    except Exception:  # the firmware's modules broken too: carried on, as an unknown gap is
        return True
    print("EV expired safe_mode")
    return False


def purge():
    """Drop every module but KEEP: what a failed start left behind gives its heap back."""
    for name in list(sys.modules):
        if name.split(".")[0] not in KEEP:
            del sys.modules[name]
    gc.collect()


def check():
    """None when the board profile is usable and the firmware imports; else why not (and
    the modules the failed import left are dropped, so that safe mode has the heap)."""
    global PLAN
    PLAN, problem = plan()
    if problem:
        return "board_" + problem
    # A failed import leaves the heap holding the names (qstrs) of every module it loaded,
    # which nothing frees: how much safe mode then had moved with the flash's path, and at
    # 96 KB her press ended in a MemoryError (CI, 2026-12-04). So the import's failure is
    # noted in safe_next.txt and the chip reset (below): this boot reads the note, deletes
    # it (if the flash lets it: else safe mode at every boot) and runs safe mode on a clean
    # heap; the boot after that tries the firmware again. (Inline, and the path a literal:
    # each name costs the .mpy firmware's table of names.)
    import os
    try:
        with open("safe_next.txt") as f:
            why = f.read(DETAIL_MAX) or "import_unknown"
    except (OSError, MemoryError):
        why = None
    except ValueError:  # a note that is not text (a damaged flash): a note all the same
        why = "import_unknown"
    if why:
        try:
            os.remove("safe_next.txt")
        except OSError:
            pass
        return why
    crashes, _ = read_json(CRASHES_PATH)
    if isinstance(crashes, int) and crashes >= CRASH_LOOP:
        try:
            os.remove(CRASHES_PATH)  # the next reset tries the firmware again
        except OSError:
            pass
        return "crash_loop"
    gc.collect()
    why = None
    try:
        import asyncio, hw  # noqa: E401,F401 - what safe mode runs on (the firmware imports both)
        asyncio.StreamReader, asyncio.Event, asyncio.wait_for_ms  # else loaded on first use
    except Exception as e:
        why = ("import_hw_%s:%s" % (type(e).__name__, e))[:DETAIL_MAX]
    if why is None:
        reserve = bytearray(SAFE_RESERVE)
        gc.threshold(IMPORT_GC_BYTES)
        try:
            import app  # noqa: F401
        except Exception as e:  # ImportError, SyntaxError, MemoryError, a corrupt .mpy's ValueError
            why = ("import_%s:%s" % (type(e).__name__, e))[:DETAIL_MAX]
        gc.threshold(-1)  # MicroPython's default: collect only when an allocation fails
        del reserve
        if why:
            purge()
            try:
                with open("safe_next.txt", "w") as f:
                    f.write(why)
            except Exception:  # a full or failing flash, or no heap: safe mode on what is left
                pass
            else:
                print("safe mode after a reset:", why)
                hw.reset()
        # Right after the import (frozen: a fraction of a second), not before it: what the
        # pins allocate (the rig's GPIO socket) must not sit below the firmware's imports,
        # where it split the heap an alert needs (MemoryError in the test call at 56 KB).
        try:
            modem_pins(PLAN[0])
        except Exception as e:  # a pin this chip has not: the firmware's own init will say
            print("modem pins:", e)
    if why:
        purge()
    return why
