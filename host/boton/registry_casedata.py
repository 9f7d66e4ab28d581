"""The beneficiary's case as the registry holds it: CaseData (validated, redacted repr,
never pickled) and the checks of each of its fields. Stored only encrypted
(registry_crypto.py)."""
import contextvars
import datetime as dt
import re
from dataclasses import dataclass

from .errors import InputError, RegistryError
from .rules import MAX_CONTACTS, normalise_alias, normalise_number

_CASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.:-]{0,39}")
# Order end dates typed: from this year on, and at most this many years ahead.
FIRST_ORDER_YEAR = 2000
ORDER_YEARS_AHEAD = 20
# True while a stored case is read back (CaseData.stored): rules added since it was written
# (a number's kind, a date's range) do not make her case unreadable.
_STORED = contextvars.ContextVar("case_stored", default=False)


def check_alias(value):
    """The alias as the device stores it and her SMS carry it (rules.normalise_alias):
    the case and the button's configuration hold the same string."""
    try:
        return normalise_alias(value)
    except InputError as e:
        raise RegistryError(str(e)) from None


def check_case_id(value):
    s = str(value or "").strip()
    if not _CASE_ID_RE.fullmatch(s):
        raise RegistryError(f"case id must be 1-40 letters, digits and / _ . : - "
                            f"(got {len(s)} characters)")
    return s


def check_date(value, what="order end date"):
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    s = str(value).strip()
    if s.lower() in ("none", "-"):
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            raise ValueError
        date = dt.date.fromisoformat(s)
    except ValueError:
        raise RegistryError(f"{what} must be a real date written YYYY-MM-DD (or 'none')") from None
    last = dt.date.today().year + ORDER_YEARS_AHEAD
    if not _STORED.get() and not FIRST_ORDER_YEAR <= date.year <= last:
        raise RegistryError(f"{what} {s} is not a plausible order end: give a date from "
                            f"{FIRST_ORDER_YEAR}-01-01 to {last}-12-31 (or 'none' if the order has no end)")
    return date


def split_contacts(values):
    """The numbers given: "449 111 2233; 449 222 3344" in one CSV field or one --contact
    is two (numbers have no , ; |)."""
    if isinstance(values, str):
        values = [values]
    return [v for item in (values or []) for v in re.split(r"[;|,\n]", str(item)) if v.strip()]


def check_contacts(values, region="MX"):
    values = split_contacts(values)
    if not 1 <= len(values) <= MAX_CONTACTS:
        raise RegistryError(f"give 1 to {MAX_CONTACTS} trusted contacts (got {len(values)})")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(normalise_number(str(v), f"contact #{i + 1}", region, any_kind=_STORED.get()))
        except InputError as e:
            raise RegistryError(str(e)) from None
    if len(set(out)) != len(out):
        raise RegistryError("the same trusted contact is given twice")
    return tuple(out)


def check_text(value, what, limit):
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    if len(s) > limit:
        raise RegistryError(f"{what} is too long ({len(s)} characters; at most {limit})")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", s):
        raise RegistryError(f"{what} contains control characters")
    return s


@dataclass(frozen=True, repr=False)
class CaseData:
    """The beneficiary's case. Sensitive: its repr/str never show the values, and the
    registry stores it only encrypted. Validated and normalised on construction."""
    alias: str
    case_id: str
    contacts: tuple
    order_ends: dt.date = None
    full_name: str = None
    notes: str = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "alias", check_alias(self.alias))
        set_(self, "case_id", check_case_id(self.case_id))
        set_(self, "contacts", check_contacts(self.contacts))
        set_(self, "order_ends", check_date(self.order_ends))
        set_(self, "full_name", check_text(self.full_name, "full name", 120))
        set_(self, "notes", check_text(self.notes, "notes", 2000))

    def __repr__(self):
        return f"CaseData(<redacted: {len(self.contacts)} contact(s)>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("CaseData is not picklable (it holds case data in the clear)")

    def to_dict(self):
        """The plaintext, for an explicit reveal or an explicit export."""
        return {"alias": self.alias, "case_id": self.case_id, "full_name": self.full_name,
                "notes": self.notes,
                "order_ends": self.order_ends.isoformat() if self.order_ends else None,
                "contacts": list(self.contacts)}

    @classmethod
    def from_dict(cls, d):
        return cls(alias=d.get("alias"), case_id=d.get("case_id"), contacts=d.get("contacts"),
                   order_ends=d.get("order_ends"), full_name=d.get("full_name"), notes=d.get("notes"))

    @classmethod
    def stored(cls, d):
        """from_dict of a case the registry holds: checked as when it was written, not by
        input rules added since (a number's kind, an order end date's range)."""
        token = _STORED.set(True)
        try:
            return cls.from_dict(d)
        finally:
            _STORED.reset(token)

    def days_left(self, today=None):
        if self.order_ends is None:
            return None
        return (self.order_ends - (today or dt.date.today())).days
