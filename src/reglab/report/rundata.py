"""A finished run folder, read back: what the report draws from and nothing else."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel
from safetensors.torch import load_file

from ..data import standardizer
from ..engine import Architecture
from ..engine.model import output_activation
from ..engine.results import logits_for, mc_predict
from ..errors import UserError
from ..spec import Experiment
from ..store import read_summary

NEEDED = ("experiment.toml", "summary.csv", "history.parquet", "data.parquet", "data.json", "splits.parquet")


@dataclass
class RunData:
    path: Path
    experiment: Experiment
    summary: pd.DataFrame  # one row per member, in plan order
    history: pd.DataFrame
    X: np.ndarray
    y: np.ndarray
    meta: dict
    splits: pd.DataFrame

    @classmethod
    def load(cls, path: str | Path) -> RunData:
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"{p}: no such run folder")
        summary = read_summary(p)
        for name in NEEDED:
            if not (p / name).exists():
                raise UserError(f"{p}: no {name}; the report needs a run folder written by this version of reglab (run it again)")
        raw = tomllib.loads((p / "experiment.toml").read_text())
        raw.pop("reglab", None)
        experiment = Experiment.from_dict(raw, str(p / "experiment.toml"))
        data = pd.read_parquet(p / "data.parquet")
        meta = json.loads((p / "data.json").read_text())
        return cls(
            path=p,
            experiment=experiment,
            summary=summary,
            history=pd.read_parquet(p / "history.parquet"),
            X=data[meta["features"]].to_numpy(float),
            y=data[meta.get("target", "y")].to_numpy(),
            meta=meta,
            splits=pd.read_parquet(p / "splits.parquet"),
        )

    # --- what the experiment says ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.experiment.spec.name

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def classification(self) -> bool:
        return self.task != "regression"

    @cached_property
    def arch(self) -> Architecture:
        m = self.experiment.spec.model
        n_out = 1 if self.task in ("binary", "regression") else len(self.meta["classes"])
        return Architecture(self.X.shape[1], tuple(m.hidden), m.activation, self.task, n_out)

    @property
    def variants(self) -> list[BaseModel]:
        return list(self.experiment.spec.variant)

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def baseline(self) -> str:
        return self.experiment.spec.report.baseline or self.variant_names[0]

    @property
    def held_out(self) -> str:
        """The split results are judged on: test where the experiment has one, else validation."""
        return "test" if "test_loss" in self.summary.columns else "val"

    @property
    def metric(self) -> str:
        """The metric beside the loss: accuracy, or MSE for regression."""
        return "accuracy" if self.classification else "mse"

    @property
    def max_epochs(self) -> int:
        t = self.experiment.spec.train
        return max(v.epochs or t.epochs for v in self.variants)

    def members(self, variant: str) -> pd.DataFrame:
        return self.summary[self.summary["variant"] == variant]

    def pairs(self, variant: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """``column`` of ``variant`` and of the baseline, matched by seed (and fold)."""
        keys = ["seed"] + (["fold"] if "fold" in self.summary.columns else [])
        a = self.members(variant)[keys + [column]]
        b = self.members(self.baseline)[keys + [column]]
        both = a.merge(b, on=keys, suffixes=("", "_base"))
        return both[column].to_numpy(float), both[column + "_base"].to_numpy(float)

    # --- data, weights, predictions --------------------------------------------------------------

    def rows(self, seed: int, split: str, fold: int = -1) -> np.ndarray:
        s = self.splits
        return s[(s["seed"] == seed) & (s["fold"] == fold) & (s["split"] == split)]["row"].to_numpy()

    def member_rows(self, member: pd.Series, split: str) -> np.ndarray:
        """The rows a member (a summary row) used for ``split``."""
        return self.rows(int(member["seed"]), split, _fold(member))

    @cached_property
    def weights(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for f in sorted((self.path / "weights").glob("part-*.safetensors")):
            out.update(load_file(str(f)))
        return out

    def member_prefix(self, row: pd.Series) -> str:
        fold = _fold(row)
        return f"{row['variant']}/seed={int(row['seed'])}" + (f"/fold={fold}" if fold >= 0 else "")

    def params(self, members: pd.DataFrame) -> list[torch.Tensor]:
        """The weights of ``members`` (rows of the summary), stacked on a leading member axis."""
        prefixes = [self.member_prefix(r) for _, r in members.iterrows()]
        out = []
        for layer in range(self.arch.n_layers):
            for kind in ("kernel", "bias"):
                out.append(torch.stack([self.weights[f"{p}/{kind}_{layer}"] for p in prefixes]))
        return out

    def kernels(self, members: pd.DataFrame, layer: int) -> np.ndarray:
        """Layer ``layer``'s kernel of each member: ``(K, fan_in, units)``."""
        return np.stack([self.weights[f"{self.member_prefix(r)}/kernel_{layer}"].numpy() for _, r in members.iterrows()])

    def predict(self, members: pd.DataFrame, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """What each member outputs at the points ``x`` (original units): ``(K, N, n_outputs)``.
        All members in one batched call (or ``chunk`` members at a time), each with its own input scaling."""
        chunk = chunk or len(members)
        out = []
        for start in range(0, len(members), chunk):
            part = members.iloc[start : start + chunk]
            out.append(output_activation(self.arch, logits_for(self.arch, self.params(part), self.inputs(part, x))).numpy())
        return np.concatenate(out)

    def inputs(self, members: pd.DataFrame, x: np.ndarray) -> np.ndarray:
        """What the networks of ``members`` take as input at the points ``x`` (original units):
        ``x`` itself, or with ``standardize`` each member's own scaling, ``(K, N, d)``."""
        if not self.experiment.spec.data.standardize:
            return x
        scaled = []
        for _, r in members.iterrows():
            mean, scale = standardizer(self.X, self.member_rows(r, "train"))
            scaled.append((x - mean) / scale)
        return np.stack(scaled)

    def mc_predict(self, members: pd.DataFrame, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MC dropout's predictive mean and standard deviation at ``x`` (original units) for
        ``members`` of one variant (its ``mc_dropout`` passes), all members batched in each pass."""
        variant = next(v for v in self.variants if v.name == members["variant"].iloc[0])
        techniques = [Experiment.techniques(variant)] * len(members)
        seeds = members["seed"].astype(int).tolist()
        return mc_predict(self.arch, self.params(members), techniques, seeds, self.inputs(members, x), variant.mc_dropout)

    def median_member(self, variant: str) -> pd.Series:
        """The representative member of a variant: the median by held-out loss (the lower middle)."""
        rows = self.members(variant).sort_values(f"{self.held_out}_loss", kind="stable")
        return rows.iloc[(len(rows) - 1) // 2]


def _fold(member: pd.Series) -> int:
    """A member's fold, -1 when the experiment has no folds (as splits.parquet stores it)."""
    fold = member.get("fold", -1)
    return -1 if pd.isna(fold) else int(fold)
