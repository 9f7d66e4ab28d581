"""The HIL harness itself: the hand-pressed button, hardware faults, the timeline report."""
import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from boton.hil.controls import Button, HardwareFaults, ManualButton, VirtualFaults
from boton.hil.observer import RefModemNetwork
from boton.hil.timeline import Timeline, at_rows
from boton.paths import REPO


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_hardware_run_refuses_a_board_that_does_not_run_this_release(tmp_path):
    # scenarios on a board with another firmware would pass or fail code this checkout
    # does not hold; checked through the same mpremote link a hardware run uses
    from boton.device import Device
    from boton.errors import DeviceError
    from boton.hil.dut import check_release
    from boton.sim.flashdir import install
    from boton.sim.rig import VirtualDevice
    from rigkit import FAST

    flash = install(tmp_path / "flash")
    vd = VirtualDevice(flash, time_scale=FAST)
    vd.start()
    try:
        with Device(vd.repl_url) as dev:
            check_release(dev, "tcall_sim800l_axp192")        # as deploy left it: accepted
            with pytest.raises(DeviceError, match="board.json is the tcall_sim800l_axp192 profile, "
                                                  "not --board tcall_sim800l_ip5306"):
                check_release(dev, "tcall_sim800l_ip5306")
            dev.write_file_atomic("main.py", (flash / "main.py").read_bytes() + b"# older\n")
            with pytest.raises(DeviceError) as e:
                check_release(dev, "tcall_sim800l_axp192")
    finally:
        vd.stop()
    assert "does not run this release: main.py is not this release's" in str(e.value)
    assert "boton deploy --port" in str(e.value) and e.value.exit_code == 5


def test_manual_button_skips_without_a_terminal():
    b = ManualButton(ask=lambda text: pytest.fail("must not ask"), stdin=io.StringIO())
    with pytest.raises(pytest.skip.Exception, match="stdin is not a terminal"):
        b.press(2.0)


def test_manual_button_asks_the_tester_on_a_terminal():
    asked = []
    tl = Timeline("t")
    button = Button(ManualButton(ask=asked.append, stdin=_Tty()), {"gesture": {"hold_ms": 2000}}, tl)
    button.alert()
    button.presses(3)
    assert "HOLD the button for 2 s" in asked[0] and "3 times" in asked[1]
    with pytest.raises(pytest.skip.Exception, match="by hand"):
        button.noise()
    assert [e[1] for e in tl.entries].count("BUTTON") >= 4


@pytest.mark.parametrize("fault, args", [("sim_missing", ()), ("drop_call", ()), ("cms_error", (500,)),
                                          ("modem_silent", ()), ("modem_dead", ()), ("gps_never_fix", ()), ("gps_dead_reckoning", ()), ("gps_wrong_baud", ()),
                                          ("volte_unavailable", ()), ("sms_only", ())])
def test_hardware_faults_that_cannot_be_made_skip_with_the_reason(fault, args):
    faults = HardwareFaults(dut=None, network=None, timeline=Timeline("t"))
    with pytest.raises(pytest.skip.Exception, match=f"fault '{fault}' cannot be injected on hardware: .+"):
        getattr(faults, fault)(*args)


def test_a_fault_the_rigs_modem_family_cannot_have_skips_naming_the_family():
    class Sim800Rig:                     # the SIM800 has no VoLTE, so no volte_unavailable()
        modem_family = "sim800"
        modem = object()

        def call(self, fn, *args):
            return fn(*args)
    faults = VirtualFaults(Sim800Rig(), Timeline("t"))
    for fault in ("volte_unavailable", "sms_only", "emergency_only"):
        with pytest.raises(pytest.skip.Exception, match=f"fault '{fault}': the simulated sim800 has no"):
            getattr(faults, fault)()


