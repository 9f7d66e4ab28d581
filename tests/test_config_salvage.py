"""firmware/lib/appboot.salvage: what the firmware keeps of a config.json that does not
validate (a flipped bit, a bad provision). Whatever JSON the file holds, the result drives
the alert machine, dials only what safe mode would dial, and keeps no contact that is not
a phone number. The boot with such a file runs on the rig in test_firmware_lifecycle.py."""
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from boton.paths import FIRMWARE

sys.path[:0] = [str(FIRMWARE / "lib"), str(FIRMWARE)]  # the firmware's modules under CPython
import alert  # noqa: E402
import appboot  # noqa: E402
import bootcheck  # noqa: E402

BOARD = {"safe_c4": "+524499100000"}
KEYS = ("c4_numbers", "contacts", "alias", "device_id", "allow_911", "contacps", "sms_c4")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
numbers = st.from_regex(r"\+?[0-9]{6,20}", fullmatch=True)
damaged_configs = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(KEYS), json_values | numbers | st.lists(numbers | json_values, max_size=7)))


@settings(max_examples=300, deadline=None)
@given(damaged_configs)
def test_whatever_the_damaged_config_holds_her_press_still_dials_c4(cfg):
    kept = appboot.salvage(cfg, BOARD)
    assert kept["c4_numbers"] == bootcheck.c4_numbers(cfg, BOARD)   # safe mode's own rule
    assert all(appboot._is_number(n) for n in kept["contacts"]) and len(kept["contacts"]) <= 5
    assert isinstance(kept["alias"], str) and kept["device_id"] and not kept["sms_c4"]
    m = alert.AlertMachine(kept)
    acts = m.handle(("gesture", "alert"), 0)
    dials = [a[1] for a in acts if a[0] == "dial"]
    assert dials and dials[0] in kept["c4_numbers"]


def test_what_still_holds_is_kept():
    cfg = {"c4_numbers": ["+524499100077"], "contactw": ["+524491112233"], "alias": "Luna",
           "device_id": "BS-0042", "allow_911": True}
    assert appboot.salvage(cfg, BOARD) == {
        "c4_numbers": ["+524499100077", "911"], "contacts": [], "alias": "Luna",
        "device_id": "BS-0042", "sms_c4": False}
    cfg["contacts"] = ["+524491112233", "+52449111223x", "5512345678", 7, "+", "+1+2345678"]
    assert appboot.salvage(cfg, BOARD)["contacts"] == ["+524491112233", "5512345678"]
