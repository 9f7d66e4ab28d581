"""What the network will do for her call, as the technician sees it: the radio verdict on
the firmware's identity (rules.radio_verdict), `boton status`'s row and `boton provision`'s
line, provision refusing an SMS-only button (and test-call and deliver refusing what the
registry recorded), and `boton sim`'s A7670 rehearsal flags. Host-only: a fake board."""
import json

import pytest
from click.testing import CliRunner

from boton import cli, cli_sim
from boton import provision as prov
from boton import rules
from boton.boards import load_board
from boton.errors import DeviceError, RegistryConflict
from boton.registry import Registry
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from rigkit import FakeClock

MAC = "24:0a:c4:00:00:42"
CFG_HASH = "ab" * 32


# ------------------------------------------------------------------------ the verdict
def ident(rat, voice, via, family="a7670", **kw):
    return dict(dict(modem=True, registered=rat is not None, family=family, rat=rat, voice=voice,
                     voice_via=via), **kw)


@pytest.mark.parametrize("rat, voice, via, voice_ok, summary", [
    ("LTE", True, "VoLTE", True, "LTE, voice over LTE"),
    ("LTE", True, "2G", True, "LTE, voice over 2G (falls back from LTE for a call)"),
    ("GSM", True, "2G", True, "GSM (2G), voice"),
    ("GSM", True, None, True, "GSM (2G), voice"),
    ("LTE", True, None, True, "LTE, voice"),
    ("LTE", False, None, False, "LTE, SMS only: NO VOICE — this SIM/operator has no VoLTE and "
                                "there is no 2G here"),
    ("GSM", False, None, False, "GSM (2G), SMS only: NO VOICE — the network refuses calls on this SIM"),
    ("LTE", None, None, None, "LTE, voice unknown"),
    ("GSM", None, None, None, "GSM (2G), voice unknown"),
    (None, None, None, None, "not registered: voice unknown"),
])
def test_every_combination_has_its_verdict(rat, voice, via, voice_ok, summary):
    v = rules.radio_verdict(ident(rat, voice, via))
    assert (v.voice, v.summary) == (voice_ok, summary)
    # what to do is said exactly when there is no voice
    assert bool(v.advice) == (voice_ok is False)
    if voice_ok is False:
        assert "SIM" in v.advice and v.line() == f"{summary} — {v.advice}"


@pytest.mark.parametrize("voice, voice_ok, summary", [
    (True, True, "registered (radio unknown), voice"),
    (None, None, "registered (radio unknown), voice unknown"),
    (False, False, "NO VOICE — the modem reports no voice service"),
])
def test_registered_without_a_radio_is_not_called_no_network(voice, voice_ok, summary):
    v = rules.radio_verdict(ident(None, voice, None, registered=True))
    assert (v.voice, v.summary) == (voice_ok, summary)


@pytest.mark.parametrize("rat, family", [("GSM", "sim800"), ("LTE", "a7670"), (None, "a7670")])
def test_not_registered_is_said_whatever_the_rat(rat, family):
    # an unregistered SIM800 still reports rat "GSM"
    v = rules.radio_verdict(ident(rat, None, None, family=family, registered=False))
    assert (v.voice, v.summary, v.advice) == (None, "not registered: voice unknown", "")


def test_the_sim800_family_reports_the_same_keys():
    v = rules.radio_verdict(ident("GSM", True, "2G", family="sim800"))
    assert (v.voice, v.summary) == (True, "GSM (2G), voice")


def test_no_voice_on_lte_tells_the_technician_what_to_fit():
    v = rules.radio_verdict(ident("LTE", False, None))
    assert "VoLTE" in v.advice and "another operator" in v.advice


@pytest.mark.parametrize("rat, via, voice_ok", [("LTE", "VoLTE", False), ("LTE", None, False),
                                                ("GSM", "2G", True), ("LTE", "2G", True)])
def test_module_firmware_that_drops_lte_calls_is_no_voice_on_lte(rat, via, voice_ok):
    # LilyGO-Modem-Series #240/#180: A110B01A7670M7_F drops every call on LTE
    v = rules.radio_verdict(ident(rat, True, via, modem_rev="A110B01A7670M7_F"))
    assert v.voice is voice_ok
    assert "A110B01A7670M7_F drops every call on LTE" in v.summary and "B07" in v.advice
    # B07 (the fix), and another module's B01 (A124B01, LilyGO's stable A7670G-LLSE), call
    for fine in ("A011B07A7670M7", "A124B01A7670M7"):
        assert rules.radio_verdict(ident(rat, True, via, modem_rev=fine)).voice is True


