"""The SMS command PIN (host/boton/pin.py): never on the command line, stored only as a
salted hash the firmware checks, shown once when generated; image files private (0600)."""
import io
import json
import os
import re
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from boton import image as img
from boton import pin as pins
from boton.cli import main
from boton.errors import InputError
from boton.rules import build_config, config_bytes, firmware_module
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT

BASE = dict(alias="Luna", contacts=["449 111 2233"], c4=["449 910 0000"], device_id="BS-1")
IMAGE_ARGS = ["image", "--placeholder-firmware", "--unregistered", "--device-id", "BS-0042", "--alias", "Luna",
              "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4]


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def pin_file(tmp_path, text, mode=0o600):
    f = tmp_path / "pin.txt"
    f.write_text(text)
    f.chmod(mode)
    return f


# ------------------------------------------------------------------------- the hash
def test_config_holds_only_a_salted_hash_the_firmware_accepts():
    cfg = build_config(**BASE, pin="482913")
    assert b"482913" not in config_bytes(cfg) and "pin" not in cfg
    assert cfg["country_code"] == "+52"
    assert pins.check_pin(cfg["pin_hash"], "482913") and not pins.check_pin(cfg["pin_hash"], "482914")
    alertsms = firmware_module("alertsms")            # what the device itself will decide
    assert alertsms.pin_ok(cfg, "482913") and not alertsms.pin_ok(cfg, "482914")
    assert not alertsms.pin_ok(cfg, cfg["pin_hash"])
    # a fresh salt every time: equal PINs do not give equal configs
    assert build_config(**BASE, pin="482913")["pin_hash"] != cfg["pin_hash"]


def test_existing_hash_is_kept_and_checked():
    h = pins.hash_pin("482913")
    assert build_config(**BASE, pin_hash=h)["pin_hash"] == h
    with pytest.raises(InputError, match="not a PIN hash"):
        build_config(**BASE, pin_hash="482913")
    with pytest.raises(InputError, match="not both"):
        build_config(**BASE, pin="482913", pin_hash=h)


@pytest.mark.parametrize("pin, message", [
    ("12", "must be 4 to 8 digits"), ("123456789", "must be 4 to 8 digits"), ("48 29", "must be 4"),
    ("４８２９", "must be 4"), ("0000", "too easy"), ("123456", "too easy"), ("6789", "too easy"),
    ("8901", "too easy"),
])
def test_bad_pins_refused_without_echo(pin, message):
    with pytest.raises(InputError, match=message) as e:
        build_config(**BASE, pin=pin)
    assert pin not in str(e.value)


@pytest.mark.parametrize("how", ["file", "env"])
def test_wipe_searches_for_a_weak_pin_it_does_not_set(tmp_path, how):
    """A PIN such as 1111 (set by an old firmware or by hand) was refused as "too easy to
    guess; choose another" by wipe, which only looks for it on the flash."""
    f = pin_file(tmp_path, "1111\n")
    args = ["--pin-file", str(f)] if how == "file" else []
    port = tmp_path / "ttyUSB9"
    r = run("wipe", *args, "--port", str(port), env={"BOTON_PIN": "1111"} if how == "env" else None)
    assert r.exit_code == 3 and f"{port} does not exist" in r.output, r.output   # on to the port
    assert "1111" not in r.output
    with pytest.raises(InputError, match="too easy"):   # setting one: still refused
        pins.read_pin_file(f)
    assert pins.read_pin_file(f, new=False) == "1111"
    with pytest.raises(InputError, match="must be 4 to 8 digits"):
        pins.validate_pin("11a1", new=False)


def test_generated_pins_are_six_digits_and_not_weak():
    got = {pins.generate_pin() for _ in range(200)}
    assert all(len(p) == 6 and p.isdigit() and not pins.is_weak(p) for p in got)
    assert len(got) > 190


# ---------------------------------------------------------------------- the sources
def test_pin_file_accepted_only_when_private(tmp_path):
    f = pin_file(tmp_path, "482913\n")
    assert pins.obtain_pin(str(f), env={}) == ("482913", "file")
    f.chmod(0o644)
    with pytest.raises(InputError, match=r"can be read by other users \(mode 0644\): run `chmod 600"):
        pins.obtain_pin(str(f), env={})
    with pytest.raises(InputError, match="cannot read PIN file"):
        pins.obtain_pin(str(tmp_path / "none.txt"), env={})
    with pytest.raises(InputError, match="must be 4 to 8 digits"):
        pins.obtain_pin(str(pin_file(tmp_path, "\n482913\n")), env={})


def test_env_then_prompt_then_generated():
    assert pins.obtain_pin(env={"BOTON_PIN": "482913"}) == ("482913", "env")
    with pytest.raises(InputError, match=r"^the PIN in \$BOTON_PIN must be 4 to 8 digits$"):
        pins.obtain_pin(env={"BOTON_PIN": "48291x"})
    assert pins.obtain_pin(env={}, interactive=True, prompt=lambda: "482913") == ("482913", "typed")
    pin, how = pins.obtain_pin(env={}, interactive=True, prompt=lambda: "")   # Enter: random
    assert how == "generated" and len(pin) == 6
    pin, how = pins.obtain_pin(env={}, interactive=False)
    assert how == "generated" and len(pin) == 6


def test_file_wins_over_env(tmp_path):
    f = pin_file(tmp_path, "482913")
    assert pins.obtain_pin(str(f), env={"BOTON_PIN": "737373"}) == ("482913", "file")


@pytest.mark.parametrize("typed, result", [
    ("482913\n482913\n", "482913"), ("\n", ""), ("482913\n482914\n", "differ"), ("12\n", "must be"),
])
def test_prompt_hidden_and_twice(typed, result):
    @click.command()
    def ask():
        try:
            click.echo("got:" + pins._prompt_twice())
        except InputError as e:
            click.echo("error:" + str(e))
    r = CliRunner().invoke(ask, [], input=typed)
    assert result in r.output.splitlines()[-1]
    assert "482913" not in r.output.replace("got:482913", "")   # hidden input is not echoed


# ------------------------------------------------------------------- the commands
@pytest.mark.parametrize("args", [
    ["provision", "--port", "/dev/nonexistent", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
     "--c4", DEFAULT_C4, "--pin", "482913"],
    ["provision", "--pin", "482913"],                        # refused before anything else
    IMAGE_ARGS + ["--pin", "482913", "-o", "never.bin"],
])
def test_pin_on_the_command_line_is_refused(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    r = run(*args)
    assert r.exit_code == 2
    assert "--pin VALUE is refused" in r.output and "--pin-file" in r.output and "BOTON_PIN" in r.output
    assert "482913" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "never.bin").exists()


def image_config(path):
    return json.loads(img.read_filesystem(img.extract_filesystem(path.read_bytes()))["config.json"])


def test_image_with_pin_from_env_and_file(tmp_path):
    out = tmp_path / "a.bin"
    r = run(*IMAGE_ARGS, "-o", str(out), env={"BOTON_PIN": "482913"})
    assert r.exit_code == 0, r.output
    assert pins.check_pin(image_config(out)["pin_hash"], "482913")
    assert "482913" not in r.output and "from BOTON_PIN (not shown" in r.output
    assert b"482913" not in out.read_bytes()

    f = pin_file(tmp_path, "737219\n")
    r = run(*IMAGE_ARGS, "--pin-file", str(f), "-o", str(out), "--force")
    assert r.exit_code == 0, r.output
    assert pins.check_pin(image_config(out)["pin_hash"], "737219") and "737219" not in r.output

    f.chmod(0o640)
    r = run(*IMAGE_ARGS, "--pin-file", str(f), "-o", str(tmp_path / "b.bin"))
    assert r.exit_code == 2 and "chmod 600" in r.output and not (tmp_path / "b.bin").exists()


class FakeTty(io.StringIO):
    """The technician's terminal (/dev/tty) while stdout is redirected into a log."""

    def close(self):
        pass


@pytest.fixture
def on_terminal(monkeypatch):
    """stdout is the technician's terminal, and no PIN is given: one is generated."""
    monkeypatch.delenv("BOTON_PIN", raising=False)
    monkeypatch.setattr(pins, "stdout_is_terminal", lambda: True, raising=False)


@pytest.fixture
def tty(monkeypatch):
    """stdout redirected (CliRunner's is no terminal), the controlling terminal at hand, no PIN given."""
    monkeypatch.delenv("BOTON_PIN", raising=False)
    screen = FakeTty()
    monkeypatch.setattr(pins, "_open_tty", lambda: screen, raising=False)
    return screen


def test_image_generated_pin_shown_once_and_matches(tmp_path, on_terminal):
    out = tmp_path / "a.bin"
    r = run(*IMAGE_ARGS, "-o", str(out))
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "SMS command PIN for C4:" in ln]
    assert len(lines) == 1
    shown = lines[0].split("SMS command PIN for C4: ")[1][:6]
    assert pins.check_pin(image_config(out)["pin_hash"], shown)


