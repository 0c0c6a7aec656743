"""The Keras bridge (reglab.keras): the origin notebooks' Keras models read as what they are,
trained exactly as the engine trains the same description, written back to Keras with the
members' weights, and everything reglab cannot represent refused with a one-line message."""

import importlib.util
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import reglab.keras as bridge
from reglab.data import load_builtin
from reglab.engine import (
    L1,
    L2,
    SGD,
    Adam,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    LabelSmoothing,
    MaxNorm,
    Member,
    Piece,
    Technique,
    WeightDecay,
    checks,
    registry,
    setting,
    train,
)
from reglab.engine.technique import KerasCounterpart
from reglab.keras import Population, from_keras

EPOCHS = 3
SEEDS = [0, 5]


def sequential(keras, *layers, inputs=2):
    return keras.Sequential([keras.Input((inputs,)), *layers])


# ---------------------------------------------------------------------------------------------------
# The four origin notebooks: the model code as /work/shared/seed/NOTEBOOKS.md gives it (the variant
# with the technique), the data as the notebook fits it, and the description written out by hand.


@dataclass
class Notebook:
    model: object
    callbacks: list
    fit: dict  # x, y and fit's other arguments
    arch: Architecture
    members: list[Member]
    train: dict  # train()'s arguments besides the data