def test_ref_network_skips_what_one_reference_modem_cannot_do():
    class Ref:
        number = "+524499100000"
        events = []
    net = RefModemNetwork(Ref(), "+524490000042", ["+524499100000"], ["+524499100000"])
    with pytest.raises(pytest.skip.Exception, match="2 observable C4"):
        net.require(c4=2)
    with pytest.raises(pytest.skip.Exception, match="second SIM"):
        net.sms_to_device("UBICACION 1234", frm="stranger")
    with pytest.raises(pytest.skip.Exception, match="only the reference modem"):
        net.set_c4("busy", "+524499100001")


def test_at_rows_show_lines_prompts_and_garbage():
    log = [(1.0, "rx", b'AT+CMGS="+52449"\r'), (1.1, "tx", b"\r\n> "), (1.2, "rx", b"Hola\x1a"),
           (1.3, "tx", b"\r\n+CMGS: 7\r\n\r\nOK\r\n"), (1.4, "tx", b"\x00\xff\r\n")]
    rows = at_rows(log, "ESP>MDM", "MDM>ESP")
    texts = [(t, src, txt) for t, src, txt in rows]
    assert (1.0, "ESP>MDM", 'AT+CMGS="+52449"') in texts
    assert (1.1, "MDM>ESP", "> (SMS text prompt)") in texts
    assert (1.2, "ESP>MDM", "Hola<Ctrl-Z>") in texts
    assert (1.3, "MDM>ESP", "+CMGS: 7") in texts
    assert (1.4, "MDM>ESP", "\\x00\xff") in texts


def test_failed_scenario_gets_its_timeline_attached_and_written(tmp_path):
    test = tmp_path / "test_fails.py"
    test.write_text(textwrap.dedent('''
        def test_alert_then_wrong_expectation(dut, button, network):
            mark = network.mark()
            button.alert()
            network.wait_sms(to=network.contacts[0], after=mark, timeout=20)
            assert network.sms(after=mark)[0]["text"].startswith("NOT THIS")
    '''))
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--modem-family", "sim800", "--hil-report", str(report), str(test)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "boton timeline" in proc.stdout
    files = list(report.glob("*.txt"))
    assert len(files) == 1
    text = files[0].read_text()
    for needle in ("BUTTON   press", "DEVICE   EV alert gesture", "ESP>MDM  ATD", "NETWORK  SMS"):
        assert needle in text, needle
    lines = [ln for ln in text.splitlines() if ln.startswith("+")]
    times = [float(ln[1:ln.index("s ")]) for ln in lines]
    assert times == sorted(times)


def test_every_scenarios_timeline_says_how_it_ended_skips_included(tmp_path):
    # A skipped scenario's file (a press logged, then the skip) read as a passed one, and
    # one skipped before its bench kept the last run's file, which then read as this run's
    test = tmp_path / "test_outcomes.py"
    test.write_text(textwrap.dedent('''
        import pytest

        def test_standby(dut, button):
            dut.wait_ready(timeout=60)

        def test_needs_a_jig(dut, button):
            button.press(0.8)
            pytest.skip("no jig on this bench")

        @pytest.mark.hil
        def test_on_hardware_only(dut):
            pass
    '''))
    report = tmp_path / "report"
    report.mkdir()
    stale = report / "test_outcomes.py_test_on_hardware_only_sim800.txt"
    stale.write_text("Botón Seguro timeline: last week's run\n+    1.000s  NETWORK  SMS PRUEBA delivered\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--modem-family", "sim800", "--hil-report", str(report), str(test)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:]
    outcomes = {p.name: p.read_text().splitlines()[1] for p in report.glob("*.txt")}
    assert outcomes == {
        "test_outcomes.py_test_standby_sim800.txt": "Outcome: PASSED",
        "test_outcomes.py_test_needs_a_jig_sim800.txt": "Outcome: SKIPPED: no jig on this bench",
        stale.name: "Outcome: SKIPPED: needs real hardware: run with --device /dev/ttyUSB0 "
                    "--ref-modem /dev/ttyUSB1"}, outcomes
    assert "PRUEBA" not in stale.read_text()


