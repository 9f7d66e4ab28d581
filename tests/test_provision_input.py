"""What the technician types: phone numbers, her alias, and how a test call is judged.
Host-only (no device): every place that takes a number goes through one check."""
import json
import unicodedata

import pytest

from boton import provision as prov
from boton import rules
from boton.cli_image import config_from_file
from boton.errors import InputError, RegistryError
from boton.registry import check_contacts
from boton.rules import build_config, normalise_alias, normalise_number
from rigkit import FakeClock

C4 = "449 910 0000"


# ------------------------------------------------------------------------ numbers
@pytest.mark.parametrize("typed, char, pos", [
    ("449 ABC 2233", "A", 5),         # phonenumbers reads it as a keypad: +524492222233
    ("449 111 2233x45", "x", 13),     # phonenumbers keeps 449 111 2233 and drops the extension
    ("449 111 2233 ext 45", "e", 14),
    ("449 1l1 2233", "l", 6),         # a lower-case L for a one
])
def test_letters_and_extensions_are_refused_naming_the_field_and_the_character(typed, char, pos):
    with pytest.raises(InputError) as e:
        build_config(alias="Luna", contacts=["449 222 3344", typed], c4=[C4], device_id="BS-1")
    msg = str(e.value)
    assert msg.startswith("contact #2 ") and f"character {pos} is a letter ({char!r})" in msg
    assert "digits only" in msg and e.value.exit_code == 2
    assert typed not in msg and "2233" not in msg  # masked, as everywhere else


@pytest.mark.parametrize("typed, char", [("449 111 2233#", "'#'"), ("449 111 2233;45", "';'"),
                                         ("４４９ 111 2233", "'４'"), ("449+111 2233", "'+'")])
def test_other_characters_are_refused_by_name(typed, char):
    with pytest.raises(InputError, match="contact #1 .*character") as e:
        normalise_number(typed, "contact #1")
    assert char in str(e.value)


@pytest.mark.parametrize("typed", ["449 111 2233", "449-111-2233", "(449) 111.2233", "449/111/2233",
                                   "+52 449 111 2233", " +52 (449) 111-2233 "])
def test_digits_with_separators_and_a_leading_plus_are_accepted(typed):
    assert normalise_number(typed, "contact #1") == "+524491112233"


def test_every_number_field_uses_the_same_check(tmp_path):
    base = dict(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
    with pytest.raises(InputError, match=r"^C4 number #1 .*is a letter \('O'\)"):
        build_config(**dict(base, c4=["449 91O 0000"]))
    with pytest.raises(InputError, match=r"^programme number .*is a letter \('x'\)"):
        build_config(**base, programme_number="449 555 0000x1")
    with pytest.raises(RegistryError, match=r"^contact #1 .*is a letter \('A'\)"):
        check_contacts(["449 ABC 2233"])
    cfg = build_config(**base, programme_number="449 555 0000")
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(dict(cfg, programme_number="449 555 O000")))
    with pytest.raises(InputError, match=r"^programme number .*is a letter \('O'\)"):
        config_from_file(f)
    f.write_text(json.dumps(cfg))
    assert config_from_file(f)["programme_number"] == "+524495550000"  # was silently dropped


