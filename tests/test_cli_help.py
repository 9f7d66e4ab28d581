"""What `boton --help` and each command's help promise: examples that run as written, and
every interactive command of `boton sim` listed; options refused in one line."""
import re
import shlex

import click
import pytest
from click.testing import CliRunner

from boton.cli import main


def commands(group=main, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def examples(cmd):
    """Each `Example: boton ...` of a command's help, its lines joined as a shell reads them
    once they are pasted as one line."""
    text = cmd.help or ""
    for m in re.finditer(r"Example: (boton .*?)(?:\n\s*\n|\Z)", text, re.S):
        first = re.split(r" {2,}then ", m.group(1))[0]   # "boton sim ...   then   mpremote ..."
        yield " ".join(first.split())


EXAMPLES = [(path, ex) for path, cmd in commands() for ex in examples(cmd)]


@pytest.mark.parametrize("path, example", EXAMPLES, ids=[ex for _, ex in EXAMPLES])
def test_every_help_example_parses_as_written(path, example):
    """`--c4 449 910 0000` unquoted failed with 'Got unexpected extra arguments (910 0000)'."""
    args = shlex.split(example)[1:]
    assert tuple(args[:len(path)]) == path, example
    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    try:
        cmd.make_context(" ".join(("boton", *path)), args[len(path):]).close()
    except click.BadParameter as e:   # a file the example names is not here: parsed all the same
        assert "does not exist" in e.message, (example, e.message)


def test_the_c4_examples_are_the_ones_the_review_found():
    assert any('--c4 "449 910 0000"' in ex for path, ex in EXAMPLES if path == ("provision",))
    assert any('--c4 "449 910 0000"' in ex for path, ex in EXAMPLES if path == ("image",))


def test_sim_help_lists_every_interactive_command():
    from boton import cli_sim

    help_text = " ".join(main.commands["sim"].help.split())
    handled = set(re.findall(r'word == "(\w+)"', click.unstyle(open(cli_sim.__file__).read())))
    handled |= {"quit"}
    assert handled >= {"press", "sms", "coverage", "reset", "download", "events"}
    for word in sorted(handled):
        assert f"`{word}" in help_text, word


@pytest.mark.parametrize("command", ["sim", "demo"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf"])
def test_a_time_scale_that_is_no_time_is_refused(command, value):
    r = CliRunner().invoke(main, [command, "--time-scale", value], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert "Invalid value for '--time-scale'" in r.output
    assert "is not a positive finite number" in r.output and "Traceback" not in r.output


def test_sim_refuses_a_gps_start_for_a_replayed_log(tmp_path):
    log = tmp_path / "capture.log"
    log.write_text("$GPRMC,,V,,,,,,,,,,N*53\n")
    for extra in (["--gps-start", "hot"], ["--gps-ttff", "5"]):
        r = CliRunner().invoke(main, ["sim", "--nmea", str(log), *extra], catch_exceptions=False)
        assert r.exit_code == 2, r.output
        assert "a replayed log has its own fixes" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["sim", "--gps-ttff", "-1"], catch_exceptions=False)
    assert r.exit_code == 2 and "Invalid value for '--gps-ttff'" in r.output, r.output