FAMILY_SCENARIOS = '''
import pytest

def test_everywhere(dut):
    pass

@pytest.mark.modem("a7670", reason="VoLTE")
def test_volte(dut):
    pass

@pytest.mark.parametrize("code", [41, 500])
def test_cms(dut, code):
    pass

def test_no_device():
    pass
'''


def _pytest(tmp_path, *args, scenarios=FAMILY_SCENARIOS):
    test = tmp_path / "test_families.py"
    test.write_text(scenarios)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, str(test)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _ids(proc):
    return sorted(ln.split("::", 1)[1] for ln in proc.stdout.splitlines() if "::" in ln)


def test_on_the_rig_each_scenario_runs_once_per_modem_family(tmp_path):
    proc = _pytest(tmp_path, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _ids(proc) == ["test_cms[a7670-41]", "test_cms[a7670-500]", "test_cms[sim800-41]",
                          "test_cms[sim800-500]", "test_everywhere[a7670]", "test_everywhere[sim800]",
                          "test_no_device", "test_volte[a7670]", "test_volte[sim800]"]
    proc = _pytest(tmp_path, "--collect-only", "-q", "--modem-family", "sim800")
    assert _ids(proc) == ["test_cms[sim800-41]", "test_cms[sim800-500]", "test_everywhere[sim800]",
                          "test_no_device", "test_volte[sim800]"]


def test_a_family_the_modem_marker_excludes_is_skipped_with_its_reason(tmp_path):
    # skipped before any fixture: no rig is started
    proc = _pytest(tmp_path, "-q", "-rs", "--modem-family", "sim800", "-k", "test_volte")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout + proc.stderr
    assert "a7670 only: VoLTE" in proc.stdout


def test_on_hardware_the_family_is_the_boards_and_not_parametrised(tmp_path):
    hw = ("--device", str(tmp_path / "no-such-port"))
    proc = _pytest(tmp_path, "--collect-only", "-q", *hw, "--board", "ta7670x_a7670sa")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _ids(proc) == ["test_cms[41]", "test_cms[500]", "test_everywhere", "test_no_device",
                          "test_volte"]
    proc = _pytest(tmp_path, "-q", "-rs", *hw, "-k", "test_volte")   # the default board: a SIM800
    assert "1 skipped" in proc.stdout and "a7670 only: VoLTE" in proc.stdout, proc.stdout
    proc = _pytest(tmp_path, "--collect-only", "-q", *hw, "--board", "ta7670x_a7670sa",
                   "--modem-family", "sim800")
    assert proc.returncode != 0
    assert "--modem-family sim800: on hardware the family is the board's, and --board " \
           "ta7670x_a7670sa has the a7670" in proc.stdout + proc.stderr


def test_a_hardware_run_on_a_port_that_is_not_there_stops_in_one_line(tmp_path):
    # hil.md's hardware command with the board unplugged was ~80 lines of pyserial
    # traceback per scenario; boton's own commands say it in one line
    ref = tmp_path / "ref"
    ref.write_text("")   # a file, not a port
    hw = ("--device", str(tmp_path / "ttyUSB0"), "--device-number", "+524490000042",
          "--ref-modem", str(ref), "--ref-number", "+524499100000")
    proc = _pytest(tmp_path, "-q", *hw, "-k", "test_everywhere")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert f"--device {tmp_path / 'ttyUSB0'} does not exist" in out and "Traceback" not in out, out
    (tmp_path / "ttyUSB0").mkdir()
    out = _pytest(tmp_path, "-q", *hw, "-k", "test_everywhere")
    assert "is a folder, not a serial port" in out.stdout + out.stderr
    # listing the scenarios, or running only ones that skip, opens no port
    assert _pytest(tmp_path, "--collect-only", "-q", *hw).returncode == 0


def test_a_hardware_run_refuses_parallel_workers(tmp_path):
    # make test runs the rig's scenarios in parallel (-n); one board cannot be shared that way
    hw = ("--device", str(tmp_path / "no-such-port"))
    proc = _pytest(tmp_path, "--collect-only", "-q", "-n", "2", *hw)
    assert proc.returncode != 0, proc.stdout
    assert "a hardware run has one board and one reference modem" in proc.stdout + proc.stderr
    assert "run it without -n" in proc.stdout + proc.stderr
    assert _pytest(tmp_path, "--collect-only", "-q", "-n", "2").returncode == 0   # the rig: fine


def test_a7670_modem_options_need_the_a7670_marker_as_docs_hil_says(tmp_path):
    rig = '@pytest.mark.rig(modem_options={"gsm": False})\ndef test_no_2g(dut):\n    pass\n'
    bare = _pytest(tmp_path, "-q", "--modem-family", "sim800", scenarios="import pytest\n" + rig)
    assert bare.returncode != 0
    assert "ValueError: the sim800 modem has no option 'gsm'" in bare.stdout, bare.stdout + bare.stderr
    marked = _pytest(tmp_path, "-q", "-rs", "--modem-family", "sim800",
                     scenarios='import pytest\n@pytest.mark.modem("a7670", reason="no 2G")\n' + rig)
    assert marked.returncode == 0 and "1 skipped" in marked.stdout, marked.stdout + marked.stderr
    hil = (REPO / "docs" / "hil.md").read_text()
    assert "must also carry `@pytest.mark.modem(\"a7670\", reason=...)`" in hil
    assert "ValueError: the sim800 modem has no option 'gsm'" in hil


def test_a_modem_marker_without_known_families_or_a_reason_is_refused(tmp_path):
    for marker in ('"sim900", reason="x"', '"sim800"'):
        proc = _pytest(tmp_path, "--collect-only", "-q",
                       scenarios=f"import pytest\n@pytest.mark.modem({marker})\ndef test_x(dut):\n    pass\n")
        assert proc.returncode != 0, proc.stdout
        assert "@pytest.mark.modem needs the families (sim800, a7670) and reason=" in proc.stdout, proc.stdout


def test_only_the_hil_marker_makes_a_test_hardware_only(tmp_path):
    # `"hil" in item.keywords` also matched any node named hil: in a checkout or a folder
    # called hil (this one, a bench's ~/hil) every test of `make test` was skipped
    folder = tmp_path / "hil"
    folder.mkdir()
    proc = _pytest(folder, "-q", scenarios="import pytest\n\ndef test_plain():\n    pass\n\n"
                                                  "@pytest.mark.hil\ndef test_marked():\n    pass\n")
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout + proc.stderr


def test_on_hardware_a_scenario_cannot_point_the_board_at_another_phone(tmp_path):
    # dut_config overrides what the board calls and texts: on the rig any number reaches a
    # simulated phone, on hardware a real one (a stranger, a real C4 or contact)
    # ports that are there (pseudo-terminals nobody answers on): the refusal comes first
    ptys = [os.openpty() for _ in range(2)]
    board, ref = (os.ttyname(slave) for _, slave in ptys)
    hw = ("--device", board, "--device-number", "+524490000042", "--ref-modem", ref,
          "--ref-number", "+524499100000")
    for override in ('contacts=["+524491112233"]', 'c4_numbers=["+524499100000", "+524499100001"]',
                     'programme_number="+524491234567"'):
        proc = _pytest(tmp_path, "-q", *hw, scenarios=f"import pytest\n@pytest.mark.dut_config({override})\n"
                                                       "def test_x(dut):\n    pass\n")
        out = proc.stdout + proc.stderr
        assert "may call or text only the reference modem" in out, out
        assert ref not in out and "+52449123" not in out and "+52449111" not in out
    hw = hw[:4] + ("--ref-modem", str(tmp_path / "no-such-ref")) + hw[6:]
    proc = _pytest(tmp_path, "-q", *hw, scenarios="import pytest\n@pytest.mark.dut_config(sms_retries=2)\n"
                                                  "def test_x(dut):\n    pass\n")
    for master, slave in ptys:
        os.close(master)
        os.close(slave)
    out = proc.stdout + proc.stderr
    assert "may call or text only" not in out and "no-such-ref does not exist" in out, out


BENCH_REF = "+524499100000"


def bench_config(hold_ms=500):
    """The config the bench gives its board: C4 and the contact are the reference modem."""
    from boton.rules import build_config
    from boton.sim.rig import DEFAULT_CONTACT
    cfg = build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[BENCH_REF], device_id="BS-HIL1",
                       pin="4821", hold_ms=hold_ms)
    cfg["contacts"] = [BENCH_REF]
    return cfg


