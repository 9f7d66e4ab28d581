"""The registry's side of the device commands (deploy, test-call, logs, wipe): record
what a device step did, check a device's event log against what the registry saw, and
say whether (and how) a button may be wiped.

Pure of any transport: the CLI reads the device, then hands the facts here. Each call is
one registry session (created on first use), as the commands have always done.
"""
from . import eventlog_check
from .errors import PassphraseError, RegistryConflict, RegistryError
from .registry import Registry
from .registry_paths import default_path, registry_exists
from .registry_states import TRANSITIONS


def missing_registry():
    """The registry's path if none is there (nor was: a deleted one is refused by Registry),
    for the commands that work without one and must not make one (logs, wipe); else None."""
    return None if registry_exists() else default_path()


def record_step(action, mac, *args, label=None, **kw):
    """Registry last: write one device step (a Registry.record_* method, e.g.
    "record_deploy") to the registry, adding the device if new. Commands that change a
    button check the registry before they touch it (Registry.precheck); this records what
    the device step did."""
    if not action.startswith("record_") or not callable(getattr(Registry, action, None)):
        raise ValueError(f"{action!r} is not a step the registry records")
    with Registry() as reg:
        if reg.get(mac) is None:
            reg.add_device(mac, label=label)
        return getattr(reg, action)(mac, *args, **kw)


def precheck_step(action, mac, label=None):
    """Registry first: may `action` touch the button `mac`? (Registry.precheck; a button not
    in the registry is added in stock, as record_step would.) Raises RegistryConflict."""
    with Registry() as reg:
        return reg.precheck(action, mac, register=True, label=label)


def check_event_log(mac, lines, register=False, sms_head=None):
    """(ok, why) of the device's event log against what the registry saw of it last time
    (docs/registry.md) and, given sms_head ("57:a1b2c3", from a daily status SMS), against
    that head too; a passed check moves the registry's anchor to this log's head, a
    failed one is audited and leaves it. A device not in the registry is only chain-checked
    (or added first, with register=True, as the other recording commands do). Without a
    registry (a mistyped BOTON_REGISTRY) it is only chain-checked, and none is made."""
    missing = None if register else missing_registry()
    if missing is not None:
        ok, why = _with_sms_head(eventlog_check.verify_event_log(lines), lines, sms_head)
        return ok, why + f"; no registry at {missing} (check BOTON_REGISTRY): chain only, nothing to compare with"
    with Registry() as reg:
        if reg.get(mac) is None:
            if not register:
                ok, why = _with_sms_head(eventlog_check.verify_event_log(lines), lines, sms_head)
                return ok, why + "; device not in the registry: nothing to compare with"
            reg.add_device(mac)
        ok, why = _with_sms_head(eventlog_check.verify_event_log(lines, reg.log_anchor(mac)), lines, sms_head)
        reg.record_log_check(mac, eventlog_check.event_log_head(lines), len(lines), ok, why)
    return ok, why


def _with_sms_head(result, lines, sms_head):
    """The log check's (ok, why), and the SMS head's if one is given: both must pass (a
    log that no longer holds the head an SMS reported must not become the new anchor)."""
    ok, why = result
    if not sms_head or not ok:
        return ok, why
    head_ok, head_why = eventlog_check.check_sms_log_head(lines, sms_head)
    return head_ok, f"{why}; SMS head: {head_why}"


class WipePlan:
    """What the registry knows of a button before it is wiped: `known` (registered: only
    then is the wipe recorded), `forced` (a delivered button wiped with --force), `cases`
    (every case the button had, what the flash is searched for; [] without one) and
    `case_unreadable` (why they could not be read, e.g. no key; None if they could);
    `registry_missing`: the registry's path when there is none (nothing is recorded, none made);
    `label`: the registry's label of a known button (what the technician calls it), else None."""

    def __init__(self, known=False, forced=False, cases=(), case_unreadable=None, registry_missing=None,
                 label=None):
        self.known = known
        self.label = label
        self.registry_missing = registry_missing
        self.forced = forced
        self.cases = list(cases)
        self.case_unreadable = case_unreadable


def plan_wipe(mac, force=False, confirm_forced=None, expected=None) -> WipePlan:
    """Registry first: refuse (RegistryConflict) before anything on the button is touched
    if it is not the button named by `expected` (--device), its state does not allow a
    wipe, it is delivered and not `force`d, or it was provisioned from an open case and
    not named (a wrong button picked up would lose the next woman's PIN). A forced wipe
    of a delivered button calls confirm_forced(record) first, which raises to cancel.
    Without a registry the button is still wiped (it may hold her data), and none is made;
    unless a button was named."""
    missing = missing_registry()
    if missing is not None and expected is None:
        return WipePlan(case_unreadable=f"no registry at {missing}: check BOTON_REGISTRY",
                        registry_missing=missing)
    with Registry(create=False) as reg:
        reg.check_named(mac, expected)
        d = reg.get(mac)
        if d is None:
            return WipePlan()
        if d.state not in TRANSITIONS["wipe"]:
            raise RegistryConflict(f"cannot wipe {d.label} ({mac}): it is {d.state}")
        if expected is None and d.has_case and d.state in ("provisioning", "provisioned"):
            # the wrong button picked up: the next woman's configuration and the PIN C4
            # was given would go unasked, and with them her test call
            raise RegistryConflict(f"{d.label} ({mac}) carries an open case, provisioned from it: "
                                   f"its configuration and PIN would be erased (a new PIN and test "
                                   f"call then); name it to wipe it: --device {d.label}")
        forced = False
        if d.state == "delivered":
            if not force:
                raise RegistryConflict(reg.wipe_refusal(d.label, mac))
            if confirm_forced is not None:
                confirm_forced(d)
            forced = True
        try:
            return WipePlan(True, forced, reg.wipe_cases(mac), label=d.label)
        except PassphraseError:
            raise  # typed again, her case is searched for: not a weaker wipe for a typo
        except RegistryError as e:   # no key, another key, or her stored case damaged
            return WipePlan(True, forced, (), str(e), label=d.label)


def record_wipe(plan, mac, verified, detail, kept_log=False) -> bool:
    """Registry last: the wipe's result for a registered button; False (nothing recorded)
    for one the registry does not know."""
    if not plan.known:
        return False
    with Registry() as reg:
        reg.record_wipe(mac, verified=verified, detail=detail, forced=plan.forced, kept_log=kept_log)
    return True
