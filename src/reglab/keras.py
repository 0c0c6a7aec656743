"""The Keras bridge: train your own Keras model over many seeds at once, and take any member back.

::

    import keras
    from reglab.keras import from_keras

    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    pop = from_keras(model, callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=20)])
    result = pop.fit(X, y, seeds=range(20), epochs=500, validation_split=0.2)  # 20 seeds at once
    result.history["val_loss"]          # (20, 500), NaN after a member stopped
    keras_model = result.to_keras(3)    # member 3, a compiled Keras model with its weights

:func:`from_keras` reads a compiled ``Sequential`` (or a functional chain from one ``Input``) of
``Dense`` layers, and turns what it finds into reglab's :class:`~reglab.engine.Architecture`,
techniques, optimizer, loss and metrics. Which Keras layers, regularizers, constraints, optimizer
arguments, loss arguments and callbacks map to which technique is not listed here: each
technique declares its Keras counterpart (:class:`~reglab.engine.KerasCounterpart`) and the
registry knows them all, so a newly registered technique is read (and written back) too. Anything
reglab cannot represent is a one-line ``ValueError`` naming the layer or argument.

Training is reglab's engine (:func:`reglab.engine.train`): Keras's arithmetic, bit for bit where
the engine is, one member per seed. Keras's own random draws are *not* reproduced: a member's
initial weights (Glorot-uniform kernels, zero biases, as Keras's defaults), row order and dropout
masks come from reglab's counter-based keys ``(seed, ...)``, so seed 3 here is not
``keras.utils.set_random_seed(3)``; layers' and initializers' ``seed`` arguments are ignored.

Keras is optional: it is imported when a function here needs it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine import SGD, Adam, Architecture, Member, TrainResult, checks, registry, train
from .engine.losses import METRICS_FOR_TASK
from .engine.model import ACTIVATIONS
from .engine.technique import Setting, Technique

INSTALL_HINT = 'reglab.keras needs Keras: pip install "reglab[keras]"'

#: The compiled loss: reglab's name -> (task, the output Dense's activation, Keras's loss class).
LOSSES = {
    "binary_crossentropy": ("binary", "sigmoid", "BinaryCrossentropy"),
    "categorical_crossentropy": ("multiclass", "softmax", "CategoricalCrossentropy"),
    "mse": ("regression", "linear", "MeanSquaredError"),
    "mae": ("regression", "linear", "MeanAbsoluteError"),
}
_LOSS_NAMES = {"mean_squared_error": "mse", "mean_absolute_error": "mae"}  # Keras's function names
_LOSS_HELP = "binary_crossentropy (one sigmoid unit), categorical_crossentropy (softmax; fit takes one-hot or integer labels), mse, mae (linear outputs)"
_LOSS_FORMS = "as Keras's names, its functions in keras.losses or its classes (BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError, MeanAbsoluteError)"

#: Keras optimizer class -> reglab's; the reglab optimizer's fields are Keras arguments of the same name.
OPTIMIZERS = {"Adam": Adam, "AdamW": Adam, "SGD": SGD}

#: Keras's own metrics (their names in keras.metrics: classes and functions) -> reglab's metric, and
#: the one task where the Keras metric computes it (None: wherever reglab has it). A string is read as
#: Keras's compile reads it: "accuracy" (or "acc") follows the loss, as reglab's does; any other goes
#: through keras.metrics.get to one of these.
METRICS = {
    "BinaryAccuracy": ("accuracy", "binary"),  # thresholds every output: not reglab's argmax on softmax
    "binary_accuracy": ("accuracy", "binary"),
    "CategoricalAccuracy": ("accuracy", "multiclass"),  # argmax of one sigmoid unit: always right
    "categorical_accuracy": ("accuracy", "multiclass"),
    "MeanSquaredError": ("mse", None),
    "mean_squared_error": ("mse", None),
    "MeanAbsoluteError": ("mae", None),
    "mean_absolute_error": ("mae", None),
}

# Configuration entries that do not change what is computed (seeds: reglab draws from its own keys).
_IGNORED = ("name", "trainable", "dtype", "seed")
INPUT = -1  # the position of a layer placed before the first Dense


def _keras():
    try:
        import keras
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return keras


def _fail(message: str):
    raise ValueError(f"from_keras: {message}")


def _keras_name(module, obj) -> str | None:
    """The name under which ``module`` (keras.activations, keras.losses, keras.metrics) holds ``obj``
    itself (a function) or ``obj``'s class (an instance); None when it is not Keras's own. The name
    only finds Keras's object; identity decides, so a user's ``def relu`` is not Keras's relu."""
    if isinstance(obj, type):  # a class itself, not an instance of it
        return None
    if inspect.isroutine(obj):
        name = getattr(obj, "__name__", None)
        return name if isinstance(name, str) and getattr(module, name, None) is obj else None
    cls = type(obj)
    return cls.__name__ if getattr(module, cls.__name__, None) is cls else None


