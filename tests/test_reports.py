"""`boton reports`: the daily status SMS of the delivered buttons, imported from an export of
the programme's phone (registry_reports.py), and which buttons need a visit. The bodies are
the firmware's own (firmware/lib/sms.py daily_status_text, run on CPython)."""
import datetime as dt
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from boton import registry_schema, rules
from boton.cli import main
from boton.errors import EXIT_ATTENTION, EXIT_USAGE, RegistryError
from boton.paths import FIRMWARE
from boton.registry import CaseData, Registry
from boton import registry_reports as RR

sys.path.insert(0, str(FIRMWARE / "lib"))
import sms  # noqa: E402
from supervision import Supervision  # noqa: E402

MAC1, MAC2, MAC3 = "24:6f:28:00:00:01", "24:6f:28:00:00:02", "24:6f:28:00:00:03"
PERSONAL = "Hola amiga nos vemos en casa de mi mama a las 5"
SENDER = "+524497654321"
SECRETS = ["Luna", "Maria Lopez", "AGS/2024/00731", "4491112233", PERSONAL, "4497654321"]
NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.timezone.utc)


def body(label="BS-0001", **kw):
    args = dict(battery=86, rssi=18, gps="ok", sats=7, fw="0.1.0", alerts=0, uptime_h=51,
                log_head=(57, "a1b2c3d4e5f60718"))
    args.update(kw)
    return sms.daily_status_text(device_id=label, **args)


def ms(t):
    return str(int(t.timestamp() * 1000))


def xml(*sms_list):
    """An SMS Backup & Restore file: (time, body[, type])."""
    rows = []
    for s in sms_list:
        t, text, kind = (*s, "1") if len(s) == 2 else s
        text = text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        rows.append(f'  <sms protocol="0" address="{SENDER}" date="{ms(t)}" type="{kind}" subject="null" '
                    f'body="{text}" read="1" status="-1" readable_date="x" contact_name="(Unknown)" />')
    return ("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n"
            f'<smses count="{len(rows)}" backup_set="x">\n' + "\n".join(rows) + "\n</smses>\n")


@pytest.fixture
def env(registry_env):
    return registry_env


def delivered(env, m, label, at, every=None):
    """A delivered button (delivered at `at`) with her case, through the registry's API;
    every: the daily report period recorded at its provisioning (None: none recorded)."""
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.add_device(m, label=label, board="tcall_sim800l_axp192")
        reg.assign(m, CaseData(alias="Luna", case_id=f"AGS/2024/0073{label[-1]}",
                               contacts=[f"449 111 22{label[-2:]}"], order_ends="2031-01-31",
                               full_name="Maria Lopez"))
        reg.record_deploy(m, "ab" * 32)
        reg.record_provision(m, "cd" * 32, daily_interval_s=every)
        reg.record_test_call(m, True, "ok")
        reg.deliver(m)
        reg.db.execute("UPDATE devices SET delivered_at = ? WHERE mac = ?", (RR._iso(at), m))


def run(*args, code=0):
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == code, (res.stdout, res.stderr)
    for s in SECRETS:
        assert s not in res.stdout + res.stderr
    return res


def rows(env):
    con = sqlite3.connect(env["BOTON_REGISTRY"])
    try:
        return con.execute("SELECT * FROM daily_reports ORDER BY received_at").fetchall()
    finally:
        con.close()


