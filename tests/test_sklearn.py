"""reglab.sklearn: the estimator contract (scikit-learn's own checks), the tools around it
(Pipeline, cross_val_score, GridSearchCV, mlxtend), and the population-aware grid search."""

import numpy as np
import pytest
from sklearn.datasets import make_moons, make_regression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from reglab.sklearn import MLPClassifier, MLPRegressor, PopulationSearchCV

# Small and quick, still well above the accuracy and R^2 the checks ask for. No check is skipped.
FAST = dict(hidden=(32,), epochs=30, learning_rate=0.01, random_state=0)


@parametrize_with_checks([MLPClassifier(**FAST), MLPRegressor(**FAST)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def moons():
    return make_moons(120, noise=0.25, random_state=2)


def test_fitted_attributes_and_early_stopping(moons):
    X, y = moons
    clf = MLPClassifier(hidden=(64, 64), epochs=300, learning_rate=0.01, early_stopping=True, patience=5, random_state=1).fit(X, y)
    assert clf.stop_reason_ == "patience" and clf.n_iter_ < 300 and clf.stopped_epoch_ == clf.n_iter_ - 1
    assert len(clf.history_["val_loss"]) == clf.n_iter_ and 0 <= clf.best_epoch_ < clf.n_iter_
    assert list(clf.classes_) == [0, 1] and clf.n_features_in_ == 2
    assert clf.score(X, y) > 0.8
    labels = np.where(y == 1, "yes", "no")
    assert set(MLPClassifier(**FAST).fit(X, labels).predict(X)) <= {"yes", "no"}


def test_same_random_state_same_model_and_dropout_changes_it(moons):
    X, y = moons
    a = MLPClassifier(**FAST).fit(X, y).predict_proba(X)
    assert np.array_equal(a, MLPClassifier(**FAST).fit(X, y).predict_proba(X))
    assert not np.array_equal(a, MLPClassifier(**FAST, dropout=0.3).fit(X, y).predict_proba(X))


def test_pipeline_cross_val_score_and_grid_search(moons):
    X, y = moons
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.75
    search = GridSearchCV(MLPClassifier(**FAST), {"dropout": [0.0, 0.3]}, cv=3).fit(X, y)
    assert search.best_params_["dropout"] in (0.0, 0.3)
    Xr, yr = make_regression(80, 3, noise=5, random_state=0)
    reg = make_pipeline(StandardScaler(), MLPRegressor(**FAST, l2=1e-4))
    assert cross_val_score(reg, Xr, yr / yr.std(), cv=3).mean() > 0.5


def test_population_search_gives_grid_search_results(moons):
    """Each (candidate, fold) member of the population ends exactly where the estimator's own fit
    on that fold ends (members are pure), so the scores are GridSearchCV's, to the bit."""
    X, y = moons
    grid = {"dropout": [0.0, 0.3], "l2": [0.0, 1e-3], "learning_rate": [0.01, 0.003]}
    cv = KFold(3, shuffle=True, random_state=0)
    ours = PopulationSearchCV(MLPClassifier(**FAST), grid, cv=cv).fit(X, y)
    theirs = GridSearchCV(MLPClassifier(**FAST), grid, cv=cv).fit(X, y)
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert set(theirs.cv_results_) <= set(ours.cv_results_)
    assert ours.best_params_ == theirs.best_params_ and ours.best_score_ == theirs.best_score_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def _assert_same_search(ours, theirs, metrics=("score",)):
    for name in metrics:
        for key in (f"mean_test_{name}", f"std_test_{name}", f"rank_test_{name}", f"split0_test_{name}", f"split2_test_{name}"):
            np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert set(theirs.cv_results_) <= set(ours.cv_results_)
    if hasattr(theirs, "best_index_"):
        assert ours.best_index_ == theirs.best_index_ and ours.best_score_ == theirs.best_score_


@pytest.mark.parametrize(
    "grid",
    [
        # Early stopping holds validation rows back: candidates with and without it, in either
        # order, used to share one population and one validation fraction (or fail).
        {"early_stopping": [False, True], "dropout": [0.0, 0.2]},
        {"early_stopping": [True, False], "patience": [2, 5]},
        {"hidden": [(8,), (16, 16), 12], "epochs": [10, 20]},
        {"optimizer": ["adam", "sgd"], "batch_size": [16, 32], "learning_rate": [0.01, 0.05]},
        [{"early_stopping": [True], "validation_fraction": [0.2, 0.3]}, {"l1": [1e-3], "hidden": [(8,)]}],
    ],
    ids=["early-stopping", "early-stopping-first", "shape-and-epochs", "optimizer-and-batch", "list-of-grids"],
)
def test_population_search_equals_grid_search_on_any_parameter(moons, grid):
    small = dict(FAST, epochs=10, hidden=(8,))
    X, y = moons
    cv = KFold(3, shuffle=True, random_state=1)
    ours = PopulationSearchCV(MLPClassifier(**small), grid, cv=cv, refit=False).fit(X, y)
    theirs = GridSearchCV(MLPClassifier(**small), grid, cv=cv, refit=False).fit(X, y)
    _assert_same_search(ours, theirs)


def test_population_search_regression_with_early_stopping():
    X, y = make_regression(60, 3, noise=5.0, random_state=0)
    grid = {"early_stopping": [False, True], "l2": [0.0, 1e-2]}
    small = dict(FAST, epochs=10, hidden=(8,))
    ours = PopulationSearchCV(MLPRegressor(**small), grid, cv=3, refit=False).fit(X, y / y.std())
    theirs = GridSearchCV(MLPRegressor(**small), grid, cv=3, refit=False).fit(X, y / y.std())
    _assert_same_search(ours, theirs)


@pytest.mark.parametrize("scoring", [["accuracy", "neg_log_loss"], {"acc": "accuracy", "ll": "neg_log_loss"}])
def test_population_search_with_several_metrics(moons, scoring):
    X, y = moons
    grid = {"dropout": [0.0, 0.3], "early_stopping": [False, True]}
    names = list(scoring) if isinstance(scoring, dict) else scoring
    small = dict(FAST, epochs=10, hidden=(8,))
    ours = PopulationSearchCV(MLPClassifier(**small), grid, cv=3, scoring=scoring, refit=names[1]).fit(X, y)
    theirs = GridSearchCV(MLPClassifier(**small), grid, cv=3, scoring=scoring, refit=names[1]).fit(X, y)
    _assert_same_search(ours, theirs, names)
    assert ours.score(X, y) == theirs.score(X, y)


def test_population_search_refuses_refit_true_with_several_metrics(moons):
    X, y = moons
    search = PopulationSearchCV(MLPClassifier(**FAST), {"dropout": [0.0]}, cv=3, scoring=["accuracy", "f1"])
    with pytest.raises(ValueError, match=r"^refit: with several metrics must be False or one of their names \('accuracy', 'f1'\), got True$"):
        search.fit(X, y)


def test_population_search_splits_populations_by_shape(moons):
    X, y = moons
    grid = [{"hidden": [(8,), (16, 16)], "dropout": [0.0, 0.2]}]
    search = PopulationSearchCV(MLPClassifier(**FAST), grid, cv=3, refit=False).fit(X, y)
    assert len(search.cv_results_["params"]) == 4 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert not hasattr(search, "best_estimator_")
    with pytest.raises(TypeError, match="PopulationSearchCV searches reglab's MLPClassifier or MLPRegressor, got LogisticRegression"):
        from sklearn.linear_model import LogisticRegression

        PopulationSearchCV(LogisticRegression(), {"C": [1.0]}).fit(X, y)


def test_mlxtend_draws_the_decision_regions(moons):
    import matplotlib

    matplotlib.use("Agg")
    from mlxtend.plotting import plot_decision_regions

    X, y = moons
    clf = MLPClassifier(**FAST, dropout=0.2).fit(X, y)
    ax = plot_decision_regions(X, y, clf=clf)
    assert len(ax.collections) >= 3  # the filled regions and one scatter per class
    assert ax.get_xlim()[0] < X[:, 0].min() and ax.get_xlim()[1] > X[:, 0].max()


def test_bad_input_follows_scikit_learns_conventions(moons):
    X, y = moons
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="y has one class only"):
        MLPClassifier(**FAST).fit(moons[0], np.zeros(120))
    with pytest.raises(ValueError, match=r"dropout: must be a number in \[0, 1\), got 1.5"):
        MLPClassifier(**FAST, dropout=1.5).fit(*moons)
    with pytest.raises(ValueError, match=r"validation_fraction: must be a number in \(0, 1\), got 0"):
        MLPClassifier(**FAST, early_stopping=True, validation_fraction=0).fit(*moons)


def test_mc_predict_of_the_estimator(moons):
    X, y = moons
    reg = MLPRegressor(**FAST, dropout=0.3).fit(X, y.astype(float))
    mean, std = reg.mc_predict(X, samples=20)
    assert mean.shape == (120, 1) and (std > 0).any()


@pytest.mark.parametrize("samples", [0, -1, 2.5, True, 10_001, 10**9])
def test_mc_predict_refuses_a_bad_number_of_passes(moons, samples):
    X, y = moons
    clf = MLPClassifier(**dict(FAST, epochs=2), dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match=rf"^samples: must be an integer in \[1, 10000\], got {samples!r}$"):
        clf.mc_predict(X[:5], samples)
    assert clf.mc_predict(X[:5], np.int64(3))[1].shape == (5, 1)  # any integer type


def test_mc_predict_refuses_a_model_without_dropout(moons):
    clf = MLPClassifier(**dict(FAST, epochs=2)).fit(*moons)
    with pytest.raises(ValueError, match=r"^mc_predict: no member has dropout or gaussian_dropout above 0, so every pass would be the same; MC dropout samples them$"):
        clf.mc_predict(moons[0][:5])


def test_one_network_trains_on_one_thread_and_gives_the_threads_back(moons):
    """A fit is one network: its steps run on one thread (a second one doubled the CPU time and
    saved no wall time), the caller's thread count is restored, and the weights are those the
    population engine gives the same member at the caller's thread count."""
    import torch

    from reglab.engine import Member, train

    X, y = moons
    threads = torch.get_num_threads()
    calls = []
    real = torch.set_num_threads
    torch.set_num_threads = lambda n: calls.append(n) or real(n)
    try:
        est = MLPClassifier(hidden=(16,), epochs=5, random_state=3).fit(X, y)
    finally:
        torch.set_num_threads = real
    assert calls == [1, threads] and torch.get_num_threads() == threads
    arch = est.arch_
    engine = train(arch, [Member(seed=est._seed(), learning_rate=est.learning_rate)], X.astype(np.float32), y.astype(np.float32), epochs=5)
    for ours, theirs in zip(est.coefs_, engine.params):
        np.testing.assert_array_equal(ours, theirs[0].numpy())
