"""A button's event log tampered with on its flash (issue 10, item 4), on the virtual
device: once `boton logs` has anchored the log in the registry (its head and count), a
log rewritten with its chain recomputed, cut at its head or tail, or deleted is reported
(exit 5); and the head a daily status SMS reported is checked with `boton logs --sms-head`."""
import contextlib
import json

from click.testing import CliRunner

from boton.cli import main
from boton.device import Device
from boton.eventlog_check import firmware_eventlog
from boton.registry import Registry
from rigkit import provisioned_device


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@contextlib.contextmanager
def paused(vd):
    """The firmware stopped (a REPL session holds the board), as a tamperer with the flash
    in hand would have it: nothing writes the log meanwhile; it boots again after."""
    with Device(vd.repl_url):
        yield


def segments(vd):
    return {p.name: p.read_text() for p in sorted(vd.flash_dir.glob("log.*"))}


def put_segments(vd, segs):
    for p in vd.flash_dir.glob("log.*"):
        p.unlink()
    for name, text in segs.items():
        (vd.flash_dir / name).write_text(text)


def entries(segs):
    """[(segment name, line)], oldest first, as the firmware orders its segments."""
    rows = [(name, line) for name, text in segs.items() for line in text.splitlines() if line]
    return sorted(rows, key=lambda r: int(r[1].split(" ", 1)[0]))


def rewrite(segs, seq, detail):
    """Entry `seq` gets another detail and the whole chain is recomputed from the genesis,
    with the firmware's own chain function: every entry's hash is again a valid link."""
    chain, prev = firmware_eventlog().chain, firmware_eventlog().GENESIS
    out = {name: "" for name in segs}
    for name, line in entries(segs):
        body = line.rsplit(" ", 1)[0]
        if int(body.split(" ", 1)[0]) == seq:
            parts = body.split(" ")
            body = " ".join(parts[:3] + [detail])
        prev = chain(prev, body)
        out[name] += f"{body} {prev}\n"
    return out


def keep(segs, wanted):
    """Only the entries whose number passes wanted(seq), in their segments."""
    out = {name: "" for name in segs}
    for name, line in entries(segs):
        if wanted(int(line.split(" ", 1)[0])):
            out[name] += line + "\n"
    return out


def refused(r, *why):
    assert r.exit_code == 5, r.output
    assert "ALTERED" in r.output and any(w in r.output for w in why), r.output


def test_forged_cut_and_deleted_logs_are_reported(tmp_path):
    with provisioned_device(tmp_path) as vd:
        assert run("devices", "add", vd.mac).exit_code == 0
        r = run("logs", "--port", vd.repl_url, "--json")
        assert r.exit_code == 0, r.output
        seen = json.loads(r.output)["entries"]
        seq, hash16 = seen[-1].split(" ")[0], seen[-1].rsplit(" ", 1)[1]
        with Registry() as reg:                       # the anchor: head and count
            assert reg.log_anchor(vd.mac)["seq"] == int(seq)
            assert f"{len(seen)} entries intact; head at entry {seq} {hash16}" in reg.audit(vd.mac)[-1]["detail"]

        # the head a daily status SMS carries ("Log 57:a1b2c3"), checked against the log
        r = run("logs", "--port", vd.repl_url, "--sms-head", f"Log {seq}:{hash16[:6]}")
        assert r.exit_code == 0 and "matches the SMS head" in r.output, r.output
        wrong = ("1" if hash16[0] == "0" else "0") + hash16[1:6]
        r = run("logs", "--port", vd.repl_url, "--sms-head", f"{seq}:{wrong}")
        refused(r, f"SMS head: entry {seq} is not the one the SMS reported")
        for head in ("57", "Log 0:000000"):   # entries count from 1: no SMS gave head 0
            r = run("logs", "--port", "socket://127.0.0.1:9", "--sms-head", head)
            assert r.exit_code == 2 and "SEQ:HEX" in r.output     # before the port is opened

        with paused(vd):
            pristine = segments(vd)
        with Registry() as reg:
            anchor = reg.log_anchor(vd.mac)["seq"]    # moved by the passed --sms-head check
        tampered = {
            "rewritten, chain recomputed": (lambda s: rewrite(s, 2, "otra_cosa"), ("the log was rewritten",)),
            "first entries cut": (lambda s: keep(s, lambda n: n > 3), ("its first entries were removed",)),
            # the firmware then goes on from the cut: the log ends short, or its new entries
            # stand where the anchored ones were
            "last entries cut": (lambda s: keep(s, lambda n: n < anchor - 2),
                                 ("entries were removed", "or cut, and written on since")),
            "deleted": (lambda s: {}, ("entries were removed", "or cut, and written on since", "it was deleted")),
        }
        for name, (tamper, why) in tampered.items():
            with paused(vd):
                put_segments(vd, tamper(pristine))
            refused(run("logs", "--port", vd.repl_url), *why)
        with paused(vd):                               # the same log untouched still passes
            put_segments(vd, pristine)
        r = run("logs", "--port", vd.repl_url)
        assert r.exit_code == 0 and "matches the registry's last check" in r.output, r.output
        with Registry() as reg:
            assert [a["action"] for a in reg.audit(vd.mac)][-6:] == ["log_check_failed"] * 5 + ["log_check"]
