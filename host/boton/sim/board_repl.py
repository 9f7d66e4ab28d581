# Runs ON MICROPYTHON (unix port), never CPython: the board side of the virtual device.
#
# The unix port's own REPL is not a board's: it wants a tty, exits on Ctrl-D, and has
# no soft reset. This script stands in for the board's pyexec loop, byte for byte where
# mpremote looks: friendly REPL, raw REPL, raw-paste mode, and soft reset. A soft reset
# exits with code 100 (raw) or 101 (friendly) and the rig starts a fresh interpreter on
# the same flash folder, so nothing survives it, as on a board.
#
# argv[1]: "power" (power-on/hard reset), "soft" (friendly soft reset) or "softraw".
# The fd named by BOTON_STATE_FD receives b"B" when user code starts and b"I" when the
# REPL is idle, so the rig only turns Ctrl-C into SIGINT while something is running.
import os
import sys

BANNER = "MicroPython v1.29.0 on 2026-07-05; Boton Seguro virtual ESP32 with ESP32\r\nType \"help()\" for more information.\r\n"
RAW_BANNER = "raw REPL; CTRL-B to exit\r\n>"
SOFT_RAW, SOFT_FRIENDLY = 100, 101
WINDOW = 256

# The rig starts this as `-m board_repl` from a folder of .mpy (MICROPYPATH): the rig's own
# code loads as bytecode, without the parse garbage that compiling it from source would
# leave between the objects it keeps (a chip's REPL is C: it costs its heap nothing). Its
# helpers are imported here, while that folder is still on the path: board_seal is used
# once and dropped (main()); flashbdev and inisetup stand in for the ESP32 port's frozen
# modules of those names, which _boot.py imports (inisetup only with a flash image, the
# only case it can run). Then the device sees only its flash (the flash folder, or the
# image's LittleFS, at "/", cwd, and its /lib) and what is frozen into the interpreter, in
# the ESP32 port's order: frozen modules win over /lib.
import board_seal
import flashbdev
if flashbdev.bdev:
    import inisetup  # noqa: F401 - kept in sys.modules for _boot.py
# the flash's romfs partition, mapped first; none: no rom_ioctl at all, which deploy takes as
# the ESP32 port's rom_ioctl(1) == 0 (nothing more of the rig's in the heap: none is spare)
rom_partition = __import__("rom_partition") if os.getenv("BOTON_ROMFS") else None
# "56/76/2048" (rig.VirtualDevice): the chip's heap and the heap this interpreter was
# started with (KB), larger by what the rig itself holds, and the bytes the chip's own boot
# holds (hold_chip_heap); absent: the heap is not an ESP32's.
_CHIP_HEAP = os.getenv("BOTON_CHIP_HEAP")
for _name in ("board_seal", "lfs_blockdev", "rom_partition"):
    sys.modules.pop(_name, None)
del _name
# The port's sys.path; mp_init appends "/rom" and "/rom/lib" when it mounts a ROMFS (seal()).
PATH = ["", ".frozen", "lib"]
sys.path[:] = PATH

try:
    _state = open("/dev/fd/" + os.getenv("BOTON_STATE_FD"), "wb")
except (OSError, TypeError):
    _state = None


def state(flag):
    if _state:
        try:
            _state.write(flag)
            _state.flush()
        except OSError:
            pass


out = sys.stdout
# One byte at a time into one buffer: a chip's REPL reads its UART without allocating, and
# a new bytes object per byte would march the allocator up through the heap between
# collections, so that what the session imports lands high and splits the free heap.
_rd = sys.stdin.buffer.readinto
_byte = bytearray(1)


def w(s):
    out.write(s)


def getc():
    while True:
        try:
            n = _rd(_byte)
        except KeyboardInterrupt:
            continue
        if not n:  # host closed our stdin: the rig is shutting down
            sys.exit(0)
        return _byte[0]


_globals = {"__name__": "__main__"}


def run_source(src, mode="exec"):
    """Compile and run like pyexec; return the exception (printed by the caller) or None.
    src may be the raw bytes the host sent: bytes that are not UTF-8 (line noise, esptool
    talking to the wrong port) fail to compile like any bad source; the REPL carries on."""
    if not isinstance(src, str):
        try:
            src = bytes(src).decode()
        except UnicodeError:
            return SyntaxError("invalid syntax")
    state(b"B")
    try:
        exec(compile(src, "<stdin>", mode), _globals)
    except SystemExit:
        raise
    except BaseException as e:  # KeyboardInterrupt included, as on a board
        return e
    finally:
        state(b"I")


def run_and_report(src):
    """Raw-REPL contract: output, \x04, the exception text, \x04."""
    e = run_source(src)
    w("\x04")
    if e is not None:
        sys.print_exception(e, out)
    w("\x04")


def run_file(name):
    try:
        f = open(name)
    except OSError:
        return
    with f:
        src = f.read()
    state(b"B")
    try:
        exec(compile(src, name, "exec"), _globals)
    except SystemExit:
        raise
    except BaseException as e:
        sys.print_exception(e, out)
    finally:
        state(b"I")


def report(e):
    if e is not None:
        sys.print_exception(e, out)


def raw_paste():
    """Raw-paste mode: flow-controlled upload, then compile and run."""
    w("R\x01")
    w(chr(WINDOW & 0xFF) + chr(WINDOW >> 8))
    buf = bytearray()
    used = 0
    while True:
        c = getc()
        if c == 4:
            break
        if c == 3:  # Ctrl-C aborts the upload (e.g. a host that lost us mid-transfer)
            w("\x04")
            return False
        buf.append(c)
        used += 1
        if used == WINDOW:
            used = 0
            w("\x01")
    w("\x04")
    run_and_report(buf)
    return True