def test_image_config_file_keeps_its_hash_and_refuses_a_second_pin(tmp_path):
    cfg = build_config(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4], device_id="BS-0042",
                       pin="482913")
    src = tmp_path / "her.json"
    src.write_text(json.dumps(cfg))
    out = tmp_path / "a.bin"
    base = ["image", "--placeholder-firmware", "--unregistered", "--config", str(src), "-o", str(out)]
    r = run(*base)
    assert r.exit_code == 0, r.output
    assert image_config(out)["pin_hash"] == cfg["pin_hash"] and "not shown" in r.output
    r = run(*base, "--force", "--pin-file", str(pin_file(tmp_path, "737219")))
    assert r.exit_code == 2 and "already holds a PIN" in r.output
    # a config file from before pin_hash: its plain PIN goes in hashed
    src.write_text(json.dumps(dict(cfg, pin="482913", pin_hash="")))
    r = run(*base, "--force")
    assert r.exit_code == 0, r.output
    stored = image_config(out)
    assert "pin" not in stored and pins.check_pin(stored["pin_hash"], "482913")


@pytest.mark.parametrize("json_out", [False, True])
def test_a_generated_pin_goes_to_the_terminal_never_into_redirected_stdout(tmp_path, tty, json_out):
    # `boton image ... > build.log` wrote the generated PIN into the log file
    out = tmp_path / "a.bin"
    r = run(*IMAGE_ARGS, "-o", str(out), *(["--json"] if json_out else []))
    assert r.exit_code == 0, r.output
    shown = re.findall(r"SMS command PIN for C4: (\d{6}) ", tty.getvalue())
    assert len(shown) == 1 and pins.check_pin(image_config(out)["pin_hash"], shown[0])
    assert shown[0] not in r.output and "SMS command PIN for C4" not in r.output
    if json_out:
        assert json.loads(r.stdout)["pin"] == "generated"          # stdout stays the JSON
    else:
        assert "generated, shown on the terminal only" in r.output


