"""Scalar equality the way the API server sees it, so Helm's rendering does not look like drift.

What is treated as equal (and why):

* ``80`` and ``"80"``, ``1.0`` and ``"1"``: templates often quote numbers; for int-or-string
  fields the value round-trips as written, elsewhere the apply would fail anyway. Equal when the
  string is a plain decimal number of the same value.
* ``1`` and ``1.0``: JSON has one number type.
* ``True`` is never equal to ``1`` (Python would say it is).
* Resource quantities, only under quantity maps (``requests``, ``limits``, ``hard``, ``capacity``,
  ``overhead``…) or ``sizeLimit``: the API server canonicalises them (``0.5`` → ``500m``,
  ``1024Mi`` → ``1Gi``), so they compare by value.

Absent-vs-zero is decided by the walk (``compare.py``), not here.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

QUANTITY_PARENTS: frozenset[str] = frozenset(
    {"requests", "limits", "hard", "capacity", "allocatable", "overhead", "default", "defaultRequest"}
)
QUANTITY_FIELDS: frozenset[str] = frozenset({"sizeLimit", "storage"})

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<dec>[numkMGTPE])|[eE](?P<exp>[+-]?\d+))?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_quantity(value: Any) -> Fraction | None:
    """A Kubernetes resource quantity's exact value, or None if ``value`` is not one."""
    if is_number(value):
        value = repr(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY_RE.match(value.strip())
    if match is None:
        return None
    number = Fraction(Decimal(match["num"]))
    if match["bin"]:
        return number * _BINARY[match["bin"]]
    if match["dec"]:
        return number * _DECIMAL[match["dec"]]
    if match["exp"]:
        return number * Fraction(10) ** int(match["exp"])
    return number


def _as_decimal(value: Any) -> Decimal | None:
    text = repr(value) if is_number(value) else value
    if not isinstance(text, str) or not _NUMBER_RE.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
        return None


def scalars_equal(desired: Any, live: Any, *, quantity: bool = False) -> bool:
    """Whether two leaf values mean the same to the API server (see the module docstring)."""
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    if desired == live:
        return True
    if quantity:
        q_desired, q_live = parse_quantity(desired), parse_quantity(live)
        if q_desired is not None and q_desired == q_live:
            return True
    if is_number(desired) or is_number(live):
        d_desired, d_live = _as_decimal(desired), _as_decimal(live)
        return d_desired is not None and d_desired == d_live
    return False


def is_quantity_location(path: tuple[str | int, ...]) -> bool:
    """Whether the leaf at ``path`` holds a resource quantity (by its key or its parent's key)."""
    if path and path[-1] in QUANTITY_FIELDS:
        return True
    return len(path) >= 2 and path[-2] in QUANTITY_PARENTS
