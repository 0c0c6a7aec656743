"""Built-in datasets: the four origin experiments, parametrised generators, scikit-learn's bundled sets.

Nothing is downloaded: the seed CSVs ship inside the package, generators are computed, and the
scikit-learn sets are the ones bundled with it. The seed datasets are read without pandas or
scikit-learn (the two made by scikit-learn's generators ship as CSVs of their exact values), so
that ``reglab validate`` on them imports neither; scikit-learn is imported by the loaders that use it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ..errors import UserError


@dataclass
class Dataset:
    """Rows ``X`` (float64, (N, d)) and targets ``y``: class indices for classification, floats
    (N,) for regression. ``fixed`` holds the dataset's own split, when it has one, as index arrays
    for ``train``, ``val`` and optionally ``test``."""

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str
    feature_names: list[str]
    classes: list = field(default_factory=list)
    fixed: dict[str, np.ndarray] | None = None
    description: str = ""
    task_reason: str = ""  # why this task, where it was inferred from the target's values

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def classification(name, X, labels, feature_names=None, **kw) -> Dataset:
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    task = "binary" if len(classes) == 2 else "multiclass"
    names = feature_names or [f"x{i + 1}" for i in range(X.shape[1])]
    return Dataset(name, np.asarray(X, dtype=np.float64), y, task, list(names), classes.tolist(), **kw)


def regression(name, X, y, feature_names=None, **kw) -> Dataset:
    names = feature_names or [f"x{i + 1}" for i in range(X.shape[1])]
    return Dataset(name, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), "regression", list(names), **kw)


def _seed_csv(filename: str) -> dict[str, list[str]]:
    """A shipped seed CSV as its columns of text (floats are written with every digit, and
    Python's ``float`` reads them back exactly)."""
    with resources.files("reglab.data").joinpath("seed", filename).open("r", newline="") as f:
        rows = list(csv.reader(f))
    return {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}


def _floats(*columns: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in zip(*columns)], dtype=np.float64)


def _ints(column: list[str]) -> np.ndarray:
    return np.array([int(v) for v in column], dtype=np.int64)


def _tail(n: int, fraction: float) -> dict[str, np.ndarray]:
    split_at = int(np.floor(n * (1.0 - fraction)))
    return {"train": np.arange(split_at), "val": np.arange(split_at, n)}


# --- the four origin experiments (../shared/seed/NOTEBOOKS.md) ------------------------------------


def seed_dropout_classification() -> Dataset:
    df = _seed_csv("dropout_classification.csv")
    return classification(
        "seed-dropout-classification",
        _floats(df["x1"], df["x2"]),
        _ints(df["label"]),
        ["x1", "x2"],
        fixed=_tail(len(df["label"]), 0.2),
        description="211 2-D points from the dropout notebook; Keras validation_split=0.2 (last rows)",
    )


def seed_dropout_regression() -> Dataset:
    df = _seed_csv("dropout_regression.csv")
    split = np.array(df["split"])
    train = np.flatnonzero(split == "train")
    test = np.flatnonzero(split == "test")
    return regression(
        "seed-dropout-regression",
        _floats(df["x"]),
        _floats(df["y"])[:, 0],
        ["x"],
        fixed={"train": train, "val": test, "test": test},
        description="20 train / 20 test noisy points on [-1, 1]; the test rows validate, as in the notebook",
    )


def seed_early_stopping() -> Dataset:
    # The values of make_circles(n_samples=100, noise=0.1, random_state=1), and the notebook's
    # train_test_split(np.arange(100), test_size=0.2, random_state=2): column "split" says which
    # part a row is in, "order" its place in that part (training takes the rows in that order).
    df = _seed_csv("early_stopping.csv")
    split, order = np.array(df["split"]), _ints(df["order"])

    def part(name: str) -> np.ndarray:
        rows = np.flatnonzero(split == name)
        return rows[np.argsort(order[rows])]

    idx_train, idx_test = part("train"), part("test")
    return classification(
        "seed-early-stopping",
        _floats(df["x1"], df["x2"]),
        _ints(df["label"]),
        fixed={"train": idx_train, "val": idx_test, "test": idx_test},
        description="make_circles(100, noise=0.1, random_state=1), 80/20 split (random_state=2); test validates",
    )


