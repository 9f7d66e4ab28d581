"""registry_workflow: what the device commands record in the registry (host-only, fast)."""
import pytest
from cryptography.fernet import Fernet

from boton import wipe_check
from boton.errors import EXIT_CONFLICT, RegistryConflict
from boton.registry import CaseData, Registry
from boton.registry_workflow import plan_wipe, record_step, record_wipe

MAC = "24:6f:28:00:00:01"
CFG = "cd" * 32


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())


def delivered(mac=MAC):
    with Registry() as reg:
        reg.add_device(mac)
        reg.assign(mac, CaseData(alias="Luna", case_id="C-1", contacts=["449 111 2233"]))
        reg.record_provision(mac, CFG)
        reg.record_test_call(mac, True, "sms 1/1, answered True")
        reg.deliver(mac)


def test_record_step_adds_an_unknown_device_first():
    d = record_step("record_deploy", MAC, "ab" * 32, label="BS-0042")
    assert (d.mac, d.label, d.firmware_hash) == (MAC, "BS-0042", "ab" * 32)
    with Registry() as reg:
        assert [a["action"] for a in reg.audit(MAC)][-2:] == ["add", "deploy"]


@pytest.mark.parametrize("action", ["add_device", "deliver", "record_nothing", "_write"])
def test_record_step_takes_only_record_methods(action):
    with pytest.raises(ValueError, match="not a step the registry records"):
        record_step(action, MAC)
    with Registry() as reg:
        assert reg.get(MAC) is None            # refused before the registry was touched


def test_an_unknown_button_is_wiped_without_a_record():
    with Registry() as reg:
        reg.add_device("24:6f:28:00:00:02")
    plan = plan_wipe(MAC)
    assert (plan.known, plan.forced, plan.cases, plan.case_unreadable) == (False, False, [], None)
    assert record_wipe(plan, MAC, True, "file-level") is False
    with Registry() as reg:
        assert reg.get(MAC) is None


def test_without_a_registry_the_wipe_goes_on_and_makes_none(tmp_path, monkeypatch):
    typo = tmp_path / "typo" / "registry.sqlite3"
    monkeypatch.setenv("BOTON_REGISTRY", str(typo))
    plan = plan_wipe(MAC)
    assert (plan.known, plan.cases, plan.registry_missing) == (False, [], typo)
    assert f"no registry at {typo}" in plan.case_unreadable
    assert record_wipe(plan, MAC, True, "file-level") is False
    assert not typo.parent.exists()


def test_a_button_provisioned_from_an_open_case_is_wiped_only_when_named():
    """The wrong button picked up for a wipe: the next woman's configuration and the PIN C4
    was given would be erased unasked (and her test call with them). Named with --device,
    which is checked against the button on the port, it is wiped."""
    with Registry() as reg:
        reg.add_device(MAC)
        reg.assign(MAC, CaseData(alias="Luna", case_id="C-1", contacts=["449 111 2233"]))
        reg.record_provision(MAC, CFG)
        reg.add_device("24:6f:28:00:00:02")          # provisioned from no case: a bench board
        reg.record_provision("24:6f:28:00:00:02", CFG)
    with pytest.raises(RegistryConflict, match="carries an open case.*--device BS-0001") as e:
        plan_wipe(MAC)
    assert e.value.exit_code == EXIT_CONFLICT
    with pytest.raises(RegistryConflict, match="not BS-0002"):
        plan_wipe(MAC, expected="BS-0002")
    plan = plan_wipe(MAC, expected="BS-0001")
    assert plan.known and [c.alias for c in plan.cases] == ["Luna"]
    assert plan_wipe("24:6f:28:00:00:02").known

def test_a_delivered_button_needs_force_and_a_confirmation():
    delivered()
    with pytest.raises(RegistryConflict) as e:
        plan_wipe(MAC)
    assert e.value.exit_code == EXIT_CONFLICT

    def refuse(record):
        raise RegistryConflict(f"cancelled {record.label}")

    with pytest.raises(RegistryConflict, match="cancelled BS-0001"):
        plan_wipe(MAC, force=True, confirm_forced=refuse)
    asked = []
    plan = plan_wipe(MAC, force=True, confirm_forced=asked.append)
    assert [d.state for d in asked] == ["delivered"]
    assert plan.known and plan.forced and [c.alias for c in plan.cases] == ["Luna"]
    assert record_wipe(plan, MAC, True, "raw read-back: clean") is True
    with Registry() as reg:
        assert reg.get(MAC).state == "in_stock"


def test_without_the_key_the_wipe_goes_on_and_says_why(monkeypatch):
    delivered()
    monkeypatch.setenv("BOTON_KEY", Fernet.generate_key().decode())   # not this registry's key
    plan = plan_wipe(MAC, force=True)
    assert plan.known and plan.cases == [] and "key" in plan.case_unreadable


def test_the_wipe_searches_for_every_case_the_button_had():
    """A case replaced on the button: the wipe searches the flash for both women's data,
    not only the last case's (a button that may hold a config gets no other case until it
    is wiped, but a wipe that searched for less would prove less)."""
    with Registry() as reg:
        reg.add_device(MAC)
        reg.assign(MAC, CaseData(alias="Luna", case_id="C-1", contacts=["449 111 2233"]))
        reg.assign(MAC, CaseData(alias="Sol", case_id="C-2", contacts=["449 222 3344"]), replace=True)
    plan = plan_wipe(MAC)
    assert [c.alias for c in plan.cases] == ["Sol", "Luna"]
    found = wipe_check.needles(plan.cases)
    forms = [p for n in found if n.kind in ("alias", "contact") for p in n.patterns]
    assert any(b"Luna" in p for p in forms) and any(b"2233" in p for p in forms)
    with Registry() as reg:
        assert reg.audit(MAC)[-1]["detail"] == "case data read to verify the wipe (2 cases)"
