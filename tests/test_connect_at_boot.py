"""A technician who runs a command the moment the board powers on still gets in: a Ctrl-C
that arrives while the board is starting is lost, so the link sends it again."""
import json

from click.testing import CliRunner

from boton.cli import main
from rigkit import provisioned_device


def test_status_right_after_a_reset_connects(tmp_path):
    with provisioned_device(tmp_path) as vd:
        mark = vd.console_mark()
        vd.hard_reset()
        # the board has not printed its first line yet: MicroPython is still starting
        assert "EV boot" not in vd.console_text()[mark:]
        res = CliRunner().invoke(main, ["status", "--port", vd.repl_url, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["fw"]
