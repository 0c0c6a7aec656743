"""The common suite every technique passes, as scikit-learn's ``check_estimator`` is for estimators.

Run it on your own technique, e.g. in a notebook after registering it::

    from reglab.testing import check_technique
    check_technique(MyTechnique)          # raises AssertionError naming the first check that fails

What it checks, for any registered technique (nothing here names one):

- ``neutral``: the technique at its neutral setting changes nothing, bit for bit;
- ``purity``: members with it, in a population with members without it, train exactly as alone;
  both checks run on the eager engine and, where the technique has a compiled form, the compiled one;
- ``experiment_file``: its settings round-trip through an experiment file and its resolved TOML;
- ``invalid_values``: every value its rules refuse gives the one-line message naming the key;
- ``sklearn``: its scikit-learn parameters reach the engine (a fit equals the engine's run);
- ``keras``: where it has a Keras counterpart, Keras gives the same loss, update or decision on the
  same weights (checked per kind of counterpart; needs Keras with ``KERAS_BACKEND=torch``).

``technique_checks(cls)`` gives the checks one by one (the CI suite parametrizes over them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .engine import Architecture, Member, registry, train
from .engine.architecture import layers
from .engine.paths import why_not_compiled
from .engine.pieces import StepContext, stack_pieces
from .engine.technique import Technique, listed
from .errors import UserError

HIDDEN = (5, 3)  # two unequal hidden layers: per-layer settings and layer mix-ups show
EPOCHS = 4


def technique_checks(cls: type[Technique]) -> list[tuple[str, Callable[[], None]]]:
    """``(name, check)`` for every check that applies to ``cls``."""
    out = [
        ("declarations", lambda: check_declarations(cls)),
        ("neutral", lambda: check_neutral(cls)),
        ("purity", lambda: check_purity(cls)),
        ("experiment_file", lambda: check_experiment_file(cls)),
        ("invalid_values", lambda: check_invalid_values(cls)),
    ]
    if any(s.sklearn for s in cls.settings()):
        out.append(("sklearn", lambda: check_sklearn(cls)))
    if cls.keras is not None:
        out.append(("keras", lambda: check_keras(cls)))
    return out


def check_technique(cls: type[Technique]) -> None:
    """Run every check on ``cls`` (registered first if it is not); AssertionError on a failure."""
    if registry._techniques.get(cls.name) is not cls:
        registry.register(cls)
    for name, check in technique_checks(cls):
        try:
            check()
        except AssertionError as err:
            raise AssertionError(f"check_technique({cls.__name__}): {name}: {err}") from None


# ---------------------------------------------------------------------------------------------------
# The data and networks the checks train: small, so the suite stays fast.


def _task(cls) -> str:
    return cls.tasks[0]


def _data(task: str, rows: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    if task == "regression":
        return x, (x[:, 0] - 0.5 * x[:, 1]).astype(np.float32)
    if task == "multiclass":
        return x, np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.float32)


def _arch(task: str) -> Architecture:
    return Architecture(n_inputs=2, hidden=HIDDEN, task=task, n_outputs=3 if task == "multiclass" else 1)


def _train(cls, members: list[Member], engine: str = "auto"):
    task = _task(cls)
    x, y = _data(task)
    return train(_arch(task), members, x, y, epochs=EPOCHS, batch_size=8, validation_split=0.25, engine=engine)


def _engines(cls, techniques) -> list[str]:
    """The engines a member with ``techniques`` can train on: eager, and compiled where it has a
    compiled form (each check runs on both)."""
    return ["eager"] + (["compiled"] if why_not_compiled(techniques, _arch(_task(cls))) is None else [])


def _same_run(a, i: int, b, j: int, what: str) -> None:
    for name in a.history:
        assert np.array_equal(a.history[name][i], b.history[name][j], equal_nan=True), f"{what}: history {name!r} differs"
    for n, (p, q) in enumerate(zip(a.params, b.params)):
        assert torch.equal(p[i], q[j]), f"{what}: parameter {n} differs"
    assert a.epochs_run[i] == b.epochs_run[j] and a.stop_reason[i] == b.stop_reason[j], f"{what}: stops differ"


# ---------------------------------------------------------------------------------------------------
# The checks


def check_declarations(cls) -> None:
    """Every setting has a doc and a rule; the technique has a reference and a valid example."""
    assert cls.reference, "declare a one-line `reference` (a paper or a library)"
    for s in cls.settings():
        assert s.doc and "\n" not in s.doc, f"setting {s.path}: a one-line doc"
        s.rule(s.path, s.default)  # the default is allowed
    example = cls.example()
    assert any(isinstance(t, cls) for t in example), "example() must contain an instance of the technique"
    arch = _arch(_task(cls))
    for t in example:
        t.check_task(arch.task)
        t.validate(arch)
        t.check_with(example)


def check_neutral(cls) -> None:
    """The neutral setting (or, without one, no setting) trains exactly as no technique at all."""
    neutral = cls.neutral()
    if neutral is None:  # e.g. max-norm: any bound rescales; members without it are checked by purity
        return
    for engine in _engines(cls, (neutral,)):
        with_it = _train(cls, [Member(seed=s, learning_rate=0.01, techniques=(neutral,)) for s in (0, 1)], engine)
        without = _train(cls, [Member(seed=s, learning_rate=0.01) for s in (0, 1)], engine)
        for k in range(2):
            _same_run(with_it, k, without, k, f"neutral {neutral!r} ({engine} engine)")


def check_purity(cls) -> None:
    """Members with and without the technique, trained together, each train exactly as alone."""
    example = cls.example()
    members = [
        Member(seed=3, learning_rate=0.01, techniques=example),
        Member(seed=4, learning_rate=0.01),
        Member(seed=5, learning_rate=0.02, techniques=example),
    ]
    for engine in _engines(cls, example):
        together = _train(cls, members, engine)
        for k, m in enumerate(members):
            _same_run(together, k, _train(cls, [m], engine), 0, f"member {k} ({m.techniques}) in a population vs alone ({engine} engine)")
    # On "auto", members with and without it may take different engines: still each as alone.
    together = _train(cls, members)
    for k, m in enumerate(members):
        _same_run(together, k, _train(cls, [m]), 0, f"member {k} ({m.techniques}) in a population vs alone (engine auto)")


def _experiment(variant: dict) -> dict:
    return {
        "name": "check",
        "seeds": 1,
        "data": {"dataset": "moons"},
        "model": {"hidden": list(HIDDEN)},
        "variant": [{"name": "v", **variant}],
    }


def check_experiment_file(cls) -> None:
    """The example's settings as a variant give the same techniques back, also from the resolved TOML."""
    import tomllib

    from .spec import Experiment

    example = cls.example()
    if "binary" not in cls.tasks:  # the suite's experiment uses the built-in moons (binary)
        return
    variant: dict = {}
    for t in example:
        variant.update(t.to_variant())
    first = Experiment.from_dict(_experiment(variant))
    got = first.techniques(first.spec.variant[0])
    assert set(got) == set(example), f"from an experiment file: {got} instead of {example}"
    again = Experiment.from_dict(tomllib.loads(first.to_toml()))
    assert set(again.techniques(again.spec.variant[0])) == set(example), "the resolved TOML does not give the same techniques"