@pytest.mark.parametrize("old", [
    {"modem": True, "registered": True, "operator": "TELCEL", "rssi": 20},  # firmware before the keys
    {},
    None,
    "not a dict",
])
def test_old_firmware_is_unknown_and_never_crashes(old):
    v = rules.radio_verdict(old)
    assert v.voice is None and v.summary == "unknown (firmware does not report it)"


@pytest.mark.parametrize("bad", [
    ident("5G", True, "VoLTE"), ident("LTE", "yes", None), ident("LTE", True, "VoWiFi"),
    ident(["LTE"], None, None),
])
def test_malformed_values_are_unknown_and_named(bad):
    v = rules.radio_verdict(bad)
    assert v.voice is None and v.summary.startswith("unknown (the firmware reported rat=")


# ------------------------------------------------------------------------ the CLI, on a fake board
class FakeBoard:
    """The board on the port: a context manager whose service.status() answers `facts`."""

    facts = {}
    written = []

    def __init__(self, port=None, timeout=None, during_alert=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def exec(self, code, consumer=None, timeout=None):
        assert "service.status()" in code
        return (json.dumps(FakeBoard.facts) + "\n").encode()

    exec_firmware = exec

    def read_file(self, path):
        """What provision reads back: the configuration last written, or none (a new board)."""
        from boton.rules import CONFIG_PATH, config_bytes
        assert path == CONFIG_PATH
        return config_bytes(FakeBoard.written[-1]) if FakeBoard.written else None


@pytest.fixture
def board(monkeypatch):
    FakeBoard.facts, FakeBoard.written = {}, []
    monkeypatch.setattr(cli, "Device", FakeBoard)
    monkeypatch.setattr(prov, "device_mac", lambda dev: MAC)
    monkeypatch.setattr(prov, "check_power_chip", lambda dev, board=None: None)
    monkeypatch.setattr(prov, "check_safe_c4", lambda dev, config: None)  # a board of the programme
    monkeypatch.setattr(prov, "detect_power_chip", lambda dev, board=None: {"expected": None, "found": None})
    monkeypatch.setattr(prov, "release_on_board", lambda dev: ("ta7670x_a7670sa", []))
    monkeypatch.setattr(prov, "identity", lambda dev: dict(FakeBoard.facts))

    def write_config(dev, config):
        FakeBoard.written.append(config)
        return rules.config_hash(rules.config_bytes(config))
    monkeypatch.setattr(prov, "write_config", write_config)
    return FakeBoard


def run(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def provision():
    return run("provision", "--port", "socket://fake:1", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
               "--c4", DEFAULT_C4, "--wait-network", "0")


REGISTERED = dict(modem=True, registered=True, operator="TELCEL", rssi=20)


@pytest.mark.parametrize("facts, line", [
    (ident("LTE", True, "VoLTE"), "network: LTE, voice over LTE"),
    (ident("GSM", True, "2G", family="sim800"), "network: GSM (2G), voice"),
    ({}, "network: unknown (firmware does not report it)"),
])
def test_provision_reports_the_network_and_records_voice(board, facts, line):
    board.facts = dict(REGISTERED, **facts)
    r = provision()
    assert r.exit_code == 0, r.output
    assert line in r.output and len(board.written) == 1
    # said before the wait, which an A7670 trying 2G makes long
    assert r.output.index("A7670 whose SIM has no VoLTE tries 2G first") < r.output.index("provisioned ")
    with Registry() as reg:
        d = reg.get(MAC)
    assert d.state == "provisioned"
    assert d.voice is (True if facts else None)


def test_provision_refuses_an_sms_only_button_and_the_registry_says_so(board):
    board.facts = dict(REGISTERED, **ident("LTE", False, None))
    r = provision()
    assert r.exit_code == 4, r.output
    out = " ".join(r.output.split())
    assert "LTE, SMS only: NO VOICE" in out and "cannot call C4" in out and "not marked ready" in out
    assert "VoLTE" in out and "another operator" in out
    assert board.written == []  # nothing written to the button
    with Registry() as reg:
        d = reg.get(MAC)
        assert (d.state, d.voice, d.config_hash) == ("in_stock", False, None)
        assert reg.audit(MAC)[-1]["action"] == "no_voice"
    # never provisioned: test-call refuses it (a provisioned one: see below)
    assert run("test-call", "--port", "socket://fake:1").exit_code == 7
    # a SIM with VoLTE, provisioned again: ready for its test call
    board.facts = dict(REGISTERED, **ident("LTE", True, "VoLTE"))
    assert provision().exit_code == 0
    with Registry() as reg:
        d = reg.get(MAC)
    assert (d.state, d.voice) == ("provisioned", True)


def test_a_provisioned_button_whose_new_sim_has_no_voice_loses_its_test_call(board):
    board.facts = dict(REGISTERED, **ident("GSM", True, "2G"))
    assert provision().exit_code == 0
    with Registry() as reg:
        reg.record_test_call(MAC, "passed", "sms 2/2, answered True")
    board.facts = dict(REGISTERED, **ident("LTE", False, None))  # the SIM was swapped
    assert provision().exit_code == 4
    with Registry() as reg:
        d = reg.get(MAC)
        # its old configuration is still on it (nothing was written), but it is not ready
        assert (d.state, d.voice, d.test_call_result) == ("provisioned", False, None)
        assert d.config_hash is not None
        with pytest.raises(RegistryConflict, match="NO VOICE"):
            reg.deliver(MAC, dry_run=True)
    # test-call refuses it before anything runs on the button (FakeBoard answers no test)
    r = run("test-call", "--port", "socket://fake:1")
    out = " ".join(r.output.split())
    assert r.exit_code == 7 and "cannot test call BS-0001" in out and "NO VOICE" in out, r.output


def test_deliver_refuses_a_button_recorded_without_voice(board):
    board.facts = dict(REGISTERED, **ident("GSM", True, "2G"))
    assert provision().exit_code == 0
    with Registry() as reg:
        reg.record_no_voice(MAC, "LTE, SMS only")
    r = run("devices", "deliver", "BS-0001", "--port", "socket://fake:1")
    assert r.exit_code == 7 and "NO VOICE" in " ".join(r.output.split()), r.output


def test_an_unknown_voice_keeps_todays_behaviour_for_an_unregistered_modem(board):
    board.facts = dict(REGISTERED, registered=False, **{k: v for k, v in ident(None, None, None).items()
                                                        if k not in ("modem", "registered")})
    r = provision()
    assert r.exit_code == 4 and "no network: the SIM is not registered" in r.output
    with Registry() as reg:
        assert reg.get(MAC).voice is None  # nothing recorded about voice


@pytest.mark.parametrize("facts, row", [
    (ident("LTE", True, "VoLTE"), "LTE, voice over LTE"),
    (ident("LTE", False, None), "LTE, SMS only: NO VOICE"),
    ({"modem": True}, "unknown (firmware does not report it)"),
    (ident("[bold]", None, None), "unknown (the firmware reported rat='[bold]'"),  # shown as sent
])
def test_status_shows_the_network_row(board, facts, row):
    board.facts = dict({"fw": "1.0", "board": "ta7670x_a7670sa"}, **facts)
    r = run("status", "--port", "socket://fake:1")
    assert r.exit_code == 0, r.output
    assert row in " ".join(r.output.replace("│", " ").split())
    r = run("status", "--port", "socket://fake:1", "--json")
    assert json.loads(r.output)["network"].startswith(row)


# ------------------------------------------------------------------------ boton sim's rehearsal flags
def test_sim_flags_become_the_a7670s_options():
    a7670 = load_board("ta7670x_a7670sa")
    assert cli_sim._modem_options(a7670, "ta7670x_a7670sa", volte=None, gsm=None) == {}
    assert cli_sim._modem_options(a7670, "ta7670x_a7670sa", volte=False, gsm=False) == {"volte": False, "gsm": False}
    assert cli_sim._modem_options(a7670, "ta7670x_a7670sa", volte=True, gsm=None) == {"volte": True}
    assert "SMS only, NO VOICE" in cli_sim._modem_line("a7670", {"volte": False, "gsm": False})
    assert "voice by VoLTE and 2G fallback" in cli_sim._modem_line("a7670", {})
    assert "voice by 2G fallback" in cli_sim._modem_line("a7670", {"volte": False})
    # VoLTE failing silently on any module firmware (tests/scenarios/test_sc_a7670.py)
    assert cli_sim._modem_options(a7670, "ta7670x_a7670sa", lte_calls_drop=True) == {"lte_calls_drop": True}
    assert "calls on LTE end before ringing" in cli_sim._modem_line("a7670", {"lte_calls_drop": True})


def test_sim_flags_on_a_sim800_board_are_refused_by_name():
    r = CliRunner().invoke(cli.main, ["sim", "--no-2g"], input="")
    assert r.exit_code == 2
    assert "--2g/--no-2g: board tcall_sim800l_axp192 has a SIM800" in r.output
    r = CliRunner().invoke(cli.main, ["sim", "--lte-calls-drop"], input="")
    assert r.exit_code == 2 and "--lte-calls-drop: board tcall_sim800l_axp192 has a SIM800" in r.output
    with pytest.raises(DeviceError, match="--volte/--no-volte and --2g/--no-2g"):
        cli_sim._modem_options(load_board("devkitc_sim800l_neo6m"), "devkitc_sim800l_neo6m", volte=True, gsm=True)


# ------------------------------------------------------------------------ waiting for the network
class LookingBoard:
    """identity() answers from a script of looks, the last one repeated."""

    def __init__(self, looks):
        self.looks, self.asked, self.timeouts = looks, 0, []

    def exec_firmware(self, code, timeout=None):
        self.timeouts.append(timeout)
        look = self.looks[min(self.asked, len(self.looks) - 1)]
        self.asked += 1
        return (json.dumps(dict({"modem": True, "rssi": 20, "iccid": "8952"}, **look)) + "\n").encode()


def test_a_registered_modem_is_not_waited_for_whatever_voice_says():
    # identity() settles voice itself (an A7670's 2G fallback): registered is enough
    for look in (ident("LTE", None, None), ident("LTE", False, None), {"registered": True}):
        clock, dev = FakeClock(), LookingBoard([look, ident("GSM", True, "2G")])
        got, waited = prov.wait_for_network(dev, 60, clock=clock, pause=clock.pause)
        assert got["registered"] and dev.asked == 1 and waited == 0


def test_identity_gives_the_modem_time_for_the_2g_fallback():
    dev = LookingBoard([ident("GSM", True, "2G")])
    prov.identity(dev)
    # ~40 s to switch to 2G and ~60 s to register on a real A7670, plus the queries
    assert dev.timeouts == [prov.IDENTITY_TIMEOUT_S] and prov.IDENTITY_TIMEOUT_S >= 120



@pytest.mark.parametrize("extra, line, every", [
    ((), "daily status SMS: none (no --programme-number): `boton reports` will list it as sending none", 0),
    (("--programme-number", "449 555 0000"), "daily status SMS: to the programme's phone +52********00", 86400),
])
def test_provision_says_where_the_daily_status_sms_go(board, extra, line, every):
    # without a programme number the button never reports, and the programme cannot tell
    # it from a button that went quiet: provision says which it is
    board.facts = dict(REGISTERED, **ident("GSM", True, "2G", family="sim800"))
    r = run("provision", "--port", "socket://fake:1", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
            "--c4", DEFAULT_C4, "--wait-network", "0", *extra)
    assert r.exit_code == 0, r.output
    assert line in r.output
    # ... and the registry records it, so `boton reports` judges this button by its own period
    with Registry() as reg:
        assert reg.get(MAC).daily_interval_s == every == rules.daily_interval_s(board.written[-1])
        assert reg.audit(MAC)[-1]["detail"].endswith(
            "daily status SMS: none (no programme number)" if not every else "daily status SMS every 86400 s")


def test_a_delivered_button_provisioned_without_a_programme_number_is_not_a_reports_alarm(board, monkeypatch):
    # provisioned from her case without --programme-number, it never reports: `boton
    # reports` says so instead of NO REPORT forever, and exits 0 for it (cron stays quiet)
    from cryptography.fernet import Fernet

    from boton.registry import CaseData

    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())
    with Registry() as reg:
        reg.add_device(MAC, label="BS-0001")
        reg.assign(MAC, CaseData(alias="Luna", case_id="AGS/2024/00731", contacts=["449 111 2233"],
                                 order_ends="2031-01-31"))
    board.facts = dict(REGISTERED, **ident("GSM", True, "2G", family="sim800"))
    r = run("provision", "--port", "socket://fake:1", "--c4", DEFAULT_C4, "--wait-network", "0")
    assert r.exit_code == 0, r.output
    assert board.written[-1]["programme_number"] == ""
    with Registry() as reg:
        reg.record_test_call(MAC, True, "ok")
        reg.deliver(MAC)
        reg.db.execute("UPDATE devices SET delivered_at = '2025-01-01T00:00:00Z' WHERE mac = ?", (MAC,))
    r = run("reports")
    assert r.exit_code == 0, r.output
    assert "no reports configured" in r.output and "NO REPORT" not in r.output
