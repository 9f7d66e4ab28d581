"""The virtual device's phone network reaches every valid number, as a real one does: a
technician rehearses with the programme's real C4 number and real-looking contacts, and
scripts with `boton sim --phone` the numbers that must not answer."""
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner

from boton.cli import main
from boton.rules import mask
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT
from rigkit import FAST, demo_config, programme_boards, provisioned_device

BOTON = str(Path(sys.executable).parent / "boton")
REAL_C4 = "+524499946605"      # the programme's C4, as the technician types it below
STRANGER = "+524495557788"     # a trusted contact the rig was not told about
BUSY_C4 = "+524491234567"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class SimProcess:
    """`boton sim` in the background; its stdout lines, waited on as they arrive."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([BOTON, "sim", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._new = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_line(self, predicate, timeout=30):
        """The first line so far or to come that satisfies predicate."""
        for line in self.lines:
            if predicate(line):
                return line
        while True:
            line = self._new.get(timeout=timeout)
            assert line is not None, "boton sim ended:\n" + "\n".join(self.lines)
            self.lines.append(line)
            if predicate(line):
                return line

    def network_events(self):
        return [json.loads(line[len("network: "):]) for line in self.lines if line.startswith("network: ")]

    def wait_event(self, predicate, timeout=30):
        line = self.wait_line(lambda s: s.startswith("network: ") and predicate(json.loads(s[9:])), timeout)
        return json.loads(line[9:])

    def quit(self):
        self.proc.communicate("quit\n", timeout=30)
        return self.proc.returncode


def test_sim_provision_with_the_real_c4_and_test_call_passes(tmp_path, monkeypatch):
    programme_boards(tmp_path, monkeypatch, REAL_C4)   # safe mode calls the real C4 too
    flash = install(tmp_path / "flash", "tcall_sim800l_axp192", None)
    sim = SimProcess("--flash", str(flash), "--time-scale", str(FAST), "--c4-stay", "60",
                     "--phone", f"{BUSY_C4}=busy", "--network-log", str(tmp_path / "net.jsonl"))
    try:
        url = sim.wait_line(lambda s: "REPL at" in s).split("REPL at ")[1].strip()
        scripted = sim.wait_line(lambda s: "is scripted" in s)
        assert "+52********67 is scripted: busy" in scripted and BUSY_C4 not in scripted
        others = sim.wait_line(lambda s: "any other valid number answers" in s)
        assert "hangs up after 60 s" in others
        assert sim.wait_event(lambda e: e["kind"] == "phone") == {
            "kind": "phone", "t": sim.network_events()[0]["t"], "number": mask(BUSY_C4), "origin": "scripted",
            "behaviour": "busy", "answer_after_s": None, "hangup_after_s": None}
        sim.wait_line(lambda s: s.startswith("device: EV ready"))  # booted (safe mode: no config)

        r = run("provision", "--port", url, "--alias", "Luna", "--contact", "449 555 7788",
                "--c4", "+52 449 994 6605")
        assert r.exit_code == 0, r.output
        r = run("test-call", "--port", url, "--timeout", "60")
        assert r.exit_code == 0, r.output
        assert "C4 call answered: yes -> ok" in r.output

        call = sim.wait_event(lambda e: e["kind"] == "call" and e["to"] == mask(REAL_C4))
        assert call["answered"] is True and call["result"] == "answered"
        # The window shows numbers masked (her contacts' real numbers in a rehearsal); the
        # JSON-lines log keeps them whole, and says the same otherwise.
        assert not [ln for ln in sim.lines if REAL_C4[3:] in ln or STRANGER[3:] in ln]
        logged = [json.loads(line) for line in (tmp_path / "net.jsonl").read_text().splitlines()]
        assert [{k: mask(v) if k in ("from", "to", "number") else v for k, v in e.items()}
                for e in logged[:len(sim.network_events())]] == sim.network_events()
        auto = {e["number"] for e in logged if e["kind"] == "phone" and e["origin"] == "auto"}
        assert REAL_C4 in auto
        sms = [e for e in logged if e["kind"] == "sms" and e["to"] in (REAL_C4, STRANGER)]
        assert sms and all(e["delivered"] for e in sms)
        assert not [e for e in logged if e.get("to") in (DEFAULT_C4, DEFAULT_CONTACT)]
    finally:
        if sim.proc.poll() is None:
            assert sim.quit() == 0


def test_a_scripted_busy_c4_is_redialled_then_the_next_c4_answers(tmp_path):
    cfg = demo_config(c4=[BUSY_C4, REAL_C4], contacts=[STRANGER])
    cfg.update(attempts_per_number=2, redial_backoff_s=[1], cycle_backoff_s=2)  # short, real seconds
    with provisioned_device(tmp_path, config=cfg, c4_hangup_after_s=60,
                            phones={BUSY_C4: {"behaviour": "busy"}}) as vd:
        mark = len(vd.events)
        vd.press(hold_s=1.0)
        vd.wait_event(lambda e: e["kind"] == "call_connected" and e["to"] == REAL_C4, after=mark,
                      timeout=60)
        calls = [(e["to"], e["result"]) for e in vd.events[mark:] if e["kind"] == "call"]
        assert calls == [(BUSY_C4, "busy"), (BUSY_C4, "busy")]
        phones = {e["number"]: e["origin"] for e in vd.events if e["kind"] == "phone"}
        assert phones == {BUSY_C4: "scripted", REAL_C4: "auto", STRANGER: "auto"}


def test_bad_phone_options_are_one_line_exit_2(tmp_path):
    for args, message in [
        (["--phone", "4499946605"], "is not NUMBER=BEHAVIOUR"),
        (["--phone", "4499946605=maybe"], "use one of answer, busy, no_answer, reject, unreachable"),
        (["--phone", "12345=busy"], "is not a valid number"),
        (["--phone", "4499946605=answer:-3"], "give 0 to 300 seconds"),
        (["--phone", "4499946605=busy", "--phone", "+52 449 994 6605=answer"], "scripted twice"),
        (["--c4-stay", "0"], "--c4-stay"),
        (["--ticks-wrap-in", "-5"], "--ticks-wrap-in"),
    ]:
        r = CliRunner().invoke(main, ["sim", "--flash", str(tmp_path / "f"), *args])
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and "4499946605" not in r.output, (args, r.output)
        assert not (tmp_path / "f").exists()  # refused before any rig was made
