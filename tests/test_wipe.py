"""`boton wipe` leaves nothing of her on the flash, and proves it (issue 10, item 1).

The virtual device runs from a whole SPI flash file (a raw 4 MB chip): her alias, numbers,
PIN hash and the position of her alert are searched for in that file itself, read here
independently of the product's own check."""
import json
import re

import pytest
from click.testing import CliRunner

from boton import image as img
from boton import wipe_check
from boton.cli import main
from boton.release import firmware_files
from boton.rules import config_bytes, config_hash
from boton.errors import RegistryConflict
from boton.registry import CaseData, Registry
from boton.registry_paths import registry_file
from boton.sim.rig import DEFAULT_CONTACT, LFS_BLOCKDEV, VirtualDevice
from rigkit import FAST, FAST_FIX, demo_config

BOARD = "tcall_sim800l_axp192"
# not the rig's default point (that one is also an example in the tools' own code)
HER_POINT = (21.91357, -102.31049)
PIN = "482913"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def e7(deg):
    return int(round(deg * 10_000_000))


def her_needles(config):
    """What of her a raw dump must not hold, in the forms the firmware writes, decided here
    (not by the product): alias, each number as E.164 / digits / national, the PIN hash and
    its salt, her position as the 1e-7 integers of alert.json and the 5 decimals of her SMS."""
    out = {"alias": [b"Luna", "Luna".encode("utf-16-le")]}
    for kind, numbers in (("contact", config["contacts"]), ("c4", config["c4_numbers"])):
        for n in numbers:
            digits = re.sub(r"\D", "", n)
            out.setdefault(kind, []).extend([n.encode(), digits.encode(), digits[-10:].encode(),
                                             digits[-10:].encode("utf-16-le")])
    _, salt, digest = config["pin_hash"].split("$")
    out["pin_hash"] = [digest.encode(), salt.encode(), bytes.fromhex(salt)]
    out["position"] = [str(e7(v)).encode() for v in HER_POINT] + \
        [("%.5f" % v).encode() for v in HER_POINT]
    return out


def found_in(raw, needles):
    return {kind: sum(raw.count(p) for p in pats) for kind, pats in needles.items()
            if any(p in raw for p in pats)}


def vfs_bytes(vd):
    return img.extract_filesystem(vd.flash_image.read_bytes())


@pytest.fixture
def her_button(tmp_path, monkeypatch):
    """A provisioned button on a raw flash chip, in the registry as delivered to her (a case
    with her alias and contact), booted and ready."""
    monkeypatch.setenv("BOTON_KEY_FILE", str(tmp_path / "registry.key"))
    assert run("registry", "init-key").exit_code == 0
    config = demo_config(pin=PIN)
    chip = tmp_path / "chip.bin"
    chip.write_bytes(img.build_image(img.virtual_firmware(), img.device_files(BOARD, config), "4MB"))
    vd = VirtualDevice(tmp_path / "flash", board=BOARD, flash_image=chip, repl="rfc2217",
                       time_scale=FAST, gps_point=HER_POINT, c4_hangup_after_s=5,
                       **FAST_FIX)  # her position in the first SMS, to search the flash for
    vd.start()
    try:
        with Registry() as reg:
            reg.add_device(vd.mac, label="BS-0042", board=BOARD, flash_size="4MB")
            reg.assign(vd.mac, CaseData(alias="Luna", case_id="AGS-2026-0042",
                                        contacts=[DEFAULT_CONTACT], order_ends="2031-05-17"))
            cfg_hash = config_hash(config_bytes(config))
            reg.record_provision(vd.mac, cfg_hash)
            reg.record_test_call(vd.mac, True, "sms_ok call_active test_result", config_hash=cfg_hash)
            reg.deliver(vd.mac, config_hash=cfg_hash)
        vd.wait_console("EV ready", timeout=60)
        yield vd, config
    finally:
        vd.stop()