# =========================================================================== the firmware's numbers
def _firmware_defaults():
    spec = importlib.util.spec_from_file_location("_reports_alert", FIRMWARE / "lib" / "alert.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.DEFAULTS


def test_the_period_and_the_battery_threshold_are_the_firmwares():
    d = _firmware_defaults()
    assert RR.DAILY_STATUS_S == d["daily_status_s"]
    assert RR.LOW_BATTERY_PCT == max(d["low_battery_pct"])
    # boton's configs never set their own period: every button reports at the default
    cfg = rules.build_config(alias="Luna", contacts=["449 111 2233"], c4=["449 910 0000"],
                             device_id="BS-0001", programme_number="449 300 0000")
    assert "daily_status_s" not in cfg


def _config(**kw):
    programme = kw.pop("programme_number", "449 300 0000")
    cfg = rules.build_config(alias="Luna", contacts=["449 111 2233"], c4=["449 910 0000"],
                             device_id="BS-0001", programme_number=programme)
    return dict(cfg, **kw)


@pytest.mark.parametrize("cfg", [
    _config(), _config(programme_number=None), _config(daily_status_s=0), _config(daily_status_s=None),
    _config(daily_status_s=-60), _config(daily_status_s=3600), _config(daily_status_s=2 * 86400),
    _config(daily_status_s=5 * 86400), _config(daily_status_s=9 * 86400),
    _config(programme_number=None, daily_status_s=3600), _config(programme_number=""),
])
def test_the_recorded_daily_interval_is_the_firmwares_own(cfg):
    # what the registry records at provisioning is what the button's supervision arms
    fw = Supervision(dict(_firmware_defaults(), **cfg)).daily_ms()
    assert rules.daily_interval_s(cfg) * 1000 == fw
    assert rules.DAILY_STATUS_DEFAULT_S == _firmware_defaults()["daily_status_s"]


# =========================================================================== import
def test_import_keeps_only_daily_reports_and_never_shows_or_stores_the_rest(env, tmp_path):
    delivered(env, MAC1, "BS-0001", NOW - dt.timedelta(days=5))
    t = NOW - dt.timedelta(hours=3)
    f = tmp_path / "sms.xml"
    f.write_text(xml((t, body()), (t + dt.timedelta(minutes=1), PERSONAL),
                     (t + dt.timedelta(minutes=2), body(), "2"),      # sent, not received
                     (t + dt.timedelta(minutes=3), body("BS-0099")),
                     (t + dt.timedelta(minutes=4), body("4491112233")),
                     (t + dt.timedelta(minutes=5), body()[:60])))
    out = run("reports", "import", str(f)).stdout
    assert "read 5 received SMS: 3 daily report(s), 1 new, 0 already in the registry; 1 other SMS skipped" in out
    assert "SMS #6: a daily report cut short or garbled at its GPS, not imported" in out
    assert "labels the registry does not hold, not imported: (not a label) (1), BS-0099 (1)" in out
    stored = rows(env)
    assert len(stored) == 1 and stored[0][0] == MAC1
    raw = b"".join(p.read_bytes() for p in Path(env["BOTON_REGISTRY"]).parent.iterdir())
    assert PERSONAL.encode() not in raw and b"4497654321" not in raw and b"reporte diario" not in raw
    # the same file again adds nothing
    out = run("reports", "import", str(f)).stdout
    assert "1 daily report(s)" not in out and "0 new, 1 already in the registry" in out
    assert len(rows(env)) == 1
    audit = json.loads(run("devices", "audit", "--json").stdout)
    assert [a["action"] for a in audit].count("reports_import") == 2
    assert "1 daily report(s) added, 0 already there, 2 of unknown labels, 1 unreadable, 1 other SMS" \
        in [a["detail"] for a in audit if a["action"] == "reports_import"][0]


def test_a_relabelled_buttons_reports_under_its_old_label_are_its_own(env, tmp_path):
    # her button carries its old label until it is provisioned again, and no other button
    # can be given that label: its reports under the old one are credited to it
    delivered(env, MAC1, "BS-0001", NOW - dt.timedelta(days=5))
    run("devices", "relabel", "BS-0001", "AGS-0001")
    f = tmp_path / "sms.xml"
    f.write_text(xml((NOW - dt.timedelta(hours=3), body("BS-0001"))))
    out = run("reports", "import", str(f)).stdout
    assert "1 new" in out and "does not hold" not in out
    assert [r[0] for r in rows(env)] == [MAC1]


def test_import_a_csv_with_its_columns(env, tmp_path):
    delivered(env, MAC1, "BS-0001", NOW - dt.timedelta(days=5))
    f = tmp_path / "sms.csv"
    f.write_text("received_at;from;body\n"
                 f"2025-03-09T08:15:00-06:00;{SENDER};{body(battery=15)}\n"
                 f"2025-03-09T09:00:00Z;{SENDER};{PERSONAL}\n", encoding="utf-8")
    got = json.loads(run("reports", "import", str(f), "--json").stdout)
    assert (got["sms"], got["reports"], got["added"], got["skipped"]) == (2, 1, 1, 1)
    assert rows(env)[0][1] == "2025-03-09T14:15:00Z"        # UTC, as the registry keeps time


@pytest.mark.parametrize("name, content, why", [
    ("missing.xml", None, "cannot read"),
    ("empty.csv", "", "the file is empty"),
    ("bin.dat", b"\x00\xff\xfe\x81garbage", "not an SMS export: line 1 is not UTF-8 text"),
    ("cut.xml", "<smses><sms date=\"1\" type=\"1\" body=\"x\"/>", "malformed XML at line 1"),
    ("other.xml", "<html><body>hi</body></html>", "not an SMS Backup & Restore file"),
    ("bomb.xml", '<!DOCTYPE s [<!ENTITY a "aaaa">]><smses/>', "declares entities"),
    ("date.xml", f'<smses><sms date="ayer" type="1" body="{PERSONAL}"/></smses>',
     "SMS #1: its date is not milliseconds since 1970"),
    ("cols.csv", f"when,who,text\n2025-03-09T08:15:00Z,{SENDER},{PERSONAL}\n",
     "line 1 is not the header row: the CSV needs columns received_at, from, body"),
    ("noheader.csv", f"2025-03-09T08:15:00Z,{SENDER},{PERSONAL}\n", "line 1 is not the header row"),
    ("fields.csv", f"received_at,from,body\n2025-03-09T08:15:00Z,{SENDER}\n", "line 3 has 2 fields"),
    ("nozone.csv", f"received_at,from,body\n2025-03-09T08:15:00,{SENDER},{PERSONAL}\n",
     "line 3, field 'received_at': not an ISO-8601 time with its UTC offset"),
    ("baddate.csv", f"received_at,from,body\n9 de marzo,{SENDER},{PERSONAL}\n", "line 3, field 'received_at'"),
])
def test_bad_input_is_one_line_exit_2_and_imports_nothing(env, tmp_path, name, content, why):
    delivered(env, MAC1, "BS-0001", NOW - dt.timedelta(days=5))
    f = tmp_path / name
    ok = f"2025-03-09T08:15:00Z,{SENDER},{body()}\n"
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        # a good report first: nothing of the file is imported all the same
        f.write_text(content.replace("\n", "\n" + ok, 1) if name.endswith(".csv") and content.count("\n") > 1
                     else content)
    res = run("reports", "import", str(f), code=EXIT_USAGE)
    assert why in res.stderr and res.stderr.startswith("error:") and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert rows(env) == []


def test_a_registry_from_before_reports_migrates_and_keeps_its_data(env):
    path = env["BOTON_REGISTRY"]
    with Registry(path) as reg:
        reg.add_device(MAC1, label="BS-0001")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TABLE daily_reports")
    con.execute("ALTER TABLE devices DROP COLUMN daily_interval_s")
    con.execute("ALTER TABLE devices DROP COLUMN c4_first")
    con.execute("PRAGMA user_version = 7")
    con.close()
    with Registry(path) as reg:
        assert reg.schema_version == len(registry_schema.MIGRATIONS) == 10
        assert reg.find("BS-0001").mac == MAC1
        assert reg.db.execute("SELECT count(*) FROM daily_reports").fetchone()[0] == 0


# =========================================================================== status
def test_flags_of_each_kind(env, tmp_path):
    old = NOW - dt.timedelta(days=30)
    for i, label in enumerate(["BS-0001", "BS-0002", "BS-0003", "BS-0004", "BS-0005", "BS-0006",
                               "BS-0007", "BS-0008"], 1):
        delivered(env, f"24:6f:28:00:00:{i:02x}", label, old)
    delivered(env, "24:6f:28:00:00:09", "BS-0009", NOW - dt.timedelta(hours=5))   # just delivered
    h = dt.timedelta(hours=1)
    f = tmp_path / "sms.xml"
    f.write_text(xml(
        # BS-0001: no report since delivery, only one from before it (a bench test)
        (old - 2 * h, body("BS-0001")),
        (NOW - 60 * h, body("BS-0002")),                                   # overdue
        (NOW - 26 * h, body("BS-0003")), (NOW - 2 * h, body("BS-0003")),   # well
        (NOW - 2 * h, body("BS-0004", battery=20)),
        (NOW - 2 * h, body("BS-0005", gps="mute", fix_age_s=600)),
        (NOW - 2 * h, body("BS-0006", voice=False)),
        (NOW - 26 * h, body("BS-0007", uptime_h=40)), (NOW - 2 * h, body("BS-0007", uptime_h=3)),
        (NOW - 2 * h, body("BS-0008", alerts=2)),
    ))
    run("reports", "import", str(f))
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.add_device(MAC3.replace("03", "0a"), label="BS-0010")          # in stock: not listed
        got = {b["label"]: b["flags"] for b in reg.report_status(now=NOW)}
        status = reg.report_status(now=NOW)
    assert got == {"BS-0001": ["NO REPORT"], "BS-0002": ["OVERDUE"], "BS-0003": [],
                   "BS-0004": ["LOW BATTERY"], "BS-0005": ["GPS NOT RESPONDING"], "BS-0006": ["NO VOICE"],
                   "BS-0007": ["RESTARTED"], "BS-0008": ["ALERTS"], "BS-0009": []}
    three = [b for b in status if b["label"] == "BS-0003"][0]["last_report"]
    assert three["age_s"] == 7200 and three["log_head"] == "57:a1b2c3" and three["gps_sats"] == 7


def test_a_button_provisioned_without_a_programme_number_is_not_flagged(env, tmp_path):
    # it was never meant to report: listed as such, never NO REPORT, and no exit 8 for it
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)     # the CLI's clock
    old = now - dt.timedelta(days=30)
    delivered(env, MAC1, "BS-0001", old, every=rules.daily_interval_s(_config(programme_number=None)))
    delivered(env, MAC2, "BS-0002", old, every=86400)
    f = tmp_path / "sms.xml"
    f.write_text(xml((now - dt.timedelta(hours=2), body("BS-0002"))))
    run("reports", "import", str(f))
    with Registry(env["BOTON_REGISTRY"]) as reg:
        got = {b["label"]: b for b in reg.report_status(now=now)}
    assert got["BS-0001"]["flags"] == [] and got["BS-0001"]["daily_interval_s"] == 0
    assert got["BS-0001"]["note"] == RR.NO_REPORTS_NOTE and got["BS-0001"]["overdue_after_s"] is None
    assert got["BS-0002"]["note"] is None and got["BS-0002"]["overdue_after_s"] == 54 * 3600
    out = run("reports").stdout                                         # exit 0
    assert "no reports configured" in out and "NO REPORT" not in out
    assert "all 1 delivered button(s) reported and are well" in out
    assert "1 delivered button(s) send no daily reports (provisioned without --programme-number)" in out
    data = json.loads(run("reports", "list", "--json").stdout)
    one = [b for b in data["buttons"] if b["label"] == "BS-0001"][0]
    assert (one["daily_interval_s"], one["interval_recorded"], one["flags"]) == (0, True, [])
    assert "no reports configured" in one["note"]
    assert (data["need_attention"], data["no_reports_configured"]) == (0, 1)
    # what a report it still sends says is judged all the same (one from a bench test with
    # a programme number, after delivery)
    f.write_text(xml((now - dt.timedelta(hours=1), body("BS-0001", battery=9))))
    run("reports", "import", str(f))
    assert "LOW BATTERY" in run("reports", code=EXIT_ATTENTION).stdout