def _class_name(module, obj, what: str) -> str:
    """``obj``'s class name, for the tables that map classes to techniques. A class named like one
    of Keras's own in ``module`` (keras.layers, keras.regularizers...) without being it, a user's
    subclass or look-alike, is refused: reglab cannot know what it computes. Names Keras does not
    have stay for the counterparts a registered technique may declare."""
    cls = type(obj)
    own = getattr(module, cls.__name__, None)
    if own is not None and own is not cls:
        _fail(f"{what} {cls.__module__}.{cls.__qualname__} is named like {module.__name__}.{cls.__name__} but is not it; reglab reads Keras's own")
    return cls.__name__


def _describe(obj) -> str:
    """A value that is not Keras's own, in a message: a function by where it is defined
    (``my_module.relu``), any other object by its class (``an instance of my_module.MyLoss``)."""
    if inspect.isroutine(obj) and isinstance(getattr(obj, "__qualname__", None), str):
        return f"{getattr(obj, '__module__', None) or '?'}.{obj.__qualname__}"
    return f"an instance of {type(obj).__module__}.{type(obj).__qualname__}"


def _as_int(value):
    """``value`` as a Python int when it is an integer of any integer type (numpy's too, not bool);
    else unchanged, for the check that follows to refuse by its own repr."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------------
# What a Keras model is, in reglab's terms.


@dataclass(frozen=True)
class Population:
    """A Keras model as reglab reads it (see :func:`from_keras`): the network's shape, the
    techniques every member uses, the optimizer, learning rate, loss and metrics.

    ``n_inputs`` is None for a model built without an input shape; :meth:`fit` takes it from the data.
    """

    hidden: tuple[int, ...]
    activation: str
    task: str
    n_outputs: int
    techniques: tuple[Technique, ...]
    optimizer: Adam | SGD
    learning_rate: float
    loss: str
    metrics: tuple[str, ...]
    n_inputs: int | None = None

    def architecture(self, n_inputs: int | None = None) -> Architecture:
        n_inputs = n_inputs if n_inputs is not None else self.n_inputs
        if n_inputs is None:
            raise ValueError("n_inputs: the Keras model has no input shape yet; give n_inputs, or start the model with keras.Input((n_inputs,))")
        return Architecture(n_inputs=n_inputs, hidden=self.hidden, activation=self.activation, task=self.task, n_outputs=self.n_outputs)

    def members(self, seeds: Iterable[int]) -> list[Member]:
        """One member per seed, each with the model's learning rate and techniques."""
        if isinstance(seeds, (int, np.integer, str)) or not isinstance(seeds, Iterable):
            checks.fail("seeds", seeds, "a list of seeds such as range(20)")
        seeds = [_as_int(s) for s in seeds]
        for k, s in enumerate(seeds):
            if not isinstance(s, int) or isinstance(s, bool):  # 1.7 is not seed 1
                checks.fail(f"seeds[{k}]", s, "an integer")
        return [Member(seed=s, learning_rate=self.learning_rate, techniques=self.techniques, label=f"seed {s}") for s in seeds]

    def fit(
        self, x, y, *, seeds: Iterable[int], epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0, validation_data=None, verbose: int = 0, engine: str = "auto"
    ) -> FitResult:
        """Train one member per seed, all at once, as ``model.fit`` would train each.

        ``x``, ``y``, ``epochs``, ``batch_size``, ``validation_split`` (the last fraction of the
        rows, as Keras) and ``validation_data`` as in Keras; multiclass targets may be one-hot or
        integer labels. ``verbose=1`` prints a line per epoch. ``engine``: ``"auto"`` (the compiled
        engine where the model's techniques allow), ``"compiled"`` or ``"eager"`` (Keras's own
        arithmetic, operation for operation: the closest to the model's own ``fit``).

        Member k starts from reglab's Glorot-uniform draw for ``seeds[k]`` (not from the model's
        weights, nor from Keras's random generator) and sees its rows and dropout masks in an order
        drawn from the same seed: the same seed gives the same member in any population.
        """
        arch = self.architecture(self.n_inputs if self.n_inputs is not None else _n_features(x))
        members = self.members(seeds)
        progress = None
        if verbose:

            def progress(epoch: int, n_training: int) -> None:
                print(f"epoch {epoch + 1}/{epochs}: {n_training} of {len(members)} members training")

        result = train(
            arch,
            members,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            optimizer=self.optimizer,
            loss=self.loss,
            metrics=list(self.metrics),
            on_epoch_end=progress,
            engine=engine,
        )
        return FitResult(self, result)

    def to_keras(self, n_inputs: int | None = None):
        """A fresh compiled Keras model of this description, with Keras's own initial weights
        (callbacks such as EarlyStopping are not part of a model: pass them to its ``fit``)."""
        return _build_model(_keras(), self, self.architecture(_as_int(n_inputs)))


