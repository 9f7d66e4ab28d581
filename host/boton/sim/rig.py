"""The virtual device: the firmware on the real MicroPython unix port, wired to a
simulated SIM800, GPS, button and phone network.

Layout of one virtual device:

    mpremote ──REPL URL──► rig ──stdin/stdout──► micropython -m board_repl (cwd = flash dir)
                            ▲                         │ firmware's hw_sim backend
                            └──── peripheral socket ◄─┘ (uart 1 = SIM800, uart 2 = GPS, gpio)

Everything runs in one asyncio loop on a background thread; the public methods are
thread-safe and blocking, so tests and the CLI call them directly. Waiting is always on
an event (network event, console text), never a sleep.
"""
import asyncio
import functools
import os
import pty
import random
import shutil
import signal
import sys
import threading
import time
import traceback
import tty
from pathlib import Path

from ..boards import STRAPPING_PULL, load_board, power_chip as expected_power_chip
from ..frozen import device_interpreter
from ..waiting import NOT_YET, wait_for_item, wait_until
from .chipclock import TICKS_PERIOD, ChipClock
from .clock import Scheduler
from .gps import TTFF, GpsSim, restart_mode
from .network import BEHAVIOURS, PhoneNetwork
from .peercred import allowed as peer_allowed
from .pmu import I2cBus, make as make_power_chip
from .modem import check_options as check_modem_options, modem_class

LFS_BLOCKDEV = Path(__file__).with_name("lfs_blockdev.py")
# The board side of the rig (runs on MicroPython): board_repl imports the others once
# (flashbdev and inisetup stand in for the ESP32 port's frozen modules of those names).
BOARD_MODULES = ("board_repl", "board_seal", "lfs_blockdev", "flashbdev", "inisetup", "rom_partition")
SOFT_RAW, SOFT_FRIENDLY = 100, 101
CONSOLE_KEEP = 1 << 20  # console bytes kept for wait_console()
CONSOLE_TAIL_LINES = 25  # what a timed-out wait_event shows of the device's console
# After a wake edge the chip needs ~1 ms, and its UART driver a little more, before it
# receives again: a URC sent with the RI edge is lost. 20 ms is unkinder than the chip,
# on purpose (and robust to a loaded host's scheduling).
WAKE_DEAF_S = 0.02

DEFAULT_DEVICE_NUMBER = "+524490000042"
DEFAULT_C4 = "+524499100000"
DEFAULT_CONTACT = "+524491112233"
AGS_CENTRO = (21.88234, -102.29143)  # Plaza de la Patria, Aguascalientes


_noted = []  # the fallback note, once per process


# An ESP32's heap (56k) is started this much larger: the rig's board side (board_repl and
# its sandbox, ~9 KB; ~13 KB with a flash image, whose block device is Python here) runs
# in it, where a chip's REPL is C. board_repl.hold_chip_heap() holds what they leave over,
# so the firmware finds the free heap a chip leaves it, in one piece.
RIG_HEAP_KB = 20
# What the ESP32 port's own boot (_boot.py: the LittleFS mount and its caches, sys.path)
# holds before boot.py runs. Not measured on a chip. Measured on the 32-bit build the same
# way (2026-12-05): the LittleFS mount of a 4096-byte-block device 640 bytes, flashbdev 96,
# the partition object 48, and mp_init's tables about 150 from the port's source: about
# 1 KB. Kept at 2 KB on purpose: the firmware is given less than a chip gives it.
CHIP_BOOT_BYTES = 2048


@functools.cache
def _owner_only(path, mode):
    """Tighten a flash folder or image an earlier run (or boton before 2026-12-03) left
    readable by others; one the user does not own is left as it is."""
    try:
        if path.stat().st_uid == os.getuid():
            path.chmod(mode)
    except OSError:
        pass


def _readable(e):
    """What stopped the rig starting, in a technician's words: a path and the OS's reason,
    a port already taken, a wrong value; anything else as Python names it."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    if isinstance(e, (ValueError, OverflowError)):
        return str(e)
    return repr(e)


def board_code() -> Path:
    """A folder with the rig's board side (BOARD_MODULES) as .mpy, cached by content. Loaded
    as bytecode, it leaves no parse garbage between the objects it keeps, which would split
    the heap where a chip's (C) REPL leaves it whole."""
    from .. import build
    mods = [(f"{m}.mpy", build.compile_module(Path(__file__).with_name(f"{m}.py"), lines=True))
            for m in BOARD_MODULES]
    folder = build.CACHE / f"rig-{build.files_digest(mods)[:16]}"
    if not folder.is_dir():
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.mkdir(parents=True)
        for name, data in mods:
            (tmp / name).write_bytes(data)
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote the same folder first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _started_heap(interpreter, rom_bytes=0) -> tuple[str, dict]:
    """(-X heapsize, extra environment) for an interpreter whose `heap` is a chip's.
    rom_bytes: the flash's romfs partition, which the board side maps into the heap
    (rom_partition) where a chip maps flash: the interpreter is started that much larger."""
    heap = interpreter.heap
    rom_kb = -(-rom_bytes // 1024)
    if heap[-1:] == "k" and heap[:-1].isdigit():
        kb = int(heap[:-1])
        if interpreter.chip:
            started = kb + RIG_HEAP_KB + rom_kb
            return f"{started}k", {"BOTON_CHIP_HEAP": f"{kb}/{started}/{CHIP_BOOT_BYTES}"}
        return f"{kb + rom_kb}k", {}
    return heap, {}


class RigError(RuntimeError):
    pass


def _network_options(options):
    """Checked network timing options: known names (PhoneNetwork.TIMING), seconds > 0."""
    unknown = sorted(set(options) - set(PhoneNetwork.TIMING))
    if unknown:
        raise ValueError(f"the network has no option {', '.join(map(repr, unknown))}; "
                         f"its options are {', '.join(PhoneNetwork.TIMING)}")
    out = {}
    for k, v in options.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"network option {k} must be a number of seconds > 0, not {v!r}")
        out[k] = float(v)
    return out


