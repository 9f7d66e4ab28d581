"""A button's life in the registry: its states and which action may move it where.

Pure data: the registry checks every change against TRANSITIONS in the same transaction
that makes it (docs/registry.md).
"""

STATES = ("in_stock", "provisioning", "provisioned", "delivered", "returned", "faulty", "retired")

# action -> {state it may start from: state it ends in}
TRANSITIONS = {
    "flash":     {s: s for s in STATES if s != "retired"},
    "deploy":    {s: s for s in STATES if s != "retired"},
    # provisioning is two steps around the device write (docs/registry.md, order of
    # operations): begin -> "provisioning" (what is true while the write may be half
    # done), finish -> "provisioned" once the config read back matches; an interrupted run
    # is finished by the next `provision` or rolled back by `devices abort-provision`.
    # A delivered button provisioned again (her case edited, new C4 numbers) stays
    # delivered: it is in her hands either way. Its pending config says a write may be
    # half done (test-call refuses it until a `provision` finishes) and its test call is
    # cleared: a passed `test-call` makes it ready again (docs/registry.md).
    "provision": {"in_stock": "provisioning", "provisioning": "provisioning",
                  "provisioned": "provisioning", "delivered": "delivered"},
    "finish_provision": {"provisioning": "provisioned", "delivered": "delivered"},
    "abort_provision": {"provisioning": "in_stock"},
    "test_call": {"provisioned": "provisioned", "delivered": "delivered"},
    "assign":    {"in_stock": "in_stock", "provisioned": "provisioned"},
    # her case (contacts, alias, order end) edited wherever it is active: same woman, same case id
    "edit_case": {s: s for s in ("in_stock", "provisioning", "provisioned", "delivered")},
    "deliver":   {"provisioned": "delivered"},
    "return":    {"delivered": "returned"},
    # a delivered button is wiped only with force (record_wipe): return it first
    "wipe":      {"in_stock": "in_stock", "provisioning": "in_stock", "provisioned": "in_stock",
                  "returned": "in_stock", "delivered": "in_stock", "faulty": "faulty",
                  "retired": "retired"},
    "faulty":    {"in_stock": "faulty", "provisioning": "faulty", "provisioned": "faulty",
                  "returned": "faulty"},
    "restock":   {"faulty": "in_stock"},
    "retire":    {s: "retired" for s in STATES if s not in ("delivered", "retired")},
}
# why an action is refused from a state, for the technician
TRANSITION_HINTS = {
    "flash": "a retired device is not flashed again",
    "deploy": "a retired device is not deployed again",
    "provision": "only a device in stock, provisioned or delivered can be (re)provisioned",
    "finish_provision": "run `boton provision` to provision it",
    "abort_provision": "only an interrupted provisioning can be aborted (a delivered button's "
                       "interrupted re-provisioning is finished by `boton provision` with it at hand)",
    "test_call": "provision it first (an interrupted provisioning is finished by running "
                 "`boton provision` again)",
    "assign": "only a device in stock or provisioned can get a case (finish or abort an "
              "interrupted provisioning first)",
    "deliver": "deliver needs a provisioned device with a passed test call",
    "edit_case": "only a case still open can be edited (a returned, faulty or retired button's case is closed)",
    "return": "only a delivered device can be returned",
    "wipe": "return it first",
    "faulty": "a delivered device must be returned first",
    "restock": "only a faulty (now repaired) device goes back to stock",
    "retire": "a delivered device must be returned first",
}

# the next step where the action's rule alone would send the technician the wrong way
# (a returned button: "provision it first", itself refused)
_WIPE_FIRST = "its case is closed and it may still hold her data: `boton wipe` it first"
STATE_HINTS = {
    **{(action, "returned"): _WIPE_FIRST for action in ("provision", "test_call", "assign", "deliver", "return")},
    ("deliver", "delivered"): "nothing to deliver: it is in her hands (after an edit or a new firmware, "
                              "a passed `boton test-call` is all it needs)",
}


def refusal_hint(action, state):
    """What to do when `action` is refused in `state`: the step that comes next."""
    return STATE_HINTS.get((action, state), TRANSITION_HINTS[action])


# A verified wipe that put her event log back (`wipe --keep-log`) says so in its audit row:
# the button stays flagged, and a closed case is not erased on the strength of it.
KEPT_LOG_NOTE = "her event log was kept"
