"""The run folder: what finished is on disk, whole, whatever moment the process dies.

    DIR/experiment.toml      the resolved experiment, with reglab/torch/Python versions
    DIR/data.parquet         the dataset's rows as loaded (features, target ``y``), and data.json:
                             its name, task, feature and class names
    DIR/splits.parquet       which rows each seed (and fold) trains, validates and tests on
    DIR/parts/part-*.json    one per finished population chunk: its summary rows (written last)
    DIR/parts/part-*.parquet its per-epoch history
    DIR/weights/part-*.safetensors  its members' final weights (best weights where restored)
    DIR/summary.csv          one row per member, assembled when every member has finished
    DIR/history.parquet      every member's per-epoch history, likewise

Every file is written to a temporary name in the same folder and renamed into place, so a file is
either absent or complete. A part counts as finished once its JSON exists; ``--resume`` trains only
the members no finished part holds. Never pickle.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from . import __version__
from .errors import UserError
from .spec import Experiment


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def versions() -> dict[str, str]:
    return {"version": __version__, "torch": torch.__version__, "python": platform.python_version()}


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path, experiment: Experiment, resume: bool) -> RunFolder:
        folder = cls(Path(path))
        p = folder.path
        if p.exists() and not p.is_dir():
            raise UserError(f"{p}: exists and is not a folder")
        non_empty = p.exists() and any(p.iterdir())
        if non_empty and not resume:
            raise UserError(f"{p}: folder is not empty; use --resume to finish the run there, or choose another --out")
        if resume and non_empty:
            saved = p / "experiment.toml"
            if not saved.exists():
                raise UserError(f"{p}: not a reglab run folder (no experiment.toml); cannot --resume into it")
            before = tomllib.loads(saved.read_text())
            before.pop("reglab", None)
            before.pop("report", None)  # how to show it, not what was trained
            if before != experiment.fingerprint():
                raise UserError(f"{p}: holds a run of a different experiment; --resume needs the same experiment file")
        else:
            text = experiment.to_toml(versions())
            atomic_write(p / "experiment.toml", lambda tmp: tmp.write_text(text))
        return folder

    def write_data(self, plan) -> None:
        """The rows and splits the members train on, so the report needs nothing outside the folder."""
        data = plan.data
        frame = pd.DataFrame(data.X, columns=[str(c) for c in data.feature_names]).assign(y=data.y)
        meta = {"name": data.name, "task": data.task, "features": [str(c) for c in data.feature_names], "classes": [str(c) for c in data.classes]}
        seen, splits = set(), []
        for m in plan.members:
            fold = -1 if m.fold is None else m.fold
            if (m.seed, fold) in seen:
                continue
            seen.add((m.seed, fold))
            for split, rows in m.rows.items():
                splits.append(pd.DataFrame({"seed": m.seed, "fold": fold, "split": split, "row": rows.astype(np.int64)}))
        atomic_write(self.path / "data.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
        atomic_write(self.path / "data.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
        atomic_write(self.path / "splits.parquet", lambda tmp: pd.concat(splits, ignore_index=True).to_parquet(tmp, index=False))

    def finished_keys(self) -> set[str]:
        keys: set[str] = set()
        for part in sorted((self.path / "parts").glob("part-*.json")):
            keys.update(row["key"] for row in json.loads(part.read_text()))
        return keys

    def write_part(self, name: str, rows: list[dict], history: pd.DataFrame, weights: dict[str, torch.Tensor]) -> None:
        atomic_write(self.path / "weights" / f"{name}.safetensors", lambda tmp: save_file(weights, str(tmp)))
        atomic_write(self.path / "parts" / f"{name}.parquet", lambda tmp: history.to_parquet(tmp, index=False))
        # Last: the marker that makes the part count as finished.
        atomic_write(self.path / "parts" / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=1)))

    def finalize(self, order: list[str]) -> pd.DataFrame:
        """Assemble summary.csv and history.parquet from the parts, members in plan order."""
        rows, histories = [], []
        for part in sorted((self.path / "parts").glob("part-*.json")):
            rows.extend(json.loads(part.read_text()))
            histories.append(pd.read_parquet(part.with_suffix(".parquet")))
        rank = {key: i for i, key in enumerate(order)}
        summary = pd.DataFrame(rows)
        summary = summary.assign(_rank=summary["key"].map(rank)).sort_values("_rank").drop(columns=["_rank", "key"])
        history = pd.concat(histories, ignore_index=True)
        history = history.assign(_rank=history["key"].map(rank)).sort_values(["_rank", "epoch"]).drop(columns=["_rank", "key"])
        atomic_write(self.path / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
        atomic_write(self.path / "history.parquet", lambda tmp: history.to_parquet(tmp, index=False))
        return summary


def read_summary(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    summary = p / "summary.csv"
    if not summary.exists():
        if (p / "experiment.toml").exists():
            raise UserError(f"{p}: the run has not finished (no summary.csv); finish it with reglab run ... --resume")
        raise UserError(f"{p}: not a reglab run folder (no summary.csv)")
    return pd.read_csv(summary)