def test_a_button_is_judged_by_its_own_period(env, tmp_path):
    # a 2-day period: a report 3 days ago is one missed report, not yet a visit; 5 days is
    delivered(env, MAC1, "BS-0001", NOW - dt.timedelta(days=30), every=2 * 86400)
    delivered(env, MAC2, "BS-0002", NOW - dt.timedelta(days=30))        # none recorded: 1 day
    f = tmp_path / "sms.xml"
    f.write_text(xml((NOW - dt.timedelta(days=3), body("BS-0001")), (NOW - dt.timedelta(days=3), body("BS-0002"))))
    run("reports", "import", str(f))
    with Registry(env["BOTON_REGISTRY"]) as reg:
        got = {b["label"]: b for b in reg.report_status(now=NOW)}
        later = {b["label"]: b["flags"] for b in reg.report_status(now=NOW + dt.timedelta(days=2))}
    assert got["BS-0001"]["flags"] == [] and got["BS-0001"]["overdue_after_s"] == 4 * 86400 + 6 * 3600
    assert got["BS-0002"]["flags"] == ["OVERDUE"] and got["BS-0002"]["interval_recorded"] is False
    assert later == {"BS-0001": ["OVERDUE"], "BS-0002": ["OVERDUE"]}
    # NO REPORT after its own two periods too
    delivered(env, MAC3, "BS-0003", NOW - dt.timedelta(days=3), every=2 * 86400)
    with Registry(env["BOTON_REGISTRY"]) as reg:
        assert {b["label"]: b["flags"] for b in reg.report_status(now=NOW)}["BS-0003"] == []
        assert {b["label"]: b["flags"] for b in reg.report_status(now=NOW + dt.timedelta(days=2))}["BS-0003"] \
            == ["NO REPORT"]


