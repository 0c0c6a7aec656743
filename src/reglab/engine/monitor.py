"""Which way a monitored value improves: the one place that decides min, max or auto.

Keras's ``MonitorCallback`` decides it once for every callback; so does this module for early
stopping and the plain-PyTorch helper (Prechelt's criteria watch a loss: always "min").
"""

from __future__ import annotations

from . import checks

MODES = ("auto", "min", "max")


def guess(monitor: str) -> str:
    """Keras's guess for ``mode="auto"`` when nothing says which way a value improves: ``max``
    for a name like an accuracy, ``min`` otherwise."""
    return "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"


def direction(name: str, monitor: str, mode: str, available: dict[str, str] | None = None) -> str:
    """``"min"`` or ``"max"`` for ``monitor`` under ``mode``.

    ``available`` maps every value the history will hold to its better direction; a monitor not
    in it is a ``ValueError`` naming ``name`` (e.g. ``early_stopping.monitor``). Without it,
    ``auto`` falls back on :func:`guess`.

    >>> direction("monitor", "val_accuracy", "auto", {"val_accuracy": "max", "val_loss": "min"})
    'max'
    >>> direction("monitor", "val_loss", "auto")
    'min'
    """
    checks.choice(f"{name.rsplit('.', 1)[0]}.mode" if "." in name else "mode", mode, MODES)
    if available is not None and monitor not in available:
        checks.choice(name, monitor, available)
    if mode != "auto":
        return mode
    return available[monitor] if available is not None else guess(monitor)
