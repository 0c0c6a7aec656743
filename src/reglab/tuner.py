"""``reglab tune``: which regularization, how strong, for my data, answered with a paired CI.

The search is successive halving over populations. Rung 0 trains every candidate (each registered
technique at each of its declared strengths, early stopping, two other learning rates, and the
plain network, for each of a few architectures) on a few seeds x folds; each later rung keeps the
best third by mean validation loss and trains them on twice the seeds (the seeds already trained
count: members are pure). Once single techniques are screened, the best three of different
techniques enter rung 1 combined ("cocktails"). Every candidate is compared with its
architecture's plain network (the baseline) on the same seeds and folds.

The winner is then trained again with its baseline on fresh seeds (the rungs selected it on the
old ones, which flatters it), and that paired difference is the answer, as it is: "no technique
beat the baseline beyond seed noise" is an answer too.

Features are standardized inside each fold (fitted on the member's training rows), every rung is a
set of ordinary experiments trained by :func:`reglab.runner.run_experiments` into run folders under
``OUT/rungs``, so a killed search continues with ``--resume`` and reruns give the same leaderboard
byte for byte. The schedule is fixed up front from the budget by a cost model (the same one that
cuts chunks); the wall time is watched, and a search that overruns its budget stops promoting.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError
from .report.stats import paired_rows
from .store import atomic_write

ETA = 3  # each rung keeps a third of the candidates
FOLDS = 3
FIRST_SEEDS = 2  # seeds per candidate at rung 0 (more where the budget allows); doubled at every rung
MOST_FIRST_SEEDS = 32  # the compiled engine affords many more than the eager one did (8)
CONFIRM_SEEDS = 10  # fresh seeds for the final comparison (--seeds)
CONFIRM_FIRST_SEED = 1000  # the fresh seeds: never used by a rung
EPOCHS = 100
BATCH_SIZE = 32
LEARNING_RATE = 0.001
OTHER_LEARNING_RATES = (0.0003, 0.003)
ARCHITECTURES = ((32,), (64, 64), (128, 128))
EARLY_STOPPING = {"patience": 20, "restore_best_weights": True}
COCKTAIL_PARTS = 3  # the best single techniques combined in pairs and all together
# The share of the budget the rungs leave: the final comparison comes after them (its time,
# estimated, is said up front; it may end a little past the budget).
CONFIRM_SHARE = 0.2
# Seconds per unit of chunks.population_cost on one worker (measured on the 2-core CI machine,
# 2026-12-05, with breast cancer and diabetes); only plans the schedule, never changes a result.
SECONDS_PER_UNIT = 1.4e-8
RUN_OVERHEAD_S = 3.0  # per call of the runner: worker processes starting, planning, run folders
STATE = "search.json"
STOPPED = "stopped.json"  # where a search that overran its budget says after which rung it stopped


@dataclass(frozen=True)
class Candidate:
    """One configuration: an architecture and the variant keys it sets (none: the baseline)."""

    hidden: tuple[int, ...]
    settings: tuple[tuple[str, Any], ...] = ()  # sorted (experiment-file key, value)

    @property
    def is_baseline(self) -> bool:
        return not self.settings

    @property
    def name(self) -> str:
        if self.is_baseline:
            return "baseline"
        return " + ".join(_words(k, v) for k, v in self.settings)

    @property
    def label(self) -> str:
        return f"{self.name} ({'x'.join(map(str, self.hidden))})"

    def variant(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        for key, value in self.settings:
            out[key] = dict(value) if isinstance(value, tuple) else value
        return out

    def baseline(self) -> Candidate:
        return Candidate(self.hidden)

    def columns(self) -> dict[str, Any]:
        """Its settings as leaderboard columns named like the experiment file's keys."""
        out: dict[str, Any] = {"hidden": " ".join(map(str, self.hidden))}
        for key, value in self.settings:
            if isinstance(value, tuple):
                out.update({f"{key}.{k}": v for k, v in value})
            else:
                out[key] = value
        return out


def _words(key: str, value) -> str:
    if isinstance(value, tuple):
        return key.replace("_", " ")
    return f"{key.replace('_', ' ')} {value:g}"