@pytest.mark.parametrize("typed, kind", [
    ("800 123 4567", "a toll-free number (800)"), ("+52 800 000 0000", "a toll-free number (800)"),
    ("900 123 4567", "a premium-rate number (900)"), ("+1 900 555 0100", "a premium-rate number (900)"),
    ("+1 800 555 0100", "a toll-free number (800)"),
])
def test_numbers_that_cannot_take_an_alert_are_refused_by_kind(typed, kind):
    for field in ("contacts", "c4", "programme_number"):
        args = dict(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
        args[field] = typed if field == "programme_number" else [typed]
        with pytest.raises(InputError) as e:
            build_config(**args)
        assert f" is {kind}: it cannot take the SMS and calls" in str(e.value)
        assert typed not in str(e.value)


@pytest.mark.parametrize("typed", ["+52 1 449 111 2233", "+5214491112233", "1 449 111 2233"])
def test_a_mexican_mobile_written_with_the_old_1_is_dialled_without_it(typed):
    assert normalise_number(typed, "contact #1") == "+524491112233"


@pytest.mark.parametrize("typed, said", [
    ("+1 449 111 2233", "is not a valid number of country code +1"),     # she gave +1: not "region MX"
    ("449 11 22", "is not a valid number for region MX (a number of another country starts with +"),
])
def test_an_invalid_number_is_refused_naming_the_country_it_was_read_in(typed, said):
    with pytest.raises(InputError) as e:
        normalise_number(typed, "contact #1")
    assert said in str(e.value) and "2233" not in str(e.value)


def test_a_number_with_two_roles_or_given_twice_is_refused_by_position():
    base = dict(alias="Luna", contacts=["449 111 2233", "449 222 3344"], c4=[C4], device_id="BS-1")
    with pytest.raises(InputError, match=r"^the same C4 number is given twice \(--c4 #1 and #3\)"):
        build_config(**dict(base, c4=[C4, "449 910 0001", "+52 449 910 0000"]))
    with pytest.raises(InputError, match=r"^contact #2 is C4 number #2: a trusted contact cannot also be a C4"):
        build_config(**dict(base, c4=[C4, "+52 1 449 222 3344"]))
    with pytest.raises(InputError, match=r"^the programme number is contact #2: "):
        build_config(**base, programme_number="(449) 222-3344")
    with pytest.raises(InputError, match=r"^the same trusted contact is given twice \(contact #1 and #2\)"):
        build_config(**dict(base, contacts=["449 111 2233", "4491112233"]))


def test_a_pasted_screenful_of_digits_is_not_echoed_at_its_length():
    with pytest.raises(InputError) as e:
        normalise_number("9" * 5000, "contact #1")
    assert len(str(e.value)) < 200 and "(5000 characters)" in str(e.value)


# ------------------------------------------------------------------------ settings
@pytest.mark.parametrize("where, value, needle", [
    (("max_alert_s",), -5, "max_alert_s (how long an alert lasts) must be 300 to 86400 s, got -5"),
    (("max_alert_s",), 0, "max_alert_s"),
    (("update_every_s",), 0, "update_every_s (location SMS period in an alert) must be 60 to 3600 s, got 0"),
    (("gesture", "count"), 0, "gesture.count (presses that raise the alert) must be 2 to 10 presses, got 0"),
    (("gesture", "window_ms"), -1, "gesture.window_ms (time the presses must fall within) must be 1000 to"),
    (("gesture", "hold_ms"), 5, "gesture.hold_ms (how long she holds the button; --hold-ms) must be 500"),
    (("gesture", "hold_ms"), "2000", "must be a whole number of ms from 500 to 3000, got '2000' (text)"),
    (("gesture", "hold_ms"), 2000.5, "got 2000.5 (float)"),
    (("gesture", "hold_ms"), True, "got True (bool)"),
    (("gesture", "hold_ms"), None, "got None"),
    (("max_alert_s",), "9" * 5000, "got '99999999999999999999... (5002 characters) (text)"),
    (("gesture", "mode"), "tap", "gesture (gesture.mode) must be 'hold' or 'presses', got 'tap'"),
    (("allow_911",), "false", "allow_911 (--allow-911) must be true or false, got 'false'"),
    (("vibrate",), 1, "vibrate must be true or false, got 1"),
    (("gesture",), "hold", "gesture must be an object"),
    (("contacts",), "449 111 2233", "contacts must be a list of phone numbers"),
    (("c4_numbers",), [4499100000], "c4_numbers must be a list of phone numbers"),
    (("device_id",), 42, "device_id must be text in quotes, got a number"),
])
def test_config_file_settings_outside_their_range_or_type_are_refused_naming_the_field(
        tmp_path, where, value, needle):
    """A config whose alert expires at once (max_alert_s -5: "EV expired -5s"), never
    updates or needs no presses was built into an image; "2000" gave a raw TypeError."""
    cfg = build_config(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
    node = cfg
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    with pytest.raises(InputError) as e:
        config_from_file(f)
    assert needle in str(e.value) and e.value.exit_code == 2
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)


@pytest.mark.parametrize("key, value", [("pin", 482913), ("alias", 4491112233), ("alias", ["Maria", "Lopez"]),
                                        ("programme_number", 4499100000), ("device_id", 4491112233),
                                        ("pin_hash", {"pin": "482913"})])
def test_a_pin_alias_or_number_of_the_wrong_type_is_refused_without_its_value(tmp_path, key, value):
    # "pin": 482913 (a number, not text) gave "error: cfg.json: pin must be text in quotes, got
    # 482913": her PIN on the screen and in whatever log keeps it; her alias and numbers likewise
    cfg = build_config(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
    cfg[key] = value
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    with pytest.raises(InputError) as e:
        config_from_file(f)
    kind = {int: "a number", list: "a list", dict: "an object"}[type(value)]
    assert str(e.value) == f"{f}: {key} must be text in quotes, got {kind}"
    for secret in ("482913", "4491112233", "4499100000", "Maria"):
        assert secret not in str(e.value)


@pytest.mark.parametrize("where, key, needle", [
    ((), "allow911", "unknown setting 'allow911' (did you mean 'allow_911'?)"),
    ((), "programe_number", "unknown setting 'programe_number' (did you mean 'programme_number'?)"),
    (("gesture",), "hold", "unknown setting gesture.'hold' (did you mean 'hold_ms'?)"),
    ((), "x" * 500, "unknown setting 'xxxx"),
])
def test_a_setting_spelt_wrong_is_refused_by_name(tmp_path, where, key, needle):
    """A misspelt key was ignored: "allow911": true built an image without 911,
    "programe_number" one that sends no daily report, gesture "hold" the default hold."""
    cfg = build_config(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
    node = cfg
    for k in where:
        node = node[k]
    node[key] = 5000
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    with pytest.raises(InputError) as e:
        config_from_file(f)
    assert needle in str(e.value) and len(str(e.value)) - len(str(f)) < 300
    good = build_config(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1")
    f.write_text(json.dumps(dict(good, gesture=[])))   # was taken as the defaults
    with pytest.raises(InputError, match="gesture must be an object"):
        config_from_file(f)


def test_settings_at_the_ends_of_their_ranges_are_kept(tmp_path):
    cfg = build_config(alias="Luna", contacts=["449 111 2233"], c4=[C4], device_id="BS-1", gesture="presses",
                       hold_ms=500, presses=2, window_ms=10000, update_every_s=60, max_alert_s=86400,
                       allow_911=True, confirm=False)
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    assert config_from_file(f) == dict(cfg, pin_hash=cfg["pin_hash"])
    assert cfg["gesture"] == {"mode": "presses", "hold_ms": 500, "count": 2, "window_ms": 10000}


# ------------------------------------------------------------------------ alias
@pytest.mark.parametrize("typed, stored", [
    ("Ángela", "Angela"), ("Inés", "Ines"), ("Raúl y Sofía", "Raul y Sofia"), ("Noemí", "Noemi"),
    ("Ñoña", "Ñoña"), ("Begoña", "Begoña"), ("Güera", "Güera"), ("O’Neill", "O'Neill"),
    (unicodedata.normalize("NFD", "Ángela"), "Angela"), ("Luna", "Luna"),
])
def test_alias_is_stored_as_her_sms_write_it(typed, stored):
    assert normalise_alias(typed) == stored
    cfg = build_config(alias=typed, contacts=["449 111 2233"], c4=[C4], device_id="BS-0042")
    assert cfg["alias"] == stored
    sms = rules.first_alert_sms(cfg)
    assert f"{stored} pidio ayuda" in sms and "BS-0042" in sms
    # stored alias and SMS agree: the firmware's alphabet leaves it as it is
    assert rules.firmware_module("gsm7").to_gsm7(stored) == stored


@pytest.mark.parametrize("typed, bad", [("Luna 🌙", "🌙"), ("王芳", "王"), ("Ana@casa", "@"), ("Sol$", "$")])
def test_alias_characters_an_sms_cannot_carry_are_refused_by_name(typed, bad):
    with pytest.raises(InputError, match="cannot be written in an SMS") as e:
        normalise_alias(typed)
    assert repr(bad) in str(e.value) and e.value.exit_code == 2


def test_alias_length_counts_after_transliteration_and_is_not_echoed():
    assert normalise_alias("Ángela Martínez") == "Angela Martinez"  # 15
    with pytest.raises(InputError, match=r"alias must be 1-16 .*\(got 20\)") as e:
        normalise_alias("María Fernanda López")
    assert "Mar" not in str(e.value)
    with pytest.raises(InputError, match=r"\(got 0\)"):
        normalise_alias("   ")


# ------------------------------------------------------------------------ waiting for the network
class FakeModemDevice:
    """identity() answers from a script: what a modem says while it registers."""

    def __init__(self, looks):
        self.looks = list(looks)
        self.asked = 0

    def exec_firmware(self, code, timeout=None):
        assert "service.identity()" in code
        look = self.looks[min(self.asked, len(self.looks) - 1)]
        self.asked += 1
        return (json.dumps(dict({"uid": "240ac4000042", "modem": True, "rssi": 20}, **look)) + "\n").encode()


def test_provision_waits_while_the_modem_registers_and_reports_each_look():
    dev = FakeModemDevice([{"registered": False, "iccid": None}, {"registered": False, "iccid": "8952"},
                           {"registered": True, "iccid": "8952", "operator": "TELCEL"}])
    clock, seen = FakeClock(), []
    ident, waited = prov.wait_for_network(dev, 60, lambda i, w: seen.append(rules.network_wait_status(i)),
                                          clock=clock, pause=clock.pause)
    assert ident["registered"] and dev.asked == 3 and waited == 2 * prov.REGISTRATION_POLL_S
    assert seen == ["SIM not ready yet; signal 20/31", "SIM ready, searching for the network; signal 20/31"]
    assert not any("8952" in s for s in seen)  # ICCID is not shown


@pytest.mark.parametrize("look, said", [
    ({"sim": "+CPIN: SIM PIN", "creg": 0, "iccid": "8952"}, "the SIM asks for a PIN"),
    ({"sim": "CME 11", "creg": 0}, "the SIM asks for a PIN"),
    ({"sim": "+CPIN: SIM PUK", "creg": 0}, "blocked (it asks for its PUK)"),
    ({"sim": "CME 10", "creg": 0}, "no SIM: not inserted, or not making contact"),
    ({"sim": "+CPIN: NOT INSERTED", "creg": 0}, "no SIM: not inserted"),
    ({"sim": "CME 13", "creg": 0}, "the SIM fails"),
    ({"sim": "+CPIN: READY", "creg": 3}, "the operator refuses this SIM"),
    ({"sim": "+CPIN: READY", "creg": 2}, "SIM ready, searching for the network"),
])
def test_what_keeps_the_modem_off_the_network_is_said_in_words(look, said):
    # A PIN-locked SIM still gives its ICCID: it was "SIM ready, searching" for the whole
    # wait, and status said "not registered: voice unknown" whatever the cause
    status = rules.network_wait_status(dict(look, registered=False, rssi=20))
    assert said in status, status
    assert "8952" not in status
    if look["creg"] != 2:
        assert said in rules.radio_verdict(dict(look, registered=False, rat="GSM", voice=None,
                                                voice_via=None)).summary


def test_provision_stops_waiting_at_the_limit_or_when_the_modem_is_silent():
    clock = FakeClock()
    dev = FakeModemDevice([{"registered": False, "iccid": "8952"}])
    ident, waited = prov.wait_for_network(dev, 5, clock=clock, pause=clock.pause)
    assert not ident["registered"] and waited == 5 and dev.asked == 6
    dead = FakeModemDevice([{"modem": False}])
    assert prov.wait_for_network(dead, 60, clock=clock, pause=clock.pause)[0]["modem"] is False
    assert dead.asked == 1  # waiting will not power a modem


# ------------------------------------------------------------------------ judging a test call
CFG = build_config(alias="Luna", contacts=["449 111 2233", "449 222 3344"], c4=[C4], device_id="BS-1")


def ev(*lines):
    return [ln.split() for ln in lines]


def test_test_call_is_judged_per_recipient():
    got = rules.judge_test_call(CFG, ev("sms_failed alert_...2233", "sms_ok alert_...3344",
                                       "sms_ok alert_...0000", "call_active -"))
    assert got == [("contact #1", "+524491112233", "refused"), ("contact #2", "+524492223344", "accepted"),
                   ("C4", "+524499100000", "accepted")]
    # only C4's copy went out: the contacts are "not sent", never counted from C4's entry
    got = rules.judge_test_call(CFG, ev("sms_ok alert_...0000", "sms_ok update_...2233"))
    assert [o for _, _, o in got] == ["not sent", "not sent", "accepted"]


def test_recipients_sharing_their_last_four_digits_need_one_entry_each():
    cfg = build_config(alias="Luna", contacts=["449 111 2233", "449 999 2233"], c4=[C4], device_id="BS-1")
    got = rules.judge_test_call(cfg, ev("sms_ok alert_...2233", "sms_ok alert_...0000"))
    assert [o for _, _, o in got] == ["accepted", "not sent", "accepted"]
    off = dict(cfg, sms_c4=False)
    assert [r for r, _ in rules.sms_recipients(off)] == ["contact #1", "contact #2"]


def test_a_failed_test_call_says_what_the_calls_to_c4_did():
    events = [["boot", "0.1.0"], ["dial", "...0000_#1"], ["call_failed", "no_answer"],
              ["dial", "...0000_#2"], ["dial_error", "CME_30_no_network"], ["sms_ok", "alert_...2233"]]
    assert rules.call_outcomes(events) == "dial #1, call_failed no_answer, dial #2, dial_error CME_30_no_network"
    assert rules.call_outcomes([["boot", "0.1.0"]]) == ""


# ------------------------------------------------------------------------ the device's JSON limit
def _device_json_max():
    return rules.firmware_module("store").JSON_MAX


def test_the_longest_configuration_and_every_board_profile_fit_the_devices_limit_twice():
    """store.JSON_MAX (the firmware refuses a longer config.json or board.json at boot) has
    room to spare over the longest ones a technician can write: 5 contacts, the longest
    alias and device id, 10 C4 numbers, a programme number, every setting at its widest."""
    from boton.boards import board_names
    from boton.release import board_json
    longest = build_config(alias="X" * rules.ALIAS_MAX, device_id="BS-ABCDEFGHIJKL",
                           contacts=["+52449111223%d" % i for i in range(rules.MAX_CONTACTS)],
                           c4=["+5244991000%02d" % i for i in range(10)], pin="73915284",
                           allow_911=True, programme_number="+524499999999", gesture="presses",
                           hold_ms=3000, presses=10, window_ms=10000, update_every_s=3600,
                           max_alert_s=86400)
    sizes = [len(rules.config_bytes(longest))] + [len(board_json(b)) for b in board_names()]
    assert 2 * max(sizes) <= _device_json_max(), sizes


def test_a_configuration_the_device_would_refuse_is_refused_before_any_write():
    with pytest.raises(InputError, match=r"config\.json\) would be \d+ bytes on the device, and the "
                                         r"firmware refuses more than %d.*give fewer C4 numbers"
                                         % _device_json_max()):
        build_config(alias="Luna", contacts=["449 111 2233"], device_id="BS-0042", pin="73915284",
                     c4=["+52449910%04d" % i for i in range(150)])


def test_deploy_refuses_a_board_profile_the_device_would_refuse(tmp_path):
    from boton.boards import board_file
    from boton.release import board_json
    profile = json.loads(board_file("tcall_sim800l_axp192").read_text())
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(dict(profile, pins_note="x" * 3000)))
    with pytest.raises(InputError, match="board profile .*huge.json.* refuses more than"):
        board_json(str(path))


@pytest.mark.parametrize("name", ["JSON_MAX", "STATE_MAX"])
def test_bootcheck_refuses_past_the_same_limit_as_store(name):
    """bootcheck (it imports nothing of lib/) mirrors store's limits."""
    import ast
    from boton.paths import FIRMWARE
    node = next(n for n in ast.parse((FIRMWARE / "bootcheck.py").read_text()).body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == name)
    assert ast.literal_eval(node.value) == getattr(rules.firmware_module("store"), name)


def test_a_test_calls_sms_refusals_are_said_once_each_in_words():
    events = [["sms_error", "CMS_330_smsc_unknown"], ["sms_failed", "alert_...3344"],
              ["sms_error", "CMS_330_smsc_unknown"], ["sms_error", "CMS_50"], ["sms_error", "CMS_999"],
              ["sms_error", "too_long"]]
    assert rules.sms_error_words(events) == [
        "CMS 330: the SIM has no SMS-centre number: check the message centre in a phone with this SIM, "
        "or ask the operator",
        "CMS 50: the operator refuses SMS from this line: no credit, no SMS in its plan, or the line "
        "is suspended",
        "CMS 999", "too_long"]
