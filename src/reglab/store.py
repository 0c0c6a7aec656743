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
    DIR/fingerprint.json     hashes of what the parts depend on (experiment, rows, splits, version)
    DIR/.reglab.lock         the lock held by the one process writing to the folder

Every file is written to a temporary name in the same folder and renamed into place, so a file is
either absent or complete. A part counts as finished once its JSON exists; ``--resume`` trains only
the members no finished part holds, and only when the fingerprint still matches. Never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout
from safetensors.torch import save_file

from . import __version__
from .errors import UserError
from .spec import Experiment

if TYPE_CHECKING:
    from .chunks import Part


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


LOCK_NAME = ".reglab.lock"
FINGERPRINT_NAME = "fingerprint.json"
# What a run folder holds; an unfinished run with no finished part may be cleared of these alone.
OWN_FILES = ("experiment.toml", FINGERPRINT_NAME, "data.parquet", "data.json", "splits.parquet", "summary.csv", "history.parquet")
OWN_FOLDERS = ("parts", "weights")


def _digest(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()


def fingerprint(experiment: Experiment, plan) -> dict[str, str]:
    """What every finished part depends on: the resolved experiment (without ``[report]``, which
    only says how to show it), the rows loaded (features, target, names, classes), every member's
    split, and the reglab version that trained it."""
    data = plan.data
    names = json.dumps([[str(c) for c in data.feature_names], [str(c) for c in data.classes], data.task]).encode()
    splits = [
        json.dumps([m.key, split]).encode() + np.ascontiguousarray(rows, dtype=np.int64).tobytes()
        for m in plan.members
        for split, rows in sorted(m.rows.items())
    ]
    return {
        "experiment": _digest(json.dumps(experiment.fingerprint(), sort_keys=True, default=str).encode()),
        "data": _digest(np.ascontiguousarray(data.X, dtype=np.float64).tobytes(), np.ascontiguousarray(data.y).astype(np.float64).tobytes(), names),
        "splits": _digest(*splits),
        "reglab": __version__,
    }


# The first difference of a resumed run's fingerprint from the folder's, as the user reads it.
_CHANGED = {
    "reglab": "was started by reglab {old}, this is reglab {new}; results of two versions would mix: finish it with reglab {old}, or choose another --out",
    "experiment": "holds a run of a different experiment; --resume needs the same experiment file (only its [report] table may change)",
    "data": "the data changed since this run started (the rows loaded now differ from the run's data.parquet); --resume would mix results of both: choose another --out",
    "splits": "the splits changed since this run started (other rows per seed); --resume would mix results of both: choose another --out",
}


class RunFolder:
    """A run folder, locked by this process for as long as it is open (``with RunFolder.open(...)``)."""

    def __init__(self, path: Path, lock: FileLock | None = None):
        self.path = Path(path)
        self._lock = lock

    @classmethod
    def open(cls, path: str | Path, experiment: Experiment, resume: bool, plan, restart: bool = False) -> RunFolder:
        """Lock the folder and make it ready to train into: a new run, a run to resume (its
        fingerprint must match), an unfinished run that holds no finished part (started over), or
        with ``restart`` any run folder, discarded."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise UserError(f"{p}: exists and is not a folder")
        created = not p.exists()
        p.mkdir(parents=True, exist_ok=True)
        lock_created = not (p / LOCK_NAME).exists()
        lock = FileLock(str(p / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UserError(f"{p}: another reglab run is writing to this folder; wait for it to finish, or choose another --out") from None
        folder = cls(p, lock)
        try:
            folder._prepare(experiment, resume, restart, fingerprint(experiment, plan), plan)
        except BaseException:  # refused or failed: leave the folder as it was
            folder.close()
            if created:
                shutil.rmtree(p, ignore_errors=True)
            elif lock_created:
                (p / LOCK_NAME).unlink(missing_ok=True)
            raise
        return folder

    def _prepare(self, experiment: Experiment, resume: bool, restart: bool, current: dict[str, str], plan) -> None:
        p = self.path
        contents = [c for c in p.iterdir() if c.name != LOCK_NAME]
        saved = p / "experiment.toml"
        ours = self._is_run_folder()
        if restart and contents and not ours:
            raise UserError(f"{p}: not a reglab run folder (no experiment.toml written by reglab); --restart only discards a reglab run")
        unfinished = bool(contents) and ours and not (p / "summary.csv").exists()
        done = len(self.finished_keys()) if unfinished else 0
        only_ours = all(c.name in OWN_FILES or c.name in OWN_FOLDERS for c in contents)
        if restart or (unfinished and done == 0 and only_ours):
            # Asked for, or an unfinished run that holds nothing finished (it failed or was stopped
            # before its first part): nothing would be lost, so it starts over. Only reglab's own
            # files are removed; anything else in the folder stays.
            self._clear()
            contents = []
        if contents and not resume:
            if unfinished:
                same = (p / FINGERPRINT_NAME).exists() and self._fingerprint() == current
                if same:
                    raise UserError(f"{p}: holds an unfinished run of this experiment ({done} of {len(plan.members)} networks trained); add --resume to finish it, or choose another --out")
                raise UserError(f"{p}: holds an unfinished run of another experiment or data ({done} networks trained); add --restart to discard it and start over, or choose another --out")
            raise UserError(f"{p}: folder is not empty; use --resume to finish the run there, or choose another --out")
        if contents:
            if not ours:
                raise UserError(f"{p}: not a reglab run folder (no experiment.toml written by reglab); cannot --resume into it")
            before = self._fingerprint()
            for field in ("reglab", "experiment", "data", "splits"):
                if before.get(field) != current[field]:
                    hint = "; or add --restart to discard this unfinished run and start over" if unfinished else ""
                    raise UserError(f"{p}: " + _CHANGED[field].format(old=before.get(field), new=current[field]) + hint)
            # Same experiment, data and splits: only [report] may have changed, and it applies.
            text = experiment.to_toml(versions())
            atomic_write(saved, lambda tmp: tmp.write_text(text))
            return
        text = experiment.to_toml(versions())
        atomic_write(saved, lambda tmp: tmp.write_text(text))
        self.write_data(plan)
        # Last: a folder whose fingerprint is written holds everything a resume compares against.
        atomic_write(p / FINGERPRINT_NAME, lambda tmp: tmp.write_text(json.dumps(current, indent=1)))

    def _is_run_folder(self) -> bool:
        """Whether the folder holds a run reglab wrote: its resolved experiment.toml carries a
        [reglab] table with the versions (a user's own experiment file does not)."""
        saved = self.path / "experiment.toml"
        if not saved.is_file():
            return False
        try:
            return "version" in tomllib.loads(saved.read_text(encoding="utf-8")).get("reglab", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
            return False

    def _fingerprint(self) -> dict[str, str]:
        path = self.path / FINGERPRINT_NAME
        if not path.exists():
            raise UserError(f"{self.path}: has no {FINGERPRINT_NAME} (an older reglab wrote it), so a resume cannot check its data; choose another --out")
        return json.loads(path.read_text())

    def _clear(self) -> None:
        for name in OWN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in OWN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_data(self, plan) -> None:
        """The rows and splits the members train on, so the report needs nothing outside the folder."""
        data = plan.data
        features = [str(c) for c in data.feature_names]
        target = "y"  # the target's column, named so that no feature (one may be called "y") is overwritten
        while target in features:
            target = "_" + target
        frame = pd.DataFrame(data.X, columns=features).assign(**{target: data.y})
        meta = {"name": data.name, "task": data.task, "features": features, "classes": [str(c) for c in data.classes], "target": target}
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

    def write_part(self, part: Part) -> None:
        name = part.name
        atomic_write(self.path / "weights" / f"{name}.safetensors", lambda tmp: save_file(part.weights, str(tmp)))
        atomic_write(self.path / "parts" / f"{name}.parquet", lambda tmp: part.history.to_parquet(tmp, index=False))
        # Last: the marker that makes the part count as finished.
        atomic_write(self.path / "parts" / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(part.rows, indent=1)))

    def finalize(self, order: list[str]) -> pd.DataFrame:
        """Assemble summary.csv and history.parquet from the parts, members in plan order."""
        rows, histories = [], []
        for part in sorted((self.path / "parts").glob("part-*.json")):
            rows.extend(json.loads(part.read_text()))
            histories.append(pd.read_parquet(part.with_suffix(".parquet")))
        keys = [row["key"] for row in rows]
        if len(set(keys)) != len(keys):
            twice = next(k for k in keys if keys.count(k) > 1)
            raise UserError(f"{self.path}: two parts hold member {twice} (two processes wrote to the folder at once); choose another --out")
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
    if not p.is_dir():
        raise UserError(f"{p}: no such run folder" + ("" if not p.exists() else " (it is a file)"))
    summary = p / "summary.csv"
    if not summary.exists():
        if (p / "experiment.toml").exists():
            raise UserError(f"{p}: the run has not finished (no summary.csv); finish it with reglab run ... --resume")
        raise UserError(f"{p}: not a reglab run folder (no summary.csv)")
    frame = pd.read_csv(summary)
    # Names are text, whatever they look like ("1.0", "NA", ""): read that column as written.
    frame["variant"] = pd.read_csv(summary, usecols=["variant"], dtype=str, keep_default_na=False)["variant"]
    member = [c for c in ("variant", "seed", "fold") if c in frame.columns]
    twice = frame[frame.duplicated(member, keep=False)]
    if len(twice):
        r = twice.iloc[0]
        who = ", ".join(f"{c} {r[c]}" for c in member)
        raise UserError(f"{summary}: holds member {who} more than once (written by two processes at once?); rerun into a new --out")
    return frame
