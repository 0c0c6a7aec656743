import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_circles, make_moons
from sklearn.model_selection import train_test_split

from reglab.data import BUILTINS, SplitSpec, load_builtin, load_table, split_indices
from reglab.errors import UserError


def error(fn):
    with pytest.raises(UserError) as err:
        fn()
    return str(err.value)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_builtin_loads(name):
    d = load_builtin(name)
    assert d.X.ndim == 2 and len(d.X) == len(d.y) > 0
    assert np.isfinite(d.X).all()
    assert d.task in ("binary", "multiclass", "regression")


def test_seed_datasets_are_the_notebooks():
    c = load_builtin("seed-dropout-classification")
    assert c.X.shape == (211, 2) and np.bincount(c.y).tolist() == [105, 106]
    assert len(c.fixed["train"]) == 168 and c.fixed["val"][0] == 168  # Keras tail split of 0.2
    r = load_builtin("seed-dropout-regression")
    assert len(r.fixed["train"]) == len(r.fixed["test"]) == 20
    np.testing.assert_allclose(r.X[r.fixed["train"], 0], np.linspace(-1, 1, 20), atol=1e-6)
    e = load_builtin("seed-early-stopping")
    X, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    _, Xt, _, _ = train_test_split(X, y, test_size=0.2, random_state=2)
    np.testing.assert_array_equal(e.X[e.fixed["val"]], Xt)
    m = load_builtin("seed-regularization")
    np.testing.assert_array_equal(m.X, make_moons(100, noise=0.25, random_state=2)[0])
    assert m.fixed["val"].tolist() == list(range(80, 100))


def test_seed_csvs_hold_scikit_learns_exact_values():
    """seed-early-stopping and seed-regularization ship as CSVs (so that loading them needs no
    scikit-learn): every value, every label and the order of the notebook's split are what
    scikit-learn's generators and train_test_split give."""
    e = load_builtin("seed-early-stopping")
    X, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    idx_train, idx_test = train_test_split(np.arange(100), test_size=0.2, random_state=2)
    np.testing.assert_array_equal(e.X, X)
    np.testing.assert_array_equal(e.y, y)
    assert e.classes == [0, 1]
    for part, idx in (("train", idx_train), ("val", idx_test), ("test", idx_test)):
        assert e.fixed[part].tolist() == idx.tolist()
    m = load_builtin("seed-regularization")
    X, y = make_moons(100, noise=0.25, random_state=2)
    np.testing.assert_array_equal(m.X, X)
    np.testing.assert_array_equal(m.y, y)
    assert m.classes == [0, 1] and m.fixed["train"].tolist() == list(range(80))


@pytest.mark.parametrize("name, filename", [("seed-dropout-classification", "dropout_classification.csv"), ("seed-dropout-regression", "dropout_regression.csv")])
def test_seed_csvs_read_as_pandas_reads_them(name, filename):
    from importlib import resources

    d = load_builtin(name)
    df = pd.read_csv(resources.files("reglab.data") / "seed" / filename)  # how the seed CSVs were read before
    np.testing.assert_array_equal(d.X, df[d.feature_names].to_numpy())
    target = df["label"] if "label" in df else df["y"]
    np.testing.assert_array_equal(d.y if d.task == "regression" else np.asarray(d.classes)[d.y], target.to_numpy())


def test_generators_take_parameters_and_say_which():
    assert load_builtin("moons", {"n_samples": 50, "noise": 0.1}).X.shape == (50, 2)
    assert load_builtin("blobs", {"centers": 4}).n_classes == 4
    assert error(lambda: load_builtin("moons", {"noisy": 1})) == (
        "data.dataset: 'moons' has no parameter 'noisy'; it takes n_samples, noise, random_state"
    )
    assert error(lambda: load_builtin("iris", {"n": 1})) == "data.dataset: 'iris' takes no parameters, got n"
    assert error(lambda: load_builtin("mnist")).startswith("data.dataset: unknown dataset 'mnist'; built-in datasets are seed-dropout-classification,")