def test_wipe_leaves_nothing_on_the_raw_flash(her_button):
    vd, config = her_button
    needles = her_needles(config)
    # her alert: the device keeps her position on its flash while it lasts, but only sealed
    # under a key in RTC memory (shred.py): no block of the raw flash shows it
    vd.press(hold_s=1.2)
    sms = vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT, timeout=60)
    assert "position" in found_in(sms["text"].encode(), needles)  # the search can find a position
    vd.wait_rtc_memory(lambda mem: mem != b"")  # the alert's key: its position is on the flash
    assert "position" not in found_in(vfs_bytes(vd), needles)
    mark = len(vd.events)
    vd.call(vd.network.sms_to_device, vd.c4_numbers[0], vd.device_number, "Cancelar " + PIN)  # C4 ends it
    vd.wait_event(lambda e: e["kind"] == "sms" and e["to"] == DEFAULT_CONTACT and "cerrada" in e["text"],
                  timeout=60, after=mark)

    # delivered: refused before anything on the button is touched
    before = vfs_bytes(vd)
    r = run("wipe", "--port", vd.repl_url)
    assert r.exit_code == 7 and "return it first: boton devices return BS-0042" in r.output
    assert json.loads(img.read_filesystem(vfs_bytes(vd))["config.json"])["alias"] == "Luna"

    # What deleting the files (the old wipe) would leave: the raw flash holds her. This is
    # also what shows the search below can find her.
    on_flash = found_in(before, needles)
    assert {"alias", "contact", "c4", "pin_hash"} <= set(on_flash), on_flash
    assert "position" not in on_flash  # her ended alert's position: sealed, its key dropped

    with Registry() as reg:
        reg.return_device(vd.mac)
    r = run("wipe", "--port", vd.repl_url)
    assert r.exit_code == 0, r.output
    assert "verified" in r.output and "nothing found" in r.output
    assert f"wiped BS-0042 ({vd.mac}): verified" in " ".join(r.output.split())  # the label the technician knows it by
    assert DEFAULT_CONTACT not in r.output and "Luna" not in r.output  # the report shows no data

    after = vfs_bytes(vd)
    # the raw-flash search after wipe finds nothing of hers: only what the release itself
    # carries (the programme's C4 number is the board profile's safe-mode C4), once
    release = b"\x00".join(data for _, data in firmware_files(BOARD))
    assert found_in(after, needles) == found_in(release, needles)
    assert set(found_in(release, needles)) <= {"c4"}
    files = img.read_filesystem(after)
    assert "config.json" not in files and "alert.json" not in files
    assert "board.json" in files and "main.py" in files  # the firmware is back, no config
    vd.wait_console("EV safe_mode config_missing", timeout=60)

    with Registry() as reg:
        d = reg.get(vd.mac)
        assert (d.state, d.wipe_required) == ("in_stock", False)
        entry = reg.audit(vd.mac)[-1]
    assert entry["action"] == "wipe" and "returned -> in_stock; verified" in entry["detail"]
    assert "raw read-back" in entry["detail"] and "nothing found" in entry["detail"]
    assert "Luna" not in entry["detail"] and DEFAULT_CONTACT[-10:] not in entry["detail"]


def test_a_wipe_cut_short_after_the_erase_loses_neither_her_log_nor_the_firmware(her_button, monkeypatch):
    # Found by a review: --keep-log held the log in the host's memory only, and wrote it
    # back after the firmware's reinstall; a cable pulled in between lost it for good, and
    # the wipe run again, finding no board profile, reinstalled nothing and said nothing
    vd, config = her_button
    before = {k: v for k, v in img.read_filesystem(vfs_bytes(vd)).items() if k.startswith("log.")}
    assert before
    with Registry() as reg:
        reg.return_device(vd.mac)
    from boton.device import Device
    from boton.errors import EXIT_CONNECT, DeviceError
    write_file = Device.write_file

    def cable_pulled(dev, path, data):         # as the log is written back after the erase
        if path.startswith("log."):
            raise DeviceError(f"lost the device on {dev.port}: cable pulled", EXIT_CONNECT)
        return write_file(dev, path, data)
    monkeypatch.setattr(Device, "write_file", cable_pulled)
    r = run("wipe", "--port", vd.repl_url, "--keep-log")
    assert r.exit_code == 3, r.output
    monkeypatch.setattr(Device, "write_file", write_file)
    files = img.read_filesystem(vfs_bytes(vd))
    assert "config.json" not in files and "board.json" not in files and "log.0" not in files
    # again without --keep-log: the copy stays (the firmware's boots since write a new log,
    # which must not hide it), and the wipe says where
    r = run("wipe", "--port", vd.repl_url)
    assert r.exit_code == 0 and "wipe with --keep-log to put it back" in " ".join(r.output.split()), r.output
    vd.wait_console("EV safe_mode config_missing", timeout=60)
    r = run("wipe", "--port", vd.repl_url, "--keep-log")
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "its event log (" in out and "was kept on this computer: it is put back" in out
    files = img.read_filesystem(vfs_bytes(vd))
    assert "board.json" in files and "main.py" in files and "config.json" not in files
    for name, data in before.items():
        assert files[name].startswith(data), name
    assert not list((registry_file().parent / "wipe-kept").glob("*.json"))  # served: gone


def test_a_failed_verification_keeps_it_out_of_stock(her_button, monkeypatch):
    vd, _ = her_button
    with Registry() as reg:
        reg.return_device(vd.mac)
    real = wipe_check.read_partition

    def a_block_that_kept_her_alias(*a, **kw):
        # as if the chip had not erased one block: her alias reads back from it
        back = real(*a, **kw)
        data = bytearray(back.data)
        data[-4096:-4096 + 16] = b'{"alias": "Luna"'
        back.data = bytes(data)
        return back

    monkeypatch.setattr(wipe_check, "read_partition", a_block_that_kept_her_alias)
    r = run("wipe", "--port", vd.repl_url)
    assert r.exit_code == 5 and "NOT verified" in r.output and "alias" in r.output
    assert f"wipe of BS-0042 ({vd.mac}) NOT verified" in " ".join(r.output.split())
    with Registry() as reg:
        d = reg.get(vd.mac)
        assert (d.state, d.wipe_required) == ("returned", True)
        entry = reg.audit(vd.mac)[-1]
    assert entry["action"] == "wipe_failed" and "FOUND alias x1" in entry["detail"]


