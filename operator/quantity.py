"""Kubernetes resource quantities, exactly as the API server reads and writes them.

A ModelServing's template may say ``nvidia.com/gpu: 1`` (an integer) or
``cpu: 1.5``; the API server stores a Pod's quantities in canonical form
(``"1"``, ``"1500m"``). The operator normalises templates the same way before
plugins see them, so a plugin reads what it would read on a created Pod, and
sums quantities for PodGroups as Kubernetes' ``resource.Quantity`` does.

The rules are those of k8s.io/apimachinery/pkg/api/resource (ParseQuantity,
CanonicalizeBytes, Add): values are exact decimals rounded up to the nano;
a quantity keeps the format of its suffix (decimal SI, binary SI or decimal
exponent); canonical form has no fractional digits and the largest suffix
that loses no precision (``1.5Gi`` is ``1536Mi``, ``2000`` is ``2k``); a
binary quantity below 1024 or not an integer is printed in decimal SI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from math import ceil, floor
from typing import Any


class Format(Enum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


_DEC_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
               "E": 18}
_BIN_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIX.items()}
_BIN_NAMES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(|[numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)$")
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    pass


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: Format = Format.DECIMAL_SI

    @classmethod
    def parse(cls, raw: str | int | float) -> Quantity:
        """A quantity from its string (``"500m"``, ``"1Gi"``) or a JSON number."""
        if isinstance(raw, bool):
            raise QuantityError(f"not a quantity: {raw!r}")
        if isinstance(raw, int):
            return cls(Fraction(raw))
        text = repr(raw) if isinstance(raw, float) else str(raw)
        text = text.strip() if isinstance(raw, float) else text
        m = _QUANTITY.match(text)
        if not m:
            raise QuantityError(f"quantities must match the regular expression "
                                f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
        number, suffix = m.groups()
        value = Fraction(number)
        if suffix in _BIN_SUFFIX:
            value *= 2 ** _BIN_SUFFIX[suffix]
            fmt = Format.BINARY_SI
        elif suffix[:1] in ("e", "E"):
            value *= Fraction(10) ** int(suffix[1:])
            fmt = Format.DECIMAL_EXPONENT
        else:
            value *= Fraction(10) ** _DEC_SUFFIX[suffix]
            fmt = Format.DECIMAL_SI
        if value != 0:  # round away from zero to the nano: ask for some, get some
            scaled = value / _NANO
            value = (ceil(scaled) if value > 0 else floor(scaled)) * _NANO
        if fmt is Format.BINARY_SI and 0 < value < 1:
            fmt = Format.DECIMAL_SI
        return cls(value, fmt)

    def __add__(self, other: Quantity) -> Quantity:
        # resource.Quantity.Add: a zero receiver takes the other's format.
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __mul__(self, n: int) -> Quantity:
        return Quantity(self.value * n, self.format)

    def __str__(self) -> str:
        return self.canonical()

    def canonical(self) -> str:
        v = self.value
        if v == 0:
            return "0"
        fmt = self.format
        if fmt is Format.BINARY_SI and (-1024 < v < 1024 or v.denominator != 1):
            fmt = Format.DECIMAL_SI
        if fmt is Format.BINARY_SI:
            mantissa, exp = int(v), 0
            while exp < 6 and mantissa % 1024 == 0:
                mantissa //= 1024
                exp += 1
            return f"{mantissa}{_BIN_NAMES[exp]}"
        # Decimal: an integer mantissa, no trailing zeros, exponent a multiple of 3.
        scaled = v / _NANO
        mantissa, exp = int(scaled), -9
        if scaled.denominator != 1:  # cannot happen after parse; keep exactness anyway
            mantissa, exp = ceil(scaled), -9
        while mantissa % 10 == 0:
            mantissa //= 10
            exp += 1
        if exp % 3 == 1:
            mantissa, exp = mantissa * 10, exp - 1
        elif exp % 3 == 2:
            mantissa, exp = mantissa * 100, exp - 2
        if fmt is Format.DECIMAL_EXPONENT:
            return f"{mantissa}" + (f"e{exp}" if exp else "")
        while exp > 18:  # no SI suffix above E
            mantissa, exp = mantissa * 1000, exp - 3
        return f"{mantissa}{_DEC_BY_EXP[exp]}"


def canonical(raw: Any) -> Any:
    """``raw`` in canonical string form if it is a valid quantity, else as given
    (the API server then refuses it, with its own message)."""
    try:
        return Quantity.parse(raw).canonical()
    except (QuantityError, ValueError, TypeError, ZeroDivisionError):
        return raw


def add_resources(total: dict[str, Quantity], resources: dict[str, Any] | None,
                  times: int = 1) -> None:
    """Add each quantity of ``resources`` (a ResourceList), times ``times``."""
    for name, raw in (resources or {}).items():
        try:
            q = Quantity.parse(raw) * times
        except (QuantityError, ValueError, TypeError):
            continue
        total[name] = total[name] + q if name in total else q