def notebook_1_dropout_classification(keras):
    from keras.layers import Dense, Dropout as KDropout

    model = sequential(keras, Dense(128, activation="relu"), KDropout(0.5), Dense(128, activation="relu"), KDropout(0.5), Dense(1, activation="sigmoid"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    data = load_builtin("seed-dropout-classification")
    return Notebook(
        model,
        [],
        {"x": data.X, "y": data.y, "validation_split": 0.2},
        Architecture(n_inputs=2, hidden=(128, 128), activation="relu", task="binary"),
        [Member(seed=s, learning_rate=0.01, techniques=[Dropout(0.5)]) for s in SEEDS],
        {"optimizer": Adam(), "loss": "binary_crossentropy", "metrics": ["accuracy"], "validation_split": 0.2},
    )


def notebook_2_dropout_regression(keras):
    from keras.layers import Dense, Dropout as KDropout

    model = sequential(keras, Dense(128, activation="relu"), KDropout(0.5), Dense(128, activation="relu"), KDropout(0.5), Dense(1, activation="linear"), inputs=1)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    data = load_builtin("seed-dropout-regression")
    train_rows, test_rows = data.fixed["train"], data.fixed["test"]
    validation = (data.X[test_rows], data.y[test_rows])
    return Notebook(
        model,
        [],
        {"x": data.X[train_rows], "y": data.y[train_rows], "validation_data": validation},
        Architecture(n_inputs=1, hidden=(128, 128), activation="relu", task="regression"),
        [Member(seed=s, learning_rate=0.01, techniques=[Dropout(0.5)]) for s in SEEDS],
        {"optimizer": Adam(), "loss": "mse", "metrics": [], "validation_data": validation},
    )


def notebook_3_early_stopping(keras):
    from keras.layers import Dense

    model = sequential(keras, Dense(256, activation="relu"), Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.00001, patience=20, mode="auto", baseline=None, restore_best_weights=False)
    data = load_builtin("seed-early-stopping")
    train_rows, test_rows = data.fixed["train"], data.fixed["test"]
    validation = (data.X[test_rows], data.y[test_rows])
    rule = EarlyStopping(monitor="val_loss", min_delta=0.00001, patience=20, mode="auto", baseline=None, restore_best_weights=False)
    return Notebook(
        model,
        [stop],
        {"x": data.X[train_rows], "y": data.y[train_rows], "validation_data": validation},
        Architecture(n_inputs=2, hidden=(256,), activation="relu", task="binary"),
        [Member(seed=s, learning_rate=0.001, techniques=[rule]) for s in SEEDS],
        {"optimizer": Adam(), "loss": "binary_crossentropy", "metrics": ["accuracy"], "validation_data": validation},
    )


def notebook_4_regularization(keras):
    from keras.layers import Dense
    from keras.regularizers import l1

    model = sequential(
        keras,
        Dense(128, activation="relu", kernel_regularizer=l1(0.001)),
        Dense(128, activation="relu", kernel_regularizer=l1(0.001)),
        Dense(1, activation="sigmoid"),
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    data = load_builtin("seed-regularization")
    return Notebook(
        model,
        [],
        {"x": data.X, "y": data.y, "validation_split": 0.2},
        Architecture(n_inputs=2, hidden=(128, 128), activation="relu", task="binary"),
        [Member(seed=s, learning_rate=0.01, techniques=[L1(0.001)]) for s in SEEDS],
        {"optimizer": Adam(), "loss": "binary_crossentropy", "metrics": ["accuracy"], "validation_split": 0.2},
    )


NOTEBOOKS = [notebook_1_dropout_classification, notebook_2_dropout_regression, notebook_3_early_stopping, notebook_4_regularization]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda f: f.__name__)
def test_an_origin_notebook_reads_as_what_it_says(keras, notebook):
    nb = notebook(keras)
    pop = from_keras(nb.model, callbacks=nb.callbacks)
    assert pop.architecture() == nb.arch
    assert pop.members(SEEDS) == [Member(seed=m.seed, learning_rate=m.learning_rate, techniques=m.techniques, label=f"seed {m.seed}") for m in nb.members]
    assert (pop.optimizer, pop.loss, list(pop.metrics)) == (nb.train["optimizer"], nb.train["loss"], nb.train["metrics"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda f: f.__name__)
def test_fitting_through_the_bridge_is_training_with_the_engine(keras, notebook):
    """The same bits as train() on the description written out by hand from the notebook."""
    nb = notebook(keras)
    x, y = nb.fit.pop("x"), nb.fit.pop("y")
    ours = from_keras(nb.model, callbacks=nb.callbacks).fit(x, y, seeds=SEEDS, epochs=EPOCHS, **nb.fit)
    expected = train(nb.arch, nb.members, x, y, epochs=EPOCHS, **nb.train)
    assert ours.seeds == SEEDS and ours.result.arch == nb.arch
    assert ours.history.keys() == expected.history.keys()
    for name, values in expected.history.items():
        np.testing.assert_array_equal(ours.history[name], values, err_msg=name)
        assert values.shape == (len(SEEDS), EPOCHS)
    for mine, theirs in zip(ours.result.params, expected.params):
        assert torch.equal(mine, theirs)


# ---------------------------------------------------------------------------------------------------
# Back to Keras: a member's model predicts what the member predicts, and keeps its techniques.


def binary_case(keras):
    nb = notebook_1_dropout_classification(keras)
    return nb.model, nb.fit["x"][:120], nb.fit["y"][:120]


def multiclass_case(keras):
    from keras import layers

    model = sequential(keras, layers.Dense(16, activation="tanh"), layers.GaussianDropout(0.2), layers.Dense(8, activation="tanh"), layers.Dense(3, activation="softmax"), inputs=4)
    model.compile(keras.optimizers.AdamW(learning_rate=0.005, weight_decay=0.01), keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    g = np.random.default_rng(0)
    x = g.normal(size=(60, 4)).astype(np.float32)
    return model, x, np.eye(3)[g.integers(0, 3, size=60)]  # one-hot, as Keras's categorical_crossentropy wants


def regression_case(keras):
    from keras import layers

    reg = keras.regularizers.L1L2(l1=1e-4, l2=1e-3)
    model = sequential(
        keras,
        layers.GaussianNoise(0.05),
        layers.Dense(12, kernel_constraint=keras.constraints.MaxNorm(3.0)),
        layers.Activation("elu"),
        layers.Dropout(0.1),
        layers.GaussianNoise(0.1),
        layers.Dense(12, activation="elu", kernel_regularizer=reg, kernel_constraint=keras.constraints.MaxNorm(3.0)),
        layers.Dense(2, kernel_regularizer=keras.regularizers.L2(1e-2)),
        inputs=3,
    )
    model.compile(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True), "mae", metrics=["mse"])
    g = np.random.default_rng(1)
    x = g.normal(size=(40, 3)).astype(np.float32)
    return model, x, np.stack([x[:, 0] * x[:, 1], np.sin(x[:, 2])], axis=1)


def test_the_cases_read_as_written(keras):
    pop = from_keras(multiclass_case(keras)[0])
    assert (pop.task, pop.n_outputs, pop.activation, pop.optimizer, pop.learning_rate) == ("multiclass", 3, "tanh", Adam(), 0.005)
    assert pop.techniques == (GaussianDropout((0.2, 0.0)), LabelSmoothing(0.1), WeightDecay(0.01, biases=True))
    pop = from_keras(regression_case(keras)[0])
    assert (pop.task, pop.n_outputs, pop.activation, pop.loss, pop.metrics, pop.optimizer) == ("regression", 2, "elu", "mae", ("mse",), SGD(momentum=0.9, nesterov=True))
    assert pop.techniques == (Dropout((0.1, 0.0)), GaussianNoise(stddev=(0.1, 0.0), input_stddev=0.05), L1((0.0, 1e-4, 0.0)), L2((0.0, 1e-3, 1e-2)), MaxNorm(3.0))


@pytest.mark.parametrize("case", [binary_case, multiclass_case, regression_case], ids=lambda f: f.__name__)
def test_a_member_goes_back_to_keras_with_its_weights_and_techniques(keras, case):
    model, x, y = case(keras)
    pop = from_keras(model)
    result = pop.fit(x, y, seeds=[3, 4, 9], epochs=2, batch_size=16)
    for i in (0, 2):
        member = result.to_keras(i)
        np.testing.assert_allclose(member.predict(x, verbose=0), result.predict(x)[i], rtol=1e-5, atol=1e-6)
        assert [type(layer).__name__ for layer in member.layers] == [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "Activation"]
        back = from_keras(member)
        assert back == pop, "the written model reads as the same description"
    member.fit(x, y, epochs=1, verbose=0)  # and it goes on training in Keras


def test_a_written_model_keeps_the_regularizers_and_constraints(keras):
    model, x, y = regression_case(keras)
    member = from_keras(model).fit(x, y, seeds=[0], epochs=1).to_keras(0)
    dense = [layer for layer in member.layers if type(layer).__name__ == "Dense"]
    assert [type(d.kernel_regularizer).__name__ for d in dense] == ["NoneType", "L1L2", "L2"]
    assert dense[1].kernel_regularizer.get_config() == pytest.approx({"l1": 1e-4, "l2": 1e-3})
    assert [type(d.kernel_constraint).__name__ for d in dense] == ["MaxNorm", "MaxNorm", "NoneType"]
    assert type(member.optimizer).__name__ == "SGD" and member.optimizer.nesterov


# ---------------------------------------------------------------------------------------------------
# The mapping comes from the registry: a technique registered with a Keras counterpart is read and
# written without any change to reglab.keras.


@dataclass(frozen=True)
class AlphaDrop(Technique):
    """A stand-in for a user's technique whose counterpart is Keras's AlphaDropout layer."""

    rate: float | tuple[float, ...] = setting(0.1, checks.RATE, "alpha dropout rate", off=0.0, per_layer="hidden")
    name = "alpha_drop"
    keras = KerasCounterpart("layer", ("AlphaDropout",), {"rate": "rate"})

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        return Piece()


@pytest.fixture
def alpha_drop():
    registry.register(AlphaDrop)
    yield AlphaDrop
    registry.unregister("alpha_drop")


def test_a_registered_counterpart_is_read_and_written(keras, alpha_drop):
    model = sequential(keras, keras.layers.Dense(8, activation="relu"), keras.layers.AlphaDropout(0.2), keras.layers.Dense(1, activation="sigmoid"))
    model.compile("adam", "binary_crossentropy")
    pop = from_keras(model)
    assert pop.techniques == (AlphaDrop(0.2),)
    assert [type(layer).__name__ for layer in pop.to_keras().layers] == ["Dense", "AlphaDropout", "Dense"]


# ---------------------------------------------------------------------------------------------------
# What reglab cannot represent is refused, in one line that names it and what is supported.


def compiled(keras, *layers, optimizer="adam", loss="binary_crossentropy", metrics=None, inputs=2):
    model = sequential(keras, *layers, inputs=inputs) if inputs else keras.Sequential(list(layers))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def refusals(keras):
    from keras import layers

    D = layers.Dense
    out = D(1, activation="sigmoid", name="out")
    supported_layers = "Dense, Activation, Dropout, GaussianDropout, GaussianNoise"
    return {
        "conv2d": (
            lambda: compiled(keras, layers.Conv2D(4, 3, name="conv"), layers.Flatten(), D(1, activation="sigmoid"), inputs=None),
            f"from_keras: layer 'conv' (Conv2D) is not supported; supported layers: {supported_layers}",
        ),
        "image input": (
            lambda: keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), D(1, activation="sigmoid")]),
            "from_keras: the input must be a table of features (keras.Input((n_features,))), got shape (None, 8, 8, 1)",
        ),
        "batch normalization": (
            lambda: compiled(keras, D(8, activation="relu"), layers.BatchNormalization(name="bn"), out),
            f"from_keras: layer 'bn' (BatchNormalization) is not supported; supported layers: {supported_layers}",
        ),
        "sparse loss": (
            lambda: compiled(keras, D(8, activation="relu"), D(3, activation="softmax"), loss="sparse_categorical_crossentropy"),
            "from_keras: loss 'sparse_categorical_crossentropy' is not supported; supported losses: binary_crossentropy (one sigmoid unit), "
            "categorical_crossentropy (softmax; fit takes one-hot or integer labels), mse, mae (linear outputs)",
        ),
        "from logits": (
            lambda: compiled(keras, D(8, activation="relu"), out, loss=keras.losses.BinaryCrossentropy(from_logits=True)),
            "from_keras: loss BinaryCrossentropy(from_logits=True) is not supported; reglab reads BinaryCrossentropy(label_smoothing) with from_logits at its default False",
        ),
        "head": (
            lambda: compiled(keras, D(8, activation="relu"), D(1, name="out")),
            "from_keras: the output layer 'out' is Dense(1, activation='linear'); with loss binary_crossentropy reglab needs Dense(1, activation='sigmoid')",
        ),
        "max-norm axis": (
            lambda: compiled(keras, D(8, activation="relu", kernel_constraint=keras.constraints.MaxNorm(2.0, axis=1), name="hidden"), out),
            "from_keras: layer 'hidden': kernel_constraint MaxNorm(axis=1) is not supported; reglab reads MaxNorm(max_value) with axis at its default 0",
        ),
        "max-norm on the output": (
            lambda: compiled(keras, D(8, activation="relu"), D(1, activation="sigmoid", kernel_constraint=keras.constraints.MaxNorm(2.0), name="out")),
            "from_keras: layer 'out' (the output layer): max_norm is not supported there; reglab's max_norm applies to the hidden layers",
        ),
        "unit norm": (
            lambda: compiled(keras, D(8, activation="relu", kernel_constraint=keras.constraints.UnitNorm(), name="hidden"), out),
            "from_keras: layer 'hidden': kernel_constraint UnitNorm is not supported; supported: MaxNorm",
        ),
        "rmsprop": (
            lambda: compiled(keras, D(8, activation="relu"), out, optimizer=keras.optimizers.RMSprop(0.01)),
            "from_keras: optimizer RMSprop is not supported; supported optimizers: Adam, AdamW, SGD",
        ),
        "amsgrad": (
            lambda: compiled(keras, D(8, activation="relu"), out, optimizer=keras.optimizers.Adam(amsgrad=True)),
            "from_keras: optimizer Adam(amsgrad=True) is not supported; reglab reads Adam(learning_rate, beta_1, beta_2, epsilon, weight_decay) with amsgrad at its default False",
        ),
        "dropout after the output": (
            lambda: compiled(keras, D(8, activation="relu"), out, layers.Dropout(0.5, name="late")),
            "from_keras: layer 'late' (Dropout) after the output Dense is not supported; reglab's dropout acts on the hidden layers",
        ),
        "dropout on the inputs": (
            lambda: compiled(keras, layers.Dropout(0.2, name="early"), D(8, activation="relu"), out),
            "from_keras: layer 'early' (Dropout) before the first Dense is not supported; reglab's dropout acts on the hidden layers",
        ),
        "mixed activations": (
            lambda: compiled(keras, D(8, activation="relu", name="a"), D(8, activation="tanh", name="b"), out),
            "from_keras: layer 'b' has activation 'tanh', layer 'a' 'relu'; reglab uses one activation for every hidden layer",
        ),
        "initializer": (
            lambda: compiled(keras, D(8, activation="relu", kernel_initializer="he_normal", name="hidden"), out),
            "from_keras: layer 'hidden': Dense(kernel_initializer=HeNormal, bias_initializer=Zeros) is not supported; reglab draws GlorotUniform kernels and Zeros biases (Keras's defaults)",
        ),
        "metric": (
            lambda: compiled(keras, D(8, activation="relu"), out, metrics=[keras.metrics.AUC()]),
            "from_keras: metric 'AUC' is not supported for the binary task; supported: accuracy (as Keras's names, or Keras's own BinaryAccuracy, binary_accuracy from keras.metrics)",
        ),
        "not compiled": (
            lambda: sequential(keras, D(8, activation="relu"), out),
            "from_keras: the model must be compiled (model.compile(optimizer, loss, metrics)): its optimizer and loss are part of what reglab trains",
        ),
    }


