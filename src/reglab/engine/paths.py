"""Which engine trains a member: the compiled one (:mod:`reglab.engine.compiled`) or eager PyTorch.

The choice is made from the member's *own* settings only (its techniques, the architecture, the
device and the ``engine`` asked for), never from its partners', so a population always trains on
one engine and no partner can change a member's bits. Neither numba nor torch is imported here:
``reglab validate`` checks an ``engine`` setting without them.

- ``"eager"``: PyTorch, operation for operation as Keras's torch backend (exact Keras bits);
- ``"compiled"``: numba, one call trains a run of epochs of the whole population; refused where
  the member cannot take it (a technique with no compiled form, elu/gelu, a GPU, no numba);
- ``"auto"`` (the default): compiled where the member can take it, eager otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from . import checks

ENGINES = ("auto", "compiled", "eager")

#: The hidden activations the kernel computes; the others train eager.
COMPILED_ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")

_warned = False


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def why_not_compiled(techniques: Sequence, arch, device: str = "cpu") -> str | None:
    """Why these settings cannot train on the compiled engine, or None when they can."""
    if str(device) != "cpu":
        return f"the compiled engine runs on the CPU, and device is {str(device)!r}"
    if arch.activation not in COMPILED_ACTIVATIONS:
        return f"activation {arch.activation!r} has no compiled form (compiled: {', '.join(COMPILED_ACTIVATIONS)})"
    for t in techniques:
        if not has_compiled_form(type(t)):
            return f"technique {type(t).name!r} has no compiled form"
    if not numba_available():
        return "numba is not installed (pip install numba)"
    return None


def has_compiled_form(cls) -> bool:
    """Whether technique class ``cls`` trains on the compiled engine: it declares ``compiled``,
    where it defines ``stack`` or below (a subclass that stacks a piece of its own inherits no
    compiled form from its parent: the kernel would run the parent's arithmetic)."""
    if getattr(cls, "compiled", None) is None:
        return False
    declares = next(c for c in cls.__mro__ if "compiled" in vars(c))
    stacks = next((c for c in cls.__mro__ if "stack" in vars(c)), declares)
    return issubclass(declares, stacks)


def member_engine(engine: str, techniques: Sequence, arch, device: str = "cpu") -> str:
    """``"compiled"`` or ``"eager"``: the engine a member with these settings trains on."""
    checks.choice("engine", engine, ENGINES)
    if engine == "eager":
        return "eager"
    reason = why_not_compiled(techniques, arch, device)
    if reason is None:
        return "compiled"
    if engine == "compiled":
        checks.fail("engine", "compiled", f"'auto' or 'eager' here: {reason}")
    if str(device) == "cpu" and not numba_available():
        _say_once("reglab: numba is not installed, so training runs on the slower eager engine; pip install numba")
    return "eager"


def _say_once(line: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        print(line, file=sys.stderr)