def seed_regularization() -> Dataset:
    df = _seed_csv("regularization.csv")  # the values of make_moons(100, noise=0.25, random_state=2)
    return classification(
        "seed-regularization",
        _floats(df["x1"], df["x2"]),
        _ints(df["label"]),
        fixed=_tail(100, 0.2),
        description="make_moons(100, noise=0.25, random_state=2); Keras validation_split=0.2 (last rows)",
    )


# --- generators ------------------------------------------------------------------------------------


def _skd():
    """scikit-learn's ``datasets``, imported by the loaders that use it (importing it takes about a second)."""
    from sklearn import datasets

    return datasets


def moons(n_samples=200, noise=0.25, random_state=0) -> Dataset:
    X, y = _skd().make_moons(n_samples, noise=noise, random_state=random_state)
    return classification("moons", X, y, description="two interleaving half circles")


def circles(n_samples=200, noise=0.1, factor=0.5, random_state=0) -> Dataset:
    X, y = _skd().make_circles(n_samples, noise=noise, factor=factor, random_state=random_state)
    return classification("circles", X, y, description="a circle inside a circle")


def blobs(n_samples=200, centers=3, n_features=2, cluster_std=1.0, random_state=0) -> Dataset:
    X, y = _skd().make_blobs(n_samples, n_features=n_features, centers=centers, cluster_std=cluster_std, random_state=random_state)
    return classification("blobs", X, y, description="isotropic Gaussian blobs")


