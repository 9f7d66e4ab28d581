"""Registry first, device second, registry last (issue 10, item 2): the button on the port
is the one the registry expects, in a state that allows the command, and holds exactly
the configuration recorded at provisioning, written from her case. Otherwise the command
refuses before it writes to, or test-calls, the device. Real CLI, virtual device."""
import json

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from boton.cli import main
from boton.device import Device
from boton.rules import CONFIG_PATH, config_bytes, config_hash, mask
from boton.registry import Registry
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice
from rigkit import FAST, demo_config

OTHER_CONTACT = "+524495556677"
OTHER_MAC = "24:0a:c4:00:00:99"
DEAD_PORT = "socket://127.0.0.1:9"  # nothing listens: a command that opens it fails with exit 3


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line(r):
    return " ".join(r.output.split())


@pytest.fixture
def vd(tmp_path):
    """A button with the firmware on it (no configuration yet), switched on."""
    install(tmp_path / "flash")
    rig = VirtualDevice(tmp_path / "flash", time_scale=FAST, c4_hangup_after_s=30)
    rig.start()
    rig.wait_console("EV boot", timeout=30)
    yield rig
    rig.stop()


def register_with_case(vd, contacts=(DEFAULT_CONTACT,)):
    assert run("devices", "add", vd.mac, "--label", "BS-0042").exit_code == 0
    args = ["devices", "assign", "BS-0042", "--alias", "Luna", "--case-id", "AGS-2026-0042",
            "--order-ends", "none"]
    for c in contacts:
        args += ["--contact", c]
    r = run(*args)
    assert r.exit_code == 0, r.output


def provision(vd, *extra):
    return run("provision", "--port", vd.repl_url, "--c4", DEFAULT_C4, *extra)


def config_on(vd):
    path = vd.flash_dir / CONFIG_PATH
    return path.read_bytes() if path.exists() else None


def swap_config(vd, **changes):
    """What a tamperer (or a mix-up at the bench) does over the REPL: her button gets
    another configuration."""
    with Device(vd.repl_url) as dev:
        cfg = json.loads(dev.read_file(CONFIG_PATH))
        cfg.update(changes)
        dev.write_file_atomic(CONFIG_PATH, config_bytes(cfg))


def calls_and_sms(vd, mark):
    return [e for e in vd.events[mark:] if e["kind"] in ("sms", "call", "call_connected")]


def actions(mac):
    with Registry() as reg:
        return [a["action"] for a in reg.audit(mac)]


def test_provision_takes_her_case_and_the_registry_label(vd):
    register_with_case(vd)
    r = provision(vd, "--device", "BS-0042")
    assert r.exit_code == 0, r.output
    assert "provisioned BS-0042" in r.output and "from her case" in r.output
    cfg = json.loads(config_on(vd))
    assert (cfg["device_id"], cfg["alias"], cfg["contacts"]) == ("BS-0042", "Luna", [DEFAULT_CONTACT])
    with Registry() as reg:
        d = reg.get(vd.mac)
    assert d.state == "provisioned" and d.config_hash == config_hash(config_on(vd))
    assert d.config_case is not None and d.pending_config_hash is None
    assert actions(vd.mac)[-3:] == ["reveal", "provision_begin", "provision"]
    # values typed that contradict her case are refused, nothing written
    before = config_on(vd)
    for extra, what in ((["--contact", OTHER_CONTACT], "--contact differs from the case"),
                        (["--alias", "Sol"], "--alias differs from the case"),
                        (["--device-id", "BS-0099"], "the registry knows this button")):
        r = provision(vd, *extra)
        assert r.exit_code == 2, r.output
        assert what in one_line(r) and OTHER_CONTACT not in r.output
    assert config_on(vd) == before


