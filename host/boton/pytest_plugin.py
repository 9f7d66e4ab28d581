"""pytest plugin shipped with the host package: the HIL harness. The same scenarios run on
the virtual rig (default, in `make test`) or on a real board with a reference modem.

    pytest tests/scenarios                                   # virtual rig, every modem family
    pytest tests/scenarios --modem-family sim800             # virtual rig, one family
    pytest tests/scenarios --virtual-ref-modem               # rig, C4 played by a simulated
                                                             # SIM800 through RefModem (the HIL path)
    pytest tests/scenarios --device /dev/ttyUSB0 --device-number +52449... \\
           --ref-modem /dev/ttyUSB1 --ref-number +52449... [--button rts:/dev/ttyUSB2]

Fixtures (see docs/hil.md): dut, button, network, gps, faults, timeline; rig_defaults
(a conftest may override it: VirtualDevice options of every scenario on the rig).
Markers: hil (hardware only), dut_config(**config overrides), rig(**VirtualDevice kwargs),
modem(*families, reason=...) (only these modem families can run it).
On the rig every scenario runs once per modem family (test ids end in [sim800], [a7670]);
on hardware it runs once, on the family of the --board profile.
Per test, a timeline (button, device log, AT traffic, network) is written to
build/hil-report/<test>.txt and attached to the report of a failed test.
"""
import pytest

VIRTUAL = "virtual"
REF_PIN = "4821"
C4_SECONDARY = "+524499100001"
# Short timers so a scenario takes seconds; they are valid settings for a real device too
# (sms_timeout_s, a backstop for a lost report, stays past a real module's slowest send).
SCENARIO_DEFAULTS = {
    "redial_backoff_s": [1, 2, 4], "cycle_backoff_s": 5, "sms_retry_s": 1,
    "sms_retries": 3, "sms_timeout_s": 150, "dial_timeout_s": 40, "vibrate": True,
}

MODEM_FAMILIES = ("sim800", "a7670")
# The rig's board for a family when --board is a board of another family.
FAMILY_BOARDS = {"sim800": "tcall_sim800l_axp192", "a7670": "ta7670x_a7670sa"}

_TIMELINE = pytest.StashKey()
_FAMILIES = pytest.StashKey()


def pytest_addoption(parser):
    group = parser.getgroup("boton", "Botón Seguro device under test")
    group.addoption("--device", default=VIRTUAL,
                    help="'virtual' (default: the simulated rig) or the board's serial port for HIL")
    group.addoption("--device-number", default=None,
                    help="phone number of the board's SIM (HIL: call-backs and SMS commands go there)")
    group.addoption("--ref-modem", default=None,
                    help="serial port of the reference modem that plays C4 and the trusted contact (HIL)")
    group.addoption("--ref-number", default=None, help="phone number of the reference modem's SIM")
    group.addoption("--button", default=None,
                    help="HIL button: 'manual' (default: asks you), 'rts:PORT' (a jig on a USB-serial "
                         "adapter's RTS) or 'ref-gpio:PIN' (a jig on a reference SIM800 GPIO)")
    group.addoption("--stand-in-911", default=None,
                    help="HIL: a harmless number dialled instead of the emergency number "
                         "(scenarios that need one skip without it; real 911 is never dialled)")
    group.addoption("--gps-point", default=None, help="HIL: LAT,LON the board's GPS should report")
    group.addoption("--board", default="tcall_sim800l_axp192",
                    help="board profile (boards/*.json); on the rig, the board of its modem family "
                         "(the other families run on " + ", ".join(FAMILY_BOARDS.values()) + ")")
    group.addoption("--modem-family", default=None, choices=MODEM_FAMILIES + ("all",),
                    help="the modem families the scenarios run on: on the rig 'all' (default) "
                         "runs each scenario once per family; on hardware it is the --board's "
                         "family, and naming another is an error")
    group.addoption("--virtual-ref-modem", action="store_true",
                    help="on the rig, play C4 and the contact with a simulated SIM800 driven by "
                         "RefModem: the hardware code path, rehearsed")
    group.addoption("--time-scale", type=float, default=0.1,
                    help="virtual rig: simulated parts run this much faster than real time")
    group.addoption("--hil-erase-foreign", action="store_true",
                    help="HIL: provision a board whose config.json is not the bench's (another "
                         "device id or phones), overwriting it; without it such a board is refused")
    group.addoption("--hil-report", default=None,
                    help="folder for the per-test timelines (default build/hil-report)")


