"""Console blocks: a fenced block whose info string is `console` holds `$ command` lines, each
followed by its output. Every command is run, in order, against one fresh virtual device
per file (boton.sim.rig.VirtualDevice) with a scratch registry and key:

* `$PORT` is the virtual device's REPL URL (its value never appears in the docs);
* `boton ...` runs the CLI; `mpremote ...` runs mpremote (only with `$PORT`);
* `echo $?` prints the previous command's exit code: a command that fails on purpose
  must be followed by it (an unexpected failure is an error);
* `export NAME=value` sets a variable for the rest of the file, `unset NAME` removes it;
* `make ...` and `boton sim` (which never ends) are shown, not run;
* a line ending in `\\` continues on the next line.

A step whose command does not exist yet is written in a ```text (not run) block, which
nothing runs. The comparison (check, tests/test_docs.py) ignores what changes from run
to run: ports, temporary paths, times, dates, hashes, table padding.
"""
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import REPO
from .common import DOCS, DocsError

# Shown (never run) in console blocks.
NOT_RUN = (("make",), ("boton", "sim"))
# What the outputs in the docs show instead of the rehearsal's temporary folder.
SHOWN_WORKDIR = "/tmp/boton-docs"
TECHNICIAN = "tecnico1"
COLUMNS = 100

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")


class Block:
    """One fenced block: lines [start, end) of the file are its body."""

    def __init__(self, info, start, end, body):
        self.info, self.start, self.end, self.body = info, start, end, body

    @property
    def is_console(self):
        return self.info.split()[:1] == ["console"]


def fenced_blocks(text):
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(2), m.group(3).strip()
        j = i + 1
        while j < len(lines):
            c = FENCE.match(lines[j])
            if c and c.group(2)[0] == fence[0] and len(c.group(2)) >= len(fence) and not c.group(3).strip():
                break
            j += 1
        blocks.append(Block(info, i + 1, j, lines[i + 1:j]))
        i = j + 1
    return blocks


class Step:
    def __init__(self, shown, output):
        self.shown = shown      # the command lines as written (with `$ ` and continuations)
        self.output = output    # the output lines that follow

    @property
    def command(self):
        text = "\n".join(line[2:] if k == 0 else line for k, line in enumerate(self.shown))
        return re.sub(r"\s*\\\n\s*", " ", text).strip()


