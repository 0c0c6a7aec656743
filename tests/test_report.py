"""The report: its statistics, its figures' inputs, its HTML, and ``reglab report`` / ``reglab demo``."""

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reglab.cli import main
from reglab.demo import EXPERIMENTS
from reglab.report import RunData, write_report
from reglab.report.figures import shown, sweep_lines
from reglab.report.stats import paired, percentile_of
from reglab.report.tables import comparisons


def test_paired_difference_is_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.1, 20)
    tech = base - 0.05 + rng.normal(0, 0.02, 20)
    p = paired(tech, base)
    ref = stats.ttest_rel(tech, base)
    assert p.p == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (p.low, p.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert p.mean == pytest.approx(np.mean(tech - base)) and p.significant
    same = paired(base, base)  # no spread at all: exact, not NaN
    assert same.p == 1.0 and same.mean == 0 and not same.significant


def test_percentile_of_a_single_run():
    sample = [1.0, 2.0, 3.0, 4.0]
    assert percentile_of(0.5, sample) == 0 and percentile_of(5, sample) == 100
    assert percentile_of(2.5, sample) == 50 and percentile_of(2.0, sample) == 37.5


def test_demo_writes_four_run_folders_and_one_report(quick_demo):
    out, report, messages = quick_demo
    assert report == out / "report.html" and report.stat().st_size > 100_000
    for name in EXPERIMENTS:
        folder = out / name
        for f in ("experiment.toml", "summary.csv", "history.parquet", "data.parquet", "splits.parquet"):
            assert (folder / f).exists(), f"{name}/{f}"
    assert (out / "demo.json").exists() and not (out.parent / ".reglab-demo.partial").exists()
    assert re.fullmatch(r"\d+ networks trained and reported in \d+ s", messages[-1])
    # The quick demo keeps the notebooks' shape: 3 seeds, a tenth of the epochs.
    summary = pd.read_csv(out / "early-stopping" / "summary.csv")
    assert sorted(summary["seed"].unique()) == [0, 1, 2] and summary["epochs_run"].max() == 350


def test_report_is_self_contained_and_complete(quick_demo):
    _, report, _ = quick_demo
    page = report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere
    assert "<script" not in page
    images = re.findall(r'<img alt="([^"]+)" src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for _, src in images)
    sections = re.findall(r'<section class="experiment" id="([^"]+)">(.*?)</section>', page, re.S)
    assert [name for name, _ in sections] == list(EXPERIMENTS)
    kinds = {name: {alt for alt in re.findall(r'<img alt="([^"]+)"', body)} for name, body in sections}
    assert kinds["dropout-classification"] == {"decision regions", "learning curves"}
    assert kinds["dropout-regression"] == {"reference", "fitted curves", "mc dropout", "learning curves"}
    assert kinds["early-stopping"] == {"decision regions", "sweep", "learning curves", "stop epochs", "stopping trade-off"}
    assert kinds["regularization"] == {"decision regions", "learning curves", "weights"}
    for name, body in sections:
        assert 'class="summary"' in body and 'class="paired"' in body and 'class="findings"' in body, name
    assert 'class="weights"' in dict(sections)["regularization"]
    assert 'class="reference"' in dict(sections)["dropout-regression"]


def _paired_with_baseline(folder, variant, column, baseline="baseline"):
    """(variant, baseline) values of ``column`` paired by seed, read from summary.csv directly."""
    summary = pd.read_csv(folder / "summary.csv", dtype={"variant": str})
    pairs = summary[summary["variant"] == variant].merge(summary[summary["variant"] == baseline], on="seed", suffixes=("", "_base"))
    return pairs[column].to_numpy(), pairs[f"{column}_base"].to_numpy()


def test_report_numbers_are_the_run_folders(quick_demo):
    out, report, _ = quick_demo
    page = report.read_text()
    summary = pd.read_csv(out / "dropout-regression" / "summary.csv", dtype={"variant": str})
    for variant in ("baseline", "dropout 0.5"):
        values = summary.loc[summary["variant"] == variant, "test_loss"].to_numpy()
        half = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values)
        assert f"<td>{values.mean():.4g} ± {half:.2g}</td>" in page  # the summary table cell: mean ± 95 % t-CI
    # The notebook's single run and where it falls among the seeds.
    section = page[page.index('id="dropout-regression"') : page.index('id="early-stopping"')]
    table = section[section.index('class="reference"') :]
    table = table[: table.index("</table>")]
    assert "<td>baseline</td><td>test mse</td><td>0.047</td>" in table and "<td>0.00627</td>" in table
    comps = comparisons(RunData.load(out / "dropout-regression"))["dropout 0.5"]
    a, b = _paired_with_baseline(out / "dropout-regression", "dropout 0.5", "test_loss")
    assert len(a) == 3 and comps["held_loss"].mean == pytest.approx(np.mean(a - b))
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (comps["held_loss"].low, comps["held_loss"].high) == pytest.approx((ci.low, ci.high))


def test_findings_say_what_the_numbers_say(quick_demo):
    out, report, _ = quick_demo
    page = report.read_text()
    a, b = _paired_with_baseline(out / "regularization", "l2 0.001", "val_loss")
    test = stats.ttest_rel(a, b)
    verb = "did not change" if not test.pvalue < 0.05 else ("lowered" if np.mean(a - b) < 0 else "raised")
    section = page[page.index('id="regularization"') :]
    assert f"<li><b>l2 0.001</b> {verb} mean validation loss" in section


def test_grid_predictions_batched_equal_one_member_at_a_time(quick_demo):
    out, _, _ = quick_demo
    run = RunData.load(out / "regularization")
    grid = np.random.default_rng(1).uniform(-2, 3, (500, 2))
    together = run.predict(run.summary, grid, chunk=len(run.summary))
    alone = np.concatenate([run.predict(run.summary.iloc[[k]], grid) for k in range(len(run.summary))])
    np.testing.assert_array_equal(together, alone)
    assert together.shape == (len(run.summary), 500, 1) and ((together >= 0) & (together <= 1)).all()


def test_sweep_lines_and_shown_variants(quick_demo):
    out, _, _ = quick_demo
    run = RunData.load(out / "early-stopping")
    [(label, points)] = sweep_lines(run)
    assert [v for v, _ in points] == [20, 50, 100, 200, 400]
    assert points[0][1] == "early stopping, restore best"  # the notebook's patience, restoring
    names = shown(run)
    assert names[:3] == ["baseline", "early stopping", "early stopping, restore best"] and len(names) == 4
    best = min(points, key=lambda p: run.members(p[1])["test_loss"].mean())[1]
    assert best in names


def test_report_command(quick_demo, tmp_path, capsys):
    out, _, _ = quick_demo
    target = tmp_path / "one.html"
    assert main(["report", str(out / "dropout-regression"), "--out", str(target), "--figures", str(tmp_path / "png")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {target}"
    page = target.read_text()
    assert page.count('<section class="experiment"') == 1 and oct(target.stat().st_mode & 0o777) != "0o600"
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == [f"dropout-regression-{n}.png" for n in ("fitted-curves", "learning-curves", "mc-dropout", "reference")]
    assert all((tmp_path / "png" / name).read_bytes().startswith(b"\x89PNG") for name in pngs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "{tmp}/nope"], "reglab: {tmp}/nope: no such run folder"),
        (["report", "{tmp}"], "reglab: {tmp}: not a reglab run folder (no summary.csv)"),
        (["report", "{demo}/dropout-regression", "{demo}/dropout-regression"], "reglab: report: two run folders hold experiment 'dropout-regression'; give each experiment once"),
        (["report", "{demo}/dropout-regression", "--out", "{tmp}"], "reglab: --out: {tmp} is a folder; give the HTML file to write, e.g. {tmp}/report.html"),
        (["demo", "--seeds", "1", "--out", "{tmp}/d"], "reglab: --seeds: must be an integer >= 2 (the statistics need two seeds), got 1"),
        (["demo", "--workers", "0", "--out", "{tmp}/d"], "reglab: --workers: must be an integer >= 1, got 0"),
        (["demo", "--out", "{tmp}"], "reglab: {tmp}: folder is not empty and holds no earlier demo; choose another --out"),
    ],
)
def test_user_errors(quick_demo, tmp_path, capsys, args, message):
    (tmp_path / "something.txt").write_text("mine")
    fill = dict(tmp=tmp_path, demo=quick_demo[0])
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == message.format(**fill) and "\n" not in err
    assert (tmp_path / "something.txt").read_text() == "mine" and not (tmp_path / "report.html").exists()