def test_mismatched_button_is_refused_at_test_call_and_deliver(vd):
    register_with_case(vd)
    assert provision(vd).exit_code == 0
    good = config_on(vd)
    r = run("test-call", "--port", vd.repl_url, "--device", "BS-0042", "--timeout", "60")
    assert r.exit_code == 0, r.output

    # after a passed test call, her button gets other contacts and another device id
    swap_config(vd, contacts=[OTHER_CONTACT], device_id="BS-0099")
    mark = len(vd.events)
    r = run("test-call", "--port", vd.repl_url, "--timeout", "60")
    assert r.exit_code == 5, r.output
    assert "BS-0042 (" in r.output and "is not the one recorded at provisioning" in one_line(r)
    assert OTHER_CONTACT not in r.output and DEFAULT_CONTACT not in r.output
    assert mask(OTHER_CONTACT) not in r.output  # no data of hers (or the tamperer's), even masked
    assert calls_and_sms(vd, mark) == []         # refused before the test alert ran
    r = run("devices", "deliver", "BS-0042", "--port", vd.repl_url)
    assert r.exit_code == 5, r.output
    assert "is not the one recorded at provisioning" in one_line(r)
    with Registry() as reg:
        assert reg.get(vd.mac).state == "provisioned"
    assert actions(vd.mac).count("config_mismatch") == 2

    # her own configuration back, byte for byte: the button is hers again and is delivered
    with Device(vd.repl_url) as dev:
        dev.write_file_atomic(CONFIG_PATH, good)
    r = run("devices", "deliver", "BS-0042", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output
    assert "BS-0042 delivered; 1 of 1 delivered" in r.output
    with Registry() as reg:
        assert reg.get(vd.mac).state == "delivered"


def test_deliver_refuses_a_button_that_does_not_run_what_its_test_call_ran(vd):
    register_with_case(vd)
    assert provision(vd).exit_code == 0
    r = run("test-call", "--port", vd.repl_url, "--device", "BS-0042", "--timeout", "60")
    assert r.exit_code == 0, r.output

    # after the test call, someone at the bench edits the button's boot.py
    boot = vd.flash_dir / "boot.py"
    good = boot.read_bytes()
    boot.write_bytes(good + b"# edited at the bench\n")
    r = run("devices", "deliver", "BS-0042", "--port", vd.repl_url)
    assert r.exit_code == 5, r.output
    assert "does not run what its test call ran: boot.py is not this release's" in one_line(r)
    with Registry() as reg:
        assert reg.get(vd.mac).state == "provisioned"
    boot.write_bytes(good)

    # the registry says its test call ran another release (this tool was upgraded since):
    # refused from the registry alone, before the port is opened
    with Registry() as reg:
        tested = reg.get(vd.mac)
        reg.record_test_call(vd.mac, True, config_hash=tested.config_hash, firmware_hash="ab" * 32,
                             board=tested.board)
    r = run("devices", "deliver", "BS-0042", "--port", DEAD_PORT)
    assert r.exit_code == 7, r.output
    assert "its test call ran another release than this tool's" in one_line(r)

    # a test call with this release: delivered
    r = run("test-call", "--port", vd.repl_url, "--device", "BS-0042", "--timeout", "60")
    assert r.exit_code == 0, r.output
    r = run("devices", "deliver", "BS-0042", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output
    with Registry() as reg:
        assert reg.get(vd.mac).state == "delivered"


def test_a_bench_config_is_refused_once_she_has_a_case(vd):
    # provisioned for the bench (no case yet), then her case is assigned: the button's
    # contacts are not hers, although its config is the one the registry recorded
    r = run("provision", "--port", vd.repl_url, "--alias", "Prueba", "--contact", OTHER_CONTACT,
            "--c4", DEFAULT_C4)
    assert r.exit_code == 0, r.output
    assert "bench configuration (no case: it cannot be delivered)" in one_line(r)
    assert run("devices", "assign", "BS-0001", "--alias", "Luna", "--case-id", "AGS-2026-0042",
               "--order-ends", "none", "--contact", DEFAULT_CONTACT).exit_code == 0
    mark = len(vd.events)
    r = run("test-call", "--port", vd.repl_url, "--timeout", "60")
    assert r.exit_code == 5, r.output
    assert "was not written from her current case" in one_line(r)
    assert calls_and_sms(vd, mark) == []
    # registry first: no passed test call with her case, so deliver never opens the port
    r = run("devices", "deliver", "BS-0001", "--port", DEAD_PORT)
    assert r.exit_code == 7, r.output
    assert "no test call since" in one_line(r)


def test_returned_or_wrong_button_is_refused_before_anything_is_written(tmp_path):
    cfg = demo_config()
    install(tmp_path / "flash", config=cfg)
    rig = VirtualDevice(tmp_path / "flash", time_scale=FAST)
    rig.start()
    try:
        rig.wait_console("EV ready", timeout=60)
        with Registry() as reg:  # her button, delivered and given back
            reg.add_device(rig.mac, label="BS-0042")
            reg.add_device(OTHER_MAC, label="BS-0043")
        register_case = ["devices", "assign", "BS-0042", "--alias", "Luna", "--case-id", "AGS-1",
                         "--order-ends", "none", "--contact", DEFAULT_CONTACT]
        assert run(*register_case).exit_code == 0
        with Registry() as reg:
            reg.record_provision(rig.mac, config_hash(config_bytes(cfg)))
            reg.record_test_call(rig.mac, True)
            reg.deliver(rig.mac)
            reg.return_device(rig.mac)
        before = (tmp_path / "flash" / CONFIG_PATH).read_bytes()
        audit_before = actions(rig.mac)

        r = run("provision", "--port", rig.repl_url, "--alias", "Sol", "--contact", OTHER_CONTACT,
                "--c4", DEFAULT_C4)
        assert r.exit_code == 7, r.output
        assert "cannot provision BS-0042" in one_line(r) and "it is returned" in one_line(r)
        # the technician names another button than the one on the port
        r = run("test-call", "--port", rig.repl_url, "--device", "BS-0043")
        assert r.exit_code == 7, r.output
        assert f"the button on the port is {rig.mac} (BS-0042), not BS-0043" in one_line(r)
        r = run("devices", "deliver", "BS-0043", "--port", rig.repl_url)
        assert r.exit_code == 7, r.output  # BS-0043 is in stock: refused before reading
        assert (tmp_path / "flash" / CONFIG_PATH).read_bytes() == before
        assert actions(rig.mac) == audit_before
        with Registry() as reg:
            assert reg.get(rig.mac).state == "returned"
    finally:
        rig.stop()


def test_return_reads_the_button_so_a_mistyped_label_closes_no_other_womans_case(vd):
    """`devices return` cannot be undone (her case closed, her button no longer watched): the
    button she gave back is read, and a label one digit off is refused with nothing changed."""
    with Registry() as reg:
        for m, label, alias, contact in ((vd.mac, "BS-0042", "Luna", DEFAULT_CONTACT),
                                         (OTHER_MAC, "BS-0043", "Sol", OTHER_CONTACT)):
            reg.add_device(m, label=label)
            reg.record_deploy(m, "ab" * 32)
            assert run("devices", "assign", label, "--alias", alias, "--case-id", f"AGS-{label}",
                       "--order-ends", "none", "--contact", contact).exit_code == 0
            reg.record_provision(m, "cd" * 32)
            reg.record_test_call(m, True)
            reg.deliver(m)
    audit_before = actions(OTHER_MAC)
    r = run("devices", "return", "BS-0043", "--port", vd.repl_url)
    assert r.exit_code == 7, r.output
    assert f"the button on the port is {vd.mac} (BS-0042), not BS-0043" in one_line(r)
    assert "nothing was changed" in one_line(r)
    with Registry() as reg:
        assert reg.get(OTHER_MAC).state == "delivered" and reg.get(OTHER_MAC).has_case
    assert actions(OTHER_MAC) == audit_before
    r = run("devices", "return", "BS-0042", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output
    assert "BS-0042 returned, her case closed" in one_line(r)
    with Registry() as reg:
        assert reg.get(vd.mac).state == "returned" and not reg.get(vd.mac).has_case

@pytest.mark.parametrize("command", [
    ["provision", "--port", DEAD_PORT, "--alias", "Luna", "--contact", DEFAULT_CONTACT, "--c4", DEFAULT_C4],
    ["test-call", "--port", DEAD_PORT],
    ["devices", "deliver", "BS-0042", "--port", DEAD_PORT],
    ["flash", "--port", DEAD_PORT, "--virtual-firmware"],
])
def test_broken_registry_refuses_before_the_port_is_opened(tmp_path, monkeypatch, command):
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"these are not the buttons you are looking for\n" * 100)
    monkeypatch.setenv("BOTON_REGISTRY", str(broken))
    r = run(*command)
    # exit 3 would mean it went for the device first; 5 is the registry's own refusal
    assert r.exit_code == 5, r.output
    assert "is not a registry" in one_line(r) and "cannot open" not in r.output


def test_broken_registry_leaves_a_live_button_untouched(vd, tmp_path, monkeypatch):
    register_with_case(vd)
    assert provision(vd).exit_code == 0
    before = config_on(vd)
    (tmp_path / "registry.sqlite").write_bytes(b"\0" * 4096)  # the registry file got damaged
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"registry.sqlite{suffix}").unlink(missing_ok=True)
    r = run("provision", "--port", vd.repl_url, "--alias", "Sol", "--contact", OTHER_CONTACT,
            "--c4", DEFAULT_C4)
    assert r.exit_code == 5, r.output
    assert config_on(vd) == before


def test_interrupted_provision_says_provisioning_and_the_next_run_finishes(vd):
    register_with_case(vd)
    vd.unplug_when(b"config.json.tmp")  # the cable goes as the new config is being written
    r = provision(vd)
    assert r.exit_code == 3, r.output
    with Registry() as reg:
        d = reg.get(vd.mac)
    assert d.state == "provisioning" and d.pending_config_hash and d.config_hash is None
    r = run("test-call", "--port", vd.repl_url)
    assert r.exit_code == 7 and "it is provisioning" in one_line(r)

    r = provision(vd)  # the next run finishes it: written again, read back, verified
    assert r.exit_code == 0, r.output
    with Registry() as reg:
        d = reg.get(vd.mac)
    assert d.state == "provisioned" and d.config_hash == config_hash(config_on(vd))
    assert d.pending_config_hash is None

    # interrupted again, and this time the button is gone: roll the registry back
    vd.unplug_when(b"config.json.tmp")
    assert provision(vd).exit_code == 3
    r = run("devices", "abort-provision", "BS-0042")
    assert r.exit_code == 0, r.output
    with Registry() as reg:
        d = reg.get(vd.mac)
    assert (d.state, d.config_hash, d.wipe_required) == ("in_stock", None, True)
    assert run("devices", "abort-provision", "BS-0042").exit_code == 7  # nothing left to abort


def test_flash_checks_the_registry_before_erasing(tmp_path):
    rig = VirtualDevice(tmp_path / "flash", flash_image=tmp_path / "chip.bin", time_scale=FAST)
    rig.start()
    try:
        with Registry() as reg:
            reg.add_device(rig.mac, label="BS-0042")
        assert run("devices", "assign", "BS-0042", "--alias", "Luna", "--case-id", "AGS-1",
                   "--order-ends", "none", "--contact", DEFAULT_CONTACT).exit_code == 0
        with Registry() as reg:  # her button, in her hands
            reg.record_provision(rig.mac, "ab" * 32)
            reg.record_test_call(rig.mac, True)
            reg.deliver(rig.mac)
        image = rig.flash_image.read_bytes()
        rig.enter_download()
        r = run("flash", "--port", rig.download_url, "--virtual-firmware")
        assert r.exit_code == 7, r.output
        assert "cannot flash BS-0042" in one_line(r) and "it is delivered" in one_line(r)
        assert rig.flash_image.read_bytes() == image  # nothing erased
        with Registry() as reg:
            assert reg.get(rig.mac).state == "delivered"

        r = run("flash", "--port", rig.download_url, "--virtual-firmware", "--force")
        assert r.exit_code == 0, r.output
        with Registry() as reg:
            d = reg.get(rig.mac)
        # the erase took her configuration: the registry says so
        assert (d.state, d.config_hash, d.wipe_required) == ("in_stock", None, True)
        assert d.image_hash and "flash_erase" in actions(rig.mac)
    finally:
        rig.stop()


def test_keep_pin_reprovisions_her_delivered_button_and_her_pin_still_works(vd, monkeypatch, tmp_path):
    # her contacts change: C4 and her contacts know her PIN, the host never had it
    register_with_case(vd)
    assert provision(vd).exit_code == 0          # her PIN: conftest's BOTON_PIN
    her_pin = "730519"
    held = json.loads(config_on(vd))["pin_hash"]
    with Registry() as reg:
        reg.record_test_call(vd.mac, True, config_hash=reg.get(vd.mac).config_hash)
        reg.deliver(vd.mac)
    r = run("devices", "edit-case", "BS-0042", "--contact", DEFAULT_CONTACT, "--contact", OTHER_CONTACT)
    assert r.exit_code == 0, r.output

    # a PIN given too: which one is meant? refused before the port is opened
    pin_file = tmp_path / "pin"
    pin_file.write_text("482916\n")
    pin_file.chmod(0o600)
    for extra in (["--pin-file", str(pin_file)], []):
        r = run("provision", "--port", DEAD_PORT, "--c4", DEFAULT_C4, "--keep-pin", *extra)
        assert r.exit_code == 2, r.output
        assert "--keep-pin keeps the PIN the button holds" in one_line(r) and "nothing was written" in one_line(r)
    monkeypatch.delenv("BOTON_PIN")
    r = run("provision", "--port", DEAD_PORT, "--c4", DEFAULT_C4, "--keep-pin", "--pin-file", str(pin_file))
    assert r.exit_code == 2, r.output

    booted = vd.console_mark()
    r = provision(vd, "--device", "BS-0042", "--keep-pin")
    assert r.exit_code == 0, r.output
    assert "SMS command PIN: kept, the one the button held" in one_line(r)
    cfg = json.loads(config_on(vd))
    assert cfg["contacts"] == [DEFAULT_CONTACT, OTHER_CONTACT] and cfg["pin_hash"] == held
    assert held.split("$")[2] not in r.output and held.split("$")[1] not in r.output
    with Registry() as reg:
        d = reg.get(vd.mac)
    assert (d.state, d.config_hash, d.pending_config_hash) == ("delivered", config_hash(config_on(vd)), None)
    assert actions(vd.mac)[-4:] == ["reveal", "keep_pin", "provision_begin", "provision"]

    # C4 asks where she is with the PIN it has always had: the button answers
    vd.wait_console("EV ready", timeout=60, since=booted)
    mark = len(vd.events)
    vd.call(vd.network.sms_to_device, DEFAULT_C4, vd.device_number, f"UBICACION {her_pin}")
    reply = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_C4, timeout=60, after=mark)
    assert reply["text"].startswith("UBICACION BS-0042")


def test_keep_pin_refuses_a_button_with_no_pin_of_hers_to_keep(vd, monkeypatch):
    monkeypatch.delenv("BOTON_PIN")
    register_with_case(vd)
    r = provision(vd, "--keep-pin")          # never provisioned: no configuration at all
    assert r.exit_code == 5, r.output
    assert "--keep-pin refused: it has no configuration" in one_line(r) and "nothing was written" in one_line(r)
    assert config_on(vd) is None

    monkeypatch.setenv("BOTON_PIN", "730519")
    assert provision(vd).exit_code == 0
    monkeypatch.delenv("BOTON_PIN")
    swap_config(vd, pin_hash=None)           # a hand-edited config without a PIN hash
    before = config_on(vd)
    audit = actions(vd.mac)
    r = provision(vd, "--keep-pin")
    assert r.exit_code == 5, r.output
    assert "--keep-pin refused: its configuration holds no PIN hash" in one_line(r)
    assert config_on(vd) == before and actions(vd.mac) == audit + ["reveal", "config_mismatch"]
    with Registry() as reg:
        assert reg.get(vd.mac).state == "provisioned"
