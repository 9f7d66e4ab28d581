"""The SMS command PIN: obtained without the command line, stored only as a salted hash.

A PIN typed as `--pin 482913` stays in the shell history and shows in `ps` to every user
of the machine, so the tools take it from, in this order:

* `--pin-file FILE`: its first line; the file must be readable by its owner only (0600);
* the environment variable BOTON_PIN (scripts);
* a hidden prompt, typed twice, when stdin is a terminal (Enter alone: a random PIN);
* else a random 6-digit PIN.

A generated PIN is shown only on a terminal: on stdout when it is one, else on stderr or
the controlling terminal (/dev/tty) when stdout is redirected (`boton provision > log`), so
it never lands in a log file. With no terminal at all (a script, CI) nobody could read it:
the command refuses before it changes anything and asks for --pin-file or BOTON_PIN.

The device's config.json carries only `pin_hash` ("s$<salt hex>$<hex sha256(salt + PIN)>",
what the firmware's alertsms.pin_ok checks), never the PIN. A generated PIN is shown once,
to hand to C4 under the programme's procedure; the host keeps no copy of it: the registry
records the config's hash, which covers the PIN's salted hash.

A 4-8 digit PIN has at most 10^8 values: anyone holding config.json (or an image file) can
find it by trying them all against the hash. The hash keeps the PIN out of sight in the
file, in backups and on screens; the files themselves stay private (images are 0600).
"""
import hashlib
import hmac
import os
import re
import secrets
import stat
import sys

import click

from . import paths
from .errors import InputError

PIN_ENV = "BOTON_PIN"
PIN_LENGTH = 6          # generated PINs
SALT_BYTES = 16
_PIN_RE = re.compile(r"[0-9]{4,8}")  # ASCII only: \d also matches other scripts' digits
_HASH_RE = re.compile(r"s\$[0-9a-f]{32}\$[0-9a-f]{64}")

CLI_PIN_REFUSED = ("--pin VALUE is refused: a PIN on the command line stays in the shell history "
                   "and shows in `ps`. Give it with --pin-file FILE (mode 0600), the BOTON_PIN "
                   "environment variable, or type it when asked on a terminal; with none of "
                   "these a random PIN is generated and shown once, on the terminal only.")


def validate_pin(pin, where="PIN", new=True) -> str:
    """The PIN as a string of 4-8 digits, or InputError (never echoing what was given).
    new: a PIN being set, refused if easy to guess; False: one already in use, looked for
    as it is (wipe searches the flash for it, weak or not)."""
    pin = str(pin if pin is not None else "").strip()
    if not _PIN_RE.fullmatch(pin):
        raise InputError(f"{where} must be 4 to 8 digits")
    if new and is_weak(pin):
        raise InputError(f"{where} is too easy to guess (one repeated digit or a run such as "
                         "1234 or 9876); choose another")
    return pin


def is_weak(pin: str) -> bool:
    """One digit repeated, or a run up or down (1234, 9876, 0123...)."""
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:])}
    return steps in ({0}, {1}, {9})