def test_no_terminal_to_show_a_generated_pin_on_changes_nothing(tmp_path, monkeypatch):
    # a script or CI job without a terminal: a generated PIN could only go to its log
    monkeypatch.delenv("BOTON_PIN", raising=False)
    monkeypatch.setattr(pins, "_open_tty", lambda: None, raising=False)
    out = tmp_path / "a.bin"
    for args in (IMAGE_ARGS + ["-o", str(out)], IMAGE_ARGS + ["-o", str(out), "--json"],
                 ["provision", "--port", "/dev/nonexistent", "--alias", "Luna", "--contact", DEFAULT_CONTACT,
                  "--c4", DEFAULT_C4]):
        r = run(*args)
        assert r.exit_code == 2, r.output
        assert "no terminal to show a generated SMS command PIN on" in r.output
        assert "--pin-file" in r.output and "BOTON_PIN" in r.output and "nothing was changed" in r.output
        assert not re.search(r"\d{6}", r.output.replace("/dev/nonexistent", ""))
    assert not out.exists() and not Path(os.environ["BOTON_REGISTRY"]).exists()
    f = pin_file(tmp_path, "482913")                         # given: nothing to show
    r = run(*IMAGE_ARGS, "-o", str(out), "--pin-file", str(f))
    assert r.exit_code == 0 and "from the PIN file (not shown" in r.output


