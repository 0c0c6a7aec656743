"""How fast is the population engine? Model-epochs per second on the seed's L1 workload.

Workload: make_moons(100, noise=0.25, random_state=2); Dense(128, relu) -> Dense(128, relu) ->
Dense(1, sigmoid); Adam(0.01); batch 32; validation_split=0.2 (the last 20 rows validate); with
``kernel_regularizer=l1(0.001)`` on both hidden layers as in the notebook. One model-epoch is one
network trained for one epoch (3 steps of 32/32/16 rows, then a validation pass on 20 rows).

Compared, in the same run:
- reglab at K = 1, 10, 100, 400 networks per population, on its compiled engine (the default on
  a CPU) and on the eager one (``engine="eager"``, Keras's exact bits);
- a hand-written JAX population at the same K (``jax_population``): ``jax.vmap`` of a one-model
  epoch (a per-member shuffle, steps of 32/32/16 rows, a validation pass), ``jax.jit`` of a
  ``lax.scan`` over all the epochs, ``optax.adam(0.01, eps=1e-7)``, Glorot-uniform kernels. reglab
  and JAX are measured in turns (compiled, eager, JAX), ``--rounds`` times per K, so drift hits
  all three; the medians are printed, and the compile time (excluded from the rate) apart. JAX comes only with the ``bench``
  extra (``pip install -e .[bench]``); without it the JAX column is skipped;
- a plain one-model-at-a-time PyTorch loop (nn.Sequential, torch.optim.Adam, the same batching);
- Keras 3 on the torch backend (fewer epochs than the others, scaled; it says so);
- the machine's batched-matmul FLOP/s for the same shapes, measured here, and the share of it
  reglab reaches (one model-epoch is about 8.7 MFLOP with validation).

    python benchmarks/engine.py            # the full table
    python benchmarks/engine.py --quick    # a minute or two; last line is the summary
    python benchmarks/engine.py --rounds 5 # more turns per K (default 3)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch
from sklearn.datasets import make_moons

from reglab.engine import L1, Architecture, Member, train

X, Y = make_moons(100, noise=0.25, random_state=2)
X = X.astype(np.float32)
Y = Y.astype(np.float32)
SPLIT = 80
HIDDEN = 128


def model_epoch_flops() -> float:
    """Multiply-adds x 2 of one model-epoch: forward+backward on 80 rows, forward on 20."""
    per_row = 2 * (2 * HIDDEN + HIDDEN * HIDDEN + HIDDEN)
    return 3 * per_row * SPLIT + per_row * (len(X) - SPLIT)


def reglab_rate(K: int, epochs: int, engine: str = "compiled") -> float:
    arch = Architecture(n_inputs=2, hidden=(HIDDEN, HIDDEN), task="binary")
    members = [Member(seed=s, learning_rate=0.01, techniques=(L1(0.001),)) for s in range(K)]
    train(arch, members, X, Y, validation_split=0.2, epochs=2, engine=engine)  # warm-up (and the compile cache)
    start = time.perf_counter()
    train(arch, members, X, Y, validation_split=0.2, epochs=epochs, engine=engine)
    return K * epochs / (time.perf_counter() - start)


def jax_population(K: int, epochs: int):
    """A hand-written JAX peer: K models vmapped, `epochs` epochs as one jitted lax.scan.

    Returns (run, compile seconds); run() trains the K members from scratch and returns their
    validation losses, shape (epochs, K). Compiling and a first execution happen here, untimed.
    """
    import jax
    import jax.numpy as jnp
    import optax

    x, y, xv, yv = (jnp.asarray(a) for a in (X[:SPLIT], Y[:SPLIT], X[SPLIT:], Y[SPLIT:]))
    opt = optax.adam(0.01, eps=1e-7)  # Keras's epsilon; optax adds it after the bias correction
    glorot = jax.nn.initializers.glorot_uniform()
    shapes = [(2, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)]

    def init(key):  # one model: Glorot-uniform kernels, zero biases
        params = [(glorot(k, s), jnp.zeros(s[1])) for k, s in zip(jax.random.split(key, 3), shapes)]
        return params, opt.init(params)

    def loss(params, xb, yb):  # mean sigmoid BCE + l1(0.001) on both hidden kernels
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        logits = (h @ params[-1][0] + params[-1][1])[:, 0]
        l1 = sum(jnp.abs(W).sum() for W, _ in params[:-1])
        return optax.sigmoid_binary_cross_entropy(logits, yb).mean() + 0.001 * l1

    def epoch(carry, key):  # one model, one epoch: shuffled batches of 32/32/16, then validation
        params, state = carry
        perm = jax.random.permutation(key, SPLIT)
        for lo, hi in ((0, 32), (32, 64), (64, SPLIT)):
            idx = perm[lo:hi]
            grads = jax.grad(loss)(params, x[idx], y[idx])
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return (params, state), loss(params, xv, yv)

    def population(key):  # all K members, all epochs
        init_key, shuffle_key = jax.random.split(key)
        carry = jax.vmap(init)(jax.random.split(init_key, K))
        keys = jax.random.split(shuffle_key, epochs * K).reshape(epochs, K)  # per member, per epoch
        return jax.lax.scan(jax.vmap(epoch), carry, keys)[1]

    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = jax.jit(population).lower(key).compile()
    compile_s = time.perf_counter() - start
    compiled(key).block_until_ready()
    return (lambda: compiled(key).block_until_ready()), compile_s


def plain_torch_rate(epochs: int) -> float:
    """One model at a time, the way a tutorial writes it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01, eps=1e-7)
    x, y = torch.from_numpy(X[:SPLIT]), torch.from_numpy(Y[:SPLIT, None])
    xv, yv = torch.from_numpy(X[SPLIT:]), torch.from_numpy(Y[SPLIT:, None])
    hidden = [model[0].weight, model[2].weight]
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run(n):
        for _ in range(n):
            perm = torch.randperm(SPLIT)
            for start in range(0, SPLIT, 32):
                idx = perm[start : start + 32]
                loss = loss_fn(model(x[idx]), y[idx]) + 0.001 * sum(w.abs().sum() for w in hidden)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                loss_fn(model(xv), yv)

    run(2)
    start = time.perf_counter()
    run(epochs)
    return epochs / (time.perf_counter() - start)