def check_invalid_values(cls) -> None:
    """Each value a setting's rule refuses is a one-line error naming the key, the value and, for a
    value of the right type, what is allowed."""
    from .spec import Experiment

    base: dict = {}
    for t in cls.example():
        base.update(t.to_variant())
    for s in cls.settings():
        bad_values = [v for v in s.rule.refused() if cls.table or v != s.off or isinstance(v, bool)]  # off is allowed: "not used"
        if s.per_layer:
            bad_values.append([s.default] * (len(HIDDEN) + 3))  # a list of the wrong length
        for bad in bad_values:
            if cls.table:
                variant = {**base, cls.name: {**base.get(cls.name, {}), s.key: bad}}
            else:
                variant = {**base, s.key: bad}
            try:
                Experiment.from_dict(_experiment(variant), "t.toml")
            except UserError as err:
                text = str(err)
                assert "\n" not in text, f"{s.path} = {bad!r}: not one line: {text}"
                assert text.startswith(f"t.toml: variant[0].{s.path}"), f"{s.path} = {bad!r}: does not name the key: {text}"
                assert f"got {bad!r}" in text or f"got {listed(bad)!r}" in text, f"{s.path} = {bad!r}: does not name the value: {text}"
                if _right_type(s, bad):
                    assert s.rule.allowed in text or "one per" in text, f"{s.path} = {bad!r}: does not say what is allowed: {text}"
            else:
                raise AssertionError(f"{s.path} = {bad!r} was accepted; allowed: {s.allowed}")


def _right_type(s, value) -> bool:
    if s.rule.kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if s.rule.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return s.rule.kind in ("choice", "text") and isinstance(value, str)


