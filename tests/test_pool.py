"""Several experiments on worker processes: chunking and scheduling change no member's result."""

import pandas as pd

from reglab.plan import make_plan
from reglab.chunks import make_chunks
from reglab.runner import run_experiment, run_experiments
from reglab.spec import Experiment


def small(name, dataset, epochs, hidden, **extra):
    raw = {
        "name": name,
        "seeds": 3,
        "data": {"dataset": dataset, "split": "fixed"},
        "model": {"hidden": hidden},
        "train": {"learning_rate": 0.01, "epochs": epochs},
        "variant": [{"name": "baseline"}, {"name": "dropout", "dropout": 0.3, **extra}],
    }
    return Experiment.from_dict(raw)


def test_big_populations_are_cut_and_jobs_go_longest_first():
    big = small("big", "seed-regularization", 200, [64, 64])
    tiny = small("tiny", "seed-dropout-regression", 5, [8])
    jobs = make_chunks([make_plan(big), make_plan(tiny)], workers=2)
    assert [j.label for j in jobs] == ["big (1/2)", "big (2/2)", "tiny"]
    assert sorted(k for j in jobs[:2] for k in j.keys) == sorted(m.key for m in make_plan(big).members)
    assert jobs[0].cost >= jobs[1].cost >= jobs[2].cost
    assert len(make_chunks([make_plan(big)], workers=1)) == 1


def test_workers_give_the_same_bits_as_one_process(tmp_path):
    a = small("a", "seed-regularization", 12, [16, 16], l2=0.001)
    b = small("b", "seed-dropout-regression", 15, [16])
    folders = [tmp_path / "pool" / "a", tmp_path / "pool" / "b"]
    summaries, after = run_experiments([(a, folders[0]), (b, folders[1])], workers=2, then=str.upper)
    assert after == {str(f): str(f).upper() for f in folders}
    assert len(list((folders[0] / "parts").glob("part-*.json"))) == 2  # `a` was cut in two
    for exp, folder, summary in zip((a, b), folders, summaries):
        alone = run_experiment(exp, tmp_path / "alone" / exp.spec.name)
        pd.testing.assert_frame_equal(summary, alone, check_exact=True)
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / "history.parquet"), pd.read_parquet(tmp_path / "alone" / exp.spec.name / "history.parquet"), check_exact=True
        )