@dataclass
class FitResult:
    """What :meth:`Population.fit` gives back: the engine's :class:`~reglab.engine.TrainResult`
    as ``result``, and the members in Keras's terms."""

    population: Population
    result: TrainResult

    @property
    def members(self) -> list[Member]:
        return self.result.members

    @property
    def seeds(self) -> list[int]:
        return [m.seed for m in self.result.members]

    @property
    def history(self) -> dict[str, np.ndarray]:
        """``name -> (K, epochs)`` as Keras names them (``loss``, ``val_accuracy``...), NaN after a member stopped."""
        return self.result.history

    def predict(self, x) -> np.ndarray:
        """Every member's ``model.predict(x)``: ``(K, N, n_outputs)``."""
        return self.result.predict(x)

    def evaluate(self, x, y) -> dict[str, np.ndarray]:
        """Every member's ``model.evaluate(x, y)``: ``name -> (K,)``."""
        return self.result.evaluate(x, y)

    def to_keras(self, i: int):
        """Member ``i`` (its position, not its seed) as a compiled Keras model with its weights:
        ``to_keras(i).predict(x)`` is ``predict(x)[i]``, and it can go on training in Keras."""
        i = checks.integer("i", _as_int(i), lo=0, hi=len(self.members) - 1)
        model = _build_model(_keras(), self.population, self.result.arch)
        model.set_weights([p[i].detach().cpu().numpy() for p in self.result.params])
        return model


def _n_features(x) -> int:
    shape = np.shape(x)
    return 1 if len(shape) == 1 else int(shape[-1])


def from_keras(model, callbacks: Iterable | None = ()) -> Population:
    """What ``model`` (compiled) and ``callbacks`` are in reglab's terms; :meth:`Population.fit`
    then trains it for many seeds at once.

    Read: ``Dense`` layers (their activation, or an ``Activation`` layer right after a linear
    one), the layers, kernel regularizers and constraints, optimizer and loss arguments and
    callbacks that registered techniques declare as their Keras counterparts; the compiled
    optimizer (Adam, AdamW, SGD), loss (binary_crossentropy, categorical_crossentropy, mse, mae)
    and metrics (accuracy, mse, mae). Activations, losses and metrics are Keras's own objects (or
    Keras's names for them): a function or class of your own is refused even under a Keras name,
    since reglab cannot know what it computes. ``callbacks`` is a list, as Keras's ``fit`` takes,
    or one callback. Anything else is a ``ValueError`` naming it.
    """
    keras = _keras()
    callbacks = _callback_list(keras, callbacks)
    chain, n_inputs = _chain(keras, model)
    if not getattr(model, "compiled", False):
        _fail("the model must be compiled (model.compile(optimizer, loss, metrics)): its optimizer and loss are part of what reglab trains")
    dense, placed = _read_layers(keras, chain)
    n_hidden = len(dense) - 1
    loss, loss_values = _read_loss(keras, model.loss)
    task, head, _ = LOSSES[loss]
    activation = _check_activations(dense, loss, head)
    optimizer, learning_rate, optimizer_values = _read_optimizer(keras, model.optimizer)
    metrics = _read_metrics(keras, model, task)

    # Every technique's values, gathered from wherever Keras keeps them (per-layer ones by position).
    found: dict[type[Technique], dict[str, Any]] = {}
    for cls, values in (*placed, *_read_kernel_objects(keras, dense), *optimizer_values, *loss_values, *_read_callbacks(keras, callbacks)):
        for field, value in values.items():
            slot = found.setdefault(cls, {})
            if isinstance(value, _AtLayers):
                slot.setdefault(field, _AtLayers()).update(value)
            else:
                slot[field] = value
    layer_names = {i: d.name for i, d in enumerate(dense)}
    techniques = []
    for cls in registry.techniques():  # the engine's order, by name
        technique = _technique(cls, found[cls], n_hidden, layer_names) if cls in found else None
        if technique is not None:
            techniques.append(technique)
    return Population(
        hidden=tuple(d.units for d in dense[:-1]),
        activation=activation,
        task=task,
        n_outputs=dense[-1].units,
        techniques=tuple(techniques),
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        metrics=metrics,
        n_inputs=n_inputs,
    )


class _AtLayers(dict):
    """A per-layer setting's values as read: layer index -> (value, the Keras layer's name); the
    index counts hidden layers for layer techniques, Dense layers for regularizers and constraints."""


@dataclass
class _Dense:
    name: str
    units: int
    activation: str
    layer: Any


