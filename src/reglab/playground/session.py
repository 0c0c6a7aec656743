"""One playground page's state: its setup, the data, one trainer per variant, and the frames.

Nothing here knows about the web. A setup (what the page shows in its controls) becomes an
experiment (:meth:`Session.experiment`, the same that Export writes), which is planned as
``reglab run`` plans it; each variant's members train in one :class:`~reglab.engine.Trainer`
built by :func:`reglab.chunks.trainer_for`, the function ``reglab run`` uses, stepped one epoch at
a time. So an exported file run with ``reglab run`` gives the same numbers, bit for bit.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import registry
from ..errors import UserError

# The page's datasets: reglab's built-in ones (so an export names them), with a label.
DATASETS = {
    "circles": "circle",
    "xor": "xor",
    "gauss": "gauss",
    "spiral": "spiral",
    "moons": "moons",
    "seed-dropout-classification": "origin: dropout (classification)",
    "seed-dropout-regression": "origin: dropout (regression, 1-D)",
    "seed-early-stopping": "origin: early stopping",
    "seed-regularization": "origin: L1/L2",
}
GENERATED = ("circles", "xor", "gauss", "spiral", "moons")  # take noise and a data seed

# Bounds on the work one page may ask for: members x weights x rows trained per epoch.
# The default (4 variants x 10 seeds of 2-64-64-1 on 200 rows) is 34 M multiply-adds a pass.
# A batch past the rows is the whole data (so batch_size's cap is rows'); a learning rate past 10
# only diverges. Epochs, batch size and learning rate are capped where a member trains with them.
CAPS = {
    "variants": 4,
    "seeds": 20,
    "layers": 4,
    "width": 128,
    "rows": 1000,
    "epochs": 5000,
    "batch_size": 1000,
    "learning_rate": 10,
    "upload_bytes": 1_000_000,
    "upload_name": 200,
    "work": 200_000_000,
}
# What a member trains with that a variant may set for itself, over [train]: (lowest, cap).
MEMBER_CAPS = {"epochs": (1, CAPS["epochs"]), "batch_size": (1, CAPS["batch_size"]), "learning_rate": (0, CAPS["learning_rate"])}
GRID = 48  # decision-region cells per side (a 1-D regression: points along x); the page smooths them

DEFAULT_SETUP = {
    "data": {"dataset": "moons", "noise": 0.25, "validation": 0.2, "data_seed": 0},
    "model": {"hidden": [64, 64], "activation": "relu"},
    "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "epochs": 500, "seeds": 10},
    "variants": [{"name": "baseline"}, {"name": "dropout 0.3", "dropout": 0.3}],
}


def technique_controls() -> list[dict]:
    """What the page shows for each technique, from the registry's declarations: every setting of
    a flat technique (``dropout``, ``l2``...), and of a table technique the short list it offers the
    scikit-learn estimators, with their defaults there (early stopping: patience 10,
    min_delta, restore_best_weights); a table technique without one (Prechelt's) stays in files."""
    out = []
    for cls in registry.techniques():
        if not cls.trains:  # acts at prediction only (MC dropout): nothing to watch here
            continue
        for s in cls.settings():
            if cls.table and not s.sklearn:
                continue
            out.append(
                {
                    "key": s.key,
                    "table": cls.name if cls.table else None,
                    "label": s.path,
                    "doc": s.doc,
                    "allowed": s.allowed,
                    "kind": s.rule.kind,
                    "min": s.rule.lo,
                    "max": s.rule.hi,
                    "default": s.sklearn_default if cls.table else s.default,
                    "off": None if cls.table else s.off,
                    "tasks": list(cls.tasks),
                }
            )
    return out


@dataclass
class Upload:
    """A CSV the page sent, written into the session's folder; its last column is the label."""

    name: str
    target: str
    folder: Path


class Session:
    """The state behind one page: call :meth:`apply` with a setup, :meth:`step` to train an epoch,
    :meth:`frame` to see where training stands."""

    def __init__(self, workdir) -> None:
        self.workdir = workdir  # where an upload is written to be read as a table
        self.setup: dict | None = None
        self.upload: Upload | None = None
        self.plan = None
        self.trainers: dict[str, object] = {}  # variant name -> Trainer
        self.populations: dict[str, object] = {}
        self._views: dict[str, tuple] = {}  # variant name -> (trainer, epoch, its part of a frame)
        self.upload_version = 0  # a new upload is new data: every variant restarts
        self._applied_upload = 0

    # -- setup -----------------------------------------------------------------------------------

    def experiment(self, setup: dict | None = None) -> dict:
        """The experiment file (as data) of a setup: what Export writes and what is trained."""
        s = setup or self.setup
        d, m, t = s["data"], s["model"], s["train"]
        if d["dataset"] == "upload":
            if self.upload is None:
                raise UserError("data: no uploaded file; upload a CSV first")
            data = {"path": str(self.upload.folder / self.upload.name), "target": self.upload.target, "split": "random", "validation": d["validation"]}
        elif d["dataset"] in GENERATED:
            data = {"dataset": d["dataset"], "params": {"noise": d["noise"], "random_state": d["data_seed"]}, "split": "random", "validation": d["validation"]}
        elif d["dataset"] in DATASETS:
            data = {"dataset": d["dataset"]}  # an origin dataset keeps its own split
        else:
            raise UserError(f"data.dataset: must be one of {', '.join(DATASETS)} or upload, got {d['dataset']!r}")
        return {
            "name": "playground",
            "seeds": t["seeds"],
            "data": data,
            "model": {"hidden": list(m["hidden"]), "activation": m["activation"]},
            "train": {"optimizer": t["optimizer"], "learning_rate": t["learning_rate"], "epochs": t["epochs"], "batch_size": t["batch_size"]},
            "variant": [copy.deepcopy(v) for v in s["variants"]],
        }

    def apply(self, setup: dict) -> list[str]:
        """Take a new setup; restart the variants it changes (all of them when the data, model or
        training changed). Returns the names of the variants restarted. A bad setup raises
        :class:`UserError` with one line and changes nothing: everything is built before any of
        it replaces what the session holds."""
        from ..plan import make_plan
        from ..spec import Experiment

        _check_size(setup)
        try:
            experiment = Experiment.from_dict(self.experiment(setup), "playground")
            plan = make_plan(experiment, memory_budget_mb=1e9)
        except UserError as err:  # an uploaded file is named as the page named it
            if err.file is not None and Path(err.file).resolve().is_relative_to(Path(self.workdir).resolve()):
                raise err.in_file(Path(err.file).name, replace=True) from None
            raise
        drawable = 1 if plan.arch.task == "regression" else 2  # a curve over x, or regions in the plane
        if plan.data.X.shape[1] != drawable:
            kind = "a regression" if plan.arch.task == "regression" else "a classification"
            raise UserError(f"data: the playground draws {kind} with {drawable} feature{'s' if drawable > 1 else ''}, this data has {plan.data.X.shape[1]}")
        if plan.arch.task == "multiclass":
            raise UserError(f"data: the playground draws two classes, this data has {plan.data.n_classes}")
        _check_caps(plan)
        old = self.setup
        same_base = old is not None and all(old[k] == setup[k] for k in ("data", "model", "train")) and self._applied_upload == self.upload_version
        keep = {}
        if same_base:
            old_variants = {v["name"]: v for v in old["variants"]}
            keep = {v["name"]: self.trainers[v["name"]] for v in setup["variants"] if old_variants.get(v["name"]) == v and v["name"] in self.trainers}
        restarted, trainers, populations = [], {}, {}
        for variant in experiment.spec.variant:
            population = populations[variant.name] = _population(plan, variant.name)
            if variant.name in keep:
                trainers[variant.name] = keep[variant.name]
            else:
                trainers[variant.name] = self._trainer(plan, population)
                restarted.append(variant.name)
        drawing = self._drawing(plan.data)
        self.setup, self.plan, self._applied_upload = copy.deepcopy(setup), plan, self.upload_version
        self.trainers, self.populations, (self._extent, self._grid) = trainers, populations, drawing
        return restarted

    def reset(self) -> None:
        """Every variant back to epoch 0."""
        self.trainers = {name: self._trainer(self.plan, p) for name, p in self.populations.items()}

    @staticmethod
    def _trainer(plan, population):
        from ..chunks import trainer_for

        return trainer_for(plan, population)[0]

    def set_upload(self, name: str, text: str) -> None:
        """Keep an uploaded CSV: two numeric feature columns and, last, the label column. Only
        read as data (by the loader ``reglab run`` uses); checked when a setup uses it."""
        import csv
        import io

        if len(name) > CAPS["upload_name"]:  # it names a file on disk, and every message about it
            raise UserError(f"upload name: the playground takes names up to {CAPS['upload_name']} characters, got {len(name)}")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate: JSON can carry one, no text file holds one
            raise UserError(f"{name}: not UTF-8 text (character {err.start} is a lone surrogate); save the file as UTF-8") from None
        if len(data) > CAPS["upload_bytes"]:
            raise UserError(f"{name}: the playground takes files up to {CAPS['upload_bytes'] // 1000} kB, got {len(data) // 1000} kB")
        header = next(csv.reader(io.StringIO(text)), [])
        if len(header) != 3:
            raise UserError(f"{name}: must have three columns (two numeric features, then the label), got {len(header)}: {', '.join(header)!s}")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "upload.csv"
        safe = safe if safe.endswith(".csv") else safe + ".csv"
        folder = Path(tempfile.mkdtemp(dir=self.workdir))  # a refused file never overwrites the one in use
        (folder / safe).write_bytes(data)
        self.upload, self.upload_version = Upload(safe, header[-1], folder), self.upload_version + 1

    def export(self) -> dict:
        """The setup as an experiment file (and the uploaded CSV it names, if any): ``reglab run``
        on it trains what the playground trains, bit for bit, with the same seeds and epochs."""
        import tomli_w

        raw = self.experiment()
        files = {}
        if self.upload is not None and "path" in raw["data"]:
            raw["data"]["path"] = self.upload.name  # next to the experiment file
            files[self.upload.name] = (self.upload.folder / self.upload.name).read_text(encoding="utf-8")
        head = "# Exported from reglab playground: `reglab run playground.toml --out DIR` trains the same networks.\n\n"
        return {"filename": "playground.toml", "toml": head + tomli_w.dumps(raw), "files": files}

    # -- training --------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return all(t.done for t in self.trainers.values())

    def step(self) -> None:
        """One epoch of every variant still training."""
        for trainer in self.trainers.values():
            if not trainer.done:
                trainer.step()

    # -- what the page draws ------------------------------------------------------------------------

    def points(self) -> dict:
        """The data's rows, and the drawing's extent (with a margin)."""
        data = self.plan.data
        return {"x": data.X.round(5).tolist(), "y": np.asarray(data.y).round(5).tolist(), "task": self.plan.arch.task, "extent": self._extent}

    @staticmethod
    def _drawing(data) -> tuple[list[float], np.ndarray]:
        """The drawing's extent ``[x0, x1, y0, y1]`` (the data and a margin) and the points the
        maps are evaluated at: G x G over the extent, rows from the top (a 1-D input: G points
        along x); float32. Once per data: every frame uses them."""
        X = data.X
        lo, hi = X.min(0), X.max(0)
        pad = 0.1 * np.maximum(hi - lo, 1e-9)
        extent = [float(lo[0] - pad[0]), float(hi[0] + pad[0])]
        if X.shape[1] == 1:
            y = data.y
            extent += [float(y.min() - 0.2 * np.ptp(y)), float(y.max() + 0.2 * np.ptp(y))]
            return extent, np.linspace(extent[0], extent[1], GRID, dtype=np.float32)[:, None]
        extent += [float(lo[1] - pad[1]), float(hi[1] + pad[1])]
        gx, gy = np.meshgrid(np.linspace(extent[0], extent[1], GRID), np.linspace(extent[3], extent[2], GRID))
        return extent, np.c_[gx.ravel(), gy.ravel()].astype(np.float32)

    def frame(self) -> tuple[dict, bytes]:
        """Where every variant stands: a JSON-able header and the binary payload it points into
        (``[offset, length, dtype]``). A variant that has not moved since the last frame (it
        finished, or another variant restarted) is not drawn again."""
        payload = bytearray()

        def put(array: np.ndarray) -> list:
            while len(payload) % 4:
                payload.append(0)
            offset = len(payload)
            payload.extend(np.ascontiguousarray(array).tobytes())
            return [offset, int(array.size), str(array.dtype)]

        variants = []
        for name, trainer in self.trainers.items():
            cached = self._views.get(name)
            if cached is None or cached[0] is not trainer or cached[1] != trainer.epoch:
                cached = self._views[name] = (trainer, trainer.epoch, self._view(name, trainer))
            meta, arrays = cached[2]
            out = copy.deepcopy(meta)
            for path, array in arrays.items():  # "curves.loss.median" -> out["curves"]["loss"]["median"]
                *parents, leaf = path.split(".")
                node = out
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = put(array)
            variants.append(out)
        return {"type": "frame", "grid": GRID, "variants": variants}, bytes(payload)

    def _view(self, name: str, trainer) -> tuple[dict, dict[str, np.ndarray]]:
        """One variant's part of a frame: its numbers, and its arrays by where they go."""
        population = self.populations[name]
        seeds = [m.seed for m in population.members]
        k = len(seeds)
        history = trainer.history()
        median = _median_member(history)
        meta = {"name": name, "epoch": trainer.epoch, "epochs": trainer.epochs, "members": k, "done": trainer.done}
        meta.update(training=int(trainer.training.sum()), median_seed=seeds[median])
        arrays: dict[str, np.ndarray] = {}
        predictions = trainer.predict(self._grid)[..., 0]  # (K, G): the data as given, not standardized
        if self.plan.arch.task == "regression":
            arrays["curve"] = predictions[median].astype(np.float32)
            arrays["band_lo"] = np.percentile(predictions, 10, axis=0).astype(np.float32)
            arrays["band_hi"] = np.percentile(predictions, 90, axis=0).astype(np.float32)
        else:
            arrays["regions"] = np.round(predictions[median] * 255).astype(np.uint8)
            arrays["share"] = np.round((predictions > 0.5).mean(0) * 255).astype(np.uint8)
        split = np.zeros(len(self.plan.data.X), np.uint8)
        rows = population.members[median].rows
        split[rows["train"]], split[rows["val"]] = 1, 2
        arrays["split"] = split
        for series in ("loss", "val_loss"):
            for label, values in zip(("q1", "median", "q3"), quartiles(history[series])):
                arrays[f"curves.{series}.{label}"] = values
        reports = trainer.reports()
        best, restored = reports.get("best_epoch", np.full(k, -1)), reports.get("restored", np.zeros(k, bool))
        epochs_run = trainer.epochs_run
        meta["stops"] = [
            {"seed": seeds[i], "epoch": int(epochs_run[i]) - 1, "reason": reason, "best_epoch": int(best[i]), "restored": bool(restored[i])}
            for i, reason in enumerate(trainer.stop_reason)
            if reason is not None
        ]
        kernel = trainer.params[0].numpy().ravel()
        kernel = kernel[np.isfinite(kernel)]  # a diverged member's weights are not drawn
        bound = math.ceil(float(max(1e-6, np.abs(kernel).max(initial=0.0))) * 10) / 10
        arrays["weights.counts"] = np.histogram(kernel, bins=24, range=(-bound, bound))[0].astype(np.uint32)
        meta["weights"] = {"range": [-bound, bound]}
        return meta, arrays


def _population(plan, name: str):
    from ..plan import Population

    members = [m for m in plan.members if m.variant.name == name]
    first = members[0]
    return Population(members, first.epochs, first.batch_size, first.optimizer, first.engine)


def quartiles(values: np.ndarray) -> list[np.ndarray]:
    """The 25th, 50th and 75th percentiles over members (axis 0) of ``(K, E)`` values, NaN
    (stopped members) left out, as ``np.nanpercentile``'s linear interpolation gives them, in one
    sort instead of a loop over epochs; float32, NaN where every member has stopped."""
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.isfinite(values).sum(0)
    columns, last = np.arange(values.shape[1]), np.maximum(count - 1, 0)
    out = []
    for q in (0.25, 0.5, 0.75):
        position = q * last
        lo = np.floor(position).astype(int)
        hi = np.minimum(lo + 1, last)
        fraction = position - lo
        value = ordered[lo, columns] * (1 - fraction) + ordered[hi, columns] * fraction
        out.append(np.where(count > 0, value, np.nan).astype(np.float32))
    return out


def _median_member(history: dict) -> int:
    """The member whose latest validation loss is the median (the lower one of an even count)."""
    values = history["val_loss"]
    if values.shape[1] == 0:
        return 0
    latest = np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.inf for row in values])
    order = np.argsort(latest, kind="stable")
    return int(order[(len(order) - 1) // 2])


def _check_size(setup: dict) -> None:
    """What building a setup walks, before it is built: its variants, its seeds (the experiment
    lists every one), its layers and their widths. None of these has an override in a variant."""
    t, m, variants = setup["train"], setup["model"], setup["variants"]
    if not 1 <= len(variants) <= CAPS["variants"]:
        raise UserError(f"variants: the playground shows 1 to {CAPS['variants']} variants, got {len(variants)}")
    checks = (
        ("train.seeds", t["seeds"], 1, CAPS["seeds"]),
        ("model.hidden (layers)", len(m["hidden"]), 1, CAPS["layers"]),
    )
    for name, value, lo, hi in checks:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise UserError(f"{name}: the playground's cap is {lo} to {hi}, got {value!r}")
    for i, width in enumerate(m["hidden"]):
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= CAPS["width"]:
            raise UserError(f"model.hidden[{i}]: the playground's cap is 1 to {CAPS['width']} units, got {width!r}")


def _check_caps(plan) -> None:
    """What training a plan costs, on the values it trains with: each member's (the plan's, after
    a variant's own settings override [train]), its rows and the work of a pass. Refused in one
    line naming where the value was set: ``variant[1].epochs`` or ``train.epochs``."""
    variants = plan.experiment.spec.variant
    for member in plan.members:
        for field, (lo, hi) in MEMBER_CAPS.items():
            value = getattr(member, field)
            if not lo <= value <= hi:
                own = getattr(member.variant, field) is not None
                where = f"variant[{variants.index(member.variant)}].{field}" if own else f"train.{field}"
                raise UserError(f"{where}: the playground's cap is {lo} to {hi}, got {value!r}")
    rows = len(plan.data.X)
    if rows > CAPS["rows"]:
        raise UserError(f"data: the playground's cap is {CAPS['rows']} rows, this data has {rows}")
    widths = plan.arch.widths
    work = len(plan.members) * sum(a * b for a, b in zip(widths[:-1], widths[1:])) * rows
    if work > CAPS["work"]:
        raise UserError(
            f"train.seeds x model.hidden x rows: the playground's cap is {CAPS['work'] // 10**6} M multiply-adds a pass, "
            f"this setup needs {work // 10**6} M ({len(plan.members)} networks of {'-'.join(map(str, widths))} on {rows} rows)"
        )