@pytest.fixture
def table(tmp_path):
    df = pd.DataFrame({"a": [0.1, 0.5, 0.3, 0.9, 0.7, 0.2], "b": [1, 2, 3, 4, 5, 6], "label": ["x", "y", "x", "y", "x", "y"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    return tmp_path


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_user_tables(table, suffix):
    d = load_table(table / f"t.{suffix}", "label")
    assert d.task == "binary" and d.classes == ["x", "y"] and d.feature_names == ["a", "b"]
    assert d.X.shape == (6, 2)
    assert load_table(table / f"t.{suffix}", "label", features=["b"]).X.shape == (6, 1)
    reg = load_table(table / f"t.{suffix}", "a", features=["b"])
    assert reg.task == "regression"


def test_integer_labels_are_classes_and_floats_are_regression(tmp_path):
    pd.DataFrame({"x": range(30), "y": [i % 3 for i in range(30)], "z": np.linspace(0, 1, 30)}).to_csv(tmp_path / "d.csv", index=False)
    assert load_table(tmp_path / "d.csv", "y").task == "multiclass"
    assert load_table(tmp_path / "d.csv", "z").task == "regression"
    assert load_table(tmp_path / "d.csv", "y", task="regression").task == "regression"


def test_bad_data_messages(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("a,b,label\n1,2,0\n3,oops,1\n5,6,0\n")
    assert error(lambda: load_table(p, "label")) == f"{p}: line 3, column 'b': not a number: 'oops'; features must be finite numbers"
    p.write_text("a,b,label\n1,2,0\n3,4,1\n5,,0\n")
    assert error(lambda: load_table(p, "label")) == f"{p}: line 4, column 'b': missing: ''; features must be finite numbers"
    p.write_text("a,b,label\n1,inf,0\n3,4,1\n")
    assert error(lambda: load_table(p, "label")) == f"{p}: line 2, column 'b': not finite: 'inf'; features must be finite numbers"
    p.write_text("a,b,label\n1,2,0\n3,4,0\n")
    assert error(lambda: load_table(p, "label")) == f"{p}: column 'label' has a single class (0); classification needs at least two"
    assert error(lambda: load_table(p, "target")) == f"{p}: no target column 'target'; columns are a, b, label"
    assert error(lambda: load_table(tmp_path / "nope.csv", "y")) == f"data.path: file not found: {tmp_path / 'nope.csv'}"
    assert error(lambda: load_table(p, "label", features=["c"])) == f"{p}: no feature column 'c'; columns are a, b, label"


def test_tail_split_is_keras_validation_split():
    d = load_builtin("moons", {"n_samples": 101})
    s = split_indices(d, SplitSpec("tail", validation=0.2), seed=0)
    assert s["train"].tolist() == list(range(80)) and s["val"].tolist() == list(range(80, 101))
    assert split_indices(d, SplitSpec("tail", validation=0.2), seed=5)["val"].tolist() == s["val"].tolist()


def test_random_and_stratified_splits_are_fresh_per_seed_and_reproducible():
    d = load_builtin("moons", {"n_samples": 200})
    for method in ("random", "stratified"):
        a = split_indices(d, SplitSpec(method, validation=0.25, test=0.1), seed=1)
        b = split_indices(d, SplitSpec(method, validation=0.25, test=0.1), seed=2)
        again = split_indices(d, SplitSpec(method, validation=0.25, test=0.1), seed=1)
        assert not np.array_equal(a["val"], b["val"])
        assert all(np.array_equal(a[k], again[k]) for k in a)
        assert len(np.intersect1d(a["train"], a["val"])) == 0 and len(np.intersect1d(a["val"], a["test"])) == 0
        assert len(a["train"]) + len(a["val"]) + len(a["test"]) == 200
    s = split_indices(d, SplitSpec("stratified", validation=0.25), seed=3)
    assert abs(d.y[s["val"]].mean() - 0.5) < 0.03


def test_kfold_validates_every_row_once_per_seed():
    d = load_builtin("iris")
    vals = [split_indices(d, SplitSpec("kfold", folds=5), seed=0, fold=f)["val"] for f in range(5)]
    assert sorted(np.concatenate(vals).tolist()) == list(range(150))


def test_fixed_split_needs_a_dataset_that_has_one():
    assert error(lambda: split_indices(load_builtin("moons"), SplitSpec("fixed"), 0)).startswith("data.split: 'fixed' needs a dataset with its own split")


def test_too_few_rows_for_the_split():
    d = load_builtin("moons", {"n_samples": 4})
    assert error(lambda: split_indices(d, SplitSpec("tail", validation=0.9), 0)) == (
        "data.validation: 0.9 of 4 rows leaves no training rows; use a fraction that keeps both"
    )
    assert error(lambda: split_indices(d, SplitSpec("random", validation=0.9), 0)) == (
        "data.validation: 0.9 of 4 rows leaves no training rows; use a fraction that keeps both"
    )
    assert error(lambda: split_indices(d, SplitSpec("kfold", folds=5), 0, fold=0)) == "data.folds: 5 folds need at least 5 rows, got 4"


# --- integrity: no leakage, no silent guess -------------------------------------------------------


def _table(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(fn):
    with pytest.raises(UserError) as err:
        fn()
    return str(err.value)


def test_the_target_is_never_a_feature(tmp_path):
    p = _table(tmp_path, "x1,y\n1,0\n2,1\n3,0\n")
    assert _error(lambda: load_table(p, "y", ["x1", "y"])) == "data.features[1]: is the target column 'y'; a target among the features leaks the answer"
    assert _error(lambda: load_table(p, "y", ["x1", "x1"])) == "data.features: lists 'x1' 2 times; give each feature once"


def test_a_repeated_header_is_an_error_not_a_renamed_copy(tmp_path):
    p = _table(tmp_path, "x1,y,y\n1,0,0\n2,1,1\n3,0,0\n")
    assert _error(lambda: load_table(p, "y")) == f"{p}: column 'y' appears twice in the header; give every column its own name"


@pytest.mark.parametrize("cell", ["NA", "", "nan", "None", "null"])
def test_a_missing_target_is_an_error_never_a_class(tmp_path, cell):
    p = _table(tmp_path, f"x1,y\n1,0\n2,1\n3,{cell}\n4,1\n")
    assert _error(lambda: load_table(p, "y")) == f"{p}: line 4, column 'y': missing target value {cell!r}; every row needs a target"


def test_a_datetime_column_is_not_a_number(tmp_path):
    p = tmp_path / "d.parquet"
    pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]), "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_parquet(p)
    message = f"{p}: column 'when' holds dates or times; features must be numbers (convert it, or leave it out of data.features)"
    assert _error(lambda: load_table(p, "y")) == message
    assert load_table(p, "y", ["x"]).X.shape == (3, 1)


@pytest.mark.parametrize(
    "values, task, reason",
    [
        (list(range(15)) * 2, "multiclass", "inferred: target 'y' holds integers with 15 distinct values (at most 20: classes); set data.task = \"regression\" to predict them as numbers"),
        (list(range(25)) * 2, "regression", "inferred: target 'y' holds integers with 25 distinct values (more than 20)"),
        ([0.5, 1.5] * 10, "regression", "inferred: target 'y' holds non-integer numbers"),
        (["cat", "dog"] * 10, "binary", "inferred: target 'y' holds text"),
    ],
)
def test_the_task_rule_says_why(tmp_path, values, task, reason):
    p = _table(tmp_path, "x1,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    d = load_table(p, "y")
    assert (d.task, d.task_reason) == (task, reason)
    assert load_table(p, "y", task="regression").task_reason == "data.task = 'regression'" if task != "binary" else True


def test_missing_markers_are_labels_in_a_text_target(tmp_path):
    p = _table(tmp_path, "x1,y\n1,none\n2,mild\n3,severe\n4,none\n5,NA\n")
    assert load_table(p, "y").classes == ["NA", "mild", "none", "severe"]