def _counterparts(kind: str) -> dict[str, list[type[Technique]]]:
    """Keras name -> the registered techniques whose counterpart of ``kind`` it is."""
    out: dict[str, list[type[Technique]]] = {}
    for cls in registry.techniques():
        if cls.keras is not None and cls.keras.kind == kind:
            for name in cls.keras.names:
                out.setdefault(name, []).append(cls)
    return out


def _chain(keras, model) -> tuple[list, int | None]:
    """The layers from the input to the output, and the number of inputs (None when unknown)."""
    if isinstance(model, keras.Sequential):
        n_inputs = int(model.inputs[0].shape[-1]) if model.built and len(model.inputs[0].shape) == 2 else None
        if model.built and len(model.inputs[0].shape) != 2:
            _fail(f"the input must be a table of features (keras.Input((n_features,))), got shape {tuple(model.inputs[0].shape)}")
        return list(model.layers), n_inputs
    if not isinstance(model, keras.Model) or type(model).__name__ != "Functional":
        _fail(f"the model must be a keras.Sequential or a functional keras.Model built from one Input, got {type(model).__name__}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        _fail(f"the model must have one input and one output, got {len(model.inputs)} and {len(model.outputs)}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 2:
        _fail(f"the input must be a table of features (keras.Input((n_features,))), got shape {shape}")
    chain = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    previous = model.inputs[0]
    for layer in chain:
        try:
            follows = layer.input is previous
            previous = layer.output
        except (AttributeError, ValueError):
            follows = False
        if not follows:
            _fail(f"layer {layer.name!r} ({type(layer).__name__}) is not in a single chain from the Input; reglab reads a chain of layers, each feeding the next")
    if previous is not model.outputs[0]:
        _fail("the model's output is not the end of its chain of layers")
    return chain, int(shape[1])


def _read_layers(keras, chain) -> tuple[list[_Dense], list[tuple[type[Technique], dict]]]:
    """The Dense layers, and every technique layer with its values placed by position."""
    noise = _counterparts("layer")
    dense: list[_Dense] = []
    placed: list[tuple[type[Technique], dict]] = []
    at_position: dict[int, list[type[Technique]]] = {}
    previous = None
    for layer in chain:
        kind = _class_name(keras.layers, layer, f"layer {layer.name!r}:")
        policy = getattr(getattr(layer, "dtype_policy", None), "name", "float32")
        if policy != "float32":
            _fail(f"layer {layer.name!r} computes in {policy}; reglab trains in float32")
        if kind == "Dense":
            dense.append(_read_dense(keras, layer))
        elif kind == "Activation":
            name = _activation_name(keras, layer.name, layer.activation)
            if previous != "Dense" or dense[-1].activation != "linear":
                _fail(f"layer {layer.name!r} (Activation) must follow a Dense layer without an activation of its own directly")
            dense[-1].activation = name
        elif kind in noise:
            position = len(dense) - 1 if dense else INPUT
            for cls in noise[kind]:
                args = cls.keras.input_args if position == INPUT else cls.keras.args
                if position == INPUT and not args:
                    _fail(f"layer {layer.name!r} ({kind}) before the first Dense is not supported; reglab's {cls.name} acts on the hidden layers")
                earlier = at_position.setdefault(position, [])
                if cls in earlier:
                    _fail(f"layer {layer.name!r} ({kind}) is the second {kind} after the same layer; reglab takes one")
                if earlier and earlier[-1].name > cls.name:
                    order = ", ".join(c.keras.names[0] for c in sorted({*earlier, cls}, key=lambda c: c.name))
                    _fail(f"layer {layer.name!r} ({kind}) follows {earlier[-1].keras.names[0]}; reglab applies them in the order {order}")
                earlier.append(cls)
                config = layer.get_config()
                _check_defaults(f"layer {layer.name!r}: ", kind, type(layer), config, args)
                values = {field: config[arg] for arg, field in args.items()}
                placed.append((cls, {f: (v if position == INPUT else _AtLayers({position: (v, layer.name)})) for f, v in values.items()}))
        else:
            supported = ", ".join(["Dense", "Activation", *sorted(noise)])
            _fail(f"layer {layer.name!r} ({kind}) is not supported; supported layers: {supported}")
        previous = kind
    if not dense:
        _fail("the model has no Dense layer; reglab trains multilayer perceptrons of Dense layers")
    n_hidden = len(dense) - 1
    for cls, values in placed:
        for value in values.values():
            if isinstance(value, _AtLayers) and n_hidden in value:
                _fail(f"layer {value[n_hidden][1]!r} ({cls.keras.names[0]}) after the output Dense is not supported; reglab's {cls.name} acts on the hidden layers")
    return dense, placed


def _read_dense(keras, layer) -> _Dense:
    config = layer.get_config()
    kernel_init = config["kernel_initializer"]["class_name"] if isinstance(config["kernel_initializer"], dict) else config["kernel_initializer"]
    bias_init = config["bias_initializer"]["class_name"] if isinstance(config["bias_initializer"], dict) else config["bias_initializer"]
    if (kernel_init, bias_init) != ("GlorotUniform", "Zeros"):
        _fail(
            f"layer {layer.name!r}: Dense(kernel_initializer={kernel_init}, bias_initializer={bias_init}) is not supported; "
            "reglab draws GlorotUniform kernels and Zeros biases (Keras's defaults)"
        )
    if getattr(layer, "activity_regularizer", None) is not None:
        _fail(f"layer {layer.name!r}: Dense(activity_regularizer=...) is not supported; reglab reads kernel_regularizer")
    read = ("units", "activation", "kernel_initializer", "bias_initializer", "kernel_regularizer", "kernel_constraint")
    _check_defaults(f"layer {layer.name!r}: ", "Dense", type(layer), config, read)
    return _Dense(layer.name, int(layer.units), _activation_name(keras, layer.name, layer.activation), layer)


def _activation_name(keras, layer_name: str, fn) -> str:
    """reglab's name for Keras's own activation ``fn`` (what a Dense or Activation layer holds once
    Keras has resolved a name); Keras's own that reglab lacks keep their Keras name, for the
    checks after to refuse where they stand. Anything else is refused here."""
    for name in ACTIVATIONS:
        try:
            if fn is keras.activations.get(name):
                return name
        except ValueError:  # pragma: no cover (a reglab activation Keras does not have)
            continue
    name = _keras_name(keras.activations, fn)
    if name is None:
        _fail(f"layer {layer_name!r}: activation {_describe(fn)} is not one of Keras's activations; supported: {', '.join(ACTIVATIONS)}, as Keras's names or its functions in keras.activations")
    return name


def _check_activations(dense: list[_Dense], loss: str, head: str) -> str:
    """The hidden layers' one activation; the output must be the loss's head."""
    out = dense[-1]
    task = LOSSES[loss][0]
    units_ok = out.units == 1 if task == "binary" else out.units >= 2 if task == "multiclass" else True
    if out.activation != head or not units_ok:
        units = "1" if task == "binary" else "n_classes" if task == "multiclass" else "n_outputs"
        _fail(f"the output layer {out.name!r} is Dense({out.units}, activation={out.activation!r}); with loss {loss} reglab needs Dense({units}, activation={head!r})")
    hidden = dense[:-1]
    for d in hidden:
        if d.activation not in ACTIVATIONS:
            _fail(f"layer {d.name!r} has activation {d.activation!r}; supported: {', '.join(ACTIVATIONS)}")
        if d.activation != hidden[0].activation:
            _fail(f"layer {d.name!r} has activation {d.activation!r}, layer {hidden[0].name!r} {hidden[0].activation!r}; reglab uses one activation for every hidden layer")
    return hidden[0].activation if hidden else "relu"


def _read_kernel_objects(keras, dense: list[_Dense]) -> list[tuple[type[Technique], dict]]:
    """Each Dense layer's kernel regularizer and constraint, as technique values by Dense index."""
    out = []
    for kind in ("kernel_regularizer", "kernel_constraint"):
        known = _counterparts(kind)
        for index, d in enumerate(dense):
            obj = getattr(d.layer, kind)
            if obj is None:
                continue
            module = keras.regularizers if kind == "kernel_regularizer" else keras.constraints
            name = _class_name(module, obj, f"layer {d.name!r}: {kind}")
            if name not in known:
                _fail(f"layer {d.name!r}: {kind} {name} is not supported; supported: {', '.join(sorted(known))}")
            config = obj.get_config()
            read = {arg: field for cls in known[name] for arg, field in cls.keras.args.items()}
            _check_defaults(f"layer {d.name!r}: {kind} ", name, type(obj), config, read)
            for cls in known[name]:
                values = {field: _float32_decimal(config[arg]) for arg, field in cls.keras.args.items() if arg in config}
                out.append((cls, {f: _AtLayers({index: (v, d.name)}) for f, v in values.items()}))
    return out


def _read_optimizer(keras, opt) -> tuple[Adam | SGD, float, list]:
    name = type(opt).__name__
    if name not in OPTIMIZERS:
        _fail(f"optimizer {name} is not supported; supported optimizers: {', '.join(OPTIMIZERS)}")
    config = opt.get_config()
    learning_rate = config["learning_rate"]
    if isinstance(learning_rate, dict):
        _fail(f"optimizer {name}: a learning-rate schedule ({learning_rate.get('class_name')}) is not supported; reglab takes one learning rate per member")
    ours = OPTIMIZERS[name]
    fields = [f.name for f in dataclasses.fields(ours)]
    techniques = [cls for classes in _counterparts("optimizer").values() for cls in classes]
    read = list(dict.fromkeys(["learning_rate", *fields, *(arg for cls in techniques for arg in cls.keras.args)]))
    _check_defaults("optimizer ", name, getattr(keras.optimizers, name), config, read)
    values = []
    for cls in dict.fromkeys(techniques):
        found = {field: config[arg] for arg, field in cls.keras.args.items() if config.get(arg) is not None}
        if found and (getattr(opt, "_exclude_from_weight_decay", None) or getattr(opt, "_exclude_from_weight_decay_pattern", None)):
            _fail(f"optimizer {name}: exclude_from_weight_decay is not supported; reglab reads {', '.join(cls.keras.args)} as Keras applies it without exclusions")
        values.append((cls, found))
    return ours(**{f: config[f] for f in fields}), _float32_decimal(float(learning_rate)), values


def _read_loss(keras, loss) -> tuple[str, list]:
    """reglab's loss name, and the loss object's arguments that techniques declare. The loss is
    Keras's own (a name, a function of keras.losses, an instance of exactly its class); a user's
    ``def mse`` or subclass computes what reglab cannot know, and is refused."""
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            _fail(f"loss {loss!r} is not supported; supported losses: {_LOSS_HELP}")
    keras_name = _keras_name(keras.losses, loss)
    if keras_name is None:
        _fail(f"loss {_describe(loss)} is not one of Keras's losses; supported losses: {_LOSS_HELP}, {_LOSS_FORMS}")
    classes = {cls_name: name for name, (_, _, cls_name) in LOSSES.items()}
    if keras_name in classes:
        cls_name = keras_name
        name, config = classes[cls_name], loss.get_config()
    else:  # a function of keras.losses, or a Keras class reglab does not read
        name, cls_name, config = _LOSS_NAMES.get(keras_name, keras_name), None, {}
    if name not in LOSSES:
        _fail(f"loss {name!r} is not supported; supported losses: {_LOSS_HELP}")
    techniques = _counterparts("loss").get(cls_name, [])
    read = list(dict.fromkeys(arg for cls in techniques for arg in cls.keras.args))
    if cls_name is not None:
        _check_defaults("loss ", cls_name, getattr(keras.losses, cls_name), config, read)
    return name, [(cls, {field: config[arg] for arg, field in cls.keras.args.items() if arg in config}) for cls in techniques]


def _read_metrics(keras, model, task: str) -> tuple[str, ...]:
    compile_config = model.get_compile_config()
    for key in ("loss_weights", "weighted_metrics"):
        if compile_config.get(key) is not None:
            _fail(f"compile({key}=...) is not supported; reglab trains one output with unweighted metrics")
    # The metrics as compile() took them: get_compile_config() has them only serialized, where a
    # user's class reads as its name and every function as "function".
    metrics = model._compile_config.config.get("metrics") or []
    if isinstance(metrics, dict):
        _fail(f"compile(metrics={{...}}) by output name is not supported; reglab trains one output: give a list such as {list(metrics.values())[0]!r}")
    out = []
    for m in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        ours = _read_metric(keras, m, task)
        if ours not in out:
            out.append(ours)
    return tuple(out)


def _read_metric(keras, m, task: str) -> str:
    """reglab's metric for ``m``: a name as Keras's compile reads it, or Keras's own metric."""
    allowed = [k for k, (ours, only) in METRICS.items() if ours in METRICS_FOR_TASK[task] and only in (None, task)]
    supported = f"{', '.join(METRICS_FOR_TASK[task])} (as Keras's names, or Keras's own {', '.join(allowed)} from keras.metrics)"
    if isinstance(m, str):
        if m.lower() in ("accuracy", "acc"):  # Keras's compile picks binary or categorical accuracy by the loss, as reglab
            ours, obj = "accuracy", None
        else:
            try:
                obj = keras.metrics.get(m)
            except ValueError:
                _fail(f"metric {m!r} is not supported for the {task} task; supported: {supported}")
            ours, only = METRICS.get(_keras_name(keras.metrics, obj), (None, None))
            ours = ours if only in (None, task) else None
        if ours not in METRICS_FOR_TASK[task]:
            _fail(f"metric {m!r} is not supported for the {task} task; supported: {supported}")
    else:
        obj, name = m, _keras_name(keras.metrics, m)
        if name is None:
            _fail(f"metric {_describe(m)} is not one of Keras's metrics; supported for the {task} task: {supported}")
        ours, only = METRICS.get(name, (None, None))
        if ours not in METRICS_FOR_TASK[task] or only not in (None, task):
            _fail(f"metric {name!r} is not supported for the {task} task; supported: {supported}")
    if obj is not None and not inspect.isroutine(obj):
        _check_defaults("metric ", type(obj).__name__, type(obj), obj.get_config(), ())
    return ours


def _callback_list(keras, callbacks) -> list:
    """``callbacks`` as a list: one callback is a list of one (Keras's ``fit`` takes a list only,
    but one callback can mean nothing else); None is none."""
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    if isinstance(callbacks, (str, bytes, dict)) or not isinstance(callbacks, Iterable):
        _fail(f"callbacks must be a list of Keras callbacks such as [keras.callbacks.EarlyStopping(patience=20)], or one callback, got {callbacks!r}")
    return list(callbacks)


def _read_callbacks(keras, callbacks: Iterable) -> list[tuple[type[Technique], dict]]:
    known = _counterparts("callback")
    out, seen = [], set()
    for cb in callbacks:
        name = _class_name(keras.callbacks, cb, "callback")
        if name not in known:
            _fail(f"callback {name} is not supported; supported callbacks: {', '.join(sorted(known))}")
        if name in seen:
            _fail(f"callback {name} is given twice; reglab takes one")
        seen.add(name)
        for cls in known[name]:
            values = {}
            for arg, field in cls.keras.args.items():
                value = getattr(cb, arg)
                # Keras's monitor callbacks store min_delta signed (negative in min mode once fit has
                # run); the argument meant its size.
                values[field] = abs(value) if arg == "min_delta" else value
            out.append((cls, values))
    return out


def _technique(cls: type[Technique], found: dict[str, Any], n_hidden: int, layer_names: dict[int, str]) -> Technique | None:
    """The technique for the values read, placed per layer as its settings declare; None when
    every value is the setting's ``off`` (a Dropout(0.0) is no dropout)."""
    settings = {s.field: s for s in cls.settings()}
    values = {}
    for field, value in found.items():
        s = settings[field]
        values[s.key] = _per_layer(s, value, n_hidden, layer_names) if isinstance(value, _AtLayers) else value
    if not cls.table and all(_is_off(values[settings[f].key], settings[f].off) for f in found):
        return None
    values.update({settings[f].key: v for f, v in cls.keras.fixed.items()})
    try:
        return cls.from_variant(values)
    except ValueError as err:
        _fail(f"reglab cannot take {cls.name} {values} as read from the model: {err}")


def _per_layer(s: Setting, at: _AtLayers, n_hidden: int, layer_names: dict[int, str]):
    """One setting's value from its values by layer: one number when every hidden layer has the
    same (and, for "dense" settings, the output none), else one per layer with ``off`` where absent."""
    values = {position: value for position, (value, _) in at.items()}
    if s.per_layer == "dense":
        row = [values.get(i, s.off) for i in range(n_hidden + 1)]
        if n_hidden and row[-1] == s.off and len(set(row[:-1])) == 1:
            return row[0]
        return tuple(row)
    if n_hidden in values and not _is_off(values[n_hidden], s.off):
        _fail(f"layer {layer_names[n_hidden]!r} (the output layer): {s.technique} is not supported there; reglab's {s.path} applies to the hidden layers")
    row = [values.get(i, s.off) for i in range(n_hidden)]
    if s.per_layer == "hidden":
        return row[0] if len(set(row)) == 1 else tuple(row)
    if len(set(row)) != 1:
        names = ", ".join(layer_names[i] for i in range(n_hidden))
        _fail(f"{s.technique}: reglab's {s.path} is one value for every hidden layer ({names}), got {row}")
    return row[0]


def _is_off(value, off) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_off(v, off) for v in value)
    return value is None or value == off