CASES = [
    "conv2d",
    "image input",
    "batch normalization",
    "sparse loss",
    "from logits",
    "head",
    "max-norm axis",
    "max-norm on the output",
    "unit norm",
    "rmsprop",
    "amsgrad",
    "dropout after the output",
    "dropout on the inputs",
    "mixed activations",
    "initializer",
    "metric",
    "not compiled",
]


@pytest.mark.parametrize("case", CASES)
def test_what_reglab_cannot_represent_is_refused(keras, case):
    build, message = refusals(keras)[case]
    with pytest.raises(ValueError) as err:
        from_keras(build())
    assert str(err.value) == message


def test_a_callback_other_than_early_stopping_is_refused(keras):
    model = compiled(keras, keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid"))
    with pytest.raises(ValueError) as err:
        from_keras(model, callbacks=[keras.callbacks.EarlyStopping(), keras.callbacks.ReduceLROnPlateau()])
    assert str(err.value) == "from_keras: callback ReduceLROnPlateau is not supported; supported callbacks: EarlyStopping"


def test_a_branching_functional_model_is_refused(keras):
    from keras import layers

    inputs = keras.Input((2,))
    h = layers.Dense(8, activation="relu")(inputs)
    joined = layers.Concatenate(name="join")([h, inputs])
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(joined))
    model.compile("adam", "binary_crossentropy")
    with pytest.raises(ValueError) as err:
        from_keras(model)
    assert str(err.value) == "from_keras: layer 'join' (Concatenate) is not in a single chain from the Input; reglab reads a chain of layers, each feeding the next"


