"""The weight statistics of the summary, for the techniques that act on the weights."""

from __future__ import annotations

from ..architecture import layers


def weight_columns(ctx) -> dict[str, list]:
    """Per member: the share of exactly-zero kernel weights per layer (``zeros_<layer>``), and the
    inputs whose every first-layer weight is zero (``dropped_inputs``: the network ignores them)."""
    kernels = [layer.kernel for layer in layers(ctx.result.params)]
    out: dict[str, list] = {}
    for layer, W in enumerate(kernels):
        out[f"zeros_{layer}"] = (W == 0).float().mean(dim=(1, 2)).tolist()
    dead = (kernels[0] == 0).all(dim=2).cpu().numpy()  # (K, n_inputs)
    out["dropped_inputs"] = [";".join(str(f) for f, d in zip(ctx.feature_names, row) if d) for row in dead]
    return out