def test_image_file_is_private_from_creation(tmp_path):
    out = tmp_path / "a.bin"
    out.write_bytes(b"old")
    out.chmod(0o644)                                  # an earlier image, world-readable
    (tmp_path / "a.bin.tmp").write_bytes(b"left over")
    (tmp_path / "a.bin.tmp").chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        r = run(*IMAGE_ARGS, "-o", str(out), "--force", env={"BOTON_PIN": "482913"})
    finally:
        os.umask(old_umask)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not (tmp_path / "a.bin.tmp").exists()


# ------------------------------------------------------- images and the registry
MAC = "24:6f:28:00:00:42"
REGISTERED = ["image", "--placeholder-firmware", "--device-id", "BS-0042", "--c4", DEFAULT_C4]


def audit_rows(mac=None):
    from boton.registry import Registry
    with Registry() as reg:
        return reg.audit(mac)


def test_image_for_no_registered_button_is_refused_unless_said(tmp_path):
    out = tmp_path / "a.bin"
    registry = Path(os.environ["BOTON_REGISTRY"])
    args = [*REGISTERED, "--alias", "Luna", "--contact", DEFAULT_CONTACT, "-o", str(out)]
    r = run(*args)                                  # no registry at all: none is created
    assert r.exit_code == 7 and "no registry at" in r.output
    assert "boton devices add MAC --label BS-0042" in r.output and "--unregistered" in r.output
    assert not out.exists() and not registry.exists() and "PIN" not in r.output
    assert run("devices", "add", MAC, "--label", "BS-0007").exit_code == 0
    r = run(*args)                                  # a registry without BS-0042
    assert r.exit_code == 7 and "BS-0042 is not in the registry" in r.output and not out.exists()
    r = run(*args, "--unregistered")                # said: made, stated and audited
    assert r.exit_code == 0, r.output
    assert "registry: NOT recorded (--unregistered)" in r.output and "audit trail says it was made" in r.output
    cfg_hash = json.loads(run(*args, "--unregistered", "--json", "--force").stdout)["config_sha256"]
    row = audit_rows()[-1]
    assert (row["action"], row["mac"]) == ("image_unregistered", None)
    assert f"device id BS-0042 (no registered button), config {cfg_hash[:12]}" in row["detail"]
    r = run(*args[:3], "BS-0007", *args[4:], "--unregistered", "--force")   # a registered label: not bypassed
    assert r.exit_code == 7 and "BS-0007 is a registered button" in r.output


@pytest.fixture
def key(monkeypatch):
    from cryptography.fernet import Fernet
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())


@pytest.mark.parametrize("bad, message", [
    (["--hold-ms", "5"], "gesture.hold_ms (how long she holds the button; --hold-ms) must be 500 to 3000"),
    (["--c4", DEFAULT_C4], "the same C4 number is given twice (--c4 #1 and #2)"),
])
def test_image_refuses_bad_input_before_her_case_is_read(tmp_path, key, bad, message):
    assert run("devices", "add", MAC, "--label", "BS-0042").exit_code == 0
    assert run("devices", "assign", "BS-0042", "--alias", "Luna", "--case-id", "AGS-2026-0042",
               "--order-ends", "none", "--contact", DEFAULT_CONTACT).exit_code == 0
    before = audit_rows(MAC)
    out = tmp_path / "BS-0042.bin"
    r = run(*REGISTERED, *bad, "-o", str(out), env={"BOTON_PIN": "482913"})
    assert r.exit_code == 2 and message in r.output, r.output
    assert audit_rows(MAC) == before and not out.exists()   # her case was not even decrypted