def test_a_functional_chain_reads_as_its_sequential(keras):
    from keras import layers

    inputs = keras.Input((2,))
    h = layers.Dropout(0.3)(layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(h))
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    pop = from_keras(model)
    assert pop.architecture() == Architecture(n_inputs=2, hidden=(8,), task="binary") and pop.techniques == (Dropout(0.3),)


def test_a_model_without_an_input_shape_takes_it_from_the_data(keras, moons):
    model = compiled(keras, keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid"), inputs=None)
    pop = from_keras(model)
    assert pop.n_inputs is None
    with pytest.raises(ValueError, match="n_inputs: the Keras model has no input shape yet"):
        pop.architecture()
    assert pop.fit(*moons, seeds=[0], epochs=1).result.arch.n_inputs == 2


# ---------------------------------------------------------------------------------------------------
# Keras's own objects, by identity: a user's function or class under a Keras name computes what
# reglab cannot know, and is refused rather than read as Keras's.

ACTIVATIONS_HELP = "supported: relu, tanh, sigmoid, elu, gelu, linear, as Keras's names or its functions in keras.activations"
LOSSES_HELP = (
    "supported losses: binary_crossentropy (one sigmoid unit), categorical_crossentropy (softmax; fit takes one-hot or integer labels), "
    "mse, mae (linear outputs), as Keras's names, its functions in keras.losses or its classes "
    "(BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError, MeanAbsoluteError)"
)
METRICS_HELP = {
    "binary": "accuracy (as Keras's names, or Keras's own BinaryAccuracy, binary_accuracy from keras.metrics)",
    "multiclass": "accuracy (as Keras's names, or Keras's own CategoricalAccuracy, categorical_accuracy from keras.metrics)",
    "regression": "mse, mae (as Keras's names, or Keras's own MeanSquaredError, mean_squared_error, MeanAbsoluteError, mean_absolute_error from keras.metrics)",
}


def impostor_function(name):
    """A user's function with the name of one of Keras's, computing something else."""

    def fn(*args):
        return args[0] * 0.3

    fn.__name__ = fn.__qualname__ = name
    return fn


def impostor_class(base, method):
    """A user's subclass of Keras's class ``base``, of the same name, that computes something else."""
    return type(base.__name__, (base,), {method: lambda self, *args, **kwargs: args[0] * 0.3})


def head_for(keras, task):
    units, activation = {"binary": (1, "sigmoid"), "multiclass": (3, "softmax"), "regression": (1, "linear")}[task]
    return keras.layers.Dense(units, activation=activation, name="out")


def test_the_identity_tests_cover_what_the_bridge_reads():
    """The generated cases below take their names from the bridge's tables: these are all of them."""
    from reglab.engine.model import ACTIVATIONS

    assert ACTIVATIONS_HELP == f"supported: {', '.join(ACTIVATIONS)}, as Keras's names or its functions in keras.activations"
    assert LOSSES_HELP == f"supported losses: {bridge._LOSS_HELP}, {bridge._LOSS_FORMS}"
    assert {name: ours for name, ours, _ in METRIC_CASES} == {name: ours for name, (ours, _) in bridge.METRICS.items()}


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "elu", "gelu", "linear"])
def test_an_activation_is_keras_own_object_not_its_name(keras, name):
    fn = impostor_function(name)
    for layers in (
        [keras.layers.Dense(8, activation=fn, name="hidden"), keras.layers.Dense(1, activation="sigmoid")],
        [keras.layers.Dense(8, name="hidden_linear"), keras.layers.Activation(fn, name="hidden"), keras.layers.Dense(1, activation="sigmoid")],
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation=fn, name="hidden")],  # the output layer too
    ):
        with pytest.raises(ValueError) as err:
            from_keras(compiled(keras, *layers))
        assert str(err.value) == f"from_keras: layer 'hidden': activation {fn.__module__}.{name} is not one of Keras's activations; {ACTIVATIONS_HELP}"
    for own in (name, keras.activations.get(name)):
        pop = from_keras(compiled(keras, keras.layers.Dense(8, activation=own), keras.layers.Dense(1, activation="sigmoid")))
        assert pop.activation == name


