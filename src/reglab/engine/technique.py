"""What a technique declares about itself, once, in its own module.

A technique is a frozen dataclass whose fields are its settings. Each field is declared with
:func:`setting`: its rule (what values it allows), a one-line doc, its experiment-file key, the
value that means "off", its per-layer semantics, whether a sweep may vary it and its scikit-learn
parameter. The class adds its name, its Keras counterpart, a reference, what the report shows for
it, the summary columns it computes, its random stream and the stop reasons it can give, and says
how one setting per member stacks into a :class:`~reglab.engine.pieces.Piece`.

Everything that shows or checks a technique reads these declarations: the experiment-file schema
and its messages, sweeps, the scikit-learn estimators' parameters, the runner's summary columns,
the report's panels, ``reglab techniques``, the Keras bridge and the common test suite
(:func:`reglab.testing.check_technique`). Registering the class
(:func:`reglab.engine.registry.register`) is all it takes to add one.

>>> from dataclasses import dataclass
>>> from reglab.engine import checks
>>> @dataclass(frozen=True)
... class Shrink(Technique):
...     '''Multiply every kernel by (1 - factor) after each update.'''
...     factor: float = setting(0.01, checks.RATE, "the shrink factor per step", off=0.0)
...     name = "shrink"
>>> [s.key for s in Shrink.settings()], Shrink.from_variant({"shrink": 0.0})
(['shrink'], None)
>>> Shrink(factor=2.0)
Traceback (most recent call last):
reglab.engine.checks.CheckError: shrink: must be a number in [0, 1), got 2.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from . import checks
from .architecture import TASKS

if TYPE_CHECKING:  # pragma: no cover
    from .architecture import Architecture
    from .pieces import Piece

_UNSET: Any = object()


def setting(
    default: Any,
    rule: checks.Rule,
    doc: str,
    *,
    key: str | None = None,
    off: Any = _UNSET,
    per_layer: str | None = None,
    sweepable: bool | None = None,
    sklearn: str | None | bool = True,
    sklearn_default: Any = _UNSET,
    search: tuple = (),
):
    """A technique's setting, as a dataclass field.

    - ``default``: the value when the class is built in Python (``Dropout()`` has rate 0.5);
    - ``rule``: the values allowed (:class:`~reglab.engine.checks.Rule`), checked on construction;
    - ``key``: the experiment-file key; by default the technique's name for its first setting and
      the field's name for the others (inside a table technique, always the field's name);
    - ``off``: the key's value in a variant that does not use the technique (flat techniques only);
      ``default`` when not given;
    - ``per_layer``: ``"hidden"`` (one value for every hidden layer, or a list with one per hidden
      layer) or ``"dense"`` (one value for the hidden layers, the output getting ``off``, or a list
      with one per Dense layer, the output's included);
    - ``sweepable``: whether a ``[sweep]`` may vary it (default: numbers and integers);
    - ``sklearn``: its scikit-learn parameter name (True: the key; None: not a parameter), with
      ``sklearn_default`` (default: ``off`` for flat techniques, ``default`` for tables);
    - ``search``: the strengths ``reglab tune`` tries for a flat technique's first setting (none
      given: the default, a third and a tenth of it).
    """
    if per_layer not in (None, "hidden", "dense"):
        raise ValueError(f"per_layer: must be None, 'hidden' or 'dense', got {per_layer!r}")
    meta = {
        "rule": rule,
        "doc": doc,
        "key": key,
        "off": default if off is _UNSET else off,
        "per_layer": per_layer,
        "sweepable": rule.kind in ("number", "integer") if sweepable is None else sweepable,
        "sklearn": sklearn,
        "sklearn_default": sklearn_default,
        "search": tuple(search),
    }
    return field(default=default, metadata={"reglab": meta})


@dataclass(frozen=True)
class Setting:
    """One declared setting, as read back from its technique (see :func:`setting`)."""

    technique: str
    field: str
    key: str  # the experiment-file key: a variant's key, or the key inside the technique's table
    path: str  # where it sits in a variant: "dropout", "early_stopping.patience"
    default: Any
    off: Any
    rule: checks.Rule
    doc: str
    per_layer: str | None
    sweepable: bool
    sklearn: str | None
    sklearn_default: Any
    search: tuple = ()

    @property
    def allowed(self) -> str:
        """The allowed values in words, per-layer lists included."""
        if self.per_layer == "hidden":
            return f"{self.rule.allowed}, or a list of them (one per hidden layer)"
        if self.per_layer == "dense":
            return f"{self.rule.allowed} for the hidden layers, or a list of them (one per Dense layer, the output's included)"
        return self.rule.allowed

    def hint(self):
        """The Python type of its experiment-file value (what the schema accepts)."""
        base = {"number": float | int, "integer": int, "bool": bool}.get(self.rule.kind, str)
        if self.per_layer:
            base = base | list[base]
        return base | None if self.rule.optional else base


@dataclass(frozen=True)
class KerasCounterpart:
    """How Keras writes a technique, for the table and for :mod:`reglab.keras`.

    ``kind`` is where it sits in a Keras model: ``layer`` (after a hidden ``Dense``; ``input_args``
    for one before the first), ``kernel_regularizer``, ``kernel_constraint`` (on hidden
    ``Dense`` layers), ``optimizer`` (an argument of the compiled optimizer), ``callback`` or
    ``loss`` (an argument of the compiled loss). ``names`` are the Keras classes (or the argument)
    that map to it, the first the one written back; ``args`` maps each Keras argument to the
    technique's field; ``fixed`` gives the fields the Keras counterpart implies.
    """

    kind: str
    names: tuple[str, ...]
    args: dict[str, str]
    fixed: dict[str, Any] = field(default_factory=dict)
    input_args: dict[str, str] = field(default_factory=dict)
    note: str = ""

    KINDS: ClassVar[tuple[str, ...]] = ("layer", "kernel_regularizer", "kernel_constraint", "optimizer", "callback", "loss")

    def __post_init__(self) -> None:
        checks.choice("keras.kind", self.kind, self.KINDS)

    def describe(self) -> str:
        where = {
            "layer": "keras.layers.{}({})",
            "kernel_regularizer": "Dense(kernel_regularizer=keras.regularizers.{}({}))",
            "kernel_constraint": "Dense(kernel_constraint=keras.constraints.{}({}))",
            "optimizer": "optimizer argument {} ({})",
            "callback": "keras.callbacks.{}({})",
            "loss": "loss argument {} ({})",
        }[self.kind]
        text = where.format(self.names[0], ", ".join(self.args))
        return text + (f"; {self.note}" if self.note else "")


@dataclass
class SummaryContext:
    """What a technique's summary columns are computed from: one trained population.

    ``result`` is the :class:`~reglab.engine.results.TrainResult`; ``held_out`` the ``(x, y)`` of
    the split named ``split`` (``val`` or ``test``) as the engine took it; ``feature_names`` the
    data's column names.
    """

    arch: Architecture
    result: Any
    held_out: tuple[Any, Any]
    split: str
    feature_names: list[str]


class Technique:
    """A user-facing technique setting: a frozen dataclass whose fields are declared with
    :func:`setting`. Subclasses give the class attributes below and :meth:`stack`."""

    #: The technique's name: its experiment-file key (or table) and its name in messages.
    name: ClassVar[str]
    #: True: its settings sit in a table of their own (``[variant.early_stopping]``), and the
    #: table's presence turns it on. False: flat keys in the variant, on when any is not ``off``.
    table: ClassVar[bool] = False
    #: The scikit-learn parameter that turns a table technique on (``early_stopping=True``).
    sklearn_switch: ClassVar[str | None] = None
    #: Its Keras counterpart, if Keras has one.
    keras: ClassVar[KerasCounterpart | None] = None
    #: Where it comes from, one line (a paper, a library).
    reference: ClassVar[str] = ""
    #: Report panels it asks for: "weights" (weight statistics), "stopping", "mc_bands".
    report: ClassVar[frozenset[str]] = frozenset()
    #: Functions ``(SummaryContext) -> {column: per-member values}`` for the run's summary; each
    #: runs once per population when any variant of the experiment uses the technique.
    summary: ClassVar[tuple] = ()
    #: The tasks it applies to.
    tasks: ClassVar[tuple[str, ...]] = TASKS
    #: The number of its random stream, or None when it draws nothing (unique; registered).
    rng_stream: ClassVar[int | None] = None
    #: Needs validation data (the scikit-learn estimators then set ``validation_fraction`` aside).
    needs_validation: ClassVar[bool] = False
    #: False: it acts at prediction only (MC dropout), so a live view of training leaves it out.
    trains: ClassVar[bool] = True
    #: Kept on in MC dropout's stochastic passes at prediction time (dropout and its kin).
    mc_sample: ClassVar[bool] = False
    #: The stop reasons its piece can give (registered; see :data:`pieces.STOP_REASONS`).
    stop_reasons: ClassVar[tuple[str, ...]] = ()
    #: Its form on the compiled engine (:mod:`reglab.engine.compiled`): ``"steps"`` when it acts
    #: inside an epoch and :meth:`compile` sets the strengths of the kernel's operations for it;
    #: ``"epochs"`` when it acts only between epochs (a stopping rule), where its piece runs as on
    #: the eager path; None (a technique that declares nothing): members with it train eager.
    compiled: ClassVar[str | None] = None

    # -- the declarations, read back --------------------------------------------------------------

    @classmethod
    def settings(cls) -> list[Setting]:
        out = []
        for i, f in enumerate(dataclasses.fields(cls)):
            meta = f.metadata.get("reglab")
            if meta is None:
                raise TypeError(f"{cls.__name__}.{f.name}: declare every field of a technique with reglab.engine.technique.setting()")
            key = meta["key"] if meta["key"] is not None else (f.name if cls.table or i > 0 else cls.name)
            sklearn = meta["sklearn"]
            if sklearn is True:
                sklearn = key if not cls.table else None
            sk_default = meta["sklearn_default"]
            if sk_default is _UNSET:
                sk_default = f.default if cls.table else meta["off"]
            out.append(
                Setting(
                    technique=cls.name,
                    field=f.name,
                    key=key,
                    path=f"{cls.name}.{key}" if cls.table else key,
                    default=f.default,
                    off=meta["off"],
                    rule=meta["rule"],
                    doc=meta["doc"],
                    per_layer=meta["per_layer"],
                    sweepable=meta["sweepable"],
                    sklearn=sklearn,
                    sklearn_default=sk_default,
                    search=meta.get("search", ()),
                )
            )
        return out

    @classmethod
    def from_variant(cls, values: dict[str, Any]) -> Technique | None:
        """The technique for a variant's values (``key -> value``; a table technique: its table,
        or None), or None when the variant does not use it. Lists become tuples."""
        if cls.table:
            if values is None:
                return None
            return cls(**{s.field: _tupled(values.get(s.key, s.default)) for s in cls.settings()})
        settings = cls.settings()
        if all(_same(values.get(s.key, s.off), s.off) for s in settings):
            return None
        return cls(**{s.field: _tupled(values.get(s.key, s.off)) for s in settings})

    def to_variant(self) -> dict[str, Any]:
        """This technique as a variant's keys (a table technique: ``{name: table}``), lists as lists."""
        values = {s.key: listed(getattr(self, s.field)) for s in self.settings()}
        return {self.name: values} if self.table else values

    def __post_init__(self) -> None:
        for s in self.settings():
            name = s.path
            value = getattr(self, s.field)
            if s.per_layer and isinstance(value, (list, tuple)):
                object.__setattr__(self, s.field, tuple(s.rule(f"{name}[{i}]", v) for i, v in enumerate(value)))
            else:
                s.rule(name, value)

    # -- what the common suite (reglab.testing) trains ---------------------------------------------

    @classmethod
    def example(cls) -> tuple[Technique, ...]:
        """A member's techniques that use this one at a typical setting (default: ``cls()``, with
        what it needs alongside where :meth:`check_with` asks for more)."""
        return (cls(),)

    @classmethod
    def neutral(cls) -> Technique | None:
        """A setting that must change nothing, bit for bit; None when every setting acts (max-norm
        rescales at any bound). Default: the ``off`` values, where the rules allow them."""
        if cls.table:
            return None
        try:
            return cls(**{s.field: s.off for s in cls.settings()})
        except ValueError:
            return None

    # -- checks against the network and the other techniques ---------------------------------------

    def check_task(self, task: str) -> None:
        """Raise ``ValueError`` for a task the technique does not apply to."""
        if task not in self.tasks:
            raise checks.FieldError(self.name, f"applies to {' and '.join(self.tasks)} tasks only, got a {task} task")

    def validate(self, arch: Architecture) -> None:
        """Check the settings against the layers; raise ``ValueError`` on a bad value. (The task:
        :meth:`check_task`, once the data says it.)"""
        for s in self.settings():
            if s.per_layer:
                self.per_layer(s.field, arch)

    def check_with(self, others: tuple[Technique, ...]) -> None:
        """Check this technique against the member's other techniques; raise ``ValueError``."""

    def check_logs(self, available_logs: dict[str, str]) -> None:
        """Check what the technique reads from the history (a monitored value) against the names
        it will hold, ``name -> "min" | "max"``; raise ``ValueError``."""

    def per_layer(self, field_name: str, arch: Architecture) -> tuple:
        """A per-layer setting, one value per layer: per hidden layer (``"hidden"``) or per Dense
        layer, the output's included (``"dense"``; a single number leaves the output ``off``)."""
        s = next(s for s in self.settings() if s.field == field_name)
        value = getattr(self, field_name)
        if s.per_layer == "hidden":
            return checks.per_layer(s.path, value, len(arch.hidden), s.rule)
        if isinstance(value, (list, tuple)):
            return checks.per_layer(s.path, value, arch.n_layers, s.rule)
        return (*checks.per_layer(s.path, value, len(arch.hidden), s.rule), s.off)

    @classmethod
    def neutral_per_layer(cls, field_name: str, arch: Architecture) -> tuple:
        """``off`` for every layer of a per-layer setting (what a member without it gets)."""
        s = next(s for s in cls.settings() if s.field == field_name)
        return (s.off,) * (len(arch.hidden) if s.per_layer == "hidden" else arch.n_layers)

    # -- the engine -------------------------------------------------------------------------------

    @classmethod
    def stack(cls, settings: list[Technique | None], arch: Architecture, device, available_logs: dict[str, str]) -> Piece:
        """One piece for the population; ``settings[k]`` is None for members without the technique.

        ``available_logs`` maps every name the history will hold (``loss``, ``val_accuracy``...)
        to its better direction (``"min"`` or ``"max"``).
        """
        raise NotImplementedError

    def compile(self, program, k: int, arch: Architecture) -> None:
        """Set member ``k``'s strengths in ``program`` (a :class:`~reglab.engine.compiled.Program`)
        for a technique whose :attr:`compiled` form is ``"steps"``."""
        raise NotImplementedError(f"technique {self.name!r} declares compiled = 'steps' but no compile()")


def _same(value, off) -> bool:
    """Whether a variant's value is the setting's ``off`` (a list: every element is)."""
    if isinstance(value, (list, tuple)):
        return all(_same(v, off) for v in value)
    return value == off


def _tupled(value):
    return tuple(value) if isinstance(value, list) else value


def listed(value):
    """A per-layer tuple as the list an experiment file (or a scikit-learn parameter) holds."""
    return list(value) if isinstance(value, tuple) else value


def check_member(techniques: tuple[Technique, ...], arch: Architecture, available_logs: dict[str, str]) -> None:
    """Every check a member's techniques get before training, all without torch (so ``reglab
    validate`` makes them too): each technique at most once, for this task and these layers, with
    the member's other techniques, and what it monitors. Raises ``ValueError``."""
    kinds = [type(t) for t in techniques]
    for kind in kinds:
        if kinds.count(kind) > 1:
            raise checks.FieldError("techniques", f"each technique may appear once per member, got {kind.name} twice")
    for t in techniques:
        t.check_task(arch.task)
        t.validate(arch)
        t.check_with(techniques)
        t.check_logs(available_logs)
