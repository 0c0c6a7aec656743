"""Argument checks that raise one-line ``ValueError``s naming the argument, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{name}: must be {allowed}, got {value!r}")


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
    lo_text = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    hi_text = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    if lo is not None and hi is not None:
        allowed = f"a number in {lo_text}, {hi_text}"
    elif lo is not None:
        allowed = f"a number {'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        allowed = f"a number {'<' if hi_open else '<='} {hi:g}"
    else:
        allowed = "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(name, value, allowed)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        fail(name, value, allowed)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        fail(name, value, allowed)
    return float(value)


def integer(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    if lo is not None and hi is not None:
        allowed = f"an integer in [{lo}, {hi}]"
    elif lo is not None:
        allowed = f"an integer >= {lo}"
    else:
        allowed = "an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, value, allowed)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fail(name, value, allowed)
    return int(value)


def each(owner: Any, field: str, check) -> None:
    """Check ``owner.field``, one number or a list of numbers; a list is stored back (on a frozen
    dataclass too) as the tuple of its checked values. ``check(name, value)`` names ``field`` or
    ``field[i]``."""
    value = getattr(owner, field)
    if isinstance(value, (list, tuple)):
        object.__setattr__(owner, field, tuple(check(f"{field}[{i}]", v) for i, v in enumerate(value)))
    else:
        check(field, value)


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