def parse_steps(body):
    steps, i = [], 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            if line.strip():
                raise DocsError(f"console block: output before any `$ command`: {line!r}")
            i += 1
            continue
        shown = [line]
        while shown[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            shown.append(body[i])
        i += 1
        out = []
        while i < len(body) and not body[i].startswith("$ "):
            out.append(body[i])
            i += 1
        while out and not out[-1].strip():
            out.pop()
        steps.append(Step(shown, out))
    return steps


def _exe(name):
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


# A file that says this starts its virtual device as a blank chip (see Session).
BLANK_CHIP = "<!-- docs: the virtual device starts as a blank chip -->"


class Session:
    """Runs one file's console commands: one virtual device (started on first use of
    $PORT), one scratch registry and key, shared by all the file's blocks in order."""

    def __init__(self, blank_chip=False):
        from cryptography.fernet import Fernet

        # blank_chip: the device starts as a board from the factory (a whole SPI flash, one
        # rfc2217 URL for esptool and mpremote), so the file can flash it before deploying.
        self.blank_chip = blank_chip
        self.work = Path(tempfile.mkdtemp(prefix="boton-docs-"))
        self.vd = None
        self.last_rc = 0
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BOTON_") and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE",
                                                          "TTY_INTERACTIVE", "COLUMNS", "LINES")}
        env.update(BOTON_REGISTRY=str(self.work / "registry.sqlite3"), BOTON_KEY=Fernet.generate_key().decode(),
                   BOTON_KEY_FILE=str(self.work / "registry.key"), BOTON_TECHNICIAN=TECHNICIAN,
                   COLUMNS=str(COLUMNS), LINES="60", TERM="dumb", NO_COLOR="1", PYTHONIOENCODING="utf-8")
        self.env = env
        self.vars = {}

    def close(self):
        if self.vd is not None:
            self.vd.stop()
            self.vd = None
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def port(self):
        if self.vd is None:
            from ..sim.rig import VirtualDevice

            # C4 answers after 20 s of simulated time (2 s here): both SMS are accepted
            # before the call is answered, so the log's order is the same on every run.
            # A blank chip is the technician guide's board: flashed with the release image (the
            # firmware frozen into a 32-bit MicroPython at the ESP32's heap), as in the field.
            chip = dict(flash_image=self.work / "chip.bin", repl="rfc2217",
                        interpreter="esp32") if self.blank_chip else {}
            self.vd = VirtualDevice(self.work / "flash", time_scale=0.1, c4_answer_after_s=20, seed=1,
                                    **chip).start()
        return self.vd.repl_url

    def _expand(self, token):
        def sub(m):
            name = m.group(1) or m.group(2)
            if name == "PORT":
                return self.port()
            if name in self.vars:
                return self.vars[name]
            raise DocsError(f"${name} is not set (only $PORT and exported names)")
        return re.sub(r"\$(?:\{(\w+)\}|(\w+))", sub, token)

    def run(self, command):
        """(output lines as the docs show them, ran) for one command."""
        words = shlex.split(command)
        if not words:
            return [], False
        if tuple(words[:2]) in NOT_RUN or tuple(words[:1]) in NOT_RUN:
            return None, False
        if words == ["echo", "$?"]:
            out, self.last_rc = [str(self.last_rc)], 0
            return out, True
        if words[0] == "export":
            for w in words[1:]:
                name, _, value = w.partition("=")
                self.vars[name] = self._expand(value)
                self.env[name] = self.vars[name]
            self.last_rc = 0
            return [], True
        if words[0] == "unset":
            for name in words[1:]:
                self.vars.pop(name, None)
                self.env.pop(name, None)
            self.last_rc = 0
            return [], True
        if words[0] not in ("boton", "mpremote"):
            raise DocsError(f"cannot run {command!r}: console blocks run `boton`, `mpremote`, `echo $?`, "
                            "`export` and `unset`; show anything else in a ```sh or ```text block")
        uses_port = "$PORT" in command or "${PORT}" in command
        if words[0] == "mpremote" and not uses_port:
            raise DocsError(f"{command!r}: an mpremote command in a console block must use $PORT")
        args = [_exe(words[0])] + [self._expand(w) for w in words[1:]]
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=self.env, cwd=self.work, timeout=600)
        self.last_rc = proc.returncode
        text = proc.stdout.decode("utf-8", "replace")
        # after flashing, MicroPython boots with no firmware yet: nothing to settle
        if uses_port and proc.returncode == 0 and words[0] == "boton" and words[1:2] != ["flash"]:
            self._wait_ready()
        return self.shown(text), True

    def shown(self, text):
        if self.vd is not None:
            text = text.replace(self.vd.repl_url, "$PORT")
        text = text.replace(str(self.work), SHOWN_WORKDIR)
        lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)  # what a transient progress bar leaves when the output is not a terminal
        return lines

    def _wait_ready(self, timeout=30.0, quiet=1.5):
        """`boton` restarts the firmware when it lets go of the board: wait until it is up
        again and has settled (standby: modem asleep, GPS off after its fix), so the next
        command finds the same state on every run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.vd.console_text()
            i = text.rfind("soft reboot")
            if i >= 0 and "EV ready" in text[i:]:
                break
            time.sleep(0.05)
        else:
            return False
        mark, since = self.vd.console_mark(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.vd.console_mark()
            if now != mark:
                mark, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
        return False


class Result:
    def __init__(self, path):
        self.path = path
        self.text = None        # the file with fresh outputs
        self.problems = []      # (command, message)
        self.commands = 0


def run_console(path):
    """Run every console block of one file; Result.text is the file with fresh outputs."""
    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    res = Result(path)
    blocks = [b for b in fenced_blocks(text) if b.is_console]
    if not blocks:
        res.text = text
        return res
    new_lines, pos = [], 0
    with Session(blank_chip=BLANK_CHIP in text) as s:
        for b in blocks:
            new_lines += lines[pos:b.start]
            body = []
            steps = parse_steps(b.body)
            for k, st in enumerate(steps):
                cmd = st.command
                try:
                    out, ran = s.run(cmd)
                except (DocsError, subprocess.TimeoutExpired) as e:
                    res.problems.append((cmd, str(e)))
                    out, ran = st.output, False
                if out is None:
                    out = st.output
                if ran:
                    res.commands += 1
                    nxt = steps[k + 1].command if k + 1 < len(steps) else ""
                    if s.last_rc != 0 and nxt != "echo $?":
                        res.problems.append((cmd, f"exited {s.last_rc} (if that is intended, follow it with "
                                                  f"`$ echo $?`):\n" + "\n".join(out[-5:])))
                body += st.shown + out
            new_lines += body
            pos = b.end
    new_lines += lines[pos:]
    res.text = "\n".join(new_lines)
    return res


def not_run_blocks(text):
    """[(command)] of every ```text (not run) block."""
    out = []
    for b in fenced_blocks(text):
        if b.info.replace(" ", "") == "text(notrun)":
            out += [st.command for st in parse_steps(b.body)]
    return out


def check_not_run(command):
    """Why a command shown but not run would not work with today's CLI, or None: the
    (sub)command must exist and every --option must be one it has."""
    import click

    from ..cli import main as cli

    words = shlex.split(command)
    if words[:1] != ["boton"]:
        return None
    cmd, path, rest = cli, ["boton"], words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        if sub is None:
            return f"`{' '.join(path)}` has no command {rest[0]!r}"
        cmd, path, rest = sub, path + [rest[0]], rest[1:]
    known = {o for p in cmd.params for o in p.opts + p.secondary_opts} | {"--help"}
    bad = [w.split("=")[0] for w in rest if w.startswith("-") and w.split("=")[0] not in known]
    if bad:
        return f"`{' '.join(path)}` has no option {', '.join(bad)}"
    return None


# What changes from run to run, and so is left out of the comparison.
VOLATILE = [
    (re.compile(r"socket://[\w.\-]+:\d+|rfc2217://\S+|/dev/pts/\d+"), "$PORT"),
    (re.compile(r"(?:/tmp|/var/folders)/[\w.\-/]+"), "<path>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"), "<date>"),
    (re.compile(r"\b\d\d:\d\d(?::\d\d)?\b"), "<time>"),
    # Event log stamps: UTC Unix seconds once the clock was set (from 2020: 1577836800), or
    # seconds since 2000-01-01 with a "?" while it never was (eventlog.stamp). Whether GPS
    # set it before a command ran is timing, so either stands for the other.
    (re.compile(r"\b(?:9[4-9]\d{7}|1[0-5]\d{8})\?|\b1[5-9]\d{8}\b"), "<unix-time>"),
    # a release image's build ("0.1.0+549d27eaf88b", version.build) is the version alone
    # on .mpy files (a fresh clone's interpreter): the same firmware either way
    (re.compile(r"\b(\d+\.\d+\.\d+)\+[0-9a-f]{12}\b"), r"\1"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<hash>"),
    (re.compile(r"\b[\d,]+(?:\.\d+)? ?[kM]?B/s\b"), "<rate>"),  # write speed: the machine's, not the tool's
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms)\b"), "<duration>"),
    # The device's event log is a timeline of asynchronous events (modem asleep, GPS off...):
    # which entries exist at the moment of the command depends on timing, so compare its shape.
    (re.compile(r"(?:\b\d+ <unix-time> \S+ \S+ <hash>\s*)+"), "<event log entries> "),
    (re.compile(r"(log_entries\s*│\s*)\d+"), r"\1<n>"),
    # free heap after boot moves by a few hundred bytes with the interpreter's paths and the
    # order tasks started in; the bench measures and budgets it, the guide shows where to read it
    (re.compile(r"(heap free\s*│\s*|largest free block\s*│\s*)\d+(?:\.\d+)? KB"), r"\1<n> KB"),
    (re.compile(r"\b\d+ entries intact"), "<n> entries intact"),
    # how many SMS were accepted before C4 answered depends on timing, not behaviour
    (re.compile(r"(SMS accepted:? |sms )\d+"), r"\1<n>"),
    (re.compile(r"([━─═│┃┼╇╋┬┴┌┐└┘├┤╭╮╯╰])\1+"), r"\1"),
]


def normalise(text):
    """The output with volatile parts replaced and table padding and line wrapping ignored."""
    for pat, rep in VOLATILE:
        text = pat.sub(rep, text)
    return " ".join(text.split())


def console_outputs(text):
    """[(command, output text)] of every console block, for comparing two versions."""
    out = []
    for b in fenced_blocks(text):
        if b.is_console:
            out += [(st.command, "\n".join(st.output)) for st in parse_steps(b.body)]
    return out


def compare_console(old_text, new_text):
    """Messages for every command whose output differs (after normalise)."""
    old, new = console_outputs(old_text), console_outputs(new_text)
    msgs = []
    for (cmd, a), (_, b) in zip(old, new):
        if normalise(a) != normalise(b):
            diff = "\n".join(difflib.unified_diff(a.split("\n"), b.split("\n"), "in the docs", "now", lineterm="", n=1))
            msgs.append(f"$ {cmd}\n{diff}")
    return msgs


def doc_files():
    files = sorted(DOCS.glob("*.md"))
    readme = REPO / "README.md"
    return files + ([readme] if readme.exists() else [])


def console_files(paths=None):
    paths = [Path(p).resolve() for p in paths] if paths else doc_files()
    return [p for p in paths if any(b.is_console for b in fenced_blocks(p.read_text()))]


def check_console(path):
    """Problems of one file's console blocks (empty: the docs match what the commands print)."""
    res = run_console(path)
    msgs = [f"$ {c}\n{m}" for c, m in res.problems]
    msgs += compare_console(Path(path).read_text(), res.text)
    return msgs, res