def check_sklearn(cls) -> None:
    """The estimator's parameters for the example give the same network as the engine given the
    technique directly."""
    from .sklearn import MLPClassifier, MLPRegressor

    task = _task(cls)
    example = cls.example()
    technique = next(t for t in example if isinstance(t, cls))
    params = {s.sklearn: getattr(technique, s.field) for s in cls.settings() if s.sklearn}
    if cls.table:
        params[cls.sklearn_switch] = True
    for other in example:
        if other is not technique:
            params.update({s.sklearn: getattr(other, s.field) for s in other.settings() if s.sklearn})
    estimator_cls = MLPRegressor if task == "regression" else MLPClassifier
    est = estimator_cls(hidden=HIDDEN, epochs=EPOCHS, batch_size=8, learning_rate=0.01, random_state=0, **params)
    assert set(params) <= set(est.get_params()), "the estimator does not list the technique's parameters"
    x, y = _data(task)
    labels = y if task != "multiclass" else y.argmax(1)
    est.fit(x, labels)
    # What the estimator should have trained: the technique with the example's exposed settings
    # (the rest at their defaults), as the engine trains it.
    expected = cls(**{s.field: getattr(technique, s.field) if s.sklearn else s.default for s in cls.settings()})
    others = tuple(t for t in example if t is not technique)
    arch = est._arch(2, 0 if task == "regression" else (2 if task == "binary" else 3))
    validation = est.validation_fraction if cls.needs_validation else 0.0
    result = train(
        arch,
        [Member(seed=est._seed(), learning_rate=0.01, techniques=(expected, *others))],
        x.astype(np.float32),
        (labels if task != "multiclass" else y).astype(np.float32),
        epochs=EPOCHS,
        batch_size=8,
        validation_split=validation,
    )
    for n, (c, p) in enumerate(zip(est.coefs_, result.params)):
        assert np.array_equal(c, p[0].numpy()), f"fitted parameter {n} differs from the engine's run with {expected!r}"


# ---------------------------------------------------------------------------------------------------
# Keras, per kind of counterpart: the same loss, update or decision on the same weights.


def check_keras(cls) -> None:
    import keras  # noqa: F401  (the check needs Keras; KERAS_BACKEND=torch)

    kind = cls.keras.kind
    technique = next(t for t in cls.example() if isinstance(t, cls))
    check = {
        "kernel_regularizer": _keras_regularizer,
        "kernel_constraint": _keras_constraint,
        "layer": _keras_layer,
        "optimizer": _keras_optimizer,
        "callback": _keras_callback,
        "loss": _keras_loss,
    }[kind]
    check(cls, technique)


def _keras_object(module, cls, technique, **extra):
    counterpart = cls.keras
    args = {arg: _first(getattr(technique, field)) for arg, field in counterpart.args.items()}
    return getattr(module, counterpart.names[0])(**args, **extra)


def _first(value):
    return value[0] if isinstance(value, tuple) else value


def _params(task: str, seed: int = 7) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    widths = (2, *HIDDEN, 3 if task == "multiclass" else 1)
    out = []
    for a, b in zip(widths[:-1], widths[1:]):
        out += [torch.randn(1, a, b, generator=g), torch.randn(1, b, generator=g)]
    return out


def _piece(cls, technique, task: str):
    return stack_pieces([(technique,)], _arch(task), torch.device("cpu"), {"loss": "min", "val_loss": "min", "accuracy": "max", "val_accuracy": "max"})[0]


def _ctx(lr: float = 0.01) -> StepContext:
    return StepContext(seeds=torch.tensor([0]), learning_rate=torch.tensor([lr]), epoch=0, step=0)


def _keras_regularizer(cls, technique) -> None:
    """Keras's regularizer on each hidden kernel, summed, equals the technique's penalty."""
    import keras

    task = _task(cls)
    params = _params(task)
    regularizer = _keras_object(keras.regularizers, cls, technique)
    coefficients = technique.per_layer(next(iter(cls.keras.args.values())), _arch(task))
    assert len(set(coefficients[:-1])) == 1 and coefficients[-1] == 0, "the Keras check covers one coefficient for the hidden layers"
    expected = sum(float(regularizer(keras.ops.convert_to_tensor(h.kernel[0].numpy()))) for h in layers(params)[:-1])
    got = float(_piece(cls, technique, task).penalty(params)[0])
    assert math.isclose(got, expected, rel_tol=1e-5), f"penalty {got} vs Keras's {expected}"


def _keras_constraint(cls, technique) -> None:
    """Keras's constraint on each hidden kernel equals the technique's step after an update."""
    import keras

    task = _task(cls)
    params = _params(task)
    constraint = _keras_object(keras.constraints, cls, technique, axis=0)
    hidden = layers(params)[:-1]
    expected = [np.asarray(keras.ops.convert_to_numpy(constraint(keras.ops.convert_to_tensor(h.kernel[0].numpy())))) for h in hidden]
    _piece(cls, technique, task).after_update(params, _ctx())
    for layer, e in enumerate(expected):
        assert np.allclose(hidden[layer].kernel[0].numpy(), e, rtol=1e-6, atol=1e-7), f"layer {layer} after the constraint differs from Keras's"