def test_a_registry_from_before_intervals_keeps_them_unknown_and_judged_as_before(env, tmp_path):
    old = NOW - dt.timedelta(days=30)
    delivered(env, MAC1, "BS-0001", old)
    delivered(env, MAC2, "BS-0002", old)
    path = env["BOTON_REGISTRY"]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("ALTER TABLE devices DROP COLUMN daily_interval_s")     # schema 8, as boton wrote it
    con.execute("ALTER TABLE devices DROP COLUMN c4_first")
    con.execute("PRAGMA user_version = 8")
    con.close()
    f = tmp_path / "sms.xml"
    f.write_text(xml((NOW - 60 * dt.timedelta(hours=1), body("BS-0002"))))
    run("reports", "import", str(f))
    with Registry(path) as reg:
        assert reg.schema_version == 10
        assert reg.get(MAC1).daily_interval_s is None
        got = {b["label"]: b for b in reg.report_status(now=NOW)}
    assert got["BS-0001"]["flags"] == ["NO REPORT"] and got["BS-0002"]["flags"] == ["OVERDUE"]
    assert {(b["daily_interval_s"], b["interval_recorded"]) for b in got.values()} == {(86400, False)}
    run("reports", code=EXIT_ATTENTION)


def test_an_interval_the_firmware_cannot_have_is_refused(env):
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.add_device(MAC1, label="BS-0001")
        reg.record_deploy(MAC1, "ab" * 32)
        for bad in (-1, 432001, "86400", True):
            with pytest.raises(RegistryError, match="daily report interval"):
                reg.record_provision(MAC1, "cd" * 32, daily_interval_s=bad)
        assert reg.get(MAC1).daily_interval_s is None


