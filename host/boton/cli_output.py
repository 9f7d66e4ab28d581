"""How every `boton` command prints: failures as one line, and text from outside as text.

Rich reads `[...]` in what it prints as markup. A path, a port or a label the technician
typed (`-o 'usb[/]BS-0001.bin'`), or what a board or the OS says, would be taken for a tag:
a wrong file name shown, or rich's MarkupError after the registry recorded the button and
before its generated PIN was shown. So such text reaches rich through `escape()` when the
line carries markup of ours, or in a line printed with markup=False.
"""
import codecs
import contextlib
import os
import signal
import sqlite3
import sys

import click
from rich.console import Console
from rich.markup import escape

from . import rules
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, EXIT_VERIFY, DeviceError

err_console = Console(stderr=True, highlight=False)


def print_error(message):
    """`error: MESSAGE` on stderr, the message as text (it names paths and labels as typed)."""
    err_console.print("[bold red]error:[/]", escape(message), soft_wrap=True)


def warn_if_exposed(path) -> bool:
    """On Windows, a warning that a file of hers is outside the user's profile, where
    nothing keeps other accounts from it (registry_paths.exposed_on_windows); whether so."""
    from .registry_paths import exposed_on_windows

    exposed = exposed_on_windows(path)
    if exposed:
        err_console.print("[yellow]warning:[/]", escape(exposed), soft_wrap=True)
    return bool(exposed)


class OneLineErrors(click.Group):
    """A command group whose expected failures become `error: ...` and a documented exit
    code, never a traceback: `boton` itself and its `devices` and `registry` groups (which
    work standalone too, as the tests run them)."""

    def make_context(self, info_name, args, parent=None, **extra):
        if parent is None:   # the command line as typed, once
            any_text_out()
            where = not_utf8(args, os.environ)
            if where:
                print_error(f"{where} is not UTF-8 text (a terminal set to another encoding?): "
                            "set it to UTF-8 (e.g. LANG=es_MX.UTF-8) and type it again")
                sys.exit(EXIT_USAGE)
        return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        from .registry_backup import RESTORE_HINT

        try:
            if ctx.parent is None:
                with _stops_unwound():
                    return super().invoke(ctx)
            return super().invoke(ctx)
        except DeviceError as e:
            print_error(str(e))
            sys.exit(e.exit_code)
        except sqlite3.DatabaseError as e:   # a damaged file the registry did not foresee
            print_error(f"the registry is damaged ({e}); {RESTORE_HINT}")
            sys.exit(EXIT_VERIFY)
        except OSError as e:    # a path the OS refused where no command foresaw it: named, no traceback
            print_error(f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e))
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt as e:   # click's own "Aborted!" (exit 1) said neither what stands nor what next
            interrupted(e)
        except click.exceptions.Abort as e:
            # a prompt (her registry's passphrase, a PIN, a confirmation) turns Ctrl-C and a
            # closed input into click's Abort: "Aborted!" and exit 1, in no list of codes
            if isinstance(e.__context__, KeyboardInterrupt):
                interrupted(e.__context__)
            if isinstance(e.__context__, EOFError):
                print_error("no answer: the input ended at a question; nothing more was done "
                            "(run the command on a terminal, or give the answer as an option)")
                sys.exit(EXIT_USAGE)
            raise


def any_text_out():
    """stdout and stderr that write any name. Windows writes output redirected to a file in
    its ANSI code page (cp1252 in Mexico), which lacks letters of hers (ť): a
    UnicodeEncodeError ended `devices show --reveal` after its read was audited. A file or a
    pipe gets UTF-8, her name whole; a terminal that is not UTF-8 shows "?" for what it lacks."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if not encoding or codecs.lookup(encoding).name.startswith("utf") or not hasattr(stream, "reconfigure"):
            continue
        if stream.isatty():
            stream.reconfigure(errors="replace")
        else:
            stream.reconfigure(encoding="utf-8")


def _utf8(text):
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:   # bytes the OS gave as surrogates (a Latin-1 terminal)
        return False


# Variables whose text is written as text (the audit trail's name). Not the passphrases:
# they are taken as the bytes they are, and a key protected by one must still open.
TEXT_ENV = ("BOTON_TECHNICIAN",)


def not_utf8(args, environ):
    """Which argument (or TEXT_ENV variable) holds bytes that are not UTF-8, said without its
    value (her name, perhaps), or None: every write of such text crashed encoding it."""
    for i, arg in enumerate(args):
        if _utf8(arg):
            continue
        option = arg.split("=", 1)[0] if arg.startswith("--") and "=" in arg else None
        if option is None and i and args[i - 1].startswith("-"):
            option = args[i - 1]
        return f"the value of {option}" if option and _utf8(option) else f"argument {i + 1}"
    for name in TEXT_ENV:
        if not _utf8(environ.get(name, "")):
            return name
    return None


class Stopped(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGBREAK (a terminal closed, a shutdown, `timeout`, Ctrl-Break on
    Windows), unwound as Ctrl-C is: by default they end Python at once, and a half-written
    export of her case data in the clear stayed behind, its read unaudited."""


STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGBREAK")


@contextlib.contextmanager
def _stops_unwound():
    def stop(signum, frame):
        raise Stopped(signal.Signals(signum).name)

    # Windows has no SIGHUP, and only Windows has SIGBREAK
    signals = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    try:
        old = {s: signal.signal(s, stop) for s in signals}
    except ValueError:   # not the main thread (a caller's own): left as they are
        yield
        return
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def interrupted(e=None):
    how = f"stopped ({e.args[0]})" if isinstance(e, Stopped) else "interrupted (Ctrl-C)"
    print_error(f"{how}: the step under way was cut short; what the registry "
                "recorded stands (`boton devices show LABEL` says where the button is; an "
                "interrupted provisioning is finished by running `boton provision` again)")
    sys.exit(EXIT_INTERRUPTED)


def board_checked(ctx, param, value):
    """--board: a profile of this release (or a .json file), checked before a port is
    opened or a rig started: a typo there interrupted the button's firmware first."""
    if value is not None:
        from .boards import board_file

        board_file(value)
    return value


def during_alert_option(command):
    """--during-alert for a command that opens a session with a button (boton.device)."""
    return click.option("--during-alert", is_flag=True,
                        help="Go on with a button that is in an alert: the alert stops for the "
                             "whole command (without it: refused, the button left to its alert).")(command)


def programme_number_option(command):
    """--programme-number (BOTON_PROGRAMME_NUMBER) for a command that writes her configuration."""
    return click.option("--programme-number", envvar="BOTON_PROGRAMME_NUMBER",
                        help="Number that receives each device's silent daily status SMS "
                             "(supervision; `boton reports` reads them).")(command)


def daily_status_line(config, source="no --programme-number"):
    """Where the button's daily status SMS go (the programme's only sign, between visits,
    that a button it handed out is alive), or that it sends none and why (source)."""
    if config.get("programme_number"):
        return (f"daily status SMS: to the programme's phone {rules.mask(config['programme_number'])} "
                "(`boton reports` reads them)")
    return (f"daily status SMS: none ({source}): `boton reports` will list it as sending none "
            "and cannot tell if it goes quiet")