def keras_rate(epochs: int) -> float:
    import keras

    keras.utils.set_random_seed(0)
    reg = keras.regularizers.l1(0.001)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(HIDDEN, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(HIDDEN, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, validation_split=0.2, verbose=0)
    start = time.perf_counter()
    model.fit(X, Y, epochs=epochs, validation_split=0.2, verbose=0)
    return epochs / (time.perf_counter() - start)


def matmul_peak(K: int = 100, repeats: int = 30, tries: int = 5) -> float:
    """FLOP/s of the batched matmuls one training step does, at the population size K: the best of
    ``tries`` timings (a peak, so another process taking a core for a moment does not lower it)."""
    h = torch.randn(K, 32, HIDDEN)
    W = torch.randn(K, HIDDEN, HIDDEN)
    g = torch.randn(K, 32, HIDDEN)
    ops = [lambda: torch.bmm(h, W), lambda: torch.bmm(h.transpose(1, 2), g), lambda: torch.bmm(g, W.transpose(1, 2))]
    for op in ops:
        op()
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        for _ in range(repeats):
            for op in ops:
                op()
        best = min(best, time.perf_counter() - start)
    return repeats * len(ops) * 2 * K * 32 * HIDDEN * HIDDEN / best


def main() -> None:
    parser = argparse.ArgumentParser(description="reglab engine benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer epochs; finishes in a minute or two")
    parser.add_argument("--rounds", type=int, default=3, help="turns of reglab then JAX per K (medians)")
    args = parser.parse_args()
    quick = args.quick
    torch.manual_seed(0)

    sizes = {1: 60, 10: 60, 100: 30, 400: 10} if quick else {1: 300, 10: 300, 100: 200, 400: 60}
    plain_epochs = 60 if quick else 300
    keras_epochs = 5 if quick else 30

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    try:
        import jax
        import optax

        print(f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform} (XLA's own thread pool)")
    except ImportError:
        jax = None
        print("JAX column skipped: jax/optax not installed (pip install -e .[bench])")
    peak = matmul_peak()
    ceiling = peak / model_epoch_flops()
    print(f"batched matmul, these shapes: {peak / 1e9:.0f} GFLOP/s -> ceiling {ceiling:,.0f} model-epochs/s")
    plain = plain_torch_rate(plain_epochs)
    print(f"plain PyTorch loop, one model at a time ({plain_epochs} epochs): {plain:,.0f} model-epochs/s")
    ker = keras_rate(keras_epochs)
    print(f"Keras 3, torch backend ({keras_epochs} epochs only, scaled): {ker:,.0f} model-epochs/s")
    print()
    print(f"medians of {args.rounds} rounds" + (", each reglab then JAX" if jax is not None else ""))
    print(
        f"{'K':>5} {'epochs':>7} {'reglab m-e/s':>13} {'eager m-e/s':>12} {'JAX m-e/s':>10} {'reglab/JAX':>11}"
        f" {'vs plain':>9} {'vs Keras':>9} {'% of matmul peak':>17}"
    )
    rates, jax_rates, compile_s = {}, {}, {}
    for K, epochs in sizes.items():
        if jax is not None:
            run_jax, compile_s[K] = jax_population(K, epochs)
        ours, eager, theirs = [], [], []
        for _ in range(args.rounds):
            ours.append(reglab_rate(K, epochs))
            eager.append(reglab_rate(K, max(epochs // 4, 10), "eager"))
            if jax is not None:
                start = time.perf_counter()
                run_jax()
                theirs.append(K * epochs / (time.perf_counter() - start))
        rate = rates[K] = float(np.median(ours))
        eager_rate = float(np.median(eager))
        if jax is not None:
            jax_rates[K] = float(np.median(theirs))
            vs_jax = f"{jax_rates[K]:>10,.0f} {rate / jax_rates[K]:>10.2f}x"
        else:
            vs_jax = f"{'-':>10} {'-':>11}"
        print(
            f"{K:>5} {epochs:>7} {rate:>13,.0f} {eager_rate:>12,.0f} {vs_jax}"
            f" {rate / plain:>8.1f}x {rate / ker:>8.0f}x {100 * rate / ceiling:>16.0f}%"
        )
    r = rates[100]
    if jax is None:
        print(f"K=100: {r / plain:.1f}x plain PyTorch, {r / ker:.0f}x Keras, {100 * r / ceiling:.0f}% of matmul peak")
        return
    print("JAX compile, excluded from its rate: " + ", ".join(f"K={K} {s:.1f}s" for K, s in compile_s.items()))
    ratios = ", ".join(f"K={K}: {rates[K] / jax_rates[K]:.2f}x JAX" for K in (1, 10, 100))
    print(f"{ratios}, {100 * r / ceiling:.0f}% of matmul peak")


if __name__ == "__main__":
    main()