LOSS_CASES = [(name, task, cls) for name, (task, _, cls) in bridge.LOSSES.items()]


@pytest.mark.parametrize("name, task, cls", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_a_loss_is_keras_own_object_not_its_name(keras, name, task, cls):
    keras_fn = keras.losses.get(name)
    for impostor in (impostor_function(name), impostor_function(keras_fn.__name__)):
        with pytest.raises(ValueError) as err:
            from_keras(compiled(keras, keras.layers.Dense(8, activation="relu"), head_for(keras, task), loss=impostor))
        assert str(err.value) == f"from_keras: loss {impostor.__module__}.{impostor.__qualname__} is not one of Keras's losses; {LOSSES_HELP}"
    impostor = impostor_class(getattr(keras.losses, cls), "call")()
    with pytest.raises(ValueError) as err:
        from_keras(compiled(keras, keras.layers.Dense(8, activation="relu"), head_for(keras, task), loss=impostor))
    assert str(err.value) == f"from_keras: loss an instance of {type(impostor).__module__}.{cls} is not one of Keras's losses; {LOSSES_HELP}"
    for own in (name, keras_fn, getattr(keras.losses, cls)()):
        assert from_keras(compiled(keras, keras.layers.Dense(8, activation="relu"), head_for(keras, task), loss=own)).loss == name


LOSS_FOR_TASK = {"binary": "binary_crossentropy", "multiclass": "categorical_crossentropy", "regression": "mse"}
# Keras's own metric (its name in keras.metrics), reglab's metric, a task where it means that.
METRIC_CASES = [
    ("BinaryAccuracy", "accuracy", "binary"),
    ("binary_accuracy", "accuracy", "binary"),
    ("CategoricalAccuracy", "accuracy", "multiclass"),
    ("categorical_accuracy", "accuracy", "multiclass"),
    ("MeanSquaredError", "mse", "regression"),
    ("mean_squared_error", "mse", "regression"),
    ("MeanAbsoluteError", "mae", "regression"),
    ("mean_absolute_error", "mae", "regression"),
]


@pytest.mark.parametrize("name, ours, task", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_a_metric_is_keras_own_object_not_its_name(keras, name, ours, task):
    own = getattr(keras.metrics, name)
    if isinstance(own, type):
        own, impostor = own(), impostor_class(own, "update_state")()
        shown = f"an instance of {type(impostor).__module__}.{name}"
    else:
        impostor = impostor_function(name)
        shown = f"{impostor.__module__}.{name}"

    def model(metric):
        return compiled(keras, keras.layers.Dense(8, activation="relu"), head_for(keras, task), loss=LOSS_FOR_TASK[task], metrics=[metric])

    with pytest.raises(ValueError) as err:
        from_keras(model(impostor))
    assert str(err.value) == f"from_keras: metric {shown} is not one of Keras's metrics; supported for the {task} task: {METRICS_HELP[task]}"
    assert from_keras(model(own)).metrics == (ours,)


@pytest.mark.parametrize("task, metric", [("binary", "CategoricalAccuracy"), ("binary", "categorical_accuracy"), ("multiclass", "BinaryAccuracy"), ("multiclass", "binary_accuracy")])
def test_an_accuracy_metric_is_read_only_for_the_task_it_computes_there(keras, task, metric):
    """Keras's BinaryAccuracy thresholds every softmax output and CategoricalAccuracy of one sigmoid
    unit is always 1: neither is reglab's accuracy of that task."""
    own = getattr(keras.metrics, metric)
    for given in (metric, own() if isinstance(own, type) else own):
        model = compiled(keras, keras.layers.Dense(8, activation="relu"), head_for(keras, task), loss=LOSS_FOR_TASK[task], metrics=[given])
        with pytest.raises(ValueError) as err:
            from_keras(model)
        assert str(err.value) == f"from_keras: metric {metric!r} is not supported for the {task} task; supported: {METRICS_HELP[task]}"


# ---------------------------------------------------------------------------------------------------
# Arguments as users give them.


def binary_model(keras):
    return compiled(keras, keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid"))


def test_one_callback_is_read_as_a_list_of_one(keras):
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)
    assert from_keras(binary_model(keras), callbacks=stop).techniques == (EarlyStopping(monitor="val_loss", patience=3),)
    assert from_keras(binary_model(keras), callbacks=None).techniques == ()
    with pytest.raises(ValueError) as err:
        from_keras(binary_model(keras), callbacks=5)
    assert str(err.value) == "from_keras: callbacks must be a list of Keras callbacks such as [keras.callbacks.EarlyStopping(patience=20)], or one callback, got 5"


@pytest.mark.parametrize("seed", [1.7, np.float64(2.0), 2.0, True, "3"], ids=repr)
def test_seeds_must_be_integers(keras, moons, seed):
    pop = from_keras(binary_model(keras))
    with pytest.raises(ValueError) as err:
        pop.fit(*moons, seeds=[0, seed])
    assert str(err.value) == f"seeds[1]: must be an integer, got {seed!r}"


def test_seeds_and_members_are_integers_of_any_integer_type(keras, moons):
    result = from_keras(binary_model(keras)).fit(*moons, seeds=np.arange(3, dtype=np.int32), epochs=1)
    assert result.seeds == [0, 1, 2] and all(type(s) is int for s in result.seeds)
    for i in (2, np.int64(2), np.int32(2), np.uint8(2)):
        np.testing.assert_allclose(result.to_keras(i).predict(moons[0], verbose=0), result.predict(moons[0])[2], rtol=1e-5, atol=1e-6)
    for i in (True, np.True_, 2.0, np.float32(2)):
        with pytest.raises(ValueError) as err:
            result.to_keras(i)
        assert str(err.value) == f"i: must be an integer in [0, 2], got {i!r}"


def test_classifier_targets_of_the_wrong_width_say_so(keras):
    x, y = multiclass_case(keras)[1:]
    labels = y.argmax(1)
    pop = from_keras(multiclass_case(keras)[0])
    with pytest.raises(ValueError) as err:
        pop.fit(x, y[:, :2], seeds=SEEDS)
    assert str(err.value) == "y: must be one-hot rows of 3 columns (the model's 3 classes) or integer labels 0..2, got 2 columns (shape (60, 2))"
    with pytest.raises(ValueError) as err:
        pop.fit(x, y, seeds=SEEDS, validation_data=(x[:10], np.eye(4)[labels[:10]]))
    assert str(err.value) == "validation_data y: must be one-hot rows of 3 columns (the model's 3 classes) or integer labels 0..2, got 4 columns (shape (10, 4))"
    assert pop.fit(x, np.stack([labels, labels]), seeds=SEEDS, epochs=1).seeds == SEEDS  # integer labels per member, (K, N), are not rows
    with pytest.raises(ValueError) as err:
        from_keras(binary_model(keras)).fit(x[:, :2], np.eye(2)[labels % 2], seeds=SEEDS)
    assert str(err.value) == "y: must be 0/1 labels in one column (the model's one sigmoid unit), got 2 columns (shape (60, 2))"


def test_seeds_must_be_a_list(keras, moons):
    pop = from_keras(notebook_4_regularization(keras).model)
    with pytest.raises(ValueError) as err:
        pop.fit(*moons, seeds=20)
    assert str(err.value) == "seeds: must be a list of seeds such as range(20), got 20"


def test_early_stopping_reads_min_delta_as_its_size_after_keras_has_used_it(keras):
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.01, patience=2)
    stop.min_delta = -0.01  # what Keras's MonitorCallback stores in min mode once fit has run
    model = compiled(keras, keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid"))
    assert from_keras(model, callbacks=[stop]).techniques == (EarlyStopping(monitor="val_loss", min_delta=0.01, patience=2),)


def test_a_technique_without_a_keras_counterpart_cannot_be_written(keras):
    from reglab.engine import ProximalL1

    pop = Population((8,), "relu", "binary", 1, (ProximalL1(0.01),), Adam(), 0.01, "binary_crossentropy", (), n_inputs=2)
    with pytest.raises(ValueError) as err:
        pop.to_keras()
    assert str(err.value) == "to_keras: proximal_l1 has no Keras counterpart; a Keras model cannot carry it"


# ---------------------------------------------------------------------------------------------------
# Keras is optional.


def test_without_keras_the_bridge_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError
    spec = importlib.util.spec_from_file_location("reglab.keras_without_keras", bridge.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # importing the module needs no Keras
    with pytest.raises(ImportError) as err:
        module.from_keras(object())
    assert str(err.value) == 'reglab.keras needs Keras: pip install "reglab[keras]"'
    with pytest.raises(ImportError):
        Population((8,), "relu", "binary", 1, (), Adam(), 0.01, "binary_crossentropy", (), n_inputs=2).to_keras()


def _lookalike_cases(keras):
    """(what the bridge reads, a model or callback built with a same-named subclass, the refused class's place)."""
    from keras import callbacks, constraints, layers, regularizers

    subclass = lambda base: type(base.__name__, (base,), {})  # a user's class of Keras's name  # noqa: E731
    Dense, Dropout, L1 = subclass(layers.Dense), subclass(layers.Dropout), subclass(regularizers.L1)
    MaxNorm, EarlyStopping = subclass(constraints.MaxNorm), subclass(callbacks.EarlyStopping)
    head = lambda: layers.Dense(1, activation="sigmoid")  # noqa: E731
    return [
        ("layer 'hidden':", [Dense(8, name="hidden"), head()], [], Dense, layers),
        ("layer 'hidden':", [layers.Dense(8), Dropout(0.2, name="hidden"), head()], [], Dropout, layers),
        ("layer 'hidden': kernel_regularizer", [layers.Dense(8, name="hidden", kernel_regularizer=L1(0.01)), head()], [], L1, regularizers),
        ("layer 'hidden': kernel_constraint", [layers.Dense(8, name="hidden", kernel_constraint=MaxNorm(2.0)), head()], [], MaxNorm, constraints),
        ("callback", [layers.Dense(8), head()], [EarlyStopping(patience=3)], EarlyStopping, callbacks),
    ]


def test_layers_regularizers_constraints_and_callbacks_are_keras_own_classes(keras):
    """A user's subclass named like Keras's Dense, Dropout, L1, MaxNorm or EarlyStopping is not read
    as Keras's: the name finds Keras's class, identity decides."""
    for what, layers, callbacks, cls, module in _lookalike_cases(keras):
        with pytest.raises(ValueError) as err:
            from_keras(compiled(keras, *layers), callbacks=callbacks)
        name = cls.__name__
        assert str(err.value) == f"from_keras: {what} {cls.__module__}.{cls.__qualname__} is named like {module.__name__}.{name} but is not it; reglab reads Keras's own"