def xor(n_samples=200, noise=0.1, random_state=0) -> Dataset:
    g = np.random.default_rng(random_state)
    X = g.uniform(-1, 1, size=(n_samples, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    X = X + g.normal(scale=noise, size=X.shape)
    return classification("xor", X, y, description="XOR of the signs of two uniform features, with noise")


def spiral(n_samples=200, noise=0.2, turns=1.5, random_state=0) -> Dataset:
    g = np.random.default_rng(random_state)
    n = n_samples // 2
    t = np.sqrt(g.uniform(0, 1, n)) * turns * 2 * np.pi
    arm = np.c_[t * np.cos(t), t * np.sin(t)] / (turns * 2 * np.pi)
    X = np.r_[arm, -arm[: n_samples - n]] + g.normal(scale=noise / 10, size=(n_samples, 2))
    y = np.r_[np.zeros(n, int), np.ones(n_samples - n, int)]
    return classification("spiral", X, y, description="two interleaved spirals")


def gauss(n_samples=200, noise=0.5, random_state=0) -> Dataset:
    """TensorFlow Playground's "gauss": two round Gaussian clouds around (2, 2) and (-2, -2)."""
    g = np.random.default_rng(random_state)
    n = n_samples // 2
    centers = np.r_[np.tile([2.0, 2.0], (n, 1)), np.tile([-2.0, -2.0], (n_samples - n, 1))]
    X = centers + g.normal(scale=0.5 + 2.0 * noise, size=(n_samples, 2))
    y = np.r_[np.zeros(n, int), np.ones(n_samples - n, int)]
    return classification("gauss", X, y, description="two Gaussian clouds around (2, 2) and (-2, -2)")


def gaussian_quantiles(n_samples=200, n_features=2, n_classes=2, random_state=0) -> Dataset:
    X, y = _skd().make_gaussian_quantiles(n_samples=n_samples, n_features=n_features, n_classes=n_classes, random_state=random_state)
    return classification("gaussian-quantiles", X, y, description="classes by quantiles of a Gaussian's radius")


def regression_1d(n_samples=40, noise=0.2, random_state=0) -> Dataset:
    g = np.random.default_rng(random_state)
    x = np.linspace(-1, 1, n_samples)
    y = np.sin(3 * x) * 0.8 + g.normal(scale=noise, size=n_samples)
    return regression("regression-1d", x[:, None], y, ["x"], description="y = 0.8 sin(3x) + noise on [-1, 1]")


# --- scikit-learn's bundled sets ---------------------------------------------------------------------


def _sklearn(name: str, loader: str, task: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        bunch = getattr(_skd(), loader)()
        if task == "regression":
            return regression(name, bunch.data, bunch.target, list(bunch.feature_names), description=f"scikit-learn's {name}")
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or None
        return classification(name, bunch.data, bunch.target, names, description=f"scikit-learn's {name}")

    return load


BUILTINS: dict[str, Callable[..., Dataset]] = {
    "seed-dropout-classification": seed_dropout_classification,
    "seed-dropout-regression": seed_dropout_regression,
    "seed-early-stopping": seed_early_stopping,
    "seed-regularization": seed_regularization,
    "moons": moons,
    "circles": circles,
    "blobs": blobs,
    "xor": xor,
    "spiral": spiral,
    "gauss": gauss,
    "gaussian-quantiles": gaussian_quantiles,
    "regression-1d": regression_1d,
    "iris": _sklearn("iris", "load_iris", "classification"),
    "wine": _sklearn("wine", "load_wine", "classification"),
    "breast_cancer": _sklearn("breast_cancer", "load_breast_cancer", "classification"),
    "digits": _sklearn("digits", "load_digits", "classification"),
    "diabetes": _sklearn("diabetes", "load_diabetes", "regression"),
}

GENERATORS = {"moons", "circles", "blobs", "xor", "spiral", "gauss", "gaussian-quantiles", "regression-1d"}


def load_builtin(name: str, params: dict | None = None, where: str = "data.dataset") -> Dataset:
    """A built-in dataset by name; ``params`` are a generator's arguments."""
    if name not in BUILTINS:
        raise UserError(f"unknown dataset {name!r}; built-in datasets are " + ", ".join(BUILTINS), field=where)
    params = params or {}
    if params and name not in GENERATORS:
        raise UserError(f"{name!r} takes no parameters, got {', '.join(sorted(params))}", field=where)
    import inspect

    allowed = inspect.signature(BUILTINS[name]).parameters
    for key in params:
        if key not in allowed:
            raise UserError(f"{name!r} has no parameter {key!r}; it takes " + ", ".join(allowed), field=where)
    try:
        data = BUILTINS[name](**params)
    except (TypeError, ValueError) as err:
        raise UserError(f"{name!r} rejected its parameters: {err}", field=where) from None
    _check_generated(data, where, repr(name) + (" with " + ", ".join(f"{k}={v!r}" for k, v in params.items()) if params else ""))
    return data


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_generated(data: Dataset, where: str, what: str) -> None:
    """What a generator made (``what``, named in the field ``where``) is checked as a file's rows
    are: two classes at least for classification, and numbers the engine can hold (finite in
    float32)."""
    if data.task != "regression" and data.n_classes < 2:
        raise UserError(f"{what} gives a single class ({data.classes[0]!r}); classification needs at least two", field=where)
    targets = np.reshape(data.y, (len(data.y), -1)) if data.task == "regression" else np.empty((len(data.y), 0))
    columns = [(data.X[:, j], f"column {name!r}") for j, name in enumerate(data.feature_names)]
    for values, column in columns + [(targets[:, j], "the target") for j in range(targets.shape[1])]:
        bad = ~(np.abs(values) <= FLOAT32_MAX)  # NaN compares False
        if bad.any():
            i = int(np.argmax(bad))
            raise UserError(f"{what} gives {float(values[i]):g} in row {i + 1}, {column}; values must be finite and fit float32 (|x| <= {FLOAT32_MAX:.4g})", field=where)