def _check_defaults(where: str, name: str, cls, config: dict, read) -> None:
    """Every entry of ``config`` that reglab does not read must be at the Keras class's default."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover (a builtin's signature)
        return
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    for key, value in config.items():
        if key in read or key in _IGNORED or key not in defaults:
            continue
        if not _same(value, defaults[key]):
            reads = f"{name}({', '.join(read)})" if read else name
            _fail(f"{where}{name}({key}={_show(value)}) is not supported; reglab reads {reads} with {key} at its default {defaults[key]!r}")


def _show(value) -> str:
    """A configuration value in a message: a serialized Keras object by its class (L2), else its repr."""
    return value["class_name"] if isinstance(value, dict) and "class_name" in value else repr(value)


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover (arrays and the like)
        return False


def _float32_decimal(value):
    """A number Keras keeps in float32 (learning rates, regularizers' coefficients) as the shortest
    decimal that is that float32: 0.001 rather than 0.0010000000474974513. The engine computes in
    float32, so both give the same bits; the first reads as what the user wrote."""
    if isinstance(value, float) and np.float32(value) == value:
        return float(str(np.float32(value)))
    return value


# ---------------------------------------------------------------------------------------------------
# Writing a Keras model: the counterparts' first names, with the techniques' values.


def _build_model(keras, pop: Population, arch: Architecture):
    """The Keras model of ``pop``: each technique written as its counterpart's first name with
    its Keras arguments; callbacks (early stopping) are left to the caller's ``fit``."""
    for t in pop.techniques:
        if t.keras is None:
            raise ValueError(f"to_keras: {t.name} has no Keras counterpart; a Keras model cannot carry it")
    layers = [keras.Input((arch.n_inputs,))]
    ordered = sorted(pop.techniques, key=lambda t: t.name)  # the order the engine applies them in
    for t in ordered:
        kwargs = _args_at(t, t.keras.input_args, arch, None) if _keras_kind(t) == "layer" and t.keras.input_args else None
        if kwargs is not None:
            layers.append(getattr(keras.layers, t.keras.names[0])(**kwargs))
    for i, width in enumerate(arch.hidden):
        layers.append(keras.layers.Dense(width, activation=arch.activation, **_kernel_objects(keras, ordered, arch, i)))
        for t in ordered:
            if _keras_kind(t) == "layer":
                kwargs = _args_at(t, t.keras.args, arch, i)
                if kwargs is not None:
                    layers.append(getattr(keras.layers, t.keras.names[0])(**kwargs))
    head = LOSSES[pop.loss][1]
    layers.append(keras.layers.Dense(arch.n_outputs, activation=head, **_kernel_objects(keras, ordered, arch, arch.n_layers - 1)))
    model = keras.Sequential(layers)

    optimizer_args = {f.name: getattr(pop.optimizer, f.name) for f in dataclasses.fields(pop.optimizer)}
    for t in ordered:
        if _keras_kind(t) == "optimizer":
            optimizer_args.update(_args_at(t, t.keras.args, arch, None) or {})
    optimizer_class = next(k for k, v in OPTIMIZERS.items() if v is type(pop.optimizer))
    optimizer = getattr(keras.optimizers, optimizer_class)(learning_rate=pop.learning_rate, **optimizer_args)

    loss: Any = pop.loss
    loss_class = LOSSES[pop.loss][2]
    loss_args = {}
    for t in ordered:
        if _keras_kind(t) == "loss":
            if loss_class not in t.keras.names:
                raise ValueError(f"to_keras: {t.name} has no Keras counterpart with loss {pop.loss}; Keras takes it in {', '.join(t.keras.names)}")
            loss_args.update(_args_at(t, t.keras.args, arch, None) or {})
    if loss_args:
        loss = getattr(keras.losses, loss_class)(**loss_args)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(pop.metrics))
    return model


