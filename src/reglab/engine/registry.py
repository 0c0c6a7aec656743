"""The registry of techniques: every place that lists techniques asks it.

Built-in techniques register when :mod:`reglab.engine.techniques` is imported (one module each),
which :mod:`reglab.engine` does first: importing this module imports that package, so the
built-ins are always here before anyone asks (this module never imports them itself: that
would be an import circle). A user registers their own with :func:`register`, e.g. in a notebook::

    @reglab.register
    @dataclass(frozen=True)
    class Shrink(Technique): ...

Registering checks the declarations, each refusal one line naming the class and the value: a
unique name and class name (no built-in name can be shadowed), experiment-file keys that are
identifiers no other technique or variant setting uses, scikit-learn parameters that are not the
estimators' own parameters or methods, a random stream of its own below 2**32, stop reasons that
are identifiers, known report panels and tasks, defaults and ``off`` values within each setting's
own rule, and every field declared with ``setting()``.
Stop reasons a technique declares join :data:`reglab.engine.pieces.STOP_REASONS`. Modules that
derive something from the registry (the experiment-file schema, the scikit-learn parameters)
subscribe to be told of a new registration.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from .pieces import add_stop_reason
from .technique import TASKS, Technique

#: Variant keys that are not techniques' (the experiment file's own); no technique may take them.
RESERVED_KEYS = ("name", "learning_rate", "epochs", "batch_size", "optimizer", "momentum", "nesterov")
#: Keys that name a member's other coordinates (summary and sweep columns); no technique may take them.
COORDINATE_KEYS = ("seed", "seeds", "variant", "fold", "key", "epoch")
#: The scikit-learn estimators' own parameters; no technique may take them.
RESERVED_SKLEARN = ("hidden", "activation", "validation_fraction", "epochs", "batch_size", "learning_rate", "optimizer", "random_state", "engine")
#: Methods and attributes of a scikit-learn estimator (reglab's included): a parameter of that name
#: would replace them. tests/techniques/test_registration.py checks the list against the classes.
ESTIMATOR_API = (
    "fit", "predict", "predict_proba", "predict_log_proba", "decision_function", "score", "transform",
    "fit_transform", "fit_predict", "partial_fit", "get_params", "set_params", "get_metadata_routing",
    "set_fit_request", "set_predict_request", "set_score_request", "set_predict_proba_request", "mc_predict",
)  # fmt: skip
#: The report's panels a technique may ask for.
REPORT_PANELS = ("weights", "stopping", "mc_bands")
#: Random streams are folded into 32-bit keys: a larger number would alias a smaller one.
STREAM_LIMIT = 2**32

_techniques: dict[str, type[Technique]] = {}
_streams: dict[int, str] = {}
_listeners: list[Callable[[], None]] = []


def register(cls: type[Technique]) -> type[Technique]:
    """Add a technique to the registry (usable as a class decorator); returns the class.

    A class of the same name from the same place (a notebook cell run again) replaces the earlier
    one; any other clash is a ``ValueError`` naming it.
    """
    if not (isinstance(cls, type) and issubclass(cls, Technique)):
        raise TypeError(f"register: expected a Technique subclass, got {cls!r}")
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):
        raise TypeError(f"register: {cls.__name__} must be a frozen dataclass: put @dataclass(frozen=True) on the class")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register: {cls.__name__}.name must be an identifier such as 'dropout', got {name!r}")
    settings = cls.settings()  # raises for an undeclared field
    if not settings:
        raise ValueError(f"register: {cls.__name__} declares no setting; a technique needs at least one (its strength, or its switch)")
    old = _techniques.get(name)
    if old is not None and not _same_class(old, cls):
        raise ValueError(f"register: the name {name!r} is taken by {old.__module__}.{old.__qualname__}")
    _check_class_name(cls)
    _check_declarations(cls, settings)
    taken = {key: f"{other.name}'s" for other in _techniques.values() if other.name != name for key in _keys(other)}
    taken.update({key: "the variant's own" for key in RESERVED_KEYS})
    taken.update({key: "a member's coordinate" for key in COORDINATE_KEYS})
    for key in _keys(cls):
        if not key.isidentifier():
            raise ValueError(f"register: {cls.__name__}'s experiment-file key {key!r} must be an identifier (letters, digits, _)")
        if key in taken:
            raise ValueError(f"register: {cls.__name__}'s experiment-file key {key!r} is already {taken[key]}")
    taken = {param: f"{other.name}'s" for other in _techniques.values() if other.name != name for param in _sklearn_names(other)}
    taken.update({key: "the estimators' own" for key in RESERVED_SKLEARN})
    taken.update({key: "an estimator method" for key in ESTIMATOR_API})
    for param in _sklearn_names(cls):
        if not isinstance(param, str) or not param.isidentifier() or param.startswith("_") or param.endswith("_"):
            raise ValueError(
                f"register: {cls.__name__}'s scikit-learn parameter {param!r} must be an identifier that neither starts nor ends with _"
            )
        if param in taken:
            raise ValueError(f"register: {cls.__name__}'s scikit-learn parameter {param!r} is already {taken[param]}")
    stream = cls.rng_stream
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, int) or not 1 <= stream < STREAM_LIMIT:
            raise ValueError(f"register: {cls.__name__}.rng_stream must be an integer in [1, 2**32), got {stream!r}")
        if _streams.get(stream, name) != name:
            raise ValueError(f"register: {cls.__name__}'s random stream {stream} is already {_streams[stream]!r}'s; pick another number")
        _streams[stream] = name
    for reason in cls.stop_reasons:
        add_stop_reason(reason)
    _techniques[name] = cls
    for listener in _listeners:
        listener()
    return cls


def unregister(name: str) -> None:
    """Remove a technique (its stop reasons stay known). For tests and notebooks."""
    cls = _techniques.pop(name)
    if cls.rng_stream is not None:
        _streams.pop(cls.rng_stream, None)
    for listener in _listeners:
        listener()


def techniques() -> list[type[Technique]]:
    """Every registered technique, by name."""
    return [_techniques[n] for n in sorted(_techniques)]


def get(name: str) -> type[Technique]:
    """The registered technique called ``name``."""
    return _techniques[name]


def subscribe(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after every change of the registry."""
    _listeners.append(listener)