@pytest.fixture
def bench_board(tmp_path):
    """A HardwareDut on a virtual board (its REPL over mpremote, as a bench's USB port), with
    the bench's config; its EN line and console are faked (a socket has neither)."""
    import contextlib

    from boton.hil.dut import HardwareDut
    from boton.sim.flashdir import install
    from boton.sim.rig import VirtualDevice
    from rigkit import FAST

    @contextlib.contextmanager
    def board(config):
        flash = install(tmp_path / "flash", config=config)
        vd = VirtualDevice(flash, time_scale=FAST).start()
        try:
            vd.wait_console("EV ready", timeout=60)
            bench_cfg = bench_config()

            def make(**kw):
                dut = HardwareDut(vd.repl_url, "+524490000042", bench_cfg, **kw)
                resets = []

                class Serial:   # the USB port's RTS/EN and console, which a socket lacks
                    def open(self):
                        pass

                    def close(self):
                        pass

                    def pulse_en(self):
                        resets.append(1)
                dut._serial = Serial()
                dut.wait_ready = lambda since=0, timeout=None: None
                return dut, resets
            yield vd, flash, bench_cfg, make
        finally:
            vd.stop()
    return board


def test_the_bench_refuses_a_board_that_holds_anothers_config(bench_board):
    # a delivered button looks like the bench's board: plugged in by mistake, provisioning
    # rewrote her config and removed her running alert's state
    from boton.errors import DeviceError
    from rigkit import demo_config

    hers = demo_config()                              # BS-0042, her contact and C4
    with bench_board(hers) as (vd, flash, bench_cfg, make):
        (flash / "alert.json").write_text('{"active": true}')
        config_before = (flash / "config.json").read_bytes()
        dut, resets = make()
        with pytest.raises(DeviceError) as e:
            dut.provision()
        msg = str(e.value)
        assert "holds a config.json for 'BS-0042', not the bench's (BS-HIL1)" in msg
        assert "boton wipe --port" in msg and "--hil-erase-foreign" in msg
        assert not any(n[-4:] in msg for n in hers["contacts"] + hers["c4_numbers"])  # none of hers
        assert (flash / "config.json").read_bytes() == config_before
        assert (flash / "alert.json").exists() and resets == []
        # a bench board re-provisioned with a bench id but her contact: still not the bench's
        other = dict(bench_cfg, contacts=hers["contacts"])
        (flash / "config.json").write_text(json.dumps(other))
        with pytest.raises(DeviceError, match="for 'BS-HIL1', not the bench's"):
            make()[0].provision()
        (flash / "config.json").write_text("{not json")
        with pytest.raises(DeviceError, match="holds a config.json the bench cannot read"):
            make()[0].provision()
        # told to: overwritten, alert state gone, board reset
        dut, resets = make(erase_foreign=True)
        dut.provision()
        assert json.loads((flash / "config.json").read_text())["device_id"] == "BS-HIL1"
        assert not (flash / "alert.json").exists() and resets == [1]


@pytest.mark.parametrize("held", ["blank", "bench"])
def test_the_bench_provisions_a_blank_board_or_its_own_without_asking(bench_board, held):
    config = None if held == "blank" else bench_config(hold_ms=900)   # an earlier scenario's
    with bench_board(config) as (vd, flash, bench_cfg, make):
        (flash / "alert.json").write_text('{"active": true}')   # the last scenario's alert
        dut, resets = make()
        dut.provision()
        assert json.loads((flash / "config.json").read_text())["gesture"]["hold_ms"] == 500
        assert not (flash / "alert.json").exists() and resets == [1]
