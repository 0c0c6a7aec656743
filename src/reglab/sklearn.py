"""scikit-learn estimators on reglab's engine, and a grid search that trains a whole grid at once.

``MLPClassifier`` and ``MLPRegressor`` are Keras-style multilayer perceptrons (Dense layers, Adam
by default, Keras's losses) with the regularization techniques as constructor parameters. They
follow the estimator contract (``__init__`` only stores, fitted attributes end in ``_``) and pass
scikit-learn's ``check_estimator``, so they work in ``Pipeline``, ``cross_val_score``,
``GridSearchCV`` and with ``mlxtend.plotting.plot_decision_regions``.

``PopulationSearchCV`` is ``GridSearchCV`` for these estimators: every candidate times every fold
becomes one member of a population, trained in one call of the engine, with the same
``cv_results_``, ``best_params_`` and ``best_estimator_``.

>>> from sklearn.datasets import make_moons
>>> X, y = make_moons(60, noise=0.2, random_state=0)
>>> clf = MLPClassifier(hidden=(16,), dropout=0.1, epochs=30, random_state=0).fit(X, y)
>>> clf.predict(X[:3]).shape, clf.predict_proba(X[:3]).shape, clf.n_features_in_
((3,), (3, 2), 2)
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import time
from collections.abc import Iterable

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .engine import Architecture, Member, registry, train
from .engine.technique import listed
from .engine.model import forward, output_activation
from .engine.results import mc_predict
from .executors import Serial

# The parameters every estimator has, with their defaults; the techniques' parameters come from
# the registry (each technique declares its scikit-learn names), so a registered technique is a
# parameter of both estimators (of the classifier only, if it applies to classification only).
BASE_PARAMS = {
    "hidden": (100,),
    "activation": "relu",
    "validation_fraction": 0.1,
    "epochs": 200,
    "batch_size": 32,
    "learning_rate": 0.001,
    "optimizer": "adam",
    "random_state": None,
    "engine": "auto",  # compiled where the techniques allow, else eager (reglab.engine.paths)
}


assert set(BASE_PARAMS) == set(registry.RESERVED_SKLEARN), "registry.RESERVED_SKLEARN must name the estimators' own parameters"


def technique_params(task: str) -> dict[str, object]:
    """``parameter -> default`` of every registered technique that applies to ``task``
    (``classification`` or ``regression``), by technique name."""
    out: dict[str, object] = {}
    for cls in _applicable(task):
        if cls.table:
            out[cls.sklearn_switch] = False
        out.update({s.sklearn: s.sklearn_default for s in cls.settings() if s.sklearn})
    return out  # names unique and not the estimators' own: registry.register checks


def _applicable(task: str) -> list:
    """The techniques an estimator of ``task`` offers: those for its task that have parameters."""
    tasks = ("binary", "multiclass") if task == "classification" else ("regression",)
    return [
        cls
        for cls in registry.techniques()
        if any(t in cls.tasks for t in tasks) and (cls.sklearn_switch if cls.table else any(s.sklearn for s in cls.settings()))
    ]


_ESTIMATORS: list[type] = []  # the estimator classes whose signature follows the registry


def _signature(task: str) -> inspect.Signature:
    params = {**BASE_PARAMS, **technique_params(task)}
    first = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([first] + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in params.items()])


def _refresh() -> None:
    """Give every estimator class the signature of the techniques registered now."""
    for cls in _ESTIMATORS:
        cls.__init__.__signature__ = _signature(cls._task)


registry.subscribe(_refresh)


@contextlib.contextmanager
def _one_thread():
    """One network's steps on one thread: its operations are too small to share out (a second
    thread doubled the CPU time of a fit and saved no wall time), and a member's bits do not
    depend on the thread count (``tests/engine/test_layout.py``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _MLP(BaseEstimator):
    """What both estimators share. ``__init__`` only stores its keyword arguments; which ones it
    takes (its signature, which scikit-learn reads) comes from the registry, kept current by
    :func:`_refresh`."""

    _task = "regression"

    def __init__(self, **params):
        signature = type(self).__init__.__signature__
        unknown = sorted(set(params) - set(signature.parameters))
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {unknown[0]!r}")
        for name, p in signature.parameters.items():
            if name != "self":
                setattr(self, name, params.get(name, p.default))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)

        def __init__(self, **params):  # a function of its own, to carry this class's signature
            _MLP.__init__(self, **params)

        cls.__init__ = __init__
        _ESTIMATORS.append(cls)
        _refresh()

    # --- what the engine gets -------------------------------------------------------------------

    def _techniques(self) -> tuple:
        """The engine's techniques for these parameters, built as an experiment file's variant is."""
        out = []
        for cls in _applicable(self._task):
            if cls.table and not getattr(self, cls.sklearn_switch):
                continue
            values = {s.key: listed(getattr(self, s.sklearn)) for s in cls.settings() if s.sklearn}
            technique = cls.from_variant(values)
            if technique is not None:
                out.append(technique)
        return tuple(out)

    def _member(self, seed: int) -> Member:
        return Member(seed=seed, learning_rate=self.learning_rate, techniques=self._techniques())

    def _arch(self, n_inputs: int, n_classes: int = 0) -> Architecture:
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if self._task == "regression":
            return Architecture(n_inputs, hidden, self.activation, "regression", 1)
        task = "binary" if n_classes == 2 else "multiclass"
        return Architecture(n_inputs, hidden, self.activation, task, 1 if n_classes == 2 else n_classes)

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _validation(self, n: int) -> float:
        """The share of rows set aside for validation: ``validation_fraction`` when a technique
        needs validation data (early stopping), else none."""
        if not any(t.needs_validation for t in self._techniques()):
            return 0.0
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction: must be a number in (0, 1), got {self.validation_fraction!r}")
        if int(n * self.validation_fraction) < 1 or n - int(n * self.validation_fraction) < 1:
            raise ValueError(f"early_stopping: n_samples = {n} is too few to set {self.validation_fraction:g} of them aside for validation")
        return float(self.validation_fraction)

    def _fit(self, X, y_engine, n_classes: int = 0):
        arch = self._arch(X.shape[1], n_classes)
        with _one_thread():
            result = train(
                arch,
                [self._member(self._seed())],
                X.astype(np.float32),
                y_engine.astype(np.float32),
                epochs=self.epochs,
                batch_size=self.batch_size,
                optimizer=self.optimizer,
                engine=self.engine,
                validation_split=self._validation(len(X)),
            )
        self._store(arch, result, 0)
        return self

    def _store(self, arch, result, k: int) -> None:
        """Keep member ``k`` of a trained population as this estimator's fitted state."""
        self.arch_ = arch
        self.coefs_ = [p[k].detach().cpu().numpy() for p in result.params]
        n = int(result.epochs_run[k])
        self.history_ = {name: values[k, :n].tolist() for name, values in result.history.items()}
        self.n_iter_ = n
        self.stopped_epoch_ = n - 1
        self.best_epoch_ = int(result.best_epoch[k])
        self.stop_reason_ = result.stop_reason[k]

    def _output(self, X) -> np.ndarray:
        """The network's output for ``X``, computed in float64: a row's prediction must not depend on
        which other rows are predicted with it, and float32 matrix products can differ in the last
        bit with the number of rows."""
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        params = [torch.from_numpy(c.astype(np.float64)).unsqueeze(0) for c in self.coefs_]
        x = torch.from_numpy(X).unsqueeze(0)
        with torch.no_grad():
            return output_activation(self.arch_, forward(self.arch_, params, x))[0].numpy()

    def mc_predict(self, X, samples: int = 50):
        """MC dropout: mean and standard deviation of ``samples`` passes with dropout on."""
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        params = [torch.from_numpy(c).unsqueeze(0) for c in self.coefs_]
        mean, std = mc_predict(self.arch_, params, [self._techniques()], [self._seed()], X.astype(np.float32), samples)
        return mean[0], std[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class MLPClassifier(ClassifierMixin, _MLP):
    """A Keras-style MLP classifier (sigmoid head for two classes, softmax for more) trained by
    reglab's engine, with dropout, L1/L2, weight decay, max-norm, noise and early stopping as
    parameters. Fitted: ``classes_``, ``n_features_in_``, ``coefs_``, ``history_``,
    ``n_iter_``, ``stopped_epoch_``, ``best_epoch_``."""

    _task = "classification"

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has one class only ({self.classes_[0]!r}); a classifier needs at least two")
        return self._fit(X, encoded, len(self.classes_))

    def predict_proba(self, X):
        p = self._output(X)
        return np.hstack([1.0 - p, p]) if len(self.classes_) == 2 else p

    def predict(self, X):
        check_is_fitted(self, "coefs_")
        return self.classes_[self.predict_proba(X).argmax(1)]


class MLPRegressor(RegressorMixin, _MLP):
    """A Keras-style MLP regressor (linear head, mean squared error) trained by reglab's engine."""

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        return self._fit(X, y.astype(np.float64))

    def predict(self, X):
        return self._output(X)[:, 0]


# ---------------------------------------------------------------------------------------------------


class PopulationSearchCV(BaseEstimator):
    """Exhaustive search over ``param_grid`` with cross-validation, like ``GridSearchCV``, but every
    (candidate, fold) pair trains as one member of a population: a grid of 24 candidates x 5
    folds is one or a few calls of the engine instead of 120 fits.

    Candidates may differ in any parameter; those that change the network's shape or the training
    run (``hidden``, ``epochs``, ``batch_size``, ``optimizer``...) split the population, the
    regularization settings and the learning rate do not. Members are pure, so each member's
    result is what its own ``fit`` on that fold would give. Gives ``cv_results_`` (the keys
    ``GridSearchCV`` gives, times included), ``best_params_``, ``best_score_``, ``best_index_``
    and, with ``refit``, ``best_estimator_`` fitted on all the data.

    ``backend="ray"`` trains the populations as tasks on the Ray cluster this process joined
    (``ray.init(address=...)``; a local Ray instance if none), with the same ``cv_results_``
    (times aside); the refit runs here.
    """

    def __init__(self, estimator, param_grid, *, scoring=None, cv=5, refit=True, backend="local"):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.backend = backend

    def _candidates(self) -> list[dict]:
        grids = self.param_grid if isinstance(self.param_grid, list) else [self.param_grid]
        out = []
        for grid in grids:
            keys = sorted(grid)
            out += [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
        return out

    def fit(self, X, y):
        est = self.estimator
        if not isinstance(est, _MLP):
            raise TypeError(f"PopulationSearchCV searches reglab's MLPClassifier or MLPRegressor, got {type(est).__name__}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: must be one of {', '.join(map(repr, BACKENDS))}, got {self.backend!r}")
        classifier = isinstance(est, ClassifierMixin)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=not classifier)
        if classifier:
            check_classification_targets(y)
            classes, encoded = np.unique(y, return_inverse=True)
        else:
            classes, encoded = None, y.astype(np.float64)
        cv = check_cv(self.cv, y, classifier=classifier)
        folds = list(cv.split(X, y))
        scorers = self._scorers(est)
        candidates = self._candidates()
        estimators = [clone(est).set_params(**c) for c in candidates]
        # Parameters members of one population may differ in: the techniques' and the learning rate.
        searchable = {*technique_params(est._task), "learning_rate"}

        # One member per (candidate, fold); members that can share a population are trained
        # together: same network shape and run settings, same number of training rows and the same
        # validation rows set aside (a candidate with early stopping holds some back, one without
        # trains on all of them).
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for i, e in enumerate(estimators):
            shape = {k: v for k, v in e.get_params().items() if k not in searchable and k != "random_state"}
            for f, (train_rows, _) in enumerate(folds):
                key = (repr(sorted(shape.items())), len(train_rows), e._validation(len(train_rows)))
                groups.setdefault(key, []).append((i, f))
        scores = {name: np.full((len(candidates), len(folds)), np.nan) for name in scorers}
        fit_time = np.zeros((len(candidates), len(folds)))
        score_time = np.zeros_like(fit_time)
        calls = []  # one engine call per group
        for (_, _, validation), members in groups.items():
            first = estimators[members[0][0]]
            arch = first._arch(X.shape[1], 0 if classes is None else len(classes))
            xs = np.stack([X[folds[f][0]] for _, f in members]).astype(np.float32)
            ys = np.stack([encoded[folds[f][0]] for _, f in members]).astype(np.float32)
            population = [estimators[i]._member(estimators[i]._seed()) for i, _ in members]
            settings = dict(epochs=first.epochs, batch_size=first.batch_size, optimizer=first.optimizer, validation_split=validation, engine=first.engine)
            calls.append((arch, population, xs, ys, settings))
        for members, (arch, *_), (result, seconds) in zip(groups.values(), calls, _train_all(calls, self.backend)):
            per_member = seconds / len(members)
            for k, (i, f) in enumerate(members):
                fitted = clone(estimators[i])
                fitted._store(arch, result, k)
                fitted.n_features_in_ = X.shape[1]
                if classes is not None:
                    fitted.classes_ = classes
                test_rows = folds[f][1]
                t0 = time.perf_counter()
                for name, scorer in scorers.items():
                    scores[name][i, f] = scorer(fitted, X[test_rows], y[test_rows])
                score_time[i, f] = time.perf_counter() - t0
                fit_time[i, f] = per_member
        self.cv_results_ = _cv_results(candidates, scores, fit_time, score_time)
        self.multimetric_ = not self._single_metric()
        self.scorer_ = scorers if self.multimetric_ else scorers["score"]
        # As GridSearchCV: with several metrics, refit (a metric's name) picks the best candidate.
        rank_by = self.refit if self.multimetric_ else "score"
        if rank_by:
            self.best_index_ = int(np.nanargmax(self.cv_results_[f"mean_test_{rank_by}"]))
            self.best_params_ = candidates[self.best_index_]
            self.best_score_ = float(self.cv_results_[f"mean_test_{rank_by}"][self.best_index_])
        self.n_splits_ = len(folds)
        if self.refit:
            self.best_estimator_ = clone(est).set_params(**self.best_params_).fit(X, y)
        return self

    def _single_metric(self) -> bool:
        return self.scoring is None or isinstance(self.scoring, str) or callable(self.scoring)

    def _scorers(self, est) -> dict:
        """``{"score": scorer}`` for one metric; ``{name: scorer}`` for a list or dict of them
        (GridSearchCV's multi-metric search, whose ``refit`` must then name one or be False)."""
        if self._single_metric():
            return {"score": check_scoring(est, self.scoring)}
        if isinstance(self.scoring, dict):
            named = dict(self.scoring)
        elif isinstance(self.scoring, (list, tuple, set)) and all(isinstance(s, str) for s in self.scoring):
            named = {s: s for s in self.scoring}
        else:
            raise ValueError(f"scoring: must be a scorer name, a callable, a list of names or a dict of scorers, got {self.scoring!r}")
        if not named:
            raise ValueError("scoring: must name at least one scorer, got an empty " + type(self.scoring).__name__)
        if self.refit is not False and self.refit not in named:
            raise ValueError(
                f"refit: with several metrics must be False or one of their names ({', '.join(map(repr, named))}), got {self.refit!r}"
            )
        return {name: check_scoring(est, scorer) for name, scorer in named.items()}

    def predict(self, X):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def score(self, X, y):
        check_is_fitted(self, "best_estimator_")
        scorer = self.scorer_[self.refit] if self.multimetric_ else self.scorer_
        return scorer(self.best_estimator_, X, y)


BACKENDS = ("local", "ray")


def _timed_train(_, call: tuple, on_epoch_end=None) -> tuple:
    """An executor's task: one engine call, and its seconds."""
    arch, members, xs, ys, settings = call
    start = time.perf_counter()
    result = train(arch, members, xs, ys, **settings)
    return result, time.perf_counter() - start


def _train_all(calls: list[tuple], backend: str) -> Iterable[tuple]:
    """``(result, seconds)`` of each engine call, in order: here, one after the other as the
    caller takes them (one population's result in memory at a time), or as Ray tasks on the
    cluster this process joined (a local Ray instance, for this search only, if it joined none)."""
    items = [(0, call) for call in calls]
    if backend == "local":
        return (result for _, result in Serial().map(_timed_train, [None], items))
    from .distributed import INSTALL, RayOptions, connected

    try:
        import ray  # noqa: F401
    except ImportError:
        raise ImportError(f'PopulationSearchCV(backend="ray") needs the ray extra, which is not installed: {INSTALL}') from None
    with connected(RayOptions()) as cluster:
        results = dict(cluster.map(_timed_train, [None], items))
    return [results[n] for n in range(len(calls))]


def _cv_results(candidates, scores, fit_time, score_time) -> dict:
    """``GridSearchCV``'s ``cv_results_`` layout."""
    out: dict = {
        "mean_fit_time": fit_time.mean(1),
        "std_fit_time": fit_time.std(1),
        "mean_score_time": score_time.mean(1),
        "std_score_time": score_time.std(1),
    }
    for name in sorted({k for c in candidates for k in c}):
        column = np.ma.MaskedArray(np.empty(len(candidates), dtype=object), mask=True)
        for i, c in enumerate(candidates):
            if name in c:
                column[i] = c[name]
        out[f"param_{name}"] = column
    out["params"] = candidates
    for name, values in scores.items():
        for f in range(values.shape[1]):
            out[f"split{f}_test_{name}"] = values[:, f]
        out[f"mean_test_{name}"] = values.mean(1)
        out[f"std_test_{name}"] = values.std(1)
        # Ties share the best rank, as in GridSearchCV (rankdata, method "min").
        out[f"rank_test_{name}"] = rankdata(-out[f"mean_test_{name}"], method="min").astype(np.int32)
    return out