def test_image_provisions_a_registered_button_from_her_case(tmp_path, key, on_terminal):
    from boton.registry import Registry
    from boton.rules import config_hash

    assert run("devices", "add", MAC, "--label", "BS-0042").exit_code == 0
    assert run("devices", "assign", "BS-0042", "--alias", "Luna", "--case-id", "AGS-2026-0042",
               "--order-ends", "none", "--contact", DEFAULT_CONTACT).exit_code == 0
    with Registry() as reg:                           # a log anchor from an earlier visit
        reg.record_log_check(MAC, {"seq": 9, "head": "ab" * 8}, 9)
    out = tmp_path / "BS-0042.bin"
    r = run(*REGISTERED[:3], "bs-0042", *REGISTERED[4:], "-o", str(out))   # alias, contacts: her case's
    assert r.exit_code == 0, r.output
    shown = [ln for ln in r.output.splitlines() if "SMS command PIN for C4:" in ln]
    assert len(shown) == 1
    pin = shown[0].split("SMS command PIN for C4: ")[1][:6]
    cfg = image_config(out)
    assert (cfg["device_id"], cfg["alias"], cfg["contacts"]) == ("BS-0042", "Luna", [DEFAULT_CONTACT])
    assert pins.check_pin(cfg["pin_hash"], pin)
    raw = img.read_filesystem(img.extract_filesystem(out.read_bytes()))["config.json"]
    with Registry() as reg:
        d = reg.get(MAC)
        assert d.state == "provisioned" and d.config_hash == config_hash(raw) and d.config_case is not None
        assert reg.check_config(MAC, raw) == d.config_hash   # the flashed button passes test-call's check
        assert reg.log_anchor(MAC) is None            # flashing the image erases the old log
    rows = audit_rows(MAC)
    assert [a["action"] for a in rows][-4:] == ["reveal", "provision_begin", "image", "config_check"]
    assert "registry: BS-0042 (24:6f:28:00:00:42) provisioned with this config, from her case" in r.output
    # the PIN only in its one announce; the audit trail holds the config's hash, never the PIN
    assert r.output.count(pin) == 1 and not any(pin in (a["detail"] or "") for a in rows)
    assert not any(cfg["pin_hash"].split("$")[2][:12] in (a["detail"] or "") for a in rows)

    before = out.read_bytes()
    r = run(*REGISTERED, "--contact", "449 555 6677", "-o", str(out), "--force")   # not her case's
    assert r.exit_code == 2 and "--contact differs from the case" in r.output
    assert out.read_bytes() == before
    # an interrupted write (the disk full) leaves "provisioning" (true: no image holds the new
    # config), then finishes
    real_open = os.open

    def disk_full(path, *a, **kw):
        if str(path).endswith(".bin.tmp"):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, *a, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "open", disk_full)
        r = run(*REGISTERED, "-o", str(tmp_path / "x.bin"), env={"BOTON_PIN": "482913"})
    assert r.exit_code == 2 and "No space left on device; the registry says BS-0042 is provisioning" in r.output
    assert "482913" not in r.output
    with Registry() as reg:
        assert reg.get(MAC).state == "provisioning"
    assert run(*REGISTERED, "-o", str(out), "--force", env={"BOTON_PIN": "482913"}).exit_code == 0
    with Registry() as reg:
        d = reg.get(MAC)
        assert d.state == "provisioned" and d.config_hash == config_hash(
            img.read_filesystem(img.extract_filesystem(out.read_bytes()))["config.json"])
        reg.record_test_call(MAC, True, config_hash=d.config_hash)
        reg.deliver(MAC, config_hash=d.config_hash)
    r = run(*REGISTERED, "-o", str(tmp_path / "c.bin"))   # in her hands: an image cannot tell
    assert r.exit_code == 7 and "it is delivered" in r.output and not (tmp_path / "c.bin").exists()


def test_a_pin_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    """`--pin-file` naming a FIFO with no writer blocked in open() for good, before the
    regular-file check. (Run in a thread: a regression fails at the timeout, not hangs.)"""
    import os
    import threading
    fifo = tmp_path / "pin"
    os.mkfifo(fifo, 0o600)
    got = []
    t = threading.Thread(target=lambda: got.append(_refusal(lambda: pins.read_pin_file(fifo))), daemon=True)
    t.start()
    t.join(10)
    assert got == [f"PIN file {fifo} is not a regular file"]


def _refusal(read):
    try:
        read()
    except InputError as e:
        return str(e)
    return None