def test_one_missed_report_is_not_yet_overdue_and_a_third_day_is():
    last = {"received_at": "2025-03-08T11:00:00Z", "battery_pct": 80, "gps": "ok", "voice": None,
            "uptime_h": 10, "alerts": 0}
    assert RR.judge("2025-03-01T00:00:00Z", last, None, NOW) == []                     # 49 h
    assert RR.judge("2025-03-01T00:00:00Z", last, None, NOW + dt.timedelta(hours=6)) == ["OVERDUE"]
    # the uptime rounds down to whole hours: a report a day later with 23 h up is no restart
    prev = dict(last, received_at="2025-03-07T11:20:00Z")
    assert RR.judge("2025-03-01T00:00:00Z", dict(last, uptime_h=23), prev, NOW) == []
    assert RR.judge("2025-03-01T00:00:00Z", dict(last, uptime_h=21), prev, NOW) == ["RESTARTED"]


def test_the_list_command_table_json_and_exit_codes(env, tmp_path):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    delivered(env, MAC1, "BS-0001", now - dt.timedelta(days=3))
    delivered(env, MAC2, "BS-0002", now - dt.timedelta(days=3))
    f = tmp_path / "sms.csv"
    f.write_text("received_at,from,body\n"
                 f"{RR._iso(now - dt.timedelta(hours=2))},{SENDER},{body('BS-0001')}\n"
                 f"{RR._iso(now - dt.timedelta(hours=3))},{SENDER},{body('BS-0002', battery=9)}\n")
    run("reports", "import", str(f))
    out = run("reports", "list", code=EXIT_ATTENTION).stdout
    assert "BS-0001" in out and "BS-0002" in out and "LOW BATTERY" in out and "2 h ago" in out
    assert "1 of 2 delivered button(s) need attention" in out
    assert run("reports", code=EXIT_ATTENTION).stdout == out          # `reports` alone is `reports list`
    data = json.loads(run("reports", "list", "--json", code=EXIT_ATTENTION).stdout)
    assert data["need_attention"] == 1 and data["overdue_after_s"] == 2 * 86400 + 6 * 3600
    assert [(b["label"], b["flags"]) for b in data["buttons"]] == [("BS-0001", []), ("BS-0002", ["LOW BATTERY"])]
    # the button is charged: the next report clears it, and all is well (exit 0)
    f.write_text("received_at,from,body\n"
                 f"{RR._iso(now - dt.timedelta(minutes=30))},{SENDER},{body('BS-0002', battery=95, uptime_h=60)}\n")
    run("reports", "import", str(f))
    assert "all 2 delivered button(s) reported and are well" in run("reports", "list").stdout