def test_an_interrupted_demo_leaves_the_earlier_one_whole(tmp_path, monkeypatch, capsys):
    import reglab.runner
    from reglab.demo import MARKER, run_demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "report.html").write_text("the earlier report")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reglab.runner, "run_experiments", boom)
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, seeds=2, quick=True)
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "reglab: interrupted; nothing was kept (an earlier demo in --out is untouched)"
    assert (out / "report.html").read_text() == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging folder left


def test_report_of_a_run_folder_without_data_files_says_so(quick_demo, tmp_path):
    import shutil

    from reglab.errors import UserError

    copy = tmp_path / "old"
    shutil.copytree(quick_demo[0] / "dropout-regression", copy)
    (copy / "data.parquet").unlink()
    with pytest.raises(UserError, match=r"old: no data.parquet; the report needs a run folder written by this version"):
        write_report([copy], tmp_path / "r.html")


def test_report_of_folds_three_classes_and_standardized_inputs(tmp_path):
    """Beyond the demo's shapes: k-fold members, a multiclass task, inputs scaled per member, and
    a regression with a random split per seed."""
    from reglab.runner import run_experiment
    from reglab.spec import Experiment

    blobs = {
        "name": "blobs",
        "seeds": 2,
        "data": {"dataset": "blobs", "params": {"centers": 3}, "split": "kfold", "folds": 3, "standardize": True},
        "model": {"hidden": [8]},
        "train": {"epochs": 4, "learning_rate": 0.01},
        "variant": [{"name": "baseline"}, {"name": "l2", "l2": 0.01, "early_stopping": {"patience": 1}}],
    }
    curve = {
        "name": "curve",
        "seeds": 3,
        "data": {"dataset": "regression-1d", "split": "random", "test": 0.25},
        "model": {"hidden": [8]},
        "train": {"epochs": 4},
        "variant": [{"name": "baseline"}, {"name": "dropout", "dropout": 0.2}],
        "sweep": {"learning_rate": [0.001, 0.01]},
    }
    for raw in (blobs, curve):
        run_experiment(Experiment.from_dict(raw), tmp_path / raw["name"])
    run = RunData.load(tmp_path / "blobs")
    assert run.task == "multiclass" and "fold" in run.summary.columns
    a, b = run.pairs("l2", "val_loss")
    assert len(a) == 6  # 2 seeds x 3 folds, paired fold by fold
    page = write_report([tmp_path / "blobs", tmp_path / "curve"], tmp_path / "r.html").read_text()
    assert page.count('alt="decision regions"') == 1 and page.count('alt="fitted curves"') == 1
    assert "share of seeds agreeing" not in page  # drawn into the image, not the HTML
    assert 'alt="sweep"' in page  # a one-key [sweep] is what the report plots against
    curve_run = RunData.load(tmp_path / "curve")
    assert curve_run.experiment.spec.report.sweep == "learning_rate"
    assert [len(points) for _, points in sweep_lines(curve_run)] == [2, 2]


