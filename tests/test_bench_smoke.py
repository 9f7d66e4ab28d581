"""Keeps `make bench` from rotting: its cheap parts run here (no timing is asserted).

The expensive figures (alert latency, heap in the running device, provisioning, standby)
drive virtual devices for a minute or more; they run in `make bench` only.
"""
import json

import pytest

from boton.bench import Context, __main__ as bench_main, nmea_speed, size, standby
from boton.bench.rigtap import is_final, split_turns, turns

SMALL_LOG = "april6_2019.log"


@pytest.fixture
def ctx(tmp_path):
    c = Context(workdir=tmp_path, quick=True)
    yield c
    c.close()


def by_key(rows):
    return {r.key: r for r in rows}


def test_size_counts_every_deployed_module(ctx):
    rows = by_key(size.run(ctx))
    total = rows["size.total_kb"]
    assert total.value > 0 and total.ok is None
    files = total.detail["files"]
    assert "boot.py" in files and "lib/app.mpy" in files
    assert total.detail["bytes"] == sum(files.values())


def test_nmea_throughput_on_one_small_log(ctx, captures):
    paths = nmea_speed.logs([SMALL_LOG])
    assert [p.name for p in paths] == [SMALL_LOG]
    rows = by_key(nmea_speed.run(ctx, paths=paths))
    ok = rows["nmea.logs_ok"]
    assert ok.value == 1 and ok.ok is True, ok.note
    assert rows["nmea.bytes_per_s"].value > 0
    assert rows["nmea.sentences_per_s"].value > 0
    assert 0 < rows["nmea.cpu_share_9600"].value
    per_kind = rows["nmea.alloc_bytes_per_sentence"].detail["per_kind"]
    assert per_kind and all(v["sentences"] > 0 for v in per_kind.values())


def test_split_turns_gives_the_gap_after_a_reply_to_the_firmware():
    log = [(10.0, "rx", b"AT+CMIC=0,15\r"), (10.02, "tx", b"\r\nOK\r\n"),
           (10.025, "rx", b"ATD+524499100000;\r"), (10.05, "tx", b"\r\nOK\r\n"),
           (10.06, "rx", b'AT+CMGS="+524491112233"\r'), (10.08, "tx", b"\r\n> "),
           (10.085, "rx", b"hola\x1a"), (13.0, "tx", b"\r\n+CMGS: 1\r\n\r\nOK\r\n")]
    fw, modem, n = split_turns(log, 9.999, 10.025)
    assert n == 2  # commands up to and including the one at t1
    assert fw == pytest.approx(0.001 + 0.005)
    assert modem == pytest.approx(0.02)
    fw, modem, n = split_turns(log, 9.999, 13.0)
    assert n == 4 and fw == pytest.approx(0.001 + 0.005 + 0.01 + 0.005)
    assert fw + modem == pytest.approx(13.0 - 9.999)
    assert is_final(b"\r\n+CME ERROR: 3\r\n") and not is_final(b"\r\n+CLCC: 1,0,2,0,0\r\n")


def test_standby_model_keeps_a_part_awake_that_the_firmware_never_sleeps():
    measured = {"cpu_share": 0.02, "modem_asleep_share": 0.0, "gps_enable_driven": []}
    facts = {"esp_sleep_calls": 0, "modem_csclk": False, "gps_uart_writes": 0}
    pm = standby.model(measured, facts)
    assert pm["i_total"] == pytest.approx(standby.I_ESP_ACTIVE + standby.I_MODEM_IDLE + standby.I_GPS_ON)
    lo, hi = pm["i_total_range"]
    assert lo < pm["i_total"] < hi
    assert standby.target_current() < standby.target_current(pm) < pm["i_total"]
    assert set(standby.static_facts()) == set(facts)


def test_main_writes_the_table_as_json_and_exits_0(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main.main(["--only", "size", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["missed"] == []
    assert {r["key"] for r in data["rows"]} == {"size.total_kb", "size.mpy_kb"}
    assert "make bench" in capsys.readouterr().out


def test_main_rejects_an_unknown_figure(tmp_path):
    with pytest.raises(SystemExit):
        bench_main.main(["--only", "nope", "--json", str(tmp_path / "b.json")])


def test_a_command_the_sleeping_modem_never_answered_is_counted_apart():
    log = [(1.0, "rx", b"AT\r"), (1.15, "rx", b"AT+CMIC=0,15\r"), (1.17, "tx", b"\r\nOK\r\n"),
           (1.175, "rx", b"ATD+524499100000;\r")]
    r = turns(log, 0.999, 1.175)
    assert r["commands"] == 3
    assert r["unanswered"] == pytest.approx(0.15)
    assert r["modem"] == pytest.approx(0.02)
    assert r["firmware"] == pytest.approx(0.001 + 0.005)


def test_mpy_names_are_the_names_a_module_interns_as_it_loads(tmp_path):
    from boton import build
    from boton.bench import memory
    src = tmp_path / "probe.py"
    src.write_text("SOME_LIMIT = 3\n\ndef crash_loop_check(arg):\n    return arg.something_else\n"
                   "print('short text', 'a text longer than ten')\n")
    names = memory.mpy_names(build.compile_module(src, cache=tmp_path))
    assert {"SOME_LIMIT", "crash_loop_check", "something_else", "short text", "probe"} <= names
    assert "print" not in names            # in every build's own table: nothing to intern
    assert "a text longer than ten" not in names   # a str object, not a name
    with pytest.raises(ValueError):
        memory.mpy_names(b"not an mpy")


def test_the_worst_alert_harness_is_frozen_into_the_32bit_builds(mpy):
    """On a chip the bench's scenario and its stand-in machine do not exist: frozen, their
    code and names take no heap (unfrozen they had pushed the .mpy firmware's names past
    MicroPython's 1,260 and its 9 KB qstr pool)."""
    from boton import frozen
    builds = [frozen.unix32(frozen=False), frozen.unix32(frozen=True)]
    if any(b.exe is None for b in builds):
        pytest.skip(builds[0].reason or builds[1].reason)
    for b in builds:
        out = mpy.run("import sys\nsys.path[:] = ['.frozen']\nimport worstalert\n"
                      "print('FROZEN', type(worstalert.main).__name__)", exe=b.exe)
        assert "FROZEN function" in out, out


def test_the_device_row_is_the_heap_the_alert_completes_in_every_time(monkeypatch, tmp_path):
    """One binary search read the device row 51 to 54 KB on the same firmware: a pass at a
    size where the next run fails. The row is the smallest heap where the binary search's
    answer and DEVICE_CONFIRM_RUNS more runs all complete."""
    from boton.bench import memory
    # completes from 53 KB always; at 51 and 52 KB once each, then no more
    lucky = {51: 1, 52: 1}
    sizes = []

    def run(workdir, interpreter, board):
        kb = int(interpreter.heap.rstrip("k"))
        sizes.append(kb)
        if kb >= 53 or lucky.get(kb, 0) > 0:
            lucky[kb] = lucky.get(kb, 0) - 1
            return {"ok": True, "why": ""}
        return {"ok": False, "why": "MemoryError"}

    monkeypatch.setattr(memory, "device_worst_alert", run)
    assert memory.device_min_heap_kb(tmp_path, "micropython", lo=36, hi=60) == (53, "at 52 KB: MemoryError")
    assert sizes[-memory.DEVICE_CONFIRM_RUNS:] == [53] * memory.DEVICE_CONFIRM_RUNS
