"""How many frames a second the playground can draw: the issue's workload, 4 variants x 10 seeds
of 2-64-64-1 on 200 points (moons), each frame one epoch of every variant plus everything the page
draws (decision regions and share-of-seeds maps, curves, histograms), encoded as sent.

    python benchmarks/playground.py [--epochs 300]

Prints the frames per second over the run and at its start and end, and what a frame costs
(training vs drawing). The browser test prints what a page receives.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from reglab.playground.server import encode_frame
from reglab.playground.session import DEFAULT_SETUP, Session

SETUP = copy.deepcopy(DEFAULT_SETUP)
SETUP["variants"] = [
    {"name": "baseline"},
    {"name": "dropout 0.3", "dropout": 0.3},
    {"name": "l2 1e-3", "l2": 0.001},
    {"name": "early stopping", "early_stopping": {"patience": 20, "min_delta": 0.0, "restore_best_weights": True}},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `reglab playground` runs
    setup = copy.deepcopy(SETUP)
    setup["train"]["epochs"] = args.epochs
    session = Session(Path(tempfile.mkdtemp()))
    session.apply(setup)
    steps, draws, frames = [], [], []
    start = time.perf_counter()
    while not session.done:
        t0 = time.perf_counter()
        session.step()
        t1 = time.perf_counter()
        encode_frame(*session.frame())
        t2 = time.perf_counter()
        steps.append(t1 - t0)
        draws.append(t2 - t1)
        frames.append(t2)
    total = time.perf_counter() - start
    n = len(frames)
    tenth = max(1, n // 10)
    first = tenth / (frames[tenth - 1] - start)
    last = tenth / (frames[-1] - frames[-tenth - 1])
    print(f"4 variants x 10 seeds of 2-64-64-1 on 200 points, {n} frames in {total:.1f} s: {n / total:.1f} frames/s "
          f"(first tenth {first:.1f}, last tenth {last:.1f})")
    print(f"per frame: training {1000 * statistics.median(steps):.0f} ms, drawing {1000 * statistics.median(draws):.0f} ms (medians)")


if __name__ == "__main__":
    main()
