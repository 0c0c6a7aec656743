"""The table of techniques, from the registry: ``reglab techniques`` and ``docs/techniques.md``.

Nothing here is written by hand: each row is what a technique declares in its own module. The
file ``docs/techniques.md`` is ``reglab techniques --markdown`` (a test fails when it is stale).
"""

from __future__ import annotations

from .engine import registry
from .engine.technique import Setting, Technique

TECHNIQUE_COLUMNS = ("technique", "in an experiment file", "Keras counterpart", "reference")
SETTING_COLUMNS = ("key", "allowed", "default", "sweep", "scikit-learn", "what it does")


def technique_rows() -> list[tuple[str, ...]]:
    return [(cls.name, _where(cls), cls.keras.describe() if cls.keras else "none", cls.reference) for cls in registry.techniques()]


def setting_rows() -> list[tuple[str, ...]]:
    rows = []
    for cls in registry.techniques():
        for s in cls.settings():
            sklearn = s.sklearn or ""
            if sklearn and s.sklearn_default != (s.default if cls.table else s.off):
                sklearn += f" (default {s.sklearn_default!r})"
            if cls.table and sklearn:
                sklearn += f", with {cls.sklearn_switch}=True"
            rows.append((s.path, s.allowed, _default(cls, s), "yes" if s.sweepable else "", sklearn, s.doc))
    return rows


def _where(cls: type[Technique]) -> str:
    if cls.table:
        return f"a [variant.{cls.name}] table turns it on"
    keys = ", ".join(s.key for s in cls.settings())
    return f"{keys} in a variant; on when not off"


def _default(cls: type[Technique], s: Setting) -> str:
    text = lambda v: "unset" if v is None else ("true" if v is True else "false" if v is False else repr(v))  # noqa: E731
    if cls.table:
        return text(s.default)
    return f"{text(s.off)} (off)"


def markdown() -> str:
    """The two tables as Markdown (what ``docs/techniques.md`` holds)."""
    lines = [
        "# Techniques",
        "",
        "Generated from the technique registry by `reglab techniques --markdown`; do not edit by hand.",
        "Each technique declares all of this in its own module under `src/reglab/engine/techniques/`.",
        "",
        _table(TECHNIQUE_COLUMNS, technique_rows()),
        "",
        "## Settings",
        "",
        "Keys of a `[[variant]]` (a table technique's keys go in its table, e.g. `[variant.early_stopping]`,",
        "and are swept as `early_stopping.patience`). The default of a flat key is the value that means off.",
        "",
        _table(SETTING_COLUMNS, setting_rows()),
        "",
    ]
    return "\n".join(lines)


def _table(columns, rows) -> str:
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