def raw_repl():
    w(RAW_BANNER)
    line = bytearray()
    while True:
        c = getc()
        if c == 1:  # Ctrl-A again: restart raw REPL
            line = bytearray()
            w("\r\n" + RAW_BANNER)
        elif c == 2:  # Ctrl-B: back to friendly
            w("\r\n")
            return
        elif c == 3:
            line = bytearray()
        elif c == 5 and not line:
            a = getc()
            if a == 65:  # 'A'
                b = getc()
                if b == 1:
                    raw_paste()
                    w(">")
                    continue
            line.append(5)
            line.append(a)
        elif c == 4:
            w("OK")
            if not line:
                w("\r\n")
                sys.exit(SOFT_RAW)
            run_and_report(line)
            w(">")
            line = bytearray()
        else:
            line.append(c)


def friendly_repl():
    w(BANNER + ">>> ")
    line = bytearray()
    pending = ""
    while True:
        c = getc()
        if c == 1:
            w("\r\n")
            raw_repl()
            w(BANNER + ">>> ")
            line = bytearray()
            pending = ""
        elif c == 2:
            w("\r\n" + BANNER + ">>> ")
            line = bytearray()
        elif c == 3:
            w("\r\nKeyboardInterrupt\r\n>>> ")
            line = bytearray()
            pending = ""
        elif c == 4:
            if not line and not pending:
                w("\r\n")
                sys.exit(SOFT_FRIENDLY)
        elif c in (8, 127):
            if line:
                line = line[:-1]
                w("\x08 \x08")
        elif c == 13:
            text = line.decode()
            line = bytearray()
            w("\r\n")
            if pending:
                if text.strip():
                    pending += text + "\n"
                    w("... ")
                    continue
                src, pending = pending, ""
                report(run_source(src, "single"))
            elif text.rstrip().endswith(":"):
                pending = text + "\n"
                w("... ")
                continue
            elif text.strip():
                report(run_source(text, "single"))
            w(">>> ")
        elif c == 10:
            pass
        elif 32 <= c <= 126:  # readline keeps printable ASCII only; other bytes are dropped
            line.append(c)
            w(chr(c))


def run_boot():
    """What the ESP32 port runs before boot.py (main.c): the frozen _boot.py, which mounts
    the flash's vfs partition at "/" (flashbdev.bdev: a flash image's; none on a flash
    folder). The release image's own where the interpreter has it frozen in (on a mount
    failure it runs safe mode from the image, for ever), else the port's (an .mpy
    firmware). Like the port, print what it raises and go on to boot.py."""
    sys.path[:] = [".frozen"]  # the port looks for _boot.py among the frozen modules only
    try:
        try:
            import _boot  # noqa: F401
        except ImportError as e:
            if e.args[:1] != ("no module named '_boot'",):
                raise
            port_boot()
    except Exception as e:
        sys.print_exception(e, out)
    finally:
        sys.modules.pop("_boot", None)
        sys.path[:] = PATH


def port_boot():
    """The ESP32 port's own _boot.py: mount the vfs partition at "/"; if it will not mount,
    inisetup (the rig's stand-in) formats an erased one or reports it corrupted for ever."""
    import vfs
    from flashbdev import bdev
    try:
        if bdev:
            vfs.mount(bdev, "/")
    except OSError:
        import inisetup
        inisetup.setup()


def seal():
    """The board keeps nothing of the host but its flash: board_seal's namespace is emptied
    once it has run (its closures' __globals__: nothing to reach through), and this file
    lets go of it (flashbdev holds what it needs of lfs_blockdev)."""
    global board_seal
    import builtins
    import vfs

    board_seal.seal(os, vfs, builtins, rom_partition and rom_partition.rom_ioctl)
    board_seal.__dict__.clear()
    board_seal = None
    if rom_partition:  # what mp_init does last on a port with ROMFS, before any _boot.py
        PATH.extend(rom_partition.mount(vfs))
        sys.path[:] = PATH


_ballast = None


def hold_chip_heap():
    """Leave the firmware the free heap a chip would: the rig's own code and its sandbox
    (a chip has them in C, or not at all) were given extra heap; what of it they did not
    use is held in one block right above them, so the free heap is one piece on top, as
    on a chip. Short of it (the rig grew): say so, the firmware then gets less."""
    global _ballast
    if not _CHIP_HEAP:
        return
    import gc
    chip_kb, started_kb, chip_boot = [int(x) for x in _CHIP_HEAP.split("/")]
    gc.collect()
    total = gc.mem_free() + gc.mem_alloc()
    extra = gc.mem_free() - (total * chip_kb // started_kb - chip_boot)
    if extra > 0:
        _ballast = bytearray(extra)
    elif extra < 0:
        w("rig: the virtual board's own code holds %d bytes more heap than allowed for\r\n" % -extra)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "power"
    if mode == "power":
        w("ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")
    else:
        w("MPY: soft reboot\r\n")
    seal()
    del globals()["os"]  # the real one, should anything reach this file's __globals__
    # Before the heap is held: its mount is part of what the chip's own boot holds.
    # (A _boot.py that never returns, safe mode on a flash that will not mount, runs
    # with the rig's margin unheld: frozen, it needs little.)
    run_boot()
    hold_chip_heap()
    run_file("boot.py")
    # A host knocks with a burst of Ctrl-C (the chip may be light-sleeping): one that lands
    # while a traceback prints, or just as main.py ends, must not end the "board".
    try:
        if mode == "softraw":
            raw_repl()
        else:
            run_file("main.py")
    except KeyboardInterrupt:
        w("\r\n")
    while True:
        try:
            friendly_repl()
        except KeyboardInterrupt:
            w("\r\n")


main()