def pytest_configure(config):
    config.addinivalue_line("markers", "hil: needs a real board and a reference modem (--device PORT --ref-modem PORT)")
    config.addinivalue_line("markers", "dut_config(**overrides): device configuration for this scenario")
    config.addinivalue_line("markers", "rig(**kw): VirtualDevice options for this scenario (virtual only)")
    config.addinivalue_line("markers", "modem(*families, reason=...): the scenario tests what only "
                                       "these modem families have (sim800, a7670); reason says what")
    config.stash[_FAMILIES] = selected_families(config)  # a wrong --board/--modem-family stops here
    device = config.getoption("--device")
    if device != VIRTUAL and config.getoption("numprocesses", None):
        # pytest-xdist's -n: each worker would drive the same board and reference modem at once
        raise pytest.UsageError(f"--device {device}: a hardware run has one board and one reference "
                                f"modem, so its scenarios run one at a time; run it without -n")


def _port_missing(port):
    """Why a local serial port cannot be the one meant (it does not exist, or is a file or
    a folder), or None (fine, a URL, or not given). Looked at, never opened."""
    import os

    from boton.device import _not_a_serial_port
    if not port or "://" in port:
        return None
    if not os.path.exists(port):
        return f"{port} does not exist: is the board (or the reference modem) plugged in, and is this its port?"
    what = _not_a_serial_port(port)
    return f"{port} is {what}, not a serial port" if what else None


# ---------------------------------------------------------------------- modem families
def _board_family(board):
    from boton.boards import load_board, modem_family
    from boton.errors import DeviceError
    try:
        return modem_family(load_board(board))
    except (DeviceError, OSError) as e:
        raise pytest.UsageError(f"--board {board}: {e}") from None


def selected_families(config):
    """The modem families this session runs the scenarios on (see --modem-family)."""
    if _FAMILIES in config.stash:
        return config.stash[_FAMILIES]
    asked = config.getoption("--modem-family")
    board = config.getoption("--board")
    if config.getoption("--device") != VIRTUAL:
        family = _board_family(board)
        if asked not in (None, "all", family):
            raise pytest.UsageError(f"--modem-family {asked}: on hardware the family is the board's, "
                                    f"and --board {board} has the {family}")
        return [family]
    _board_family(board)  # the rig runs --board for its family: it must be a board profile
    if asked in (None, "all"):
        return list(MODEM_FAMILIES)
    return [asked]


def board_for(family, board):
    """The rig's board profile for `family`: --board if it is one of that family's."""
    return board if _board_family(board) == family else FAMILY_BOARDS[family]


def _family_limit(node_or_metafunc):
    """(families, reason) of the test's modem marker, or (None, None) if it runs on all."""
    marks = list(node_or_metafunc.iter_markers("modem"))
    if not marks:
        return None, None
    families, reason = set(MODEM_FAMILIES), []
    for m in marks:
        unknown = [f for f in m.args if f not in MODEM_FAMILIES]
        if not m.args or unknown or not m.kwargs.get("reason"):
            raise pytest.UsageError(
                f"{getattr(node_or_metafunc, 'nodeid', '')}: @pytest.mark.modem needs the families "
                f"({', '.join(MODEM_FAMILIES)}) and reason='what only they have'"
                + (f"; unknown: {', '.join(map(repr, unknown))}" if unknown else ""))
        families &= set(m.args)
        reason.append(m.kwargs["reason"])
    return families, "; ".join(reason)


def _only_reason(families, reason):
    return f"{'/'.join(sorted(families)) or 'no family'} only: {reason}"


