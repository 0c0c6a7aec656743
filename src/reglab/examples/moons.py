"""A first look at the engine: the L1/L2 origin notebook's moons workload, many seeds per variant.

make_moons(100, noise=0.25, random_state=2), Dense(128, relu) x 2 -> sigmoid, Adam(0.01), batch 32,
Keras's validation_split=0.2 (the last 20 rows). Every variant trains over the same seeds in one
population, and the table gives the mean and 95 % confidence interval across seeds.

    python -m reglab.examples.moons [--seeds 10] [--epochs 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import make_moons

from reglab.engine import L1, L2, Architecture, Dropout, EarlyStopping, Member, train
from reglab.report.stats import format_mean_ci

VARIANTS = {
    "baseline": (),
    "l1 1e-3": (L1(1e-3),),
    "l2 1e-3": (L2(1e-3),),
    "dropout 0.5": (Dropout(0.5),),
    "early stopping": (EarlyStopping(patience=100, restore_best_weights=True),),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X, y = make_moons(100, noise=0.25, random_state=2)
    split = 80  # Keras validation_split=0.2: the last 20 rows validate
    arch = Architecture(n_inputs=2, hidden=(128, 128), activation="relu", task="binary")
    members = [
        Member(seed=seed, learning_rate=0.01, techniques=techniques, label=name)
        for name, techniques in VARIANTS.items()
        for seed in range(args.seeds)
    ]
    start = time.perf_counter()
    bars = None
    if not args.quiet:  # the same progress bar as `reglab run`, on stderr
        from ..commands import ChunkBars

        bars = ChunkBars()
    try:
        bar = bars.add(f"moons ({len(members)} networks)", len(members), args.epochs) if bars else None
        progress = (lambda epoch, n_training: bar(epoch + 1, n_training)) if bar else None
        result = train(arch, members, X[:split], y[:split], validation_data=(X[split:], y[split:]), epochs=args.epochs, on_epoch_end=progress)
    finally:
        if bars:
            bars.close()
    elapsed = time.perf_counter() - start
    on_train = result.evaluate(X[:split], y[:split])
    on_val = result.evaluate(X[split:], y[split:])

    labels = np.array([m.label for m in members])
    print(
        f"moons workload: {len(VARIANTS)} variants x {args.seeds} seeds = {len(members)} networks, "
        f"up to {args.epochs} epochs, trained as one population in {elapsed:.1f} s"
    )
    header = f"{'variant':<16}{'train loss':>18}{'val loss':>18}{'val accuracy':>18}{'epochs run':>12}"
    print(header)
    print("-" * len(header))
    for name in VARIANTS:
        rows = labels == name
        cells = [format_mean_ci(v) for v in (on_train["data_loss"][rows], on_val["data_loss"][rows], on_val["accuracy"][rows])]
        print(f"{name:<16}{cells[0]:>18}{cells[1]:>18}{cells[2]:>18}{result.epochs_run[rows].mean():>12.0f}")
    print("(mean ± 95 % CI across seeds; losses without the penalty term)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