def _numeric_parameters():
    """Every sweepable parameter: the variant's keys and the sweepable settings of the variant's
    tables (early_stopping.patience, prechelt.alpha...), as the registry declares them."""
    from reglab.engine import registry
    from reglab.variants import sweepable

    nested = [s.path for cls in registry.techniques() if cls.table for s in cls.settings() if s.sweepable]
    return [*sweepable(), *nested]


# Two values per sweepable parameter, and what the swept variant needs for them to act.
SWEEP_VALUES = {
    "dropout": ([0.1, 0.3], {}),
    "l1": ([1e-3, 1e-2], {}),
    "l2": ([1e-3, 1e-2], {}),
    "weight_decay": ([0.01, 0.1], {}),
    "max_norm": ([0.5, 2.0], {}),
    "proximal_l1": ([1e-3, 1e-2], {}),
    "gaussian_noise": ([0.1, 0.3], {}),
    "input_noise": ([0.1, 0.3], {}),
    "gaussian_dropout": ([0.1, 0.3], {}),
    "mc_dropout": ([2, 3], {"dropout": 0.2}),
    "learning_rate": ([0.001, 0.01], {}),
    "epochs": ([2, 3], {}),
    "batch_size": ([8, 16], {}),
    "momentum": ([0.5, 0.9], {"optimizer": "sgd"}),
    "early_stopping.min_delta": ([0.0, 0.01], {"early_stopping": {"patience": 1}}),
    "early_stopping.patience": ([1, 2], {"early_stopping": {}}),
    "early_stopping.baseline": ([0.5, 0.9], {"early_stopping": {}}),
    "early_stopping.start_from_epoch": ([0, 1], {"early_stopping": {}}),
    "early_stopping.stopping_threshold": ([0.1, 0.3], {"early_stopping": {"patience": 5}}),
    "early_stopping.divergence_threshold": ([5.0, 10.0], {"early_stopping": {"patience": 5}}),
    "prechelt.alpha": ([1.0, 5.0], {"prechelt": {"criterion": "GL"}}),
    "prechelt.strips": ([1, 2], {"prechelt": {"criterion": "UP", "strip": 1}}),
    "prechelt.strip": ([1, 2], {"prechelt": {"criterion": "PQ"}}),
}


