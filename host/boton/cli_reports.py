"""`boton reports ...`: the daily status SMS of the delivered buttons, imported from an
export of the programme's phone, and which buttons went quiet or report a problem.

Labels only: never her alias or case, never an SMS that is not a daily report."""
import os

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli_output import OneLineErrors
from .cli_registry import _echo_json, _open, json_option, registry_options
from .errors import EXIT_ATTENTION
from .registry_reports import CSV_COLUMNS, DAILY_STATUS_S, FLAGS, LOW_BATTERY_PCT, overdue_after_s

console = Console(highlight=False)

GPS_SHOWN = {"ok": "ok", "no_fix": "no fix", "off": "off", "not_responding": "[red]not responding[/]",
             "unknown": "?"}


@click.group(cls=OneLineErrors, invoke_without_command=True)
@click.pass_context
def reports(ctx):
    """The buttons' silent daily status SMS to the programme's phone (a button provisioned
    with --programme-number sends one a day): `boton reports import FILE` reads an export
    of that phone, `boton reports` (or `reports list`) says for every delivered button how
    old its last report is and what needs a visit.

    Flags: NO REPORT (none since delivery) or OVERDUE (none for two of its daily periods
    and 6 h), LOW BATTERY (20% or less), GPS NOT RESPONDING, NO VOICE (SIN VOZ: it cannot
    call C4), RESTARTED (it reset since the report before), ALERTS (alerts since the report
    before). A button provisioned without a programme number sends none: it is listed as
    "no reports configured", never flagged for its silence.

    Exit codes: 0 every delivered button is well, 8 one or more need attention (for cron),
    2 bad input (a file that is no SMS export; nothing imported).

    Options go to the subcommand: `boton reports list --json`.

    Example: boton reports import sms-backup.xml
    """
    if ctx.invoked_subcommand is None:   # `reports list` as its options' defaults and env make it
        ctx.invoke(list_, as_json=False, registry_path=os.environ.get("BOTON_REGISTRY"),
                   technician=os.environ.get("BOTON_TECHNICIAN"))


@reports.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@registry_options
def import_(file, as_json, registry_path, technician):
    """Store the daily reports in an export of the programme phone's SMS, all or nothing:
    an Android "SMS Backup & Restore" XML file (received SMS, type 1), or a CSV with a
    header row naming the columns received_at (ISO-8601 with its UTC offset), body and
    optionally from. Any other SMS is only counted, never shown or kept. Importing the same
    file again adds nothing.

    Example: boton reports import sms-20250301.xml
    """
    with _open(registry_path, technician) as reg:
        got = reg.import_reports(file)
    if as_json:
        _echo_json({**got, "unreadable": [{"where": w, "why": y} for w, y in got["unreadable"]]})
        return
    console.print(f"read {got['sms']} received SMS: {got['reports']} daily report(s), {got['added']} "
                  f"new, {got['already']} already in the registry; {got['skipped']} other SMS "
                  f"skipped (not shown)", soft_wrap=True)
    for where, why in got["unreadable"]:
        console.print(f"{where}: {why}, not imported", soft_wrap=True)
    if got["unknown"]:
        names = ", ".join(f"{label} ({n})" for label, n in sorted(got["unknown"].items()))
        console.print(f"reports from labels the registry does not hold, not imported: {escape(names)}",
                      soft_wrap=True)


def _age(seconds):
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _gps(r):
    if r["gps"] == "last_fix":
        return f"fix {_age(r['gps_fix_age_s'])}"
    return GPS_SHOWN[r["gps"]] + (f" {r['gps_sats']} sat" if r["gps_sats"] is not None else "")


@reports.command("list")
@json_option
@registry_options
def list_(as_json, registry_path, technician):
    """Every delivered button's last daily report since its delivery, and what needs a
    visit: exit code 8 if any does (0 if all is well), so cron can run it after each import.
    --json adds each report's firmware and log head (for `boton logs --sms-head`).

    Example: boton reports list --json
    """
    with _open(registry_path, technician) as reg:
        rows = reg.report_status()
    attention = [r for r in rows if r["flags"]]
    silent = [r for r in rows if not r["daily_interval_s"]]
    if as_json:
        # interval_s, overdue_after_s: for buttons with no period recorded (each button has its own)
        _echo_json({"interval_s": DAILY_STATUS_S, "overdue_after_s": overdue_after_s(DAILY_STATUS_S),
                    "low_battery_pct": LOW_BATTERY_PCT, "flags": list(FLAGS), "buttons": rows,
                    "need_attention": len(attention), "no_reports_configured": len(silent)})
    elif not rows:
        console.print("no delivered buttons")
    else:
        table = Table(show_edge=False, pad_edge=False)
        # the label, the flags and the report's age come first and are never cut short
        table.add_column("label", no_wrap=True, min_width=max(len(b["label"]) for b in rows))
        table.add_column("flags", no_wrap=True, min_width=max([4] + [len(", ".join(b["flags"]) or (
            "ok" if b["daily_interval_s"] else "no reports configured")) for b in rows]))
        table.add_column("last report", no_wrap=True, min_width=11)
        for col in ("bat", "signal", "gps", "alerts", "up"):   # firmware, log head: --json
            table.add_column(col, no_wrap=True, overflow="ellipsis")
        for b in rows:
            r = b["last_report"]
            flags = ("[red]" + ", ".join(b["flags"]) + "[/]" if b["flags"] else
                     "ok" if b["daily_interval_s"] else "no reports configured")
            if r is None:
                table.add_row(b["label"], flags, "never" if b["daily_interval_s"] else "-")
                continue
            table.add_row(
                b["label"], flags, _age(r["age_s"]) + (" PRUEBA" if r["test"] else ""),
                "" if r["battery_pct"] is None else f"{r['battery_pct']}%",
                ("?" if r["signal"] is None else f"{r['signal']}/31") + (" [red]no voice[/]" if r["voice"] is False else ""),
                _gps(r), "" if r["alerts"] is None else str(r["alerts"]),
                "" if r["uptime_h"] is None else f"{r['uptime_h']} h")
        console.print(table)
        watched = len(rows) - len(silent)
        # a button delivered within its first period has reported nothing yet, and is not
        # overdue: it is waited for, not "reported"
        waiting = sum(1 for b in rows if b["daily_interval_s"] and b["last_report"] is None and not b["flags"])
        well = (f"all {watched} delivered button(s) reported and are well" if not waiting else
                f"all {watched} delivered button(s) are well or not yet due; {waiting} not reported yet "
                "(first report within its period since delivery)")
        console.print(f"{len(attention)} of {len(rows)} delivered button(s) need attention"
                      if attention else well if watched else "no delivered button sends daily reports",
                      soft_wrap=True)
        if silent:
            console.print(f"{len(silent)} delivered button(s) send no daily reports (provisioned without "
                          "--programme-number): their silence is not flagged; provision them again with "
                          "--programme-number to watch them", soft_wrap=True)
    if attention:
        raise SystemExit(EXIT_ATTENTION)


# the columns a CSV export needs, for the docs and tests
__all__ = ["reports", "CSV_COLUMNS"]