def _keras_layer(cls, technique) -> None:
    """At inference both are the identity; at training time, on the same input, the change the
    Keras layer makes has the mean and spread of the technique's (they draw different numbers)."""
    import keras

    task = _task(cls)
    layer = _keras_object(keras.layers, cls, technique, seed=0)
    h = torch.full((1, 4000, HIDDEN[0]), 1.5)
    keras_train = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(h[0].numpy()), training=True))
    keras_infer = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(h[0].numpy()), training=False))
    assert np.array_equal(keras_infer, h[0].numpy()), "Keras's layer is not the identity at inference"
    ours = _piece(cls, technique, task).hidden(h.clone(), 0, _ctx())[0].numpy()
    for name, a, b in (("mean", ours.mean(), keras_train.mean()), ("std", ours.std(), keras_train.std())):
        assert abs(a - b) < 0.05 * max(1.0, abs(b)), f"{name} of the training-time output {a:.4f} vs Keras's {b:.4f}"


def _keras_optimizer(cls, technique) -> None:
    """An optimizer step with the Keras argument and zero gradients equals the technique's update."""
    import keras

    counterpart = cls.keras
    task = _task(cls)
    lr = 0.01
    params = _params(task)
    kwargs = {arg: getattr(technique, field) for arg, field in counterpart.args.items()}
    optimizer = keras.optimizers.SGD(learning_rate=lr, **kwargs)
    variables = [keras.Variable(p[0].numpy()) for p in params]
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    decayed = technique.__class__(**{**{s.field: getattr(technique, s.field) for s in cls.settings()}, **counterpart.fixed})
    _piece(cls, decayed, task).before_update(params, _ctx(lr))
    for n, (v, p) in enumerate(zip(variables, params)):
        assert np.allclose(keras.ops.convert_to_numpy(v), p[0].numpy(), rtol=1e-6, atol=1e-8), f"parameter {n} after one step differs from Keras's"


def _keras_callback(cls, technique) -> None:
    """On the same sequences of monitored values, Keras's callback stops at the same epoch."""
    import keras

    task = _task(cls)
    rng = np.random.default_rng(0)
    for trial in range(20):
        values = np.cumsum(rng.normal(-0.02, 0.1, size=30)).astype(np.float32) + 1.0
        callback = _keras_object(keras.callbacks, cls, technique)
        callback.set_model(_StubModel())
        callback.on_train_begin()
        keras_stop = None
        for epoch, v in enumerate(values):
            callback.on_epoch_end(epoch, {technique.monitor: float(v)})
            if callback.model.stop_training:
                keras_stop = epoch
                break
        piece = _piece(cls, technique, task)
        params = _params(task)
        our_stop = None
        for epoch, v in enumerate(values):
            decision = piece.on_epoch_end(epoch, {technique.monitor: torch.tensor([v]), "loss": torch.tensor([v])}, params)
            if bool(decision.stop[0]):
                our_stop = epoch
                break
        assert our_stop == keras_stop, f"sequence {trial}: stops at epoch {our_stop}, Keras at {keras_stop}"


class _StubModel:
    """What a Keras callback touches of its model here."""

    stop_training = False

    def get_weights(self):
        return []

    def set_weights(self, weights):
        pass

    @property
    def weights(self):
        return []


def _keras_loss(cls, technique) -> None:
    """Keras's loss with the argument equals the engine's loss on the technique's targets, per task."""
    import keras

    from .engine.losses import make_loss

    from .keras import LOSSES  # the bridge's table: Keras's loss class per task

    for task in cls.tasks:
        name = next((keras_class for t, _, keras_class in LOSSES.values() if t == task and keras_class in cls.keras.names), None)
        if name is None:
            continue
        args = {arg: getattr(technique, field) for arg, field in cls.keras.args.items()}
        loss = getattr(keras.losses, name)(**args)
        x, y = _data(task, rows=32, seed=1)
        g = torch.Generator().manual_seed(3)
        logits = torch.randn(1, 32, 3 if task == "multiclass" else 1, generator=g)
        yt = torch.as_tensor(y).view(1, 32, -1)
        probabilities = torch.sigmoid(logits) if task == "binary" else torch.softmax(logits, -1)
        expected = float(loss(keras.ops.convert_to_tensor(yt[0].numpy()), keras.ops.convert_to_tensor(probabilities[0].numpy())))
        piece = _piece(cls, technique, task)
        got = float(make_loss(("binary_crossentropy" if task == "binary" else "categorical_crossentropy"), task)(logits, piece.targets(yt)).mean())
        assert math.isclose(got, expected, rel_tol=1e-5), f"{task}: loss {got} vs Keras's {expected}"
