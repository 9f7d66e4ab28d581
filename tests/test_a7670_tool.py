"""The T-A7670X (A7670SA, LTE + VoLTE, 2G fallback) through the technician's whole tool, on
`boton sim --board ta7670x_a7670sa`: deploy, provision, status, test-call; and a SIM
without VoLTE where 2G is gone, which provision must refuse (SMS only: she could not
call C4)."""
import json
import re

import pytest
from click.testing import CliRunner

from boton.cli import main
from boton.registry import Registry
from boton.rules import mask
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from rigkit import FAST
from test_sim_phones import SimProcess

BOARD = "ta7670x_a7670sa"
SECOND_CONTACT = "+524495557788"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def flat(text):
    """Output as one line: rich wraps long lines to the terminal."""
    return " ".join(text.replace("│", " ").split())


def start_sim(tmp_path, *flags):
    """`boton sim` of a T-A7670X on a blank flash folder: (process, REPL URL)."""
    sim = SimProcess("--board", BOARD, "--flash", str(tmp_path / "flash"), "--time-scale", str(FAST),
                     "--c4-stay", "60", "--network-log", str(tmp_path / "net.jsonl"), *flags)
    url = sim.wait_line(lambda s: "REPL at" in s).split("REPL at ")[1].strip()
    return sim, url


def stop(sim):
    if sim.proc.poll() is None:
        assert sim.quit() == 0


def deploy_and_provision(url):
    r = run("deploy", "--port", url, "--board", BOARD)
    assert r.exit_code == 0, r.output
    return run("provision", "--port", url, "--alias", "Luna", "--contact", DEFAULT_CONTACT,
               "--contact", SECOND_CONTACT, "--c4", DEFAULT_C4)


def test_t_a7670x_with_volte_deploys_provisions_and_passes_its_test_call(tmp_path):
    sim, url = start_sim(tmp_path)
    try:
        assert "modem: A7670" in sim.wait_line(lambda s: s.startswith("modem: "))
        r = deploy_and_provision(url)
        assert r.exit_code == 0, r.output
        assert "network: LTE, voice over LTE" in flat(r.output)
        board = json.loads((tmp_path / "flash" / "board.json").read_text())
        assert board["id"] == BOARD and board["modem"]["family"] == "a7670"
        with Registry() as reg:
            (d,) = reg.list()
        assert (d.state, d.voice) == ("provisioned", True)

        r = run("status", "--port", url)
        assert r.exit_code == 0, r.output
        assert re.search(r"\bnetwork LTE, voice over LTE\b", flat(r.output))

        r = run("test-call", "--port", url, "--timeout", "90")
        assert r.exit_code == 0, r.output
        for role, number in (("contact #1", DEFAULT_CONTACT), ("contact #2", SECOND_CONTACT),
                             ("C4", DEFAULT_C4)):
            assert f"SMS to {role} {mask(number)}: accepted" in r.output
        assert "C4 call answered: yes -> ok" in r.output
        # the window shows numbers masked (boton sim)
        call = sim.wait_event(lambda e: e["kind"] == "call" and e["to"] == mask(DEFAULT_C4))
        assert call["answered"] is True
        sms = [e for e in sim.network_events() if e["kind"] == "sms"]
        assert {e["to"] for e in sms if e["delivered"]} >= {mask(DEFAULT_CONTACT), mask(SECOND_CONTACT)}
    finally:
        stop(sim)


@pytest.mark.parametrize("flags, modem_line, refusal", [
    (("--no-volte", "--no-2g"), "SMS only, NO VOICE", ("LTE, SMS only: NO VOICE", "VoLTE")),
    # LilyGO-Modem-Series #240: A110B01A7670M7_F drops every call on LTE, on a VoLTE SIM
    (("--modem-revision", "A110B01A7670M7_F"), "module firmware A110B01A7670M7_F",
     ("NO VOICE — module firmware A110B01A7670M7_F drops every call on LTE", "B07")),
])
def test_t_a7670x_that_cannot_call_c4_is_refused_by_provision(tmp_path, flags, modem_line, refusal):
    """A SIM without VoLTE where 2G is gone, or a module firmware that drops LTE calls:
    nothing written, not ready, and the test call refused before it texts anyone."""
    sim, url = start_sim(tmp_path, *flags)
    try:
        assert modem_line in sim.wait_line(lambda s: s.startswith("modem: "))
        r = deploy_and_provision(url)
        assert r.exit_code == 4, r.output
        out = flat(r.output)
        assert all(phrase in out for phrase in refusal) and "not marked ready" in out
        assert not (tmp_path / "flash" / "config.json").exists()  # nothing written
        with Registry() as reg:
            (d,) = reg.list()
        assert (d.state, d.voice) == ("in_stock", False)
        r = run("test-call", "--port", url, "--timeout", "30")
        assert r.exit_code == 7, r.output
        assert not [e for e in sim.network_events() if e["kind"] in ("sms", "call")]
    finally:
        stop(sim)


def test_a_modem_revision_that_at_cgmr_could_not_print_is_refused():
    r = run("sim", "--board", BOARD, "--modem-revision", "B01\r\nOK")
    assert r.exit_code == 2 and "--modem-revision" in r.output and "AT+CGMR" in r.output