def pytest_generate_tests(metafunc):
    """On the rig, a scenario runs once per selected modem family (ids [sim800], [a7670]); a
    family its modem marker excludes is listed as skipped, with the marker's reason."""
    if "modem_family" not in metafunc.fixturenames or metafunc.config.getoption("--device") != VIRTUAL:
        return
    only, reason = _family_limit(metafunc.definition)
    params = [pytest.param(f, id=f, marks=() if only is None or f in only
                           else pytest.mark.skip(reason=_only_reason(only, reason)))
              for f in selected_families(metafunc.config)]
    metafunc.parametrize("modem_family", params)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--device") != VIRTUAL and config.getoption("--ref-modem"):
        _check_ports(config, items)
        return
    reason = ("needs real hardware: run with --device /dev/ttyUSB0 --ref-modem /dev/ttyUSB1"
              if config.getoption("--device") == VIRTUAL else
              "needs --ref-modem PORT (the reference modem that plays C4 and the contact)")
    for item in items:
        # the marker, not a keyword: `"hil" in item.keywords` is true for any node named
        # hil too (a checkout in ~/hil had every test skipped)
        if item.get_closest_marker("hil") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def _check_ports(config, items):
    """A hardware port that is not there (unplugged, a typo) stops the run in one line
    before any scenario, not as a pyserial traceback in each one's setup; only when a
    selected scenario would open the ports (a listing, or only skips, need none)."""
    if config.option.collectonly:
        return
    family = selected_families(config)[0]

    def opens_ports(item):
        only, _ = _family_limit(item)
        return ("_hil_bench" in getattr(item, "fixturenames", ()) and item.get_closest_marker("skip") is None
                and (only is None or family in only))
    if not any(opens_ports(item) for item in items):
        return
    for option in ("--device", "--ref-modem"):
        why = _port_missing(config.getoption(option))
        if why:
            raise pytest.UsageError(f"{option} {why}")


@pytest.fixture
def modem_family(request):
    """The modem family of the device under test: on the rig the test's parameter (this
    fixture is then overridden), on hardware the --board profile's."""
    family = selected_families(request.config)[0]
    only, reason = _family_limit(request.node)
    if only is not None and family not in only:
        pytest.skip(_only_reason(only, reason))
    return family


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    tl = item.stash.get(_TIMELINE, None)
    if not (rep.when == "call" or rep.failed or rep.skipped):
        return
    if tl is None:
        if not rep.skipped or "_hil_bench" not in getattr(item, "fixturenames", ()):
            return
        # skipped before its bench was built: a file all the same, so that the last
        # run's file of this scenario is not read as this run's result
        from boton.hil.timeline import Timeline
        tl = item.stash[_TIMELINE] = Timeline(item.nodeid)
    # every file says how its test ended: a skipped scenario's timeline (a press logged,
    # then the skip) read as a passed one
    if rep.skipped:
        why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr or "")
        tl.outcome = f"SKIPPED: {why.removeprefix('Skipped: ')}"
    elif rep.failed:
        tl.outcome = f"FAILED (in {rep.when})"
    elif tl.outcome is None or tl.outcome.startswith("PASSED"):
        tl.outcome = "PASSED"
    folder = item.config.getoption("--hil-report") or (item.config.rootpath / "build" / "hil-report")
    try:
        path = tl.write(folder)
    except OSError as e:
        rep.sections.append(("boton timeline", f"could not write the timeline: {e}"))
        return
    if rep.failed:
        rep.sections.append((f"boton timeline ({path})", tl.render()))


# ---------------------------------------------------------------------------- the bench
class Bench:
    """Everything one scenario gets, built once per test by the `_hil_bench` fixture."""

    def __init__(self):
        self.dut = self.network = self.button = self.faults = self.gps = None
        self.timeline = None
        self._closers = []

    def closing(self, fn):
        self._closers.append(fn)

    def close(self):
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception:  # teardown goes on: the next closer still has to run
                pass


def _config(request, c4, contacts, emergency):
    from boton.rules import build_config
    from boton.sim.rig import DEFAULT_CONTACT
    cfg = build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[c4[0]], device_id="BS-HIL1",
                       pin=REF_PIN, hold_ms=500)
    cfg.update(SCENARIO_DEFAULTS)
    cfg["c4_numbers"] = list(c4)
    cfg["contacts"] = list(contacts)
    cfg["emergency_number"] = emergency or ""
    for m in reversed(list(request.node.iter_markers("dut_config"))):
        cfg.update(m.kwargs)
    if emergency is None and cfg.get("allow_911"):
        pytest.skip("this scenario lets the device try the emergency number: give --stand-in-911 "
                    "NUMBER (a phone you control); the real 911 is never dialled from a test")
    if emergency is not None:
        cfg["emergency_number"] = emergency  # a scenario cannot point the device at real 911
    return cfg