def _sweep_values(parameter: str):
    """Two values to sweep and what the swept variant needs: written above for the built-in
    parameters, else from the technique's declarations (its default and half of it, with its
    example's other settings), so a newly registered technique is swept without an edit here."""
    if parameter in SWEEP_VALUES:
        return SWEEP_VALUES[parameter]
    from reglab.engine import registry

    cls, setting = next((c, s) for c in registry.techniques() for s in c.settings() if s.path == parameter)
    default = setting.default if setting.default else (setting.rule.lo or 0) + 1
    values = [max(1, default - 1), default] if setting.rule.kind == "integer" else [default / 2, default]
    needs: dict = {}
    for t in cls.example():
        needs.update(t.to_variant())
    if not cls.table:
        needs.pop(setting.key, None)
    return values, needs


def _tiny_run(tmp_path, name, variants, seeds=2, epochs=2, **extra):
    """A small moons experiment trained into ``tmp_path / name``; returns the folder."""
    from reglab.runner import run_experiment
    from reglab.spec import Experiment

    raw = {
        "name": name,
        "seeds": seeds,
        "data": {"dataset": "moons", "params": {"n_samples": 40}},
        "model": {"hidden": [4]},
        "train": {"epochs": epochs, "learning_rate": 0.01},
        "variant": variants,
        **extra,
    }
    run_experiment(Experiment.from_dict(raw), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("parameter", sorted(_numeric_parameters()))
def test_every_sweepable_parameter_reports(tmp_path, parameter):
    """The sweep figure and its findings for a sweep over each parameter (prechelt.alpha used to
    crash the report with a KeyError)."""
    from reglab.report import figures, findings

    values, needs = _sweep_values(parameter)
    # The sweep applies to every variant; the swept one differs from the baseline in one more setting.
    variants = [{"name": "baseline", **needs}, {"name": "swept", ("l1" if parameter == "l2" else "l2"): 1e-4, **needs}]
    run = RunData.load(_tiny_run(tmp_path, "sweep", variants, epochs=3, sweep={parameter: values}))
    lines = sweep_lines(run)
    swept = [points for _, points in lines if all(name.startswith("swept ") for _, name in points)]
    assert [[v for v, _ in points] for points in swept] == [values]
    figures.to_png(figures.sweep(run))
    text = findings.sweep(run, comparisons(run))
    assert f"Of the {parameter} values tried" in text


def test_mc_dropout_bands_use_the_members_input_scaling(tmp_path):
    """With standardize = true each member sees its inputs scaled by its own training rows: the MC
    dropout bands must be computed on the same scaled inputs as the point predictions."""
    from reglab.engine.results import mc_predict
    from reglab.runner import run_experiment
    from reglab.spec import Experiment

    raw = {
        "name": "scaled",
        "seeds": 2,
        "data": {"dataset": "regression-1d", "split": "random", "test": 0.25, "standardize": True},
        "model": {"hidden": [8]},
        "train": {"epochs": 3, "learning_rate": 0.01},
        "variant": [{"name": "baseline"}, {"name": "dropout", "dropout": 0.3, "mc_dropout": 4}],
    }
    run_experiment(Experiment.from_dict(raw), tmp_path / "scaled")
    run = RunData.load(tmp_path / "scaled")
    members = run.members("dropout")
    x = np.linspace(run.X.min(), run.X.max(), 7)[:, None] * 3.0
    scaled = []
    for _, r in members.iterrows():
        train = run.X[run.member_rows(r, "train")]
        scaled.append((x - train.mean(0)) / train.std(0))
    techniques = [Experiment.techniques(run.variants[1])] * len(members)
    expected = mc_predict(run.arch, run.params(members), techniques, members["seed"].astype(int).tolist(), np.stack(scaled), 4)
    mean, std = run.mc_predict(members, x)
    np.testing.assert_allclose(mean, expected[0], rtol=1e-6)
    np.testing.assert_allclose(std, expected[1], rtol=1e-5, atol=1e-7)


def test_a_one_seed_report_does_not_print_an_empty_interval_as_a_result(tmp_path):
    folder = _tiny_run(tmp_path, "one", [{"name": "baseline"}, {"name": "l2", "l2": 0.01}], seeds=1)
    page = write_report([folder], tmp_path / "r.html").read_text()
    assert "CI – to –" not in page
    assert "on a single seed (no confidence interval or test with one seed)" in page


def test_a_name_the_figure_font_lacks_does_not_flood_the_terminal(tmp_path):
    import warnings

    folder = _tiny_run(tmp_path, "unicode", [{"name": "基线 λ"}, {"name": "l2", "l2": 0.01}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report([folder], tmp_path / "r.html").read_text()
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert "<td>基线 λ</td>" in page