def _same_class(a: type, b: type) -> bool:
    """The same class, or its new version (a notebook cell run again)."""
    return (a.__qualname__, a.__module__) == (b.__qualname__, b.__module__)


def _check_class_name(cls: type[Technique]) -> None:
    """A technique's class is reachable by its name (``reglab.Dropout``): it may not shadow
    another technique's class or any other public name of reglab."""
    for other in _techniques.values():
        if other.__name__ == cls.__name__ and not _same_class(other, cls):
            raise ValueError(f"register: the class name {cls.__name__!r} is taken by {other.name!r}'s class; rename the class")
    # reglab's own public names (none yet while the engine imports and registers its built-ins)
    own = getattr(sys.modules.get(__package__), "__all__", ())
    if cls.__name__ in own:
        raise ValueError(f"register: the class name {cls.__name__!r} is one of reglab's own names; rename the class")


def _check_declarations(cls: type[Technique], settings) -> None:
    """What the class says of itself beyond its settings' keys."""
    where = f"register: {cls.__name__}"
    if not isinstance(cls.tasks, tuple) or not cls.tasks or not set(cls.tasks) <= set(TASKS):
        raise ValueError(f"{where}.tasks must be a non-empty tuple of {', '.join(TASKS)}, got {cls.tasks!r}")
    if not isinstance(cls.report, frozenset) or not cls.report <= set(REPORT_PANELS):
        raise ValueError(f"{where}.report must be a frozenset of {', '.join(REPORT_PANELS)}, got {cls.report!r}")
    if not isinstance(cls.stop_reasons, tuple) or not all(isinstance(r, str) and r.isidentifier() for r in cls.stop_reasons):
        raise ValueError(f"{where}.stop_reasons must be a tuple of identifiers such as 'my_rule', got {cls.stop_reasons!r}")
    for s in settings:
        values = [("default", s.default)] + ([("off", s.off)] if not cls.table else []) + [("search strength", v) for v in s.search]
        for what, value in values:
            items = value if s.per_layer and isinstance(value, (list, tuple)) else [value]
            try:
                for item in items:
                    s.rule(s.path, item)
            except ValueError as err:
                raise ValueError(f"{where}: the {what} of {s.field!r} is outside its own rule ({err})") from None


def _sklearn_names(cls: type[Technique]) -> list[str]:
    names = [s.sklearn for s in cls.settings() if s.sklearn is not None]
    return [cls.sklearn_switch, *names] if cls.table and cls.sklearn_switch else names


def _keys(cls: type[Technique]) -> list[str]:
    return [cls.name] if cls.table else [s.key for s in cls.settings()]