def _rig_kw(request):
    # the suite's rig_defaults first (a conftest's fixture), then the rig markers, nearest last
    kw = dict(request.getfixturevalue("rig_defaults"))
    for m in reversed(list(request.node.iter_markers("rig"))):
        kw.update(m.kwargs)
    return kw


def _virtual_bench(request, tmp_path, bench, opts, family):
    from boton.hil.controls import Button, VirtualButtonDriver, VirtualFaults, VirtualGps
    from boton.hil.dut import VirtualDut
    from boton.hil.observer import RefModemNetwork, VirtualNetwork
    from boton.hil.refmodem import RefModem
    from boton.hil.simbench import attach_modem
    from boton.sim.flashdir import install
    from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice

    ref_mode = opts.getoption("--virtual-ref-modem")
    if ref_mode:
        c4, contacts = [DEFAULT_C4], [DEFAULT_C4]
    else:
        c4, contacts = [DEFAULT_C4, C4_SECONDARY], [DEFAULT_CONTACT]
    cfg = _config(request, c4, contacts, "911")
    board = board_for(family, opts.getoption("--board"))
    flash = install(tmp_path / "flash", board, cfg)
    kw = dict(time_scale=opts.getoption("--time-scale"), c4_numbers=(DEFAULT_C4, C4_SECONDARY),
              contacts=(DEFAULT_CONTACT,), network_log=tmp_path / "network.jsonl")
    kw.update(_rig_kw(request))
    vd = VirtualDevice(flash, board=board, **kw)
    dut = VirtualDut(vd, cfg)
    bench.timeline.header = (f"virtual rig, {family} on {board}{' + RefModem' if ref_mode else ''}, "
                             f"time_scale {vd.time_scale} (simulated parts and firmware modem "
                             f"timeouts scaled; alert timers and button timing in real seconds)")
    bench.closing(dut.stop)
    dut.start()
    vd.call(vd.network.add_c4, "911")  # the emergency operator of the simulated network
    bench.dut = dut
    bench.timeline.sources.append(dut.timeline_rows)
    vnet = VirtualNetwork(vd, c4, contacts, emergency="911")
    bench.timeline.sources.append(vnet.timeline_rows)
    if ref_mode:
        _, bridge = attach_modem(vd.call, vd.sched, vd.network, DEFAULT_C4)
        bench.closing(bridge.close)
        ref = RefModem(bridge.url, DEFAULT_C4)
        bench.closing(ref.close)
        ref.open(timeout=30)
        # The simulated SIM800 does not model CLIR (ATD#31#...): no withheld-number stranger.
        bench.network = RefModemNetwork(ref, vd.device_number, c4, contacts, emergency="911",
                                         stranger_withheld=False)
        bench.timeline.sources.append(lambda: [r for r in bench.network.timeline_rows()
                                               if r[1] != "REFMODEM"])
    else:
        bench.network = vnet
    bench.button = Button(VirtualButtonDriver(vd), cfg, bench.timeline)
    bench.faults = VirtualFaults(vd, bench.timeline, getattr(bench.network, "ref", None))
    bench.gps = VirtualGps(vd)