def generate_pin() -> str:
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(PIN_LENGTH))
        if not is_weak(pin):
            return pin


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """The `pin_hash` config value for PIN (a fresh random salt unless one is given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return f"s${salt.hex()}${hashlib.sha256(salt + pin.encode()).hexdigest()}"


def is_pin_hash(value) -> bool:
    return isinstance(value, str) and bool(_HASH_RE.fullmatch(value))


def check_pin(pin_hash: str, pin: str) -> bool:
    """Whether PIN matches a `pin_hash` (as the firmware decides it)."""
    if not is_pin_hash(pin_hash):
        return False
    _, salt, digest = pin_hash.split("$")
    got = hashlib.sha256(bytes.fromhex(salt) + str(pin).encode()).hexdigest()
    return hmac.compare_digest(got, digest)


def read_pin_file(path, new=True) -> str:
    """The PIN on the first line of PATH, which only its owner may read (new: as
    validate_pin). On Windows its folder keeps it private (one in the user's profile)."""
    try:
        # non-blocking: a FIFO with no writer blocked here for good, before the check below
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InputError(f"cannot read PIN file {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode  # the file read, not a name swapped meanwhile
        if not stat.S_ISREG(mode):
            raise InputError(f"PIN file {path} is not a regular file")
        if not paths.WINDOWS and mode & 0o077:   # Windows has no such modes: every file reads 0666
            raise InputError(f"PIN file {path} can be read by other users (mode "
                           f"{stat.S_IMODE(mode):04o}): run `chmod 600 {path}` and try again")
        data = f.read(64)
    try:
        first = data.decode("ascii").splitlines()[0] if data.strip() else ""
    except UnicodeDecodeError:
        first = "?"
    return validate_pin(first, f"the PIN in {path}", new)


KEEP_WITH_PIN = ("--keep-pin keeps the PIN the button holds, and {given} sets a new one: give one "
                 "or the other, not both; nothing was written")


def obtain_pin(pin_file=None, *, env=None, interactive=None, prompt=None, keep=False):
    """(pin, how): how is "file", "env", "typed" or "generated"; keep (provision --keep-pin):
    (None, "kept"), the PIN hash to be read from the button, and a PIN given too is refused
    rather than one of them silently winning."""
    env = os.environ if env is None else env
    if keep:
        if pin_file or env.get(PIN_ENV):
            raise InputError(KEEP_WITH_PIN.format(given="--pin-file" if pin_file else f"${PIN_ENV}"))
        return None, "kept"
    if pin_file:
        return read_pin_file(pin_file), "file"
    if env.get(PIN_ENV):
        return validate_pin(env[PIN_ENV], f"the PIN in ${PIN_ENV}"), "env"
    if interactive is None:
        interactive = sys.stdin.isatty()
    if interactive:
        prompt = prompt or _prompt_twice
        typed = prompt()
        if typed:
            return validate_pin(typed), "typed"
    return generate_pin(), "generated"


def _prompt_twice() -> str:
    first = click.prompt("PIN for SMS commands, 4-8 digits (Enter: a random one)", default="",
                         hide_input=True, show_default=False)
    if not first:
        return ""
    validate_pin(first)
    if click.prompt("the same PIN again", default="", hide_input=True, show_default=False) != first:
        raise InputError("the two PINs typed differ; nothing was written")
    return first


def refuse_cli_pin(ctx, param, value):
    """click callback of the --pin option, kept only to say why it is refused."""
    if value is not None:
        raise InputError(CLI_PIN_REFUSED)
    return value


def pin_options(f):
    """--pin-file and the refused --pin, for a click command taking a `pin_file` argument."""
    f = click.option("--pin", "refused_pin", default=None, expose_value=False, hidden=True,
                     callback=refuse_cli_pin, is_eager=True, help="Refused: see --pin-file.")(f)
    return click.option("--pin-file", type=click.Path(dir_okay=False), default=None,
                        help="File (mode 0600) whose first line is the PIN for SMS commands "
                             f"[default: ${PIN_ENV}, else asked on a terminal, else a random "
                             "6-digit PIN shown once, on the terminal only (with no terminal: "
                             "refused)].")(f)


NO_TERMINAL = ("no terminal to show a generated SMS command PIN on (stdout is not a terminal: it "
               "would land in a file or a log): choose the PIN yourself and give it with --pin-file "
               f"FILE (mode 0600) or {PIN_ENV}, or run the command on a terminal; nothing was changed")


def _isatty(stream) -> bool:
    try:
        return bool(stream) and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (what is printed there is seen, not kept in a file)."""
    return _isatty(sys.stdout)


def _open_tty():
    """The controlling terminal, for writing; None if the process has none."""
    try:
        return open("/dev/tty", "w", encoding="utf-8")
    except OSError:
        return None


def pin_screen(how: str, avoid_stdout=False):
    """Where a generated PIN will be shown: "stdout", "stderr" or "tty" (the controlling
    terminal), whichever is a terminal first; None for a PIN that is not shown (given, not
    generated). Called before anything changes: InputError if a generated PIN could only
    go to a redirected stdout. avoid_stdout: stdout carries something else (JSON)."""
    if how != "generated":
        return None
    if not avoid_stdout and stdout_is_terminal():
        return "stdout"
    if _isatty(sys.stderr):
        return "stderr"
    tty = _open_tty()
    if tty is not None:
        tty.close()
        return "tty"
    raise InputError(NO_TERMINAL)


def show_pin(how: str, pin: str, screen, print_line):
    """The announce line: on stdout (through print_line) unless the PIN is generated and
    stdout is not a terminal; then the PIN goes to `screen` (pin_screen) and stdout only
    says where it went."""
    if how != "generated" or screen == "stdout":
        print_line(announce(how, pin))
        return
    if screen == "stderr":
        click.echo(announce(how, pin), err=True)
    else:
        tty = _open_tty()
        if tty is None:     # gone since pin_screen: nowhere to show it, and the button has it
            raise InputError("the controlling terminal went away: the generated PIN could not be "
                             "shown; provision again with --pin-file FILE or " + PIN_ENV)
        with tty:
            tty.write(announce(how, pin) + "\n")
    print_line(f"SMS command PIN: generated, shown on the terminal only (not in this output: stdout "
               f"is not a terminal); hand it over as the programme's procedure says")


def announce(how: str, pin: str) -> str:
    """The one line that shows a PIN: a generated one once (it is nowhere else); a given
    one is not echoed (whoever gave it has it, and a screen or a CI log would keep it)."""
    if how == "generated":
        return (f"SMS command PIN for C4: {pin} (shown once: hand it over as the programme's "
                "procedure says; the device keeps only a salted hash, this computer nothing)")
    if how == "kept":
        return ("SMS command PIN: kept, the one the button held (not shown: the device keeps only "
                "its salted hash; she and C4 go on using the PIN they know)")
    source = {"file": "the PIN file", "env": PIN_ENV, "typed": "what you typed"}[how]
    return f"SMS command PIN: from {source} (not shown; the device keeps only a salted hash)"
