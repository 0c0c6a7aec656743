"""Argument checks that raise one-line ``ValueError``s naming the argument, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

MC_MAX_PASSES = 10_000  # Monte Carlo passes a prediction may take: more add nothing but time


class FieldError(ValueError):
    """A refusal about one named setting: ``"<field>: <problem>"``. Whoever knows where the
    setting sits (a variant of an experiment file) reads ``field`` and ``problem`` as they are."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class CheckError(FieldError):
    """A value refused by a check: the setting's ``name``, the ``value`` and what is ``allowed``."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.value, self.allowed = value, allowed
        super().__init__(name, f"must be {allowed}, got {value!r}")


def fail(name: str, value: Any, allowed: str) -> None:
    raise CheckError(name, value, allowed)


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    options = list(options)
    if value not in options:
        fail(name, value, "one of " + ", ".join(repr(o) for o in options))
    return value


def number(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite real number inside the given bounds (closed unless ``*_open``)."""
    allowed = _numbers_allowed(lo, hi, lo_open, hi_open)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(name, value, allowed)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        fail(name, value, allowed)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        fail(name, value, allowed)
    return float(value)


def _numbers_allowed(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """The words for the numbers these bounds allow (closed unless ``*_open``)."""
    lo_text = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    hi_text = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    if lo is not None and hi is not None:
        return f"a number in {lo_text}, {hi_text}"
    if lo is not None:
        return f"a number {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"a number {'<' if hi_open else '<='} {hi:g}"
    return "a finite number"


def _integers_allowed(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an integer in [{lo}, {hi}]"
    if lo is not None:
        return f"an integer >= {lo}"
    return "an integer"


def integer(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    allowed = _integers_allowed(lo, hi)
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, value, allowed)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fail(name, value, allowed)
    return int(value)


def non_negative(name: str, value: Any) -> float:
    return number(name, value, lo=0.0)


def positive(name: str, value: Any) -> float:
    return number(name, value, lo=0.0, lo_open=True)


def rate(name: str, value: Any) -> float:
    """A probability-like rate in [0, 1) (dropout and its kin)."""
    return number(name, value, lo=0.0, hi=1.0, hi_open=True)


def per_layer(name: str, value: Any, n: int, check) -> tuple[float, ...]:
    """One value for every layer, or a sequence of exactly ``n`` values, each passed through ``check``."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            fail(name, list(value), f"one number or a list of {n} (one per layer)")
        return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))
    v = check(name, value)
    return (v,) * n


# ---------------------------------------------------------------------------------------------------
# Rules: a check together with the words for what it allows, declared once next to a setting
# (:func:`reglab.engine.technique.setting`) and read by every place that shows or checks it: the
# experiment-file schema, ``reglab techniques``, the scikit-learn parameters and the common suite.


@dataclass(frozen=True)
class Rule:
    """What one setting allows: ``kind`` (number, integer, bool, choice, text), the words for it,
    and for numbers and integers the bounds (used to show the rule and to make values it refuses)."""

    kind: str
    allowed: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    options: tuple[str, ...] = ()
    optional: bool = False  # None (unset) is allowed too

    def __call__(self, name: str, value: Any) -> Any:
        """``value`` checked (a ``ValueError`` naming ``name``, the value and :attr:`allowed`)."""
        if value is None and self.optional:
            return None
        try:
            if self.kind == "number":
                return number(name, value, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
            if self.kind == "integer":
                return integer(name, value, lo=None if self.lo is None else int(self.lo), hi=None if self.hi is None else int(self.hi))
            if self.kind == "choice":
                return choice(name, value, self.options)
        except ValueError:
            fail(name, value, self.allowed)
        if self.kind == "bool" and not isinstance(value, bool):
            fail(name, value, self.allowed)
        if self.kind == "text" and (not isinstance(value, str) or not value):
            fail(name, value, self.allowed)
        return value

    def or_none(self, meaning: str) -> Rule:
        """The same rule where None (not set) is also allowed, meaning ``meaning``."""
        return replace(self, optional=True, allowed=f"{self.allowed}, or unset ({meaning})")

    def refused(self) -> list[Any]:
        """Values this rule must refuse (for the common technique suite)."""
        out: list[Any] = ["text"] if self.kind != "text" else [3]
        if self.kind in ("number", "integer"):
            out.append(True)
            if self.lo is not None:
                out.append(self.lo if self.lo_open else self.lo - 1)
            if self.hi is not None:
                out.append(self.hi if self.hi_open else self.hi + 1)
        if self.kind == "integer":
            out.append(1.5)
        if self.kind == "number":
            out.append(math.inf)
        if self.kind == "bool":
            out.append(1)
        if self.kind == "choice":
            out.append("not-an-option")
        return out


def number_rule(*, lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    return Rule("number", _numbers_allowed(lo, hi, lo_open, hi_open), lo, hi, lo_open, hi_open)


def integer_rule(*, lo: int | None = None, hi: int | None = None) -> Rule:
    return Rule("integer", _integers_allowed(lo, hi), lo, hi)


def choice_rule(options: Iterable[str]) -> Rule:
    options = tuple(options)
    return Rule("choice", "one of " + ", ".join(repr(o) for o in options), options=options)


RATE = number_rule(lo=0.0, hi=1.0, hi_open=True)
NON_NEGATIVE = number_rule(lo=0.0)
POSITIVE = number_rule(lo=0.0, lo_open=True)
ANY_NUMBER = number_rule()
BOOL = Rule("bool", "true or false")
TEXT = Rule("text", "a non-empty string")
