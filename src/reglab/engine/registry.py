"""The registry of techniques: every place that lists techniques asks it.

Built-in techniques register when :mod:`reglab.engine.techniques` is imported (one module each);
a user registers their own with :func:`register`, e.g. in a notebook::

    @reglab.register
    @dataclass(frozen=True)
    class Shrink(Technique): ...

Registering checks the declarations: a unique name, experiment-file keys that no other technique
or variant setting uses, a random stream of its own, every field declared with ``setting()``.
Stop reasons a technique declares join :data:`reglab.engine.pieces.STOP_REASONS`. Modules that
derive something from the registry (the experiment-file schema, the scikit-learn parameters)
subscribe to be told of a new registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .pieces import add_stop_reason
from .technique import Technique

#: Variant keys that are not techniques' (the experiment file's own); no technique may take them.
RESERVED_KEYS = ("name", "learning_rate", "epochs", "batch_size", "optimizer", "momentum", "nesterov")
#: The scikit-learn estimators' own parameters; no technique may take them.
RESERVED_SKLEARN = ("hidden", "activation", "validation_fraction", "epochs", "batch_size", "learning_rate", "optimizer", "random_state")

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
    if old is not None and (old.__qualname__, old.__module__) != (cls.__qualname__, cls.__module__):
        raise ValueError(f"register: the name {name!r} is taken by {old.__module__}.{old.__qualname__}")
    taken = {key: other.name for other in _techniques.values() if other.name != name for key in _keys(other)}
    taken.update({key: "the variant itself" for key in RESERVED_KEYS})
    for key in _keys(cls):
        if key in taken:
            raise ValueError(f"register: {cls.__name__}'s experiment-file key {key!r} is already {taken[key]}'s")
    taken = {param: f"{other.name}'s" for other in _techniques.values() if other.name != name for param in _sklearn_names(other)}
    taken.update({key: "the estimators' own" for key in RESERVED_SKLEARN})
    for param in _sklearn_names(cls):
        if param in taken:
            raise ValueError(f"register: {cls.__name__}'s scikit-learn parameter {param!r} is already {taken[param]}")
    stream = cls.rng_stream
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 1:
            raise ValueError(f"register: {cls.__name__}.rng_stream must be an integer >= 1, got {stream!r}")
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
    _load_builtins()
    return [_techniques[n] for n in sorted(_techniques)]


def get(name: str) -> type[Technique]:
    """The registered technique called ``name``."""
    _load_builtins()
    return _techniques[name]


def subscribe(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after every change of the registry."""
    _listeners.append(listener)


def _sklearn_names(cls: type[Technique]) -> list[str]:
    names = [s.sklearn for s in cls.settings() if s.sklearn]
    return [cls.sklearn_switch, *names] if cls.table and cls.sklearn_switch else names


def _keys(cls: type[Technique]) -> list[str]:
    return [cls.name] if cls.table else [s.key for s in cls.settings()]


def _load_builtins() -> None:
    from . import techniques  # noqa: F401  (importing the package registers every built-in)