def _hardware_bench(request, bench, opts, family):
    from boton.hil.controls import (Button, HardwareFaults, HardwareGps, ManualButton,
                                    RefGpioJigDriver, RtsJigDriver)
    from boton.hil.dut import HardwareDut
    from boton.hil.observer import RefModemNetwork
    from boton.hil.refmodem import RefModem

    ref_port, ref_number = opts.getoption("--ref-modem"), opts.getoption("--ref-number")
    number = opts.getoption("--device-number")
    if not ref_port or not ref_number or not number:
        pytest.skip("HIL needs --ref-modem PORT, --ref-number NUMBER and --device-number NUMBER")
    stand_in = opts.getoption("--stand-in-911")
    c4, contacts = [ref_number], [ref_number]
    cfg = _config(request, c4, contacts, stand_in)
    _only_bench_phones(cfg, [ref_number, stand_in])
    bench.timeline.header = (f"hardware: {family} board {opts.getoption('--board')} on "
                             f"{opts.getoption('--device')}, reference modem on {ref_port}")
    ref = RefModem(ref_port, ref_number)
    bench.closing(ref.close)
    ref.open(timeout=120)
    dut = HardwareDut(opts.getoption("--device"), number, cfg, opts.getoption("--board"),
                      erase_foreign=opts.getoption("--hil-erase-foreign"))
    bench.closing(dut.stop)
    dut.provision()
    bench.dut = dut
    bench.network = RefModemNetwork(ref, number, c4, contacts, emergency=stand_in)
    bench.timeline.sources.append(dut.timeline_rows)
    bench.timeline.sources.append(bench.network.timeline_rows)
    spec = opts.getoption("--button") or "manual"
    if spec.startswith("rts:"):
        driver = RtsJigDriver(spec[4:])
        bench.closing(driver.close)
    elif spec.startswith("ref-gpio:"):
        driver = RefGpioJigDriver(ref, int(spec[9:]))
    elif spec == "manual":
        driver = ManualButton(ask=_terminal_input(request.config))
    else:
        raise pytest.UsageError(f"--button {spec!r}: use manual, rts:PORT or ref-gpio:PIN")
    bench.button = Button(driver, cfg, bench.timeline)
    bench.faults = HardwareFaults(dut, bench.network, bench.timeline)
    point = opts.getoption("--gps-point")
    bench.gps = HardwareGps(tuple(float(x) for x in point.split(",")) if point else None)


def _only_bench_phones(cfg, bench):
    """On hardware every number is a real phone: a dut_config that gives the board another
    than the reference modem's (or --stand-in-911) would call or text a stranger, a real C4
    or a real contact. Refused before the board is touched, without showing the number."""
    from boton.hil.dut import DIALLED, dialled
    ours = dialled({"contacts": [n for n in bench if n]})
    for key in DIALLED:
        if dialled({key: cfg.get(key)}) - ours:
            pytest.fail(f"dut_config {key}: on hardware the board may call or text only the reference "
                        f"modem (--ref-number) or --stand-in-911; this scenario gives it another "
                        f"number: it needs the rig", pytrace=False)


def _terminal_input(config):
    """input() with pytest's capture suspended, so the tester sees the prompt."""
    def ask(text):
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman is None:
            return input(text)
        with capman.global_and_fixture_disabled():
            return input(text)
    return ask


@pytest.fixture
def rig_defaults():
    """VirtualDevice options of every scenario on the rig before its rig markers: none, so
    the virtual DUT is the product's (its GPS starts cold, with the receiver's datasheet
    time to first fix). A suite's conftest.py may override this fixture, e.g. with a
    faster first fix for scenarios about something else."""
    return {}


@pytest.fixture
def _hil_bench(request, tmp_path, modem_family):
    from boton.hil.timeline import Timeline
    bench = Bench()
    bench.timeline = Timeline(request.node.nodeid)
    request.node.stash[_TIMELINE] = bench.timeline
    opts = request.config
    try:
        if opts.getoption("--device") == VIRTUAL:
            _virtual_bench(request, tmp_path, bench, opts, modem_family)
        else:
            _hardware_bench(request, bench, opts, modem_family)
        bench.timeline.note("scenario starts")
        yield bench
    finally:
        bench.close()


@pytest.fixture
def dut(_hil_bench):
    """The device under test, provisioned for this scenario and ready (boton.hil.dut)."""
    return _hil_bench.dut


@pytest.fixture
def network(_hil_bench):
    """What the phone network saw; the C4's hands (boton.hil.observer)."""
    return _hil_bench.network


@pytest.fixture
def button(_hil_bench):
    """The panic button: alert(), cancel(), press(), presses(), noise() (boton.hil.controls)."""
    return _hil_bench.button


@pytest.fixture
def faults(_hil_bench):
    """Fault injection; on hardware the impossible ones skip with the reason."""
    return _hil_bench.faults


@pytest.fixture
def gps(_hil_bench):
    """The GPS: position (expected point), set_position(), wait_bursts() (virtual)."""
    return _hil_bench.gps


@pytest.fixture
def timeline(_hil_bench):
    """The test's timeline: timeline.note('text') adds a line."""
    return _hil_bench.timeline