class VirtualDevice:
    """One simulated panic button and the phone network around it."""

    def __init__(self, flash_dir, *, board="tcall_sim800l_axp192", time_scale=1.0,
                 network_log=None, repl="socket", repl_port=0, interpreter=None,
                 device_number=DEFAULT_DEVICE_NUMBER, c4_numbers=(DEFAULT_C4,),
                 contacts=(DEFAULT_CONTACT,), c4_answer_after_s=3.0, c4_hangup_after_s=None,
                 phones=None,
                 gps_point=AGS_CENTRO, gps_route=None, gps_start="cold", gps_ttff_s=None, nmea_file=None,
                 nmea_realtime=True, console_log=None, seed=None, mac="24:0a:c4:00:00:42",
                 flash_image=None, flash_size=4 * 1024 * 1024, power_chip=None,
                 modem_family=None, modem_options=None, network_options=None, uptime_s=None,
                 sim_sms=(), flash_faults=False):
        self.flash_dir = Path(flash_dir).absolute()
        # A rehearsal may be provisioned with her real contacts: the board's files are the
        # user's alone, as `boton image` and the registry are
        self.flash_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(self.flash_dir, 0o700)
        # flash_faults: the flash folder can be made full (set_flash_full); off by default,
        # since the check costs the firmware a host stat per file it opens for writing.
        self._full_flag = None
        if flash_faults:
            if flash_image:
                raise ValueError("flash_faults needs a flash folder, not a flash image")
            self._full_flag = self.flash_dir.with_name(self.flash_dir.name + ".full")
            self._full_flag.unlink(missing_ok=True)
        self.board = load_board(board)
        # The simulated module: the board profile's modem family unless modem_family names
        # another ("sim800", "a7670"); modem_options go to its constructor (A7670: volte=,
        # gsm=). A wrong name fails here, naming the known families.
        self.modem_family = modem_family or self.board["modem"].get("family", "sim800")
        # SMS the SIM card holds before the first power-up: (sender, text, read), e.g. a
        # card that lived in a phone first (its storage can be full).
        self._sim_sms = [(str(s), str(t), bool(r)) for s, t, r in sim_sms]
        self._modem_cls = modem_class(self.modem_family)
        self._modem_options = dict(modem_options or {})
        check_modem_options(self.modem_family, self._modem_options)
        # network_options set the network's timing figures (PhoneNetwork.TIMING), e.g. a
        # ring_timeout_s that lets a call ring as long in real seconds as a real network
        # does, where the rig's time_scale would cut it to a few.
        self._network_options = _network_options(network_options or {})
        self.time_scale = time_scale
        # uptime_s: the chip's time.ticks_ms() at its first boot (a button on for 12.4 days
        # is about to wrap); None: the host's clock (chipclock.ChipClock).
        self.clock = ChipClock(uptime_s)
        # The firmware runs as the release image does where the 32-bit build is at hand
        # (frozen, 56 KB heap), else on the PyPI port (boton.frozen.device_interpreter).
        self.interpreter = device_interpreter(interpreter)
        if self.interpreter.note and not _noted:
            _noted.append(self.interpreter.note)
            print(f"note: {self.interpreter.note}", file=sys.stderr)
        self.repl_mode = repl
        self.repl_port = repl_port
        self.device_number = device_number
        self.mac = mac  # the virtual chip's eFuse MAC (machine.unique_id())
        # With flash_image, the board is a whole SPI flash file: the real esptool writes it
        # through the ROM loader (download_url) and MicroPython mounts its vfs partition
        # with VfsLfs2, as on the chip. Without it, the flash is simply flash_dir.
        # absolute: the interpreter runs in flash_dir, where a relative name points nowhere
        self.flash_image = Path(flash_image).absolute() if flash_image else None
        self.flash_size = flash_size
        self.download_url = None
        self.console_log = Path(console_log).absolute() if console_log else None
        self._rand = random.Random(seed)
        self._network_log = network_log
        self.c4_numbers, self.contacts = list(c4_numbers), list(contacts)
        # c4_hangup_after_s: how long C4 stays on the line (None: until the device hangs
        # up); it holds for every answering phone not scripted otherwise, so a rehearsal
        # with the programme's real C4 number (an auto phone here) behaves the same.
        # phones: {number: dict(behaviour=, answer_after_s=, hangup_after_s=)} scripted on
        # the network (PhoneNetwork.script_phone); any other valid number answers.
        self.phones = dict(phones or {})
        for script in self.phones.values():  # refuse a bad script now, not at start()
            if script.get("behaviour", "answer") not in BEHAVIOURS:
                raise ValueError(f"a scripted phone's behaviour must be one of {', '.join(BEHAVIOURS)}, "
                                 f"not {script.get('behaviour')!r}")
        self._net_cfg = dict(c4_numbers=list(c4_numbers), contacts=list(contacts),
                             answer_after=c4_answer_after_s, hangup_after=c4_hangup_after_s)
        # The GPS as the board's receiver (profile gps.module, gps.backup) starts at power-on:
        # gps_start "cold" (a button from stock: no ephemeris, no time), "warm" or "hot";
        # gps_ttff_s: its time to a fix when it must download the ephemeris (cold or warm)
        # instead of its datasheet's (gps.RECEIVERS), e.g. 1e6 indoors, or a test's shortcut.
        if gps_start not in TTFF:
            raise ValueError(f"gps_start must be one of {', '.join(TTFF)}, not {gps_start!r}")
        if gps_ttff_s is not None and (isinstance(gps_ttff_s, bool) or not isinstance(gps_ttff_s, (int, float))
                                       or not gps_ttff_s >= 0):
            raise ValueError(f"gps_ttff_s must be a number of seconds >= 0, not {gps_ttff_s!r}")
        self.gps_receiver = self.board["gps"].get("module", "NEO-6M")
        self._gps_cfg = dict(point=gps_point, route=gps_route, start=gps_start, ttff=gps_ttff_s,
                             nmea=nmea_file, realtime=nmea_realtime,
                             backup=bool(self.board["gps"].get("backup")))

        self.repl_url = None
        self.events = []           # network events, in order
        self.parts_failure = None  # traceback of a simulated part that raised (check_parts)
        self.pins_out = {}         # output pin -> level, as the firmware drives them (a strapping
                                   # pin's pull after a chip reset)
        self.pin_history = []      # (t, pin, level) of outputs: LED/vibration pulses
        self.resets = 0
        self.board_power_losses = 0  # _board_power_lost(): the firmware cut the board's own power
        self.wdt_feeds = 0
        self.asleep_s = 0.0       # ESP32 time in light sleep, for the power model
        self.i2c = {}             # (addr, reg) -> last value written by the firmware
        # The power chip on I2C: the profile's, unless power_chip names another ("ip5306",
        # "axp192", "none"), as on a board flashed with the wrong profile.
        self.i2c_bus = I2cBus(make_power_chip(power_chip or expected_power_chip(self.board)[0],
                                              battery_mv=lambda: self.modem.battery_mv))
        self._sleep_since = None
        self.wdt_resets = 0
        # What the chip misses while light-sleeping (its UARTs hear nothing): bytes per role
        self.dropped_asleep = {"modem": 0, "gps": 0, "console": 0}
        self.wake_pins = {}       # pin -> level that ends a light sleep (firmware's setup_wake)
        self.wakes = []           # (monotonic t, "timer"|pin) for each light sleep's end
        self.wdt_kept_over_soft_reset = 0  # soft resets the running watchdog outlived
        self.rtc_base = time.time()  # host time at which the chip's RTC read 2000-01-01
        # RTC slow memory (hw.rtc_memory): survives soft, watchdog and EN resets, lost at a
        # power cycle (ESP-IDF: kept through every reset but power-on and brown-out)
        self.rtc_memory = b""
        self._cond = threading.Condition()
        self._console_watchers = []
        self._console = bytearray()
        self._console_total = 0
        self._loop = None
        self._thread = None
        self._ready = threading.Event()
        self._start_error = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=20):
        self._stopping = asyncio.Event()  # before the loop runs: stop() may come at any time
        self._thread = threading.Thread(target=self._thread_main, name="virtual-device", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RigError("virtual device did not start")
        if self._start_error:
            raise RigError(f"virtual device failed to start: {self._start_error}")
        return self

    def stop(self, timeout=10):
        """Stop the firmware and the simulated parts; returns once the rig's thread ended.
        If it does not end within `timeout`, RigError, and the rig is left as it is (its
        loop still runs, so stop() can be called again) rather than half torn down."""
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop already ended (e.g. the rig failed to start)
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise RigError(f"virtual device did not stop within {timeout}s")
        self._thread = None
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _thread_main(self):
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # surfaced to start(); never silently lost
            self._start_error = _readable(e)
            self._ready.set()
        finally:
            loop.close()

    async def _main(self):
        self._kick = asyncio.Event()
        self._proc = None
        self._busy = False
        self._repl_writer = None
        self._rx_hold = bytearray()
        self._unplug_after = None
        self._unplug_when = None
        self._reset_on_modem_rx = None
        self._gpio_writer = None
        self.battery_sense_open = False  # open_battery_sense(): the ADC reads 0 V
        self._uart_writers = {}
        self._button_level = 1 - self.board["button"]["active"]
        self._wdt_handle = None
        self._wdt_timeout = None
        self._hold_handle = None
        self._on_sleep = []
        self._wake_cause = None
        self._deaf_until = 0.0
        self._frozen = False
        self._gpio_held = {}
        self._gps_fix_at = None   # monotonic time the receiver last had a fix (its backup RAM)

        self.sched = Scheduler(time.monotonic, self.time_scale)
        self.network = PhoneNetwork(self.sched, log_path=self._network_log,
                                    auto_hangup_after_s=self._net_cfg["hangup_after"])
        for k, v in self._network_options.items():
            setattr(self.network, k, v)
        self.network.subscribe(self._on_network_event)
        for n in self._net_cfg["c4_numbers"]:
            self.network.add_c4(n, answer_after_s=self._net_cfg["answer_after"],
                                hangup_after_s=self._net_cfg["hangup_after"])
        for n in self._net_cfg["contacts"]:
            self.network.add_contact(n)
        for number, script in self.phones.items():
            self.network.script_phone(number, **script)
        self.modem = self._modem_cls(self.sched, self.network, self.device_number,
                                     emit=lambda b: self._uart_emit("modem", b),
                                     **self._modem_options)
        for sender, text, read in self._sim_sms:  # what the SIM card already holds
            self.modem.store_sms(sender, text, read=read)
        self.modem.ri_observer = self._on_ri
        self.modem.on_event = self._on_network_event  # PWRKEY presses and sleep, with the calls
        self.network.attach(self.device_number, self.modem)
        self.gps = GpsSim(self.sched, emit=lambda b: self._uart_emit("gps", b), receiver=self.gps_receiver)
        g = self._gps_cfg
        if g["nmea"]:
            self.gps.replay(g["nmea"], realtime=g["realtime"])
        else:
            if g["route"]:
                self.gps.set_route(g["route"])
            else:
                self.gps.set_position(*g["point"])
            self._gps_start(g["start"])
        self._modem_at_power_on()

        self._app_allowed = asyncio.Event()
        self._app_allowed.set()
        self._rom = None
        if self.flash_image:
            self._start_rom()
        self._periph = await asyncio.start_server(self._periph_conn, "127.0.0.1", 0)
        self._periph_port = self._periph.sockets[0].getsockname()[1]
        await self._open_repl()
        sched_task = asyncio.create_task(self._drive_scheduler())
        child_task = asyncio.create_task(self._supervise_child())
        self._ready.set()
        await self._stopping.wait()
        for t in (sched_task, child_task):
            t.cancel()
        await asyncio.gather(sched_task, child_task, return_exceptions=True)
        await self._kill_child()
        self._stop_hold()
        if self._wdt_handle is not None:  # the board is off: nothing left to bite
            self._wdt_handle.cancel()
            self._wdt_handle = None
        if self._rom:
            self._rom.stop()
        self._periph.close()
        if self.repl_mode == "socket":
            self._repl_server.close()
        elif self.repl_mode == "pty":
            self._loop.remove_reader(self._pty_master)
            os.close(self._pty_master)
            os.close(self._pty_slave)
        # The connection handlers (UARTs, GPIO, REPL) end here, not as pending tasks the
        # closing loop destroys.
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in handlers:
            t.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        self.network.close()

    # ------------------------------------------------------------------ scheduler
    async def _drive_scheduler(self):
        # Loop on _stopping, not forever: Python 3.11's wait_for can swallow a cancel that
        # arrives as the kick does, and the rig then never stopped (seen under load).
        while not self._stopping.is_set():
            try:
                self.sched.run_due()
            except Exception:
                # A simulated part raised (a bug of the rig's): simulated time stops here,
                # and the firmware only sees a silent modem or GPS, which a tester would take
                # for the firmware's failure. Every wait says so at once instead.
                with self._cond:
                    self.parts_failure = traceback.format_exc()
                    self._cond.notify_all()
                return
            nxt = self.sched.next_deadline()
            timeout = None if nxt is None else max(0.0, nxt - time.monotonic())
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _kick_scheduler(self):
        self._kick.set()

    # ------------------------------------------------------------------ MicroPython child
    async def _supervise_child(self):
        mode = "power"
        while not self._stopping.is_set():
            await self._app_allowed.wait()
            if self.flash_image and not self._image_bootable():
                # A blank or foreign chip: the ROM finds no app and says so, then waits.
                self._console_out(b"ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 "
                                  b"(SPI_FAST_FLASH_BOOT)\r\ninvalid header: 0xffffffff\r\n")
                self._app_allowed.clear()
                continue
            code = await self._run_child(mode)
            self._stop_hold()  # soft reset or not, machine.Timer callbacks end with the VM
            self._frozen = False
            if self._sleep_since is not None:  # whatever ended it, the chip is awake again
                self._woke("reset")
            soft = code in (SOFT_RAW, SOFT_FRIENDLY)
            if self._wdt_handle is not None:
                if soft:  # machine.WDT cannot be stopped: a soft reset leaves it running
                    self.wdt_kept_over_soft_reset += 1
                else:  # a hard reset (or the bite itself) disarms it; the next boot re-arms
                    self._wdt_handle.cancel()
                    self._wdt_handle = None
            if code == SOFT_RAW:
                mode = "softraw"
            elif code == SOFT_FRIENDLY:
                mode = "soft"
            else:
                mode = "power"  # crash or hard reset: the board reboots from scratch
                self.resets += 1
                self._chip_reset_pins()
                await asyncio.sleep(0.2)  # a real reboot takes a moment; also stops a hot crash loop

    async def _run_child(self, mode):
        state_r, state_w = os.pipe()
        env = dict(os.environ, BOTON_RIG=f"127.0.0.1:{self._periph_port}",
                   BOTON_FLASH_IMAGE=self._image_spec() if self.flash_image else "",
                   BOTON_ROMFS=self._romfs_spec() or "",
                   BOTON_LFS_BLOCKDEV=str(LFS_BLOCKDEV),
                   BOTON_STATE_FD=str(state_w), BOTON_TIME_SCALE=repr(self.time_scale),
                   BOTON_MAC=self.mac, BOTON_RTC_BASE=repr(self.rtc_base),
                   BOTON_RTC_MEMORY=self.rtc_memory.hex(),
                   BOTON_FLASH_FULL=str(self._full_flag or ""))
        heap, extra = _started_heap(self.interpreter, self._romfs_bytes())
        env.update(extra, MICROPYPATH=str(board_code()))
        if mode == "power":
            self.clock.chip_boot()
        self._proc = await asyncio.create_subprocess_exec(
            *self.clock.command([self.interpreter.exe, "-X", f"heapsize={heap}", "-m", "board_repl", mode]),
            cwd=self.flash_dir, env=env, pass_fds=(state_w,),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, umask=0o077)
        os.close(state_w)
        self._busy = False
        if self._rx_hold:
            held, self._rx_hold = bytes(self._rx_hold), bytearray()
            self._proc.stdin.write(held)
        self._loop.add_reader(state_r, self._read_state, state_r)
        proc = self._proc
        try:
            while True:
                data = await proc.stdout.read(4096)
                if not data:
                    break
                self._console_out(data)
            return await proc.wait()
        finally:
            self._loop.remove_reader(state_r)
            os.close(state_r)

    def _read_state(self, fd):
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if data:
            self._busy = data[-1:] == b"B"

    async def _kill_child(self):
        proc = self._proc
        if proc and proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await proc.wait()

    def _to_child(self, data: bytes):
        if self._sleep_since is not None:
            # UART0 is clock-gated in light sleep and is no wake source: the host's bytes
            # (a Ctrl-C included) are lost, as on the chip.
            self.dropped_asleep["console"] += len(data)
            return
        proc = self._proc
        if not proc or proc.returncode is not None:
            # Between interpreters (boot, soft reset): hold the bytes as a UART FIFO would.
            self._rx_hold += data
            return
        if b"\x03" in data and self._busy:
            # A board's UART IRQ turns Ctrl-C into KeyboardInterrupt; here, SIGINT does.
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            proc.stdin.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _console_out(self, data: bytes):
        for cb in self._console_watchers:
            cb(data)
        with self._cond:
            self._console += data
            self._console_total += len(data)
            if len(self._console) > CONSOLE_KEEP:
                del self._console[: len(self._console) - CONSOLE_KEEP]
            self._cond.notify_all()
        if self.console_log:
            with open(self.console_log, "ab") as f:
                f.write(data)
        self._repl_send(data)

    # ------------------------------------------------------------------ ROM loader (flash_image)
    def _start_rom(self):
        from .rom_server import RomServer

        if not self.flash_image.exists():
            self.flash_image.parent.mkdir(parents=True, exist_ok=True)
            with open(os.open(self.flash_image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(b"\xff" * self.flash_size)  # a new chip: erased
        _owner_only(self.flash_image, 0o600)
        loop = self._loop
        one_url = self.repl_mode == "rfc2217"
        # rfc2217: one URL for both, like a board's USB port: DTR/RTS drive EN/IO0 through
        # the auto-reset circuit, so esptool's reset enters the ROM and mpremote gets the REPL.
        self._rom = RomServer(self.flash_image, boot_mode="run", banner=one_url, rfc2217=one_url,
                              port=self.repl_port if one_url else 0,
                              mac=bytes.fromhex(self.mac.replace(":", "")),
                              on_boot_mode=lambda m: loop.call_soon_threadsafe(self._on_boot_mode, m),
                              on_app_data=(lambda d: loop.call_soon_threadsafe(self._to_child, d))
                              if one_url else None)
        self._rom.start()
        self.download_url = self._rom.url
        self._board_mode = "run"

    def _on_boot_mode(self, mode):
        prev, self._board_mode = self._board_mode, mode
        if mode == "download":
            self._app_allowed.clear()  # the ROM owns the UART until the next reset
            asyncio.ensure_future(self._kill_child())
        else:
            self._app_allowed.set()
            if prev == "run":
                asyncio.ensure_future(self._kill_child())  # EN pressed: reboot the app

    def _image_bootable(self) -> bool:
        with open(self.flash_image, "rb") as f:
            f.seek(0x1000)
            return f.read(1) == b"\xe9"

    def _image_spec(self) -> str:
        from ..image import flash_image_spec

        return flash_image_spec(self.flash_image)

    def _romfs_spec(self) -> str | None:
        """The flash image's romfs partition as rom_partition takes it, or None."""
        from ..image import romfs_image_spec

        return romfs_image_spec(self.flash_image) if self.flash_image else None

    def _romfs_bytes(self) -> int:
        spec = self._romfs_spec()
        return int(spec.rsplit("+", 1)[1], 0) if spec else 0

    def enter_download(self):
        """Hold BOOT and press EN: the ROM loader takes the UART (for esptool on download_url)."""
        if not self._rom:
            raise RigError("this virtual device has no flash image: start it with flash_image=PATH")
        self._rom.reset("download")
        self._rom.wait_boot("download", timeout=10)

    # ------------------------------------------------------------------ REPL endpoint
    async def _open_repl(self):
        if self.repl_mode == "rfc2217":
            if not self._rom:
                raise ValueError("repl='rfc2217' models the board's USB port: it needs flash_image")
            self.repl_url = self._rom.url
        elif self.repl_mode == "socket":
            self._repl_server = await asyncio.start_server(self._repl_conn, "127.0.0.1", self.repl_port)
            port = self._repl_server.sockets[0].getsockname()[1]
            self.repl_url = f"socket://127.0.0.1:{port}"
        elif self.repl_mode == "pty":
            self._pty_master, self._pty_slave = pty.openpty()
            tty.setraw(self._pty_slave)  # a UART: no echo, no CR/LF translation
            os.set_blocking(self._pty_master, False)
            self._loop.add_reader(self._pty_master, self._pty_readable)
            self.repl_url = os.ttyname(self._pty_slave)
        else:
            raise ValueError(f"repl must be 'socket', 'pty' or 'rfc2217', not {self.repl_mode!r}")

    async def _repl_conn(self, reader, writer):
        # Only the user who started the rig: the REPL reads and writes her flash. Checked
        # before anything else, so a refused peer does not unplug the technician's session.
        if not peer_allowed(writer.get_extra_info("peername"), writer.get_extra_info("sockname")):
            writer.close()
            return
        # One host at a time, like one USB cable: a new connection replaces the old.
        if self._repl_writer:
            self._repl_writer.close()
        self._repl_writer = writer
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                if self._unplug_after is not None:
                    self._unplug_after -= len(data)
                    if self._unplug_after <= 0:
                        self._unplug_after = None
                        break  # the cable is pulled mid-transfer
                self._to_child(data)
                if self._unplug_when is not None and self._unplug_when in data:
                    self._unplug_when = None
                    break  # pulled right after the host sent this
        except ConnectionError:
            pass
        finally:
            if self._repl_writer is writer:
                self._repl_writer = None
            writer.close()

    def _pty_readable(self):
        try:
            data = os.read(self._pty_master, 4096)
        except (BlockingIOError, OSError):
            return
        if data:
            self._to_child(data)

    def _repl_send(self, data: bytes):
        if self.repl_mode == "rfc2217":
            self._rom.send_console(data)
        elif self.repl_mode == "socket":
            if self._repl_writer:
                self._repl_writer.write(data)
        else:
            try:
                os.write(self._pty_master, data)
            except (BlockingIOError, OSError):
                pass  # nobody reading: a UART drops what no one hears

    # ------------------------------------------------------------------ peripherals
    async def _periph_conn(self, reader, writer):
        # The board's UARTs and pins: only the user who started the rig (another could
        # listen to her modem's traffic or press her button)
        if not peer_allowed(writer.get_extra_info("peername"), writer.get_extra_info("sockname"),
                            "peripheral port"):
            writer.close()
            return
        hello = (await reader.readline()).decode().split()
        if hello[:1] == ["uart"] and len(hello) == 2:
            role = self._uart_role(int(hello[1]))
            if role is None:
                writer.close()
                return
            self._uart_writers[role] = writer
            try:
                while True:
                    data = await reader.read(1024)
                    if not data:
                        break
                    self._deaf_until = 0.0  # it writes: it is awake, whatever the WAKE line's delay
                    if self._sleep_since is not None:
                        self._woke("uart")
                    if role == "modem":
                        self.modem.feed(data)
                        self._kick_scheduler()
                        marker = self._reset_on_modem_rx
                        if marker is not None and marker in data:
                            self._reset_on_modem_rx = None
                            self._loop.create_task(self._reset_chip())
            except ConnectionError:
                pass
            finally:
                if self._uart_writers.get(role) is writer:
                    del self._uart_writers[role]
        elif hello == ["i2c"]:  # hw_sim.i2c_read: one request line, one reply line
            try:
                while line := await reader.readline():
                    writer.write(self.i2c_bus.request(line))
            except ConnectionError:
                pass
        elif hello == ["gpio"]:
            self._gpio_writer = writer
            self._gpio_held.clear()
            writer.write(self._level_line("button", self.board["button"]["pin"], self._button_level))
            ri = self.board["modem"].get("ri")
            if ri is not None:
                writer.write(self._level_line("ri", ri, self.modem.ri))
            self._push_adc()
            # the levels above are the lines as they are now: the chip's Pin reads its line
            # at once (a button held through a reset reads pressed, and no edge comes); the
            # firmware applies them before it makes any pin (hw_sim._sync)
            writer.write(b"SYNC\n")
            try:
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    self._gpio_from_device(line)
            except ConnectionError:
                pass
            finally:
                if self._gpio_writer is writer:
                    self._gpio_writer = None
        writer.close()

    def _uart_role(self, uart_id):
        for role in ("modem", "gps"):
            if self.board[role]["uart"] == uart_id:
                return role
        return None

    def _uart_emit(self, role, data: bytes):
        if self._sleep_since is not None or time.monotonic() < self._deaf_until:
            # The chip's UARTs do not receive in light sleep: not buffered, lost.
            self.dropped_asleep[role] += len(data)
            return
        w = self._uart_writers.get(role)
        if w is not None and not w.is_closing():
            w.write(data)

    def _gpio_from_device(self, line: bytes):
        parts = line.split()
        if parts[:1] == [b"WDT"] and len(parts) == 2:
            self._wdt_arm(int(parts[1]) / 1000)
            return
        if parts[:1] == [b"I2C"] and len(parts) == 4:
            with self._cond:
                self.i2c[(int(parts[1]), int(parts[2]))] = int(parts[3])
                self.i2c_bus.write(int(parts[1]), int(parts[2]), int(parts[3]))
                self._cond.notify_all()
            return
        if parts[:1] == [b"WAKEON"]:
            self.wake_pins = {int(parts[i]): int(parts[i + 1]) for i in range(1, len(parts) - 1, 2)}
            return
        if parts[:1] == [b"SLEEP"]:
            self._sleep_since = time.monotonic()
            self._wake_cause = None
            todo, self._on_sleep = self._on_sleep, []
            for fn in todo:
                fn()
            self._kick_scheduler()
            return
        if parts[:1] == [b"WAKE"]:
            if self._sleep_since is not None:
                self._woke(self._wake_cause or "timer")
            return
        if parts[:1] == [b"HOLD"] and len(parts) == 3:
            self._start_hold(int(parts[1]) / 1000, int(parts[2]) / 1000)
            return
        if parts[:1] == [b"RTC"] and len(parts) == 2:
            self.rtc_base = float(parts[1])  # the firmware set the clock; it outlives resets
            return
        if parts[:1] == [b"RTCMEM"] and len(parts) == 2:  # hw.rtc_memory(data); "-": empty
            try:
                data = b"" if parts[1] == b"-" else bytes.fromhex(parts[1].decode())
            except ValueError:  # not hex: not a write the chip could have made
                return
            with self._cond:
                self.rtc_memory = data
                self._cond.notify_all()
            return
        if parts == [b"FEED"]:
            self.wdt_feeds += 1
            self._wdt_arm(self._wdt_timeout)
            return
        if len(parts) not in (3, 4) or parts[0] != b"P":
            return
        pin, level = int(parts[1]), int(parts[2])
        with self._cond:
            self.pins_out[pin] = level
            self.pin_history.append((time.monotonic(), pin, level))
            self._cond.notify_all()
        self._pin_level(pin, level, self._device_time(int(parts[3])) if len(parts) == 4 else None)
        modem = self.board["modem"]
        if pin == modem.get("power_on") and not level and modem.get("power_on_holds_board"):
            asyncio.ensure_future(self._board_power_lost())

    async def _board_power_lost(self):
        """The firmware drove low a supply enable that holds the board's own power (the
        T-A7670X V1.2 on battery: LilyGO, "IO12 must be set to high level after esp32
        starts, otherwise a reset will occur"): the board browns out, the ESP32 with it.
        How long GPIO12 may stay low first is not known: taken as no time at all."""
        self.board_power_losses += 1
        self._console_out(b"\r\nBrownout detector was triggered\r\n")
        self.modem.power_off()
        self._modem_at_power_on()
        self._gps_power_cycle()
        with self._cond:
            self.rtc_memory = b""
            self.rtc_base = time.time()
        await self._kill_child()

    def _device_time(self, ticks_ms):
        """The monotonic time at which the firmware wrote a pin, from its time.ticks_ms():
        the unix port's ticks are CLOCK_MONOTONIC in ms (offset by the chip's clock, if set),
        like time.monotonic(). None if the two disagree (a clock this cannot map): the
        line's arrival then."""
        now = time.monotonic()
        lag_ms = (self.clock.ticks_ms(now) - ticks_ms) % TICKS_PERIOD
        return now - lag_ms / 1000 if lag_ms <= 5000 else None

    def chip_ticks_ms(self):
        """What the chip's time.ticks_ms() reads now (wrapped at 2**30, as on the ESP32)."""
        return self.clock.ticks_ms()

    def _modem_at_power_on(self):
        """The board gets power: the modem starts, unless its power enable sits on a pin
        pulled off from power-on (the T-A7670X's GPIO12): then it has no supply until the
        firmware raises the enable, and needs PWRKEY after that."""
        if STRAPPING_PULL.get(self.board["modem"].get("power_on")) == 0:
            self.modem.supply(0)
        else:
            self.modem.power_on()

    def _chip_reset_pins(self):
        """A chip reset leaves every output undriven until the firmware drives it again. A
        strapping pin falls back to its pull (boards.STRAPPING_PULL) at once, and the part
        wired to it follows: GPIO12's pull-down cuts the T-A7670X modem's supply, so a call in
        progress drops. Other pins float; their level is then the board's own resistors',
        which the profiles do not record, so the parts keep what they had."""
        for pin, pull in STRAPPING_PULL.items():
            if self.pins_out.get(pin, pull) != pull:
                with self._cond:
                    self.pins_out[pin] = pull  # its level now; pin_history keeps what the firmware drove
                    self._cond.notify_all()
                self._pin_level(pin, pull)

    def _pin_level(self, pin, level, at=None):
        """What an output's level does to the parts wired to it (at: when the firmware
        drove it, for the pins whose pulse length matters; None: now)."""
        modem = self.board["modem"]
        if pin == modem.get("pwrkey"):
            self.modem.pwrkey(self._module_pin_level(level, modem.get("pwrkey_active", 0)), at)
        elif pin == modem.get("reset"):
            self.modem.reset_pin(self._module_pin_level(level, modem.get("reset_active", 0)), at)
        elif pin == modem.get("power_on"):
            self.modem.supply(level)
        elif pin == modem.get("dtr"):
            self.modem.dtr(level)
        elif pin == self.board["gps"].get("enable") and not self._gps_cfg["nmea"]:
            self._gps_enable(level)
        self._kick_scheduler()

    @staticmethod
    def _module_pin_level(level, active):
        """The level at the module's active-low PWRKEY/RESET pin. `active` is the ESP32
        level that presses it: 0 when the GPIO drives the pin directly (T-Call SIM800), 1
        through an inverting transistor (LilyGO's A7670 boards drive PWRKEY and RESET high)."""
        return level if active == 0 else (0 if level else 1)

    def _push_adc(self):
        """The battery as the ESP32's ADC sees it, through the board's divider."""
        bat = self.board.get("battery") or {}
        if bat.get("source") == "adc" and self._gpio_writer:
            uv = 0 if self.battery_sense_open else int(self.modem.battery_mv * 1000 / bat.get("divider", 2.0))
            self._gpio_send(("adc", bat["pin"]), b"A %d %d\n" % (bat["pin"], uv))

    def battery_sags(self, power_down_after_s):
        """The battery sags below the modem's warning level: its URCs (modem.under_voltage),
        and the same battery on the board's ADC. Runs on the rig's loop."""
        self.modem.under_voltage(power_down_after_s)
        self._push_adc()

    def open_battery_sense(self, is_open=True):
        """The board's battery divider missing or open (a T-A7670X V1.1 has none): its ADC
        pin reads 0 V whatever the cell holds."""
        def apply():
            self.battery_sense_open = is_open
            self._push_adc()
        self.call(apply)

    def set_battery_mv(self, mv):
        """The one battery: what the SIM800 reports in AT+CBC and the ADC reads."""
        def apply():
            self.modem.set_battery(mv)
            self._push_adc()
        self.call(apply)

    def _gps_start(self, mode):
        """The receiver starts `mode`: a hot start takes its datasheet's time, a cold or warm
        one (the ephemeris to download) gps_ttff_s if set."""
        self.gps.start(mode=mode, ttff_s=None if mode == "hot" else self._gps_cfg["ttff"])

    def _gps_enable(self, level):
        """The GPS's supply: off stops the receiver; on starts it as its backup supply
        allows (gps.restart_mode: without one, cold every time)."""
        if not level:
            if self.gps.running:
                if self.gps.fixed:
                    self._gps_fix_at = time.monotonic()
                self.gps.stop()
            return
        if self.gps.running:
            return
        since = self._gps_fix_at
        if since is not None:
            since = (time.monotonic() - since) / self.time_scale  # in the receiver's own seconds
        self._gps_start(restart_mode(self._gps_cfg["backup"], since))

    def _gps_power_cycle(self):
        """The board loses power, the GPS's supply with it (a replayed log goes on)."""
        if not self._gps_cfg["nmea"]:
            self._gps_enable(0)
            self._gps_enable(1)

    def _woke(self, why):
        """The light sleep ended: account it, and deliver the pin levels held meanwhile."""
        with self._cond:
            self.asleep_s += time.monotonic() - self._sleep_since
            self._sleep_since = None
            self.wakes.append((time.monotonic(), why))
            self._cond.notify_all()
        held, self._gpio_held = self._gpio_held, {}
        for line in held.values():
            self._gpio_send_now(line)

    def _gpio_send(self, pin, line: bytes, level=None):
        """A line to the chip's GPIO side. Asleep, only a wake pin at its level gets through
        (named first with "K <pin>", as the chip's wake cause); anything else waits for the
        chip to wake, the latest value per pin (a level, not an event: edges are lost)."""
        if self._sleep_since is not None:
            if level is None or self.wake_pins.get(pin) != level:
                self._gpio_held[pin] = line
                return
            self._gpio_held.pop(pin, None)
            self._wake_cause = pin
            self._deaf_until = time.monotonic() + WAKE_DEAF_S
            self._gpio_send_now(b"K %d\n" % pin)
        self._gpio_send_now(line)

    def _gpio_send_now(self, line):
        if self._gpio_writer and not self._gpio_writer.is_closing():
            self._gpio_writer.write(line)

    def _on_ri(self, level):
        """The SIM800's RI output, wired to the board's ri pin (if it has one)."""
        ri = self.board["modem"].get("ri")
        if ri is not None:
            self._gpio_send(ri, self._level_line("ri", ri, level), level)

    def _start_hold(self, timeout_s, hold_s):
        """hw.hold_watchdog(): a machine.Timer feeds the watchdog (re-armed at timeout_s)
        for hold_s, while the interpreter lives and runs (a frozen CPU feeds nothing)."""
        self._stop_hold()
        self._wdt_arm(timeout_s)
        loop = asyncio.get_running_loop()
        until = loop.time() + hold_s

        def tick():
            self._hold_handle = None
            if self._frozen or loop.time() >= until:
                return
            self.wdt_feeds += 1
            self._wdt_arm(self._wdt_timeout)
            self._hold_handle = loop.call_later(timeout_s / 4, tick)
        tick()

    def _stop_hold(self):
        if self._hold_handle is not None:
            self._hold_handle.cancel()
            self._hold_handle = None

    def _wdt_arm(self, timeout_s):
        """machine.WDT: once started it cannot be stopped; a missed feed resets the chip."""
        self._wdt_timeout = timeout_s
        if self._wdt_handle is not None:
            self._wdt_handle.cancel()
            self._wdt_handle = None
        if self._stopping.is_set():
            return  # a feed that arrives while the rig shuts down: the board is going off
        # This runs on the rig's loop: take that loop itself (self._loop is other threads'
        # handle to it, and goes away when they stop the rig).
        self._wdt_handle = asyncio.get_running_loop().call_later(timeout_s, self._wdt_bite)

    def _wdt_bite(self):
        self._wdt_handle = None
        self.wdt_resets += 1
        self._console_out(b"\r\nE (wdt) Task watchdog got triggered: rebooting\r\n")
        asyncio.ensure_future(self._kill_child())

    async def _set_button(self, pressed: bool, bounce: bool):
        active = self.board["button"]["active"]
        level = active if pressed else 1 - active
        if bounce:
            # Contact bounce: a few toggles 0.2-2 ms apart before the level settles.
            for _ in range(self._rand.randint(3, 9)):
                self._gpio_write(1 - level)
                await asyncio.sleep(self._rand.uniform(0.0002, 0.002))
                self._gpio_write(level)
                await asyncio.sleep(self._rand.uniform(0.0002, 0.002))
        self._gpio_write(level)

    def _gpio_write(self, level):
        self._button_level = level
        pin = self.board["button"]["pin"]
        self._gpio_send(pin, self._level_line("button", pin, level), level)

    def _level_line(self, line, pin, level):
        """The GPIO line for a level on the button or RI. Released, a line whose profile
        relies on the chip's pull-up (the button's "pull", the modem's "ri_pull": the
        switch or the open-drain output only ever pulls it low) is undriven: "Z", and it
        reads what the firmware's pull makes of it."""
        if line == "button":
            spec = self.board["button"]
            pulled, idle = spec.get("pull") == "up", 1 - spec["active"]
        else:
            pulled, idle = self.board["modem"].get("ri_pull") == "up", 1
        if pulled and level == idle:
            return b"P %d Z\n" % pin
        return b"P %d %d\n" % (pin, level)

    async def _press(self, hold_s, bounce):
        await self._set_button(True, bounce)
        await asyncio.sleep(hold_s)
        await self._set_button(False, bounce)

    # ------------------------------------------------------------------ public, thread-safe
    def call(self, fn, *args, timeout=10):
        """Run fn(*args) on the rig's loop (where the simulated parts live); return its result."""
        async def run():
            result = fn(*args)
            self._kick_scheduler()
            return result
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def press(self, hold_s=0.1, bounce=True):
        """Press and release the button (returns when released)."""
        asyncio.run_coroutine_threadsafe(self._press(hold_s, bounce), self._loop).result(hold_s + 10)

    def hold_button(self, pressed=True, bounce=True):
        """Press the button and leave it pressed (a stuck or shorted button), or release it."""
        asyncio.run_coroutine_threadsafe(self._set_button(pressed, bounce), self._loop).result(10)

    def press_sequence(self, presses, hold_s=0.12, gap_s=0.25, bounce=True):
        for i in range(presses):
            self.press(hold_s, bounce)
            if i < presses - 1:
                self._sleep_on_loop(gap_s)

    def _sleep_on_loop(self, seconds):
        asyncio.run_coroutine_threadsafe(asyncio.sleep(seconds), self._loop).result(seconds + 10)

    def noise(self, pulses=20, width_s=0.003):
        """Short spikes on the button line (a bag squeeze, EMI): must never raise an alert."""
        async def run():
            for _ in range(pulses):
                await self._set_button(True, bounce=False)
                await asyncio.sleep(width_s * self._rand.uniform(0.3, 1.0))
                await self._set_button(False, bounce=False)
                await asyncio.sleep(self._rand.uniform(0.01, 0.05))
        asyncio.run_coroutine_threadsafe(run(), self._loop).result(pulses + 10)

    def unplug_after(self, nbytes):
        """Drop the REPL connection once the host has sent `nbytes` more bytes (USB pulled)."""
        self.call(setattr, self, "_unplug_after", nbytes)

    def unplug_when(self, marker: bytes):
        """Drop the REPL connection right after the host sends bytes containing marker."""
        self.call(setattr, self, "_unplug_when", marker)

    def press_when_asleep(self, hold_s=0.1, bounce=True):
        """Press the button the moment the chip next enters light sleep, for hold_s (returns
        at once): what she does while it sleeps, which only its ext0 wake can hear."""
        self.on_next_sleep(lambda: self._loop.create_task(self._press(hold_s, bounce)))

    def on_next_sleep(self, fn):
        """fn() on the rig's loop the moment the chip next enters light sleep (so a test
        can make something happen while it cannot hear it)."""
        self.call(self._on_sleep.append, fn)

    def ctrl_c_as_it_sleeps(self):
        """A Ctrl-C that the chip's UART took in the instant before it entered its next light
        sleep: the KeyboardInterrupt is raised in the sleep (the console itself is deaf then)."""
        def interrupt():
            if self._proc and self._proc.returncode is None:
                self._proc.send_signal(signal.SIGINT)
        self.on_next_sleep(interrupt)

    def freeze(self):
        """The CPU hangs (the interpreter stops dead): only the watchdog can bring it back."""
        async def stop():
            if self._proc and self._proc.returncode is None:
                self._frozen = True
                self._proc.send_signal(signal.SIGSTOP)
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)

    def hard_reset(self, while_down=None):
        """Pull EN low: the ESP32 restarts from power-on. The modem keeps its state, unless
        the reset cuts its supply (a strapping pin's pull: _chip_reset_pins). while_down:
        fn() run on the rig's loop while EN is low (what the other parts do meanwhile; the
        chip hears none of it)."""
        asyncio.run_coroutine_threadsafe(self._reset_chip(while_down), self._loop).result(10)

    def reset_when_modem_gets(self, marker: bytes):
        """Pull EN the moment the firmware has written bytes containing marker to the modem
        (which takes them): a reset (the watchdog, a brown-out) in the middle of a sequence."""
        self.call(setattr, self, "_reset_on_modem_rx", marker)

    async def _reset_chip(self, while_down=None):
        if self._rom:
            if while_down is not None:
                raise RigError("while_down needs a virtual device without a flash image")
            self._rom.reset("run")  # through the ROM, which then boots the app
            return
        if while_down is None:
            await self._kill_child()
            return
        self._app_allowed.clear()
        try:
            await self._kill_child()
            while_down()
            self._kick_scheduler()
        finally:
            self._app_allowed.set()

    def set_flash_full(self, full=True):
        """The flash is full (or no longer): a full LittleFS as the firmware meets it, every
        write raising OSError(28) (board_seal.flash_dir_vfs). Needs flash_faults=True."""
        if self._full_flag is None:
            raise RigError("start the virtual device with flash_faults=True to fill its flash")
        if full:
            self._full_flag.touch()
        else:
            self._full_flag.unlink(missing_ok=True)

    def power_cycle(self):
        """The whole board loses power: the modem and the ESP32 start from scratch, and
        the ESP32's RTC (its clock, back to 2000-01-01, and its slow memory) with it."""
        self.call(self.modem.power_off)
        self.call(self._modem_at_power_on)
        self.call(self._gps_power_cycle)
        with self._cond:
            self.rtc_memory = b""
            self.rtc_base = time.time()
        self.hard_reset()

    def _on_network_event(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def check_parts(self):
        """RigError if a simulated part (modem, GPS, network, power chip) raised: the rig
        stopped simulating, so nothing it shows from then on is the firmware's doing."""
        if self.parts_failure:
            raise RigError("the rig's simulated parts stopped (a bug in the rig, not in the "
                           f"firmware):\n{self.parts_failure}")

    def wait_event(self, predicate, timeout=30.0, after=0):
        """Block until a network event (index >= after) satisfies predicate; return it. A
        timeout says what the device printed last too: why it did not happen, as it saw it."""
        try:
            return wait_for_item(self._cond, self.events, predicate, timeout, after, "network event",
                                 check=self.check_parts)
        except TimeoutError as e:
            tail = "\n".join(self.console_text().splitlines()[-CONSOLE_TAIL_LINES:])
            raise TimeoutError(f"{e}\ndevice console, last lines:\n{tail}") from None

    def wait_rtc_memory(self, predicate, timeout=30.0):
        """Block until the chip's RTC slow memory satisfies predicate(bytes); return it."""
        return self._wait(lambda: self.rtc_memory if predicate(self.rtc_memory) else NOT_YET,
                          timeout, lambda: f"RTC memory not as expected within {timeout}s: "
                                           f"{len(self.rtc_memory)} bytes")

    def watch_console(self, callback):
        """callback(bytes) for everything the device prints (called on the rig's thread)."""
        self._console_watchers.append(callback)

    def watch_network(self, callback):
        """callback(event) for every network event (called on the rig's thread)."""
        self.call(self.network.subscribe, callback)

    def console_text(self) -> str:
        with self._cond:
            return self._console.decode(errors="replace")

    def console_mark(self) -> int:
        with self._cond:
            return self._console_total

    def _wait(self, probe, timeout, failure):
        """How the rig's waits wait (wait_event through wait_for_item likewise): on its
        condition, ended at once by a simulated part that raised (check_parts), so no wait
        outlives the simulation it waits on."""
        return wait_until(self._cond, probe, timeout, failure, check=self.check_parts)

    def wait_console(self, needle: str, timeout=30.0, since=0, count=1) -> str:
        """Block until the device console (from byte offset `since`) contains needle
        `count` times."""
        b = needle.encode()
        seen = 0

        def probe():
            nonlocal seen
            start = max(0, len(self._console) - (self._console_total - since))
            i, seen = start, 0
            while seen < count and (i := self._console.find(b, i)) >= 0:
                seen, i = seen + 1, i + len(b)
            if seen == count and self._console.find(b"\n", i) >= 0:  # the whole line has arrived
                return self._console[start:].decode(errors="replace")
            return NOT_YET

        return self._wait(probe, timeout, lambda: (
            f"device printed {needle!r} {seen} of {count} times within {timeout}s; console "
            f"tail:\n{self._console[-2000:].decode(errors='replace')}"))

    def wait_asleep(self, seconds, timeout=30.0):
        """Block until the ESP32 has spent `seconds` in light sleep in all."""
        return self._wait(lambda: self.asleep_s if self.asleep_s >= seconds else NOT_YET, timeout,
                          lambda: f"only {self.asleep_s:.1f}s of light sleep within {timeout}s")

    def wait_pin(self, pin, level, timeout=10.0, since=0.0):
        """Block until the firmware drives output `pin` to `level` (after monotonic time `since`)."""
        def probe():
            for t, p, lv in self.pin_history:
                if p == pin and lv == level and t >= since:
                    return t
            return NOT_YET
        return self._wait(probe, timeout, lambda: f"pin {pin} never went to {level}")
