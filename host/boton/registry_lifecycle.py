"""A button's life in the registry: flash, deploy, provision (in two steps around the
device write), test call, delivery, return, wipe, faulty, restock, retire.

Every change is one transaction that reads the device's row, checks the move against
registry_states.TRANSITIONS, writes it and its audit row; the order of operations
(docs/registry.md) is: the registry is checked before a device is touched (precheck), and
what the device step did is recorded after it.
"""
import json
import re

from .errors import EXIT_VERIFY, RegistryConflict, RegistryError
from .registry_fields import (LABEL_MAX, check_board, check_hash, format_flash_size, normalise_iccid,
                              normalise_imei, normalise_label, normalise_mac, parse_flash_size,
                              resolve_technician, scrub, show_input)
from .registry_schema import DeviceRecord
from .registry_states import KEPT_LOG_NOTE, TRANSITIONS, refusal_hint
from .rules import DAILY_STATUS_MAX_S
from .rules import config_hash as prov_config_hash

# A provisioning that ended (finished, aborted, or its button wiped or back in stock): no
# configuration is being written any more, so none of its columns may outlive it
NO_PENDING = {"pending_config_hash": None, "pending_case": None, "pending_pin_kept": None}

# what a button that cannot call C4 is refused (registry's `voice` = 0)
NEEDS_VOICE = ("test_call", "deliver")