def test_a_report_dated_in_the_future_is_not_imported_and_never_hides_a_silent_button(env, tmp_path):
    """A phone with a wrong clock (or a year typed wrong in a CSV): the report dated 2062 was
    the button's latest for decades, "0 min ago", and the button never showed OVERDUE again."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    delivered(env, MAC1, "BS-0001", now - dt.timedelta(days=5))
    f = tmp_path / "sms.csv"
    f.write_text("received_at,from,body\n"
                 f"2062-03-10T10:00:00-06:00,{SENDER},{body('BS-0001')}\n"
                 f"{RR._iso(now + dt.timedelta(minutes=20))},{SENDER},{body('BS-0001', uptime_h=52)}\n")
    res = run("reports", "import", str(f))
    assert "line 2: a daily report dated 2062-03-10T16:00:00Z, later than now" in res.stdout
    assert "not imported" in res.stdout
    assert [r[1] for r in rows(env)] == [RR._iso(now + dt.timedelta(minutes=20))]   # clock skew: kept
    # one stored before the import refused them is not taken as her latest either
    with Registry(env["BOTON_REGISTRY"]) as reg:
        reg.db.execute("UPDATE daily_reports SET received_at = '2062-03-10T16:00:00Z'")
    data = json.loads(run("reports", "list", "--json", code=EXIT_ATTENTION).stdout)
    assert data["buttons"][0]["flags"] == ["NO REPORT"]


def test_a_button_just_delivered_is_waited_for_not_said_to_have_reported(env):
    # within its first period a new button has sent nothing and is rightly not overdue, but
    # the summary a cron job mails said it "reported"
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    delivered(env, MAC1, "BS-0001", now - dt.timedelta(hours=1))
    out = run("reports", "list").stdout
    assert "never" in out and "reported and are well" not in out
    assert "1 not reported yet" in " ".join(out.split())


def test_without_a_registry_it_says_so(env):
    res = run("reports", "list", code=EXIT_USAGE)
    assert "no registry at" in res.stderr