def _keras_kind(t: Technique) -> str:
    """Where ``t`` sits in a Keras model; a ``ValueError`` where its fields differ from what the
    Keras counterpart implies (``fixed``)."""
    for field, value in t.keras.fixed.items():
        if getattr(t, field) != value:
            raise ValueError(f"to_keras: {t.name} with {field}={getattr(t, field)!r} has no Keras counterpart; Keras's implies {field}={value!r}")
    return t.keras.kind


def _settings(t: Technique) -> dict[str, Setting]:
    return {s.field: s for s in t.settings()}


def _args_at(t: Technique, args: dict[str, str], arch: Architecture, layer: int | None) -> dict | None:
    """The Keras arguments of ``t`` at a Dense layer's index (None: not per layer), or None when
    they are all ``off`` there."""
    settings = _settings(t)
    kwargs, on = {}, False
    for arg, field in args.items():
        s = settings[field]
        if s.per_layer and layer is not None:
            row = t.per_layer(field, arch)
            value = row[layer] if layer < len(row) else s.off
        else:
            value = getattr(t, field)
        kwargs[arg] = value
        on = on or t.table or not _is_off(value, s.off)
    return kwargs if on else None


def _kernel_objects(keras, techniques, arch: Architecture, layer: int) -> dict:
    """A Dense layer's ``kernel_regularizer`` and ``kernel_constraint``: one Keras object each,
    a class all their techniques name where several apply (L1 and L2: L1L2)."""
    out = {}
    for kind, module in (("kernel_regularizer", keras.regularizers), ("kernel_constraint", keras.constraints)):
        parts = [(t, kwargs) for t in techniques if _keras_kind(t) == kind for kwargs in [_args_at(t, t.keras.args, arch, layer)] if kwargs is not None]
        if not parts:
            continue
        shared = [n for n in parts[0][0].keras.names if all(n in t.keras.names for t, _ in parts)]
        if not shared:
            raise ValueError(f"to_keras: {' and '.join(t.name for t, _ in parts)} on one layer have no single Keras {kind}")
        out[kind] = getattr(module, shared[0])(**{k: v for _, kwargs in parts for k, v in kwargs.items()})
    return out