def single_settings(task: str) -> list[tuple[tuple[str, Any], ...]]:
    """Every single change tune tries: each registered technique that trains and applies to
    ``task``, at each of its declared strengths (``setting(search=...)``; none declared: its
    default, a third and a tenth of it), early stopping, and the other learning rates."""
    from .engine import registry

    kind = {"classification": ("binary", "multiclass")}.get(task, (task,))
    out: list[tuple[tuple[str, Any], ...]] = []
    for cls in registry.techniques():
        if cls.table or not cls.trains or not any(t in cls.tasks for t in kind):
            continue
        first = cls.settings()[0]
        if first.rule.kind != "number":
            continue
        strengths = first.search or tuple(first.default * f for f in (0.1, 1 / 3, 1.0))
        for value in strengths:  # declared strengths passed the rule at registration
            if value != first.off and _allowed(first.rule, first.key, value):
                out.append(((first.key, float(value)),))
    out.append((("early_stopping", tuple(sorted(EARLY_STOPPING.items()))),))
    out += [(("learning_rate", lr),) for lr in OTHER_LEARNING_RATES]
    return out


def _allowed(rule, key: str, value) -> bool:
    try:
        rule(key, value)
    except ValueError:
        return False
    return True


def first_rung(task: str) -> list[Candidate]:
    return [Candidate(h, s) for h in ARCHITECTURES for s in [(), *single_settings(task)]]


def cocktails(ranked: list[Candidate]) -> list[Candidate]:
    """The best single techniques of different keys (learning rates aside) on the best one's
    architecture, in pairs and all together."""
    best: list[Candidate] = []
    for c in ranked:
        if c.is_baseline or c.settings[0][0] == "learning_rate" or c.hidden != _first(ranked).hidden:
            continue
        if all(c.settings[0][0] != b.settings[0][0] for b in best):
            best.append(c)
        if len(best) == COCKTAIL_PARTS:
            break
    hidden = _first(ranked).hidden
    return [Candidate(hidden, tuple(sorted(s for i in combo for s in best[i].settings))) for combo in cocktails_of(len(best))]


def _first(ranked: list[Candidate]) -> Candidate:
    return next(c for c in ranked if not c.is_baseline)


# -- the inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneArgs:
    """What a search was asked: kept in ``OUT/search.json`` so that ``--resume`` continues it."""

    data: str  # absolute path
    target: str
    features: list[str] | None
    task: str
    budget_minutes: float
    seeds: int  # for the final comparison
    engine: str = "auto"  # [train] engine of every experiment the search runs

    def data_spec(self) -> dict:
        d: dict[str, Any] = {"path": self.data, "target": self.target, "task": self.task, "split": "kfold", "folds": FOLDS, "standardize": True}
        if self.features:
            d["features"] = list(self.features)
        return d


def check_args(args: TuneArgs) -> None:
    if not (math.isfinite(args.budget_minutes) and args.budget_minutes > 0):
        raise UserError(f"--budget-minutes: must be a number > 0, got {args.budget_minutes:g}")
    if args.seeds < 2:
        raise UserError(f"--seeds: must be an integer >= 2 (a paired CI needs two), got {args.seeds}")
    if args.engine not in ("auto", "compiled", "eager"):
        raise UserError(f"--engine: must be auto, compiled or eager, got {args.engine!r}")
    if args.task not in ("auto", "classification", "regression"):
        raise UserError(f"--task: must be auto, classification or regression, got {args.task!r}")


def _experiment(args: TuneArgs, name: str, hidden: tuple[int, ...], seeds: list[int], variants: list[dict]):
    from .spec import Experiment

    raw = {
        "name": name,
        "seeds": seeds,
        "data": args.data_spec(),
        "model": {"hidden": list(hidden)},
        "train": {"learning_rate": LEARNING_RATE, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "engine": args.engine},
        "variant": variants,
    }
    return Experiment.from_dict(raw, args.data)


# -- the search -----------------------------------------------------------------------------------


@dataclass
class Rung:
    number: int
    seeds: int  # every candidate's seeds so far: 0..seeds-1
    candidates: list[Candidate]
    seconds: float = 0.0  # wall time it took
    best: float = math.nan  # the best candidate's mean validation loss after it