def test_a_read_back_of_another_chip_proves_nothing_and_keeps_it_out_of_stock(her_button, tmp_path):
    """--download-port mistyped on a bench of several boards: the read-back searched another
    chip's flash and put her button in stock as verified."""
    vd, _ = her_button
    other_chip = tmp_path / "other.bin"
    other_chip.write_bytes(img.build_image(img.virtual_firmware(), firmware_files(BOARD), "4MB"))
    other = VirtualDevice(tmp_path / "flash2", board=BOARD, flash_image=other_chip, repl="rfc2217",
                          time_scale=FAST, mac="24:0a:c4:00:00:77")
    other.start()
    try:
        with Registry() as reg:
            reg.return_device(vd.mac)
        r = run("wipe", "--port", vd.repl_url, "--download-port", other.repl_url)
    finally:
        other.stop()
    assert r.exit_code == 5 and "NOT verified" in r.output, r.output
    assert "another chip's (24:0a:c4:00:00:77)" in " ".join(r.output.split())
    with Registry() as reg:
        d = reg.get(vd.mac)
        assert (d.state, d.wipe_required) == ("returned", True)
        assert reg.audit(vd.mac)[-1]["action"] == "wipe_failed"


def test_force_on_a_delivered_button_asks_and_is_audited(her_button):
    vd, _ = her_button
    r = run("wipe", "--port", vd.repl_url, "--force")  # no terminal to ask on
    assert r.exit_code == 2 and "--yes" in r.output
    log_before = img.read_filesystem(vfs_bytes(vd))["log.0"]
    r = run("wipe", "--port", vd.repl_url, "--force", "--yes", "--keep-log")
    assert r.exit_code == 0, r.output  # the kept log holds nothing of hers: still verified
    assert img.read_filesystem(vfs_bytes(vd))["log.0"].startswith(log_before)
    assert "its event log was kept" in r.output
    with Registry() as reg:
        d = reg.get(vd.mac)
        assert d.state == "in_stock" and reg.case(vd.mac) is None  # her case closed with it
        entry = [e for e in reg.audit(vd.mac) if e["action"] == "wipe"][-1]
        # her event log is still on it: no other woman's case until a full wipe
        assert d.wipe_required
        with pytest.raises(RegistryConflict, match="run `boton wipe` before giving it a case"):
            reg.assign(vd.mac, CaseData(alias="Sol", case_id="AGS-2026-0099", contacts=["449 555 6677"]))
    assert "FORCED on a delivered button" in entry["detail"] and "event log was kept" in entry["detail"]


def test_needles_cover_the_forms_the_firmware_writes():
    config = json.loads(config_bytes(demo_config(pin=PIN)))
    found = wipe_check.needles((), config, {"fix": [e7(HER_POINT[0]), e7(HER_POINT[1]), 1, 8, 5]})
    blob = (json.dumps(config) + ' "fix": [%d, ' % e7(HER_POINT[0])).encode()
    res = wipe_check.search(blob, found)
    assert {k for k, n in res.found.items() if n} == {"alias", "contact", "c4", "pin_hash",
                                                      "pin_salt", "position", "stale_position"}
    # masked numbers (the event log's) are not hers: not a finding
    assert wipe_check.search(b"sms_ok alert +52*******67", found).clean
    # a word of the reinstalled firmware is not her alias
    assert wipe_check.search(b"Luna", wipe_check.with_baseline(found, [b"Luna"])).clean


def test_an_erase_the_chip_refuses_is_counted_not_fatal(mpy, tmp_path):
    # esp32.Partition raises OSError on a failed erase (ports/esp32/esp32_partition.c,
    # check_esp_err) where wipefs expected a nonzero return: the wipe stopped after the
    # unmount, with her data half erased and no count for the host's "retire it" message
    chip = tmp_path / "vfs.bin"
    chip.write_bytes(b"\xa5" * (16 * 4096))
    out = mpy.run(f"""
import sys
sys.path.insert(0, {str(LFS_BLOCKDEV.parent)!r})
import hw, lfs_blockdev, wipefs
bdev = lfs_blockdev.FlashRegion({str(chip)!r}, 0, 16 * 4096)
bdev.worn = (3, 11)
hw.vfs_partition = lambda: (bdev, "/wiped", 0, 16 * 4096)
wipefs.run()
""")
    info = json.loads(out.strip().splitlines()[-1])
    assert info["raw"] and info["blocks"] == 16 and info["erase_failed"] == 2, info
    raw = chip.read_bytes()
    assert b"\xa5" * 4096 in raw[3 * 4096:4 * 4096]            # the worn blocks kept theirs
    assert raw.count(b"\xa5" * 4096) == 2                      # every other block was erased
