"""Simulated cellular modules, one module per concern.

at.py (syntax and tables) and framer.py (V.25ter framing) are shared; power, identity,
network, calls, sms and faults are the command groups, each a mixin with a HANDLERS table
(command name -> method name); families/ says, per modem family, which groups and handlers
it has, its URC spellings and its timings (esptool's targets/ idea).
"""
import inspect

from .families.a7670 import A7670
from .families.sim800 import Sim800

FAMILIES = {"sim800": Sim800, "a7670": A7670}


def modem_class(family):
    """The simulator class of a modem family ("sim800", "a7670"); ValueError names the known
    ones."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown modem family {family!r}: known are "
                         f"{', '.join(sorted(FAMILIES))}") from None


def check_options(family, options):
    """Refuse constructor options the family's simulator does not take, naming those it
    does (a typo in a rehearsal script must not be silently ignored)."""
    fixed = ("self", "scheduler", "network", "number", "emit")
    known = [p for p in inspect.signature(modem_class(family).__init__).parameters
             if p not in fixed]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"the {family} modem has no option {', '.join(map(repr, unknown))}; "
                         f"its options are {', '.join(known)}")