@dataclass
class Search:
    """A search's results: every candidate's members (seed, fold, val_loss[, val_accuracy])."""

    args: TuneArgs
    folds: int = FOLDS
    scores: dict[Candidate, pd.DataFrame] = dataclasses.field(default_factory=dict)
    reached: dict[Candidate, int] = dataclasses.field(default_factory=dict)
    rungs: list[Rung] = dataclasses.field(default_factory=list)
    stopped_after: int | None = None  # the rung after which the budget ran out, if it did
    confirmation: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    winner: Candidate | None = None


def tune_folder(args: TuneArgs, out: str | Path, *, resume: bool = False, workers: int | None = None, ray=None, progress=None, say=print) -> Search:
    """Run (or with ``resume`` continue) a search into ``out``; write its leaderboard, best
    experiment and report; return it. ``progress(stage)`` gives the runner's progress for one
    stage ("rung 0", ..., "final comparison")."""
    out = Path(out)
    check_args(args)
    if not Path(args.data).is_file():
        raise UserError(f"{args.data}: no such file")
    from .plan import make_plan

    probe = make_plan(_experiment(args, "tune-probe", ARCHITECTURES[0], [0], [{"name": "baseline"}]))  # every data error before any file
    _open(out, args, resume)
    budget = 60 * args.budget_minutes
    task = probe.arch.task  # binary, multiclass or regression: what a technique must apply to
    rows = len(probe.members[0].rows["train"])
    slots = _slots(workers, ray)
    search = Search(args)
    stopped = out / STOPPED
    if stopped.exists():  # a resumed search stops where the budget stopped it, as it did
        search.stopped_after = json.loads(stopped.read_text())["after_rung"]
    candidates = first_rung(task)
    engine = probe.populations[0].engine  # what the cost model prices: compiled or eager
    schedule = _schedule(len(candidates), rows, probe.arch, slots, budget, engine)
    confirm_s = _cost_seconds([Candidate(ARCHITECTURES[-1])] * 2, args.seeds, 0, rows, probe.arch, slots, engine)
    say(
        f"tune: {len(candidates)} candidates x {FOLDS} folds in {len(schedule)} rung(s) within {args.budget_minutes:g} min, "
        f"then the winner against its baseline on {args.seeds} fresh seeds (about {confirm_s:.0f} s more)"
    )
    start = time.perf_counter()
    trained: dict[Candidate, int] = {}
    for number, seeds in enumerate(schedule):
        rung = Rung(number, seeds, candidates)
        t0 = time.perf_counter()
        _train(search, out / "rungs" / f"rung-{number}", rung, trained, workers, ray, progress and progress(f"rung {number}"))
        rung.seconds = time.perf_counter() - t0
        search.rungs.append(rung)
        ranked = _ranked(search, candidates)
        rung.best = _mean(search.scores[_first(ranked)]["val_loss"])
        if number == len(schedule) - 1 or search.stopped_after == number:
            break
        if time.perf_counter() - start > budget:
            search.stopped_after = number
            atomic_write(stopped, lambda tmp: tmp.write_text(json.dumps({"after_rung": number})))
            say(f"tune: the budget ran out after rung {number}; the best so far goes on to the final comparison")
            break
        singles = [c for c in ranked if not c.is_baseline]
        keep = singles[: math.ceil(len(singles) / ETA)]
        if number == 0:
            keep += [c for c in cocktails(ranked) if c not in keep]
        candidates = list(dict.fromkeys(c.baseline() for c in keep)) + keep  # baselines first: the rung's reports compare with them
    search.winner = _first(_ranked(search, search.rungs[-1].candidates))
    _confirm(search, out / "confirm", workers, ray, progress and progress("final comparison"))
    write_outputs(search, out)
    return search


def _slots(workers, ray) -> int:
    """How many chunks train at once, for the schedule's estimate (a Ray cluster: guessed as
    this machine's cores)."""
    if ray is not None:
        return max(1, os.cpu_count() or 1)
    return workers or min(os.cpu_count() or 1, 4)