class DeviceLifecycle:
    """Registry's lifecycle methods (a mixin: it uses the registry's transactions, rows and audit)."""

    def record_flash(self, mac, flash_size, firmware_image_hash, kept_config=False, skipped=False) -> DeviceRecord:
        """MicroPython image written with esptool. Any earlier test call no longer counts.
        kept_config: written with --keep-config (her filesystem, her event log with it, left
        as it was): audited as `flash_kept`, which keeps the log's anchor (log_anchor), where
        a `flash` erased the log. skipped: esptool found the image already there and wrote
        nothing: nothing changes if the registry knew it was."""
        mac = normalise_mac(mac)
        size = parse_flash_size(flash_size)
        image = check_hash(firmware_image_hash, "firmware image hash")
        with self._write() as db:
            row, to = self._begin(db, mac, "flash")
            if skipped and row["image_hash"] == image and row["flash_size"] == size:
                return DeviceRecord.from_row(row)
            self._update(db, mac, flash_size=size, image_hash=image, flashed_at=self.now(),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "flash_kept" if kept_config else "flash", mac,
                        f"image {image[:12]}, flash {format_flash_size(size)}"
                        + ("; her filesystem kept (--keep-config)" if kept_config else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    def record_deploy(self, mac, firmware_hash) -> DeviceRecord:
        """Application firmware copied with `boton deploy`. Any earlier test call no longer counts."""
        mac = normalise_mac(mac)
        fw = check_hash(firmware_hash, "firmware hash")
        with self._write() as db:
            self._begin(db, mac, "deploy")
            self._update(db, mac, firmware_hash=fw, deployed_at=self.now(),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "deploy", mac, f"firmware {fw[:12]}")
            return DeviceRecord.from_row(self._row(db, mac))

    # ------------------------------------------------------------------ order of operations
    # Every command that touches a button runs registry first, device second, registry last
    # (docs/registry.md): precheck() before anything is written to the device, then the
    # device step, then the record. Provisioning is two records around the write.
    def check_named(self, mac, expected):
        """--device: the button on the port (eFuse MAC `mac`) is the one the technician named
        (a label or MAC; None: not named), else RegistryConflict before anything is touched."""
        if expected is None:
            return
        named = self.find(expected)
        if named.mac != normalise_mac(mac):
            held = self.get(mac)
            raise RegistryConflict(f"the button on the port is {normalise_mac(mac)}"
                                   + (f" ({held.label})" if held else "")
                                   + f", not {named.label} ({named.mac}): nothing was changed; "
                                   "plug in the button you named")

    def precheck(self, action, mac, expected=None, register=False, label=None) -> DeviceRecord:
        """Registry first: may `action` touch the button whose eFuse MAC `mac` was read from
        the port? expected: the label or MAC the technician named (--device): another button
        on the port is refused. A button not in the registry is refused, or registered in
        stock first when `register` (flash, deploy, a bench provision), under `label`.
        Refused if its state does not allow `action` (TRANSITIONS). Returns the DeviceRecord;
        changes nothing unless it registers the button."""
        mac = normalise_mac(mac)
        self.check_named(mac, expected)
        dev = self.get(mac)
        if dev is None:
            if not register:
                raise RegistryConflict(f"the button on the port ({mac}) is not in the registry: "
                                       "provision it with `boton provision` first (or add it with "
                                       "`boton devices add`)")
            dev = self.add_device(mac, label=label)
        if dev.state not in TRANSITIONS[action]:
            raise RegistryConflict(f"cannot {action.replace('_', ' ')} {dev.label} ({mac}): it is "
                                   f"{dev.state}; {refusal_hint(action, dev.state)}")
        if action == "provision" and len(dev.label) > LABEL_MAX:   # a label from an older registry
            raise RegistryConflict(f"cannot provision {dev.label} ({mac}): its label {dev.label} has "
                                   f"{len(dev.label)} characters and her alert SMS shows only the first "
                                   f"{LABEL_MAX} ({dev.label[:LABEL_MAX]}), so C4 could take it for another "
                                   f"button; give it a shorter label first: `boton devices relabel "
                                   f"{dev.label} NEW-LABEL`")
        if action in NEEDS_VOICE and dev.voice is False:
            raise RegistryConflict(self.no_voice_refusal(action, dev.label, mac))
        return dev

    @staticmethod
    def no_voice_refusal(action, label, mac):
        return (f"cannot {action.replace('_', ' ')} {label} ({mac}): at its last provisioning the "
                "network offered SMS only, NO VOICE (it could not call C4); fit a SIM with VoLTE, or "
                "another operator's, and run `boton provision` again")

    def record_no_voice(self, mac, radio) -> DeviceRecord:
        """Provision found the modem registered but without voice (SMS only: C4 cannot be
        called) and wrote nothing: the button keeps its state and configuration, but is not
        ready: voice 0, any earlier test call no longer counts (test-call and deliver are
        refused until a provisioning finds voice). radio: what the network offered, e.g.
        "LTE, SMS only" (no data of hers)."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, _ = self._begin(db, mac, "provision")
            self._update(db, mac, voice=0, test_call_result=None, test_call_detail=None,
                         test_call_at=None, test_call_config=None)
            self._audit(db, "no_voice", mac, f"{scrub(radio)}; stays {row['state']}, not ready: "
                        "provision again with a SIM that has voice")
            return DeviceRecord.from_row(self._row(db, mac))

    def _active_case_row(self, db, mac):
        return db.execute("SELECT id, token FROM cases WHERE mac = ? AND active = 1", (mac,)).fetchone()

    def provision_case(self, mac):
        """(CaseData, case row id) of the case her button's configuration must be built from,
        or (None, None) for a button without a case (a bench configuration, which can be
        test-called but never delivered). Decrypting it is audited."""
        mac = normalise_mac(mac)
        with self._read() as db:
            row = self._active_case_row(db, mac)
        if row is None:
            return None, None
        c = self.cipher()
        with self._write() as db:
            case = c.open(mac, row["token"])
            self._audit(db, "reveal", mac, "case data read to write the button's configuration")
        return case, row["id"]

    def begin_provision(self, mac, config_hash, case_row=None, pin_kept=False) -> DeviceRecord:
        """Before the config is written: -> provisioning, recording the config about to be
        written and the case it was built from (None: a bench config). pin_kept: it carries
        the PIN hash pin_hash_to_keep gave (its PIN is known, should this write be cut short).
        Refused if the case was replaced since it was read, or a bench config is given for a
        button with a case."""
        mac = normalise_mac(mac)
        cfg = check_hash(config_hash, "config hash")
        with self._write() as db:
            row, to = self._begin(db, mac, "provision")
            active = self._active_case_row(db, mac)
            if (active["id"] if active else None) != case_row:
                raise RegistryConflict(f"cannot provision {row['label']} ({mac}): its case changed while "
                                       "the configuration was being prepared; run `boton provision` again")
            self._check_same_woman(db, row, case_row)
            self._update(db, mac, state=to, pending_config_hash=cfg, pending_case=case_row,
                         pending_pin_kept=int(bool(pin_kept)), test_call_result=None,
                         test_call_detail=None, test_call_at=None, test_call_config=None)
            self._audit(db, "provision_begin", mac, f"config {cfg[:12]} "
                        + ("from her case" if case_row else "for the bench (no case)")
                        + (f"; {row['state']} -> {to}" if to != row["state"] else
                           "; re-provisioning her delivered button: its test call no longer counts"))
            return DeviceRecord.from_row(self._row(db, mac))

    def _check_same_woman(self, db, row, case_row):
        """A button that holds a configuration written from a case is provisioned again
        only from that case, as edited since (the same case id: her); a delivered one never
        with a bench configuration. Another woman's case goes on a button only after a
        return and a verified wipe. Decrypts the two versions' case ids (the key is at hand:
        the new configuration was built from her case)."""
        held = row["config_case"]
        if row["state"] == "delivered" and case_row is None:
            raise RegistryConflict(f"cannot provision {row['label']} ({row['mac']}): it is delivered "
                                   "and has no case to build its configuration from")
        if held is None or case_row is None or held == case_row:
            return
        if not self._same_case_id(db, row["mac"], held, case_row):
            raise RegistryConflict(f"cannot provision {row['label']} ({row['mac']}): it holds the "
                                   "configuration of another case than the one assigned to it now; "
                                   "a button gets another woman's case only after a return and a "
                                   "verified `boton wipe`")

    def _same_case_id(self, db, mac, case_a, case_b):
        """Whether two of this button's case rows are versions of one case (the same case id:
        her, as `edit_case` keeps it). Decrypts both (the key is at hand)."""
        tokens = {r["id"]: r["token"] for r in db.execute(
            "SELECT id, token FROM cases WHERE id IN (?, ?) AND mac = ?", (case_a, case_b, mac))}
        if case_a not in tokens or case_b not in tokens:
            return False
        c = self.cipher()
        return c.open(mac, tokens[case_a]).case_id.upper() == c.open(mac, tokens[case_b]).case_id.upper()

    def finish_provision(self, mac, config_hash, imei=None, iccid=None, voice=None,
                         image=False, daily_interval_s=None, c4_first=None) -> DeviceRecord:
        """After the config was read back from the button and its hash is the one
        begin_provision recorded: provisioning -> provisioned. voice: whether the network
        offered voice (None: unknown, e.g. older firmware; False is record_no_voice's).
        image: the config was read back from a factory image file (`boton image`), not from
        the button: audited as `image`; the button holds it once the image is flashed (a
        whole-flash write, which erases its event log), and its voice stays as last seen.
        daily_interval_s: how often that config has it send its daily status SMS
        (rules.daily_interval_s; 0: never; None: unknown, judged at the firmware default).
        c4_first: the C4 number that config calls first (E.164; None: unknown)."""
        mac = normalise_mac(mac)
        cfg = check_hash(config_hash, "config hash")
        daily = _check_daily_interval(daily_interval_s)
        c4 = _check_c4(c4_first)
        imei = normalise_imei(imei) if imei else None
        iccid = normalise_iccid(iccid) if iccid else None
        with self._write() as db:
            row, to = self._begin(db, mac, "finish_provision")
            if row["pending_config_hash"] != cfg:
                raise RegistryConflict(f"cannot finish provisioning {row['label']} ({mac}): the button "
                                       f"holds config {cfg[:12]}, the registry expected "
                                       f"{(row['pending_config_hash'] or 'none')[:12]}; run "
                                       "`boton provision` again")
            if image:  # no network was seen: what was last seen of it stands
                voice = row["voice"]
            elif voice is not None:
                voice = int(bool(voice))
            # flagged only for this case's own configuration (an aborted provisioning, a chip
            # erase of her button): written again from it, the flash holds nothing of anyone
            # else's. A flag for anyone's data (a return, a kept log) waits for a wipe.
            own = (not image and row["wipe_required"] and row["wipe_case"] is not None
                   and row["wipe_case"] == row["pending_case"])
            flag = {"wipe_required": 0} if own else {}
            self._update(db, mac, state=to, config_hash=cfg, config_case=row["pending_case"],
                         **NO_PENDING,
                         imei=imei or row["imei"], iccid=iccid or row["iccid"], voice=voice,
                         daily_interval_s=daily, c4_first=c4,
                         technician=self.technician, provisioned_at=self.now(), state_reason=None, **flag)
            moved = f"{row['state']} -> {to}" if to != row["state"] else "stays delivered, to be test-called"
            if image:
                self._audit(db, "image", mac, f"config {cfg[:12]} read back from a factory image file; "
                            f"{moved}; on the button once the image is flashed" + _daily_note(daily))
            else:
                self._audit(db, "provision", mac, f"config {cfg[:12]} verified; {moved}"
                            + ("; wipe flag cleared: its flash held only this case's configuration" if own else "")
                            + _daily_note(daily))
            return DeviceRecord.from_row(self._row(db, mac))

    def pin_hash_to_keep(self, mac, raw, case_row) -> str:
        """`provision --keep-pin`: the PIN hash of the configuration read from the button (its
        bytes, None if it has none), for a configuration built from case row `case_row` (None:
        a bench one). Only from the configuration the registry recorded at this button's last
        finished provisioning (its hash: this button's, nothing swapped in since), written from
        the same woman's case as the new one (the same case id, as edited since:
        _check_same_woman), so a PIN hash never moves to another button or another woman's case,
        and a bench PIN never becomes hers. Refused in one line that shows neither the hash nor
        her data (exit 5; 7 for another woman's case), audited as `config_mismatch`."""
        from .pin import is_pin_hash

        mac = normalise_mac(mac)
        digest = prov_config_hash(raw) if raw is not None else None
        try:
            config = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):    # RecursionError: nested beyond Python's parser
            config = None
        with self._read() as db:
            row = self._row(db, mac)
        # cut short after its write: a --keep-pin run's configuration holds the PIN hash kept
        # from the recorded one (her PIN, known to her and C4); any other's, a PIN maybe never shown
        interrupted = digest is not None and digest != row["config_hash"] and digest == row["pending_config_hash"]
        why = None
        if raw is None:
            why = "it has no configuration"
        elif not isinstance(config, dict):
            why = "its configuration is not readable"
        elif not is_pin_hash(config.get("pin_hash")):
            why = "its configuration holds no PIN hash"
        elif interrupted and not row["pending_pin_kept"]:
            why = ("it holds the configuration of an interrupted provisioning, whose PIN may never "
                   "have been shown")
        elif row["config_hash"] is None:
            why = "the registry has no configuration recorded for it"
        elif digest != row["config_hash"] and not interrupted:
            why = (f"its configuration ({digest[:12]}) is not the one recorded at provisioning "
                   f"({row['config_hash'][:12]})")
        elif (row["config_case"] is None) != (case_row is None):
            why = ("its configuration and the one to write are not both from her case (one is a "
                   "bench configuration)")
        other_case = None
        with self._write() as db:
            if why is None:
                try:
                    self._check_same_woman(db, row, case_row)
                except RegistryConflict as e:
                    other_case = e
            if why or other_case:
                self._audit(db, "config_mismatch", mac, f"--keep-pin: {why or 'another case than the one it holds'}")
            else:
                self._audit(db, "keep_pin", mac, f"PIN hash read to keep from config {digest[:12]}, the one "
                            + ("recorded at provisioning" if digest == row["config_hash"] else
                               "an interrupted --keep-pin provisioning wrote"))
        if other_case:
            raise RegistryConflict(f"--keep-pin refused: {other_case}; nothing was written")
        if why:
            raise RegistryError(f"{row['label']} ({mac}): --keep-pin refused: {why}; nothing was written. "
                                "Give her PIN with --pin-file or BOTON_PIN instead (or set a new one, "
                                "which she and C4 then need)", EXIT_VERIFY)
        return config["pin_hash"]

    def record_unregistered_image(self, device_id, config_hash):
        """`boton image --unregistered`: an image for a device id that is no registered
        button (a bench or demo board). Nothing is recorded against a button; the audit
        trail says it was made, with its config hash (never her data)."""
        cfg = check_hash(config_hash, "config hash")
        with self._write() as db:
            self._audit(db, "image_unregistered", None, f"image for device id {scrub(device_id)} "
                        f"(no registered button), config {cfg[:12]}")

    def abort_provision(self, mac) -> DeviceRecord:
        """An interrupted provisioning that will not be finished (the button is gone or
        broken): provisioning -> in_stock. The registry cannot know which config the button
        holds (the old or the new one: the write itself is atomic), so it is flagged for a
        wipe and has no recorded config: it cannot be test-called or delivered as it is."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "abort_provision")
            active = self._active_case_row(db, mac)
            self._update(db, mac, state=to, config_hash=None, config_case=None, daily_interval_s=None,
                         c4_first=None,
                         **NO_PENDING, wipe_required=1,
                         wipe_case=self._only_case(row, active["id"] if active else None),
                         test_call_result=None, test_call_detail=None, test_call_at=None,
                         test_call_config=None)
            self._audit(db, "provision_abort", mac, f"{row['state']} -> {to}; it may hold a "
                        "configuration: wipe it or provision it again")
            return DeviceRecord.from_row(self._row(db, mac))

    def record_provision(self, mac, config_hash, imei=None, iccid=None, technician=None,
                         voice=None, daily_interval_s=None, c4_first=None) -> DeviceRecord:
        """begin_provision and finish_provision in one step, for a configuration already
        written and verified (the API, imports, tests): built from the case the device has
        now, if any. The CLI uses the two steps around the write. voice: as finish_provision
        (None: unknown; False: SMS only, so test-call and deliver refuse it);
        daily_interval_s, c4_first: as finish_provision (None: unknown)."""
        mac = normalise_mac(mac)
        cfg = check_hash(config_hash, "config hash")
        daily = _check_daily_interval(daily_interval_s)
        c4 = _check_c4(c4_first)
        imei = normalise_imei(imei) if imei else None
        iccid = normalise_iccid(iccid) if iccid else None
        tech = resolve_technician(technician or self.technician)
        with self._write() as db:
            row, begun = self._begin(db, mac, "provision")
            to = TRANSITIONS["finish_provision"][begun]
            active = self._active_case_row(db, mac)
            self._check_same_woman(db, row, active["id"] if active else None)
            self._update(db, mac, state=to, config_hash=cfg, config_case=active["id"] if active else None,
                         **NO_PENDING,
                         imei=imei or row["imei"], iccid=iccid or row["iccid"], technician=tech,
                         voice=None if voice is None else int(bool(voice)), daily_interval_s=daily,
                         c4_first=c4, provisioned_at=self.now(), test_call_result=None, test_call_detail=None,
                         test_call_at=None, test_call_config=None, state_reason=None)
            self._audit(db, "provision", mac, f"config {cfg[:12]}; {row['state']} -> {to}" + _daily_note(daily))
            return DeviceRecord.from_row(self._row(db, mac))

    def check_config(self, mac, raw) -> str:
        """Is the configuration read from the button (its bytes, None if it has none) the
        one the registry recorded at provisioning, built from her current case? Returns its
        hash. A mismatch is audited and refused with one line that shows none of her data
        (RegistryError, exit 5). Needs the key when the button has a case (its alias and
        contacts are compared with the case's, not only the hash)."""
        mac = normalise_mac(mac)
        digest = prov_config_hash(raw) if raw is not None else None
        with self._read() as db:
            row = self._row(db, mac)
            active = self._active_case_row(db, mac)
        why, case, edited = None, None, False
        if active is not None:
            case = self.cipher().open(mac, active["token"])
        try:
            config = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):    # RecursionError: nested beyond Python's parser
            config = None
        if row["pending_config_hash"] is not None:
            why = ("its provisioning was interrupted: it holds its old or its new configuration, "
                   "nobody knows which")
        elif raw is None:
            why = "it has no configuration"
        elif row["config_hash"] is None:
            why = "the registry has no configuration recorded for it (provision it)"
        elif digest != row["config_hash"]:
            why = (f"its configuration ({digest[:12]}) is not the one recorded at provisioning "
                   f"({row['config_hash'][:12]})")
        elif not isinstance(config, dict):
            why = "its configuration is not readable"
        elif config.get("device_id") != row["label"]:
            why = (f"its configuration names it {show_input(config.get('device_id'))}, the registry "
                   f"knows it as {row['label']}")
        elif case is not None and row["config_case"] != active["id"]:
            if row["config_case"] is not None:
                with self._read() as db:
                    edited = self._same_case_id(db, mac, row["config_case"], active["id"])
            why = ("its configuration holds her case as it was before `devices edit-case`"
                   if edited else "its configuration was not written from her current case (provisioned "
                   "before the case was assigned, or the case was replaced)")
        elif case is not None and config.get("alias") != case.alias:
            why = "its alias differs from her case's"
        elif case is not None and list(config.get("contacts") or ()) != list(case.contacts):
            why = "its trusted contacts differ from her case's"
        with self._write() as db:
            if why:
                self._audit(db, "config_mismatch", mac, why)
            else:
                self._audit(db, "config_check", mac, f"config {digest[:12]} is the recorded one"
                            + ("; matches her case" if case is not None else "; bench config, no case"))
        if why:
            # after an edit she and C4 keep her PIN: --keep-pin, not a new PIN nobody knows
            how = "`boton provision --keep-pin` (from her edited case, her PIN kept)" if edited else \
                "`boton provision` (from her case)"
            raise RegistryError(f"{row['label']} ({mac}) refused: {why}; nothing was done. Provision "
                                f"it again with {how}", EXIT_VERIFY)
        return digest

    def record_test_call(self, mac, ok, detail="", config_hash=None, firmware_hash=None,
                         board=None, c4_first=None) -> DeviceRecord:
        """A test call's result; config_hash: the configuration it ran with (what
        check_config returned), which delivery requires to still be the button's;
        firmware_hash, board: the release and board profile it ran (release_hash);
        c4_first: the C4 number that configuration calls first (a button provisioned
        before the registry recorded it gets it here)."""
        mac = normalise_mac(mac)
        result = "passed" if ok else "failed"
        detail = scrub(detail)
        cfg = check_hash(config_hash, "config hash") if config_hash else None
        ran = {}
        if firmware_hash:
            ran["firmware_hash"] = check_hash(firmware_hash, "firmware hash")
        if board:
            ran["board"] = check_board(board)
        if c4_first is not None:
            ran["c4_first"] = _check_c4(c4_first)
        with self._write() as db:
            row, _ = self._begin(db, mac, "test_call")
            if row["pending_config_hash"] is not None:
                raise RegistryConflict(f"cannot record the test call of {row['label']} ({mac}): its "
                                       "provisioning was interrupted; run `boton provision` again first")
            if cfg and cfg != row["config_hash"]:
                raise RegistryConflict(f"cannot record the test call of {row['label']} ({mac}): it ran "
                                       f"with config {cfg[:12]}, the registry recorded "
                                       f"{(row['config_hash'] or 'none')[:12]}")
            self._update(db, mac, test_call_result=result, test_call_detail=detail,
                         test_call_at=self.now(), test_call_config=cfg or row["config_hash"], **ran)
            self._audit(db, "test_call", mac, f"{result}{': ' + detail if detail else ''}")
            return DeviceRecord.from_row(self._row(db, mac))

    def deliver(self, mac, config_hash=None, dry_run=False) -> DeviceRecord:
        """provisioned -> delivered: needs a case, a config written from that case, and a
        passed test call since the last flash, deploy or provision. config_hash: the config
        just read from the button (check_config); it must be the one the test call ran with.
        dry_run: only the checks (before the button is read), nothing changes."""
        mac = normalise_mac(mac)
        cfg = check_hash(config_hash, "config hash") if config_hash else None
        with self._write() as db:
            row, to = self._begin(db, mac, "deliver")
            if row["voice"] == 0:
                raise RegistryConflict(self.no_voice_refusal("deliver", row["label"], mac))
            if row["test_call_result"] != "passed":
                why = ("its last test call failed" if row["test_call_result"] == "failed" else
                       "no test call since it was last flashed, deployed or provisioned")
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): {why}; "
                                       "run `boton test-call` and record a passed one")
            active = self._active_case_row(db, mac)
            if active is None:
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): no case is assigned "
                                       "(`boton devices assign`)")
            if row["config_case"] != active["id"]:
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): its configuration was "
                                       "not written from her case (provisioned before the case was "
                                       "assigned, or the case was replaced); run `boton provision`")
            if cfg and cfg != (row["test_call_config"] or row["config_hash"]):
                raise RegistryConflict(f"cannot deliver {row['label']} ({mac}): its configuration "
                                       f"({cfg[:12]}) is not the one its test call passed with; run "
                                       "`boton test-call` again")
            if dry_run:
                return DeviceRecord.from_row(row)
            self._update(db, mac, state=to, delivered_at=self.now(), state_reason=None)
            self._audit(db, "deliver", mac, "provisioned -> delivered"
                        + (f"; config {cfg[:12]} read from the button" if cfg else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    def check_flash(self, mac, force=False, expected=None, keep_config=False) -> DeviceRecord:
        """Registry first for `boton flash` (registers a new button in stock): a retired
        button is not flashed; a delivered one is in her hands (a new release with
        --keep-config, which leaves her filesystem alone; return it first, or --force for a
        repair that erases it); a returned one still holds her data: `boton wipe` first (the
        recorded, verified wipe; a flash erase is not one, nor is a flash that keeps it)."""
        dev = self.precheck("flash", mac, expected=expected, register=True)
        if dev.state == "delivered" and not (force or keep_config):
            raise RegistryConflict(f"cannot flash {dev.label} ({dev.mac}): it is delivered (her "
                                   "configuration would be erased); a new release: --keep-config; "
                                   "a repair: return it first, or --force")
        if dev.state == "returned":
            raise RegistryConflict(f"cannot flash {dev.label} ({dev.mac}): it is returned and still "
                                   "holds her data; run `boton wipe` first")
        return dev

    def flash_erasing(self, mac) -> DeviceRecord:
        """Just before esptool erases the chip: a configuration on it is going (say so
        now, so an interrupted flash leaves the registry true): a provisioning, provisioned
        or delivered button goes back to stock with no recorded config, flagged for a wipe
        (the erase is not verified as `boton wipe` verifies). Its case stays assigned."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, _ = self._begin(db, mac, "flash")
            if not self._holds_config(row) or row["state"] not in ("provisioning", "provisioned", "delivered"):
                return DeviceRecord.from_row(row)
            active = self._active_case_row(db, mac)
            self._update(db, mac, state="in_stock", config_hash=None, config_case=None, daily_interval_s=None,
                         c4_first=None,
                         **NO_PENDING, wipe_required=1,
                         wipe_case=self._only_case(row, active["id"] if active else None),
                         test_call_result=None, test_call_detail=None, test_call_at=None,
                         test_call_config=None)
            self._audit(db, "flash_erase", mac, f"{row['state']} -> in_stock: the chip is erased, "
                        "its configuration with it")
            return DeviceRecord.from_row(self._row(db, mac))

    def flash_writing(self, mac) -> DeviceRecord:
        """Just before esptool writes a new image with --keep-config: her configuration
        stays, but a write cut short leaves a button that may not boot until it is flashed
        again, so its test call stops counting now (said first, as flash_erasing does)."""
        mac = normalise_mac(mac)
        with self._write() as db:
            self._begin(db, mac, "flash")
            self._update(db, mac, test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "flash_writing", mac, "a new image is being written, her filesystem kept: "
                        "its test call no longer counts")
            return DeviceRecord.from_row(self._row(db, mac))

    def return_device(self, mac, without_button=False) -> DeviceRecord:
        """delivered -> returned. Her case is closed (its numbers are free for another
        case) and the device is marked as still holding her config: `record_wipe` after
        the CLI has wiped it. without_button: closed with no button read (lost, stolen,
        dead), which the audit says."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "return")
            self._close_case(db, mac)
            self._update(db, mac, state=to, returned_at=self.now(), wipe_required=1)
            self._audit(db, "return", mac, "delivered -> returned" + (" without the button" if without_button else "")
                        + "; config must be wiped")
            return DeviceRecord.from_row(self._row(db, mac))

    def record_wipe(self, mac, verified=True, detail="", forced=False, kept_log=False) -> DeviceRecord:
        """The result of `boton wipe`. verified: the raw read-back of its flash found none of
        her data: the wipe flag is cleared and a returned or provisioned device goes back to
        stock. Not verified: her data may still be there: the device keeps (or, forced from
        delivered, gets) the wipe flag and stays where it is, audited as wipe_failed. A
        delivered device is refused unless forced (her case is then closed, and the audit
        says it was forced). detail: what was checked (counts only, never her data).
        kept_log: the event log was put back (`wipe --keep-log`): verified, it goes to stock
        but stays flagged, so no case is assigned until a wipe without it."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "wipe")
            was = row["state"]
            if was == "delivered" and not forced:
                raise RegistryConflict(self.wipe_refusal(row["label"], mac))
            note = ""
            if was == "delivered":
                self._close_case(db, mac)
                note = "; FORCED on a delivered button without a return, case closed"
            detail = f": {detail}" if detail else ""
            if verified:
                if kept_log:
                    note += f"; {KEPT_LOG_NOTE}: flagged until a full wipe"
                self._update(db, mac, state=to, wipe_required=int(kept_log), config_hash=None, config_case=None,
                             daily_interval_s=None, c4_first=None,
                             **NO_PENDING,
                             test_call_result=None, test_call_detail=None, test_call_at=None,
                             test_call_config=None)
                self._audit(db, "wipe", mac, f"{was} -> {to}; verified{detail}{note}")
            else:
                stay = "returned" if was == "delivered" else was
                cols = {"returned_at": self.now()} if was == "delivered" else {}
                self._update(db, mac, state=stay, wipe_required=1, **cols)
                self._audit(db, "wipe_failed", mac, f"{was} -> {stay}; NOT verified{detail}{note}")
            return DeviceRecord.from_row(self._row(db, mac))

    @staticmethod
    def wipe_refusal(label, mac):
        return (f"cannot wipe {label} ({mac}): it is delivered (in her hands as far as the "
                f"registry knows); return it first: boton devices return {label} "
                "(or, if it cannot be returned, boton wipe --force, which is audited)")

    def wipe_cases(self, mac):
        """Every case this device has had (the open one, those its returns or replacements
        closed), decrypted, newest first, for `boton wipe` to search the flash for: an
        older beneficiary's data left on it is as much a finding as the last one's (a
        case replaced on a button that may hold the old one's config). [] if it never
        had one (no key needed). Audited."""
        mac = normalise_mac(mac)
        with self._read() as db:
            self._row(db, mac)
            rows = db.execute("SELECT token FROM cases WHERE mac = ? ORDER BY id DESC", (mac,)).fetchall()
        if not rows:
            return []
        c = self.cipher()
        cases = [c.open(mac, r["token"]) for r in rows]
        with self._write() as db:
            self._audit(db, "reveal", mac, "case data read to verify the wipe"
                        + (f" ({len(cases)} cases)" if len(cases) > 1 else ""))
        return cases

    def mark_faulty(self, mac, reason) -> DeviceRecord:
        mac = normalise_mac(mac)
        reason = self._reason(reason)
        with self._write() as db:
            row, to = self._begin(db, mac, "faulty")
            closed = self._close_case(db, mac)
            holds = self._holds_config(row)
            self._update(db, mac, state=to, state_reason=reason, wipe_required=int(holds),
                         test_call_result=None, test_call_detail=None, test_call_at=None)
            self._audit(db, "faulty", mac, f"{row['state']} -> faulty: {reason}"
                        + ("; case closed" if closed else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    def relabel(self, mac, label) -> DeviceRecord:
        """The button's label becomes `label` (a new label's rules: at most LABEL_MAX
        characters, her SMS show it whole), in any state. A configuration written under the
        old label still carries it, so its test call no longer counts, and test-call and
        deliver refuse the button (check_config) until `provision` writes the new one."""
        mac = normalise_mac(mac)
        label = normalise_label(label)
        with self._write() as db:
            row = self._row(db, mac)
            taken = self._label_refusal(db, label, mac)
            if taken:
                raise RegistryConflict(taken)
            self._update(db, mac, label=label, test_call_result=None, test_call_detail=None,
                         test_call_at=None)
            self._audit(db, "relabel", mac, f"label {row['label']} -> {label}")
            return DeviceRecord.from_row(self._row(db, mac))

    def restock(self, mac) -> DeviceRecord:
        """faulty (repaired) -> in_stock. Refused while it may still hold someone's config."""
        mac = normalise_mac(mac)
        with self._write() as db:
            row, to = self._begin(db, mac, "restock")
            if row["wipe_required"]:
                raise RegistryConflict(f"cannot restock {row['label']} ({mac}): it may still hold a "
                                       "beneficiary's config; wipe it first")
            self._update(db, mac, state=to, state_reason=None)
            self._audit(db, "restock", mac, "faulty -> in_stock")
            return DeviceRecord.from_row(self._row(db, mac))

    def retire(self, mac, reason, allow_unwiped=False) -> DeviceRecord:
        """Any state but delivered -> retired. A device that may hold a beneficiary's config
        is refused unless allow_unwiped (the board cannot be wiped; its flash is destroyed)."""
        mac = normalise_mac(mac)
        reason = self._reason(reason)
        with self._write() as db:
            row, to = self._begin(db, mac, "retire")
            holds = self._holds_config(row)
            if holds and not allow_unwiped:
                raise RegistryConflict(f"cannot retire {row['label']} ({mac}): it may still hold a "
                                       "beneficiary's config; wipe it first (or, if it cannot be "
                                       "wiped and its flash will be destroyed, allow unwiped)")
            closed = self._close_case(db, mac)
            self._update(db, mac, state=to, state_reason=reason, wipe_required=int(holds))
            self._audit(db, "retire", mac, f"{row['state']} -> retired: {reason}"
                        + ("; NOT wiped" if holds else "") + ("; case closed" if closed else ""))
            return DeviceRecord.from_row(self._row(db, mac))

    @staticmethod
    def _only_case(row, case_id):
        """case_id if the flash may hold nothing but that case's data (its configuration,
        written or being written) and no one else's, else None: what a wipe flag raised now
        is for (devices.wipe_case)."""
        if case_id is None:
            return None
        if row["wipe_required"] and row["wipe_case"] != case_id:
            return None
        if row["config_hash"] is not None and row["config_case"] != case_id:
            return None
        if row["pending_config_hash"] is not None and row["pending_case"] != case_id:
            return None
        return case_id

    @staticmethod
    def _holds_config(row):
        """May the device still hold a beneficiary's config on its flash?"""
        return bool(row["wipe_required"] or row["config_hash"]
                    or row["state"] in ("provisioning", "provisioned", "delivered"))

    @staticmethod
    def _reason(reason):
        r = scrub(reason)
        if not r:
            raise RegistryError("give a reason (what is wrong with the hardware; never her name, "
                                "address, numbers or anything of her case)")
        return r


def _check_c4(number):
    """A first C4 number to record (E.164, as the configuration holds it), or None."""
    if number is None:
        return None
    if not (isinstance(number, str) and re.fullmatch(r"\+\d{3,15}", number)):
        raise RegistryError(f"C4 number to record is not E.164: {show_input(number, 20)}")
    return number


def _check_daily_interval(seconds):
    """A daily report period to record (rules.daily_interval_s: 0 to 5 days), or None."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= DAILY_STATUS_MAX_S:
        raise RegistryError(f"daily report interval must be 0 to {DAILY_STATUS_MAX_S} seconds, got {seconds!r}")
    return seconds


def _daily_note(seconds):
    """What the audit says of a recorded daily report period (nothing when unknown)."""
    if seconds is None:
        return ""
    return "; daily status SMS: none (no programme number)" if seconds == 0 else f"; daily status SMS every {seconds} s"