def _open(out: Path, args: TuneArgs, resume: bool) -> None:
    state = out / STATE
    if resume:
        if not state.exists():
            raise UserError(f"{out}: holds no search to resume (no {STATE}); run without --resume")
        try:
            saved = json.loads(state.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{state}: cannot be read ({err}); start a new search in another --out") from None
        saved.setdefault("engine", "eager")  # a search from before the compiled engine ran eager
        asked = dataclasses.asdict(args)
        if saved != asked:
            changed = ", ".join(k for k in asked if saved.get(k) != asked[k])
            raise UserError(f"{out}: its search was asked for with other arguments ({changed}); give the same ones, or choose another --out")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; use --resume to continue the search there, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(state, lambda tmp: tmp.write_text(json.dumps(dataclasses.asdict(args), indent=1)))


def _cost_seconds(candidates: list[Candidate], seeds: int, seeds_before: int, rows: int, arch, slots: int, engine: str = "eager") -> float:
    """Predicted wall time to train ``candidates`` on seeds ``seeds_before..seeds-1`` x folds:
    the cost model that cuts chunks (``arch`` the data's network, each candidate's hidden
    layers in it), in seconds, shared by the slots."""
    from .chunks import training_cost

    members = {c.hidden: 0 for c in candidates}
    for c in candidates:
        members[c.hidden] += (seeds - seeds_before) * FOLDS
    units = sum(training_cost(dataclasses.replace(arch, hidden=h), k, rows, EPOCHS, BATCH_SIZE, engine) for h, k in members.items() if k)
    return RUN_OVERHEAD_S + units * SECONDS_PER_UNIT / slots


def _schedule(n: int, rows: int, arch, slots: int, budget: float, engine: str = "eager") -> list[int]:
    """Every candidate's seeds after each rung, fixed before training (so the same command gives
    the same search): rung 0 with as many seeds as let the whole ladder, down to one candidate,
    fit in the budget less the final comparison's share; where not even the fewest do, the rungs
    that fit (rung 0 always runs)."""
    schedule, _ = _ladder(n, FIRST_SEEDS, rows, arch, slots, budget, engine)
    for first in range(FIRST_SEEDS + 1, MOST_FIRST_SEEDS + 1):
        ladder, complete = _ladder(n, first, rows, arch, slots, budget, engine)
        if not complete:
            break
        schedule = ladder
    return schedule


def _ladder(n: int, seeds: int, rows: int, arch, slots: int, budget: float, engine: str = "eager") -> tuple[list[int], bool]:
    """The rungs from ``seeds`` at rung 0 that fit, and whether they reach one candidate."""
    schedule, spent = [], 0.0
    while True:
        # The rung's candidates at most (survivors, cocktails, a baseline per architecture),
        # spread over the architectures.
        count = n + (len(cocktails_of(COCKTAIL_PARTS)) if len(schedule) == 1 else 0) + len(ARCHITECTURES)
        guess = [Candidate(ARCHITECTURES[i % len(ARCHITECTURES)]) for i in range(count)]
        spent += _cost_seconds(guess, seeds, seeds // 2 if schedule else 0, rows, arch, slots, engine)
        if schedule and spent > (1 - CONFIRM_SHARE) * budget:
            return schedule, False
        schedule.append(seeds)
        if n <= 1:
            return schedule, True
        n, seeds = math.ceil(n / ETA), seeds * 2


def cocktails_of(parts: int) -> list[tuple[int, ...]]:
    """Which of ``parts`` best techniques are combined: every pair, and all of them (3 or more)."""
    pairs = [(i, j) for i in range(parts) for j in range(i + 1, parts)]
    return pairs + ([tuple(range(parts))] if parts > 2 else [])


def _train(search: Search, folder: Path, rung: Rung, trained: dict, workers, ray, progress) -> None:
    """Train every candidate of the rung on the seeds it lacks; one experiment per (architecture,
    seeds) into ``folder``, resumed where a killed search left it."""
    from .runner import run_experiments

    groups: dict[tuple, list[Candidate]] = {}
    for c in rung.candidates:
        before = trained.get(c, 0)
        if before < rung.seeds:
            groups.setdefault((c.hidden, before), []).append(c)
    runs = []
    for (hidden, before), members in sorted(groups.items()):
        name = f"h{'x'.join(map(str, hidden))}-seeds{before}-{rung.seeds - 1}"
        experiment = _experiment(search.args, name, hidden, list(range(before, rung.seeds)), [c.variant() for c in members])
        runs.append((experiment, folder / name, members))
    if runs:
        summaries, _ = run_experiments([(e, f) for e, f, _ in runs], workers=workers, ray=ray, resume=True, progress=progress)
        for (_, _, members), summary in zip(runs, summaries):
            for c in members:
                rows = summary[summary["variant"] == c.name]
                search.scores[c] = pd.concat([search.scores[c], _scores(rows)], ignore_index=True) if c in search.scores else _scores(rows)
    for c in rung.candidates:
        trained[c] = rung.seeds
        search.reached[c] = rung.number


def _scores(rows: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in ("seed", "fold", "val_loss", "val_accuracy") if c in rows.columns]
    return rows[keep].reset_index(drop=True)


def _ranked(search: Search, candidates: list[Candidate]) -> list[Candidate]:
    """Best first by mean validation loss over every seed and fold trained; ties by name."""
    return sorted(candidates, key=lambda c: (_mean(search.scores[c]["val_loss"]), c.label))


def _mean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("inf")


def confirm_seeds(args: TuneArgs) -> list[int]:
    """The final comparison's seeds: fresh, never used by a rung."""
    return list(range(CONFIRM_FIRST_SEED, CONFIRM_FIRST_SEED + args.seeds))


def _confirm(search: Search, folder: Path, workers, ray, progress) -> None:
    """The winner and its baseline on fresh seeds: the answer's paired difference."""
    from .runner import run_experiments

    winner = search.winner
    seeds = confirm_seeds(search.args)
    pair = [winner.baseline(), winner]
    experiment = _experiment(search.args, "confirm", winner.hidden, seeds, [c.variant() for c in pair])
    (summary,), _ = run_experiments([(experiment, folder)], workers=workers, ray=ray, resume=True, progress=progress)
    search.confirmation = {c.name: _scores(summary[summary["variant"] == c.name]) for c in pair}


# -- the outputs ----------------------------------------------------------------------------------


def leaderboard(search: Search) -> pd.DataFrame:
    """One row per candidate evaluated, best first, then the final comparison's two rows."""
    from .report.stats import paired

    rows = []
    final = search.rungs[-1].candidates
    # The furthest rung first (those candidates have the most seeds), then by mean validation loss.
    order = sorted(_ranked(search, list(search.scores)), key=lambda c: -search.reached[c])
    for c in order:
        s = search.scores[c]
        p = None if c.is_baseline else paired(*paired_rows(s, search.scores[c.baseline()]))
        status = "winner" if c == search.winner else ("final rung" if c in final else f"dropped after rung {search.reached[c]}")
        rows.append(_row(c, s, search.reached[c], p, status))
    verdict = answer(search)
    baseline, winner = search.winner.baseline(), search.winner
    rows.append(_row(baseline, search.confirmation[baseline.name], "confirmation", None, "fresh seeds: baseline"))
    rows.append(_row(winner, search.confirmation[winner.name], "confirmation", verdict.paired, "fresh seeds: " + verdict.short))
    frame = pd.DataFrame(rows)
    results = ["rung", "seeds", "folds", "members", "val_loss", "val_loss_low", "val_loss_high", "val_accuracy", "delta_val_loss", "delta_low", "delta_high", "pairs", "status"]
    settings = sorted(c for c in frame.columns if c not in ("candidate", "hidden", *results))
    return frame[["candidate", "hidden", *settings, *[c for c in results if c in frame.columns]]]


def _row(c: Candidate, s: pd.DataFrame, rung, p, status: str) -> dict[str, Any]:
    """A leaderboard row: the candidate's settings, its members' scores, and ``p``, its paired
    difference against its baseline (None: it is the baseline)."""
    from .report.stats import mean_ci

    mean, half = mean_ci(s["val_loss"])
    row: dict[str, Any] = {"candidate": c.name, **c.columns(), "rung": rung, "seeds": s["seed"].nunique(), "folds": FOLDS, "members": len(s)}
    row.update(val_loss=mean, val_loss_low=mean - half, val_loss_high=mean + half)
    if "val_accuracy" in s:
        row["val_accuracy"] = _mean(s["val_accuracy"])
    if p is None:
        row.update(delta_val_loss=0.0, delta_low=0.0, delta_high=0.0, pairs=len(s))
    else:
        row.update(delta_val_loss=p.mean, delta_low=p.low, delta_high=p.high, pairs=p.n)
    row["status"] = status
    return row


@dataclass
class Answer:
    paired: Any  # report.stats.Paired: winner - baseline, validation loss, fresh seeds
    beats: bool
    short: str
    line: str


def answer(search: Search) -> Answer:
    from .report.stats import paired

    w = search.winner
    p = paired(*paired_rows(search.confirmation[w.name], search.confirmation["baseline"]))
    beats = p.high < 0
    base, mine = _mean(search.confirmation["baseline"]["val_loss"]), _mean(search.confirmation[w.name]["val_loss"])
    ci = f"Δ validation loss {p.mean:.4g} [95 % CI {p.low:.4g}, {p.high:.4g}] over {p.n} fresh seed x fold pairs"
    if beats:
        short = "beats its baseline"
        line = f"winner: {w.label}, validation loss {mine:.4g} against the baseline's {base:.4g}; {ci}"
    else:
        short = "no gain beyond seed noise"
        line = f"no technique beat the baseline beyond seed noise: the best, {w.label}, {mine:.4g} against the baseline's {base:.4g}; {ci}"
    return Answer(p, beats, short, line)


def best_experiment(search: Search, out: Path) -> dict:
    """The experiment file (as data) with the baseline and the winner, the data's path relative
    to ``out``: ``reglab run`` runs it as is; add ``test_path`` under ``[data]`` to score rows the
    search never saw."""
    w, args = search.winner, search.args
    return {
        "name": "tuned",
        "seeds": confirm_seeds(args),
        "data": {**args.data_spec(), "path": os.path.relpath(args.data, out)},
        "model": {"hidden": list(w.hidden)},
        "train": {"learning_rate": LEARNING_RATE, "epochs": EPOCHS, "batch_size": BATCH_SIZE, **({"engine": args.engine} if args.engine != "auto" else {})},
        "variant": [w.baseline().variant(), w.variant()],
    }


def write_outputs(search: Search, out: Path) -> None:
    import tomli_w

    from .report.tuning import tune_report

    board = leaderboard(search)
    atomic_write(out / "leaderboard.csv", lambda tmp: board.to_csv(tmp, index=False, float_format="%.6g"))
    raw = best_experiment(search, out)
    head = "# Written by reglab tune: the baseline and the winner. `reglab run best.toml --out DIR` trains them;\n# add test_path under [data] to score rows the search never saw.\n\n"
    atomic_write(out / "best.toml", lambda tmp: tmp.write_text(head + tomli_w.dumps(raw)))
    text = tune_report(search, board, answer(search))  # reads the search's results, not the tuner
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(text, encoding="utf-8"))


# -- on arrays ------------------------------------------------------------------------------------


@dataclass
class TuneResult:
    """What :func:`tune` found: the leaderboard, ``best.toml`` as data, the answer line, and the
    search's folder (its ``report.html`` and run folders)."""

    leaderboard: pd.DataFrame
    best: dict  # the experiment file, as data
    answer: str  # the last line
    folder: Path


def tune(
    X, y, *, out: str | Path, budget_minutes: float = 4.0, task: str = "auto", seeds: int = CONFIRM_SEEDS, feature_names=None, workers: int | None = None, engine: str = "auto"
) -> TuneResult:
    """``reglab tune`` on arrays: ``X`` (rows x features) and ``y`` are written to ``out/data.csv``
    and searched; returns the leaderboard, the best experiment (as data) and the answer."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise UserError(f"X must be rows x features and y one value per row, got X of shape {X.shape} and {len(y)} targets")
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(X.shape[1])]
    target = next(t for t in ("target", "y", "label", "_target") if t not in names)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder; choose another out")
    args = TuneArgs(str((out / "data.csv").resolve()), target, None, task, float(budget_minutes), int(seeds), engine)
    check_args(args)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(X, columns=names).assign(**{target: y}).to_csv(out / "data.csv", index=False)
    search = tune_folder(args, out / "search", workers=workers, say=lambda s: None)
    return TuneResult(leaderboard(search), best_experiment(search, out / "search"), answer(search).line, out / "search")
