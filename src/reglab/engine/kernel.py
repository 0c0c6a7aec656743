"""The compiled engine's kernel: one call trains a whole population for a run of epochs.

Each member is its own loop (``prange`` over members): its forward pass, backward pass, penalty
gradients, optimizer step and update transforms are written out element by element in a fixed
order, reading only its own rows of every array. Nothing it computes depends on which members
share the call, how many threads run it or where its rows sit in memory, so purity holds by
construction. The loops never reorder a sum (of fast-math, only FMA contraction: see
:func:`njit`); LLVM still vectorizes the inner loops, which run over independent output elements.

The kernel knows no technique. It runs a fixed vocabulary of generic operations whose strengths
are per-member arrays (a zero strength is the identity, and is skipped): a kernel penalty
``|w|`` and one ``w**2`` per layer, a Bernoulli mask, a multiplicative and an additive normal
noise on each layer's activations, a shrink factor before the update, a column-norm bound and a
soft threshold after it, and an affine map of the targets. Techniques fill these in
(:mod:`reglab.engine.compiled`), the random streams their noise is keyed by included.

Randomness is reglab's counter-based keys (:mod:`reglab.engine.rng`) written out here bit for bit:
the same row orders and dropout masks as the eager path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit as _njit, prange



def njit(*args, **kwargs):
    """numba's njit, cached on disk, with numpy's error model (Python's checks every division for
    a zero divisor, which keeps LLVM from vectorizing the loops) and one fast-math flag only:
    ``contract``, which fuses a product and the sum it feeds into one FMA (15 % of a step at K = 1).
    A fused operation is fixed by the code, not by the data's position, so it changes no member's
    purity; it rounds once where two operations round twice, so the bits differ from a CPU
    without FMA (as BLAS's do). No reassociation: every sum runs in the order written."""
    return _njit(*args, cache=True, error_model="numpy", fastmath={"contract"}, **kwargs)


_M32 = np.uint64(0xFFFFFFFF)
STREAM_SHUFFLE = 2
STREAM_NOISE = 3

# Codes shared with reglab.engine.compiled.
ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_LINEAR = 0, 1, 2, 3
LOSS_BCE_CLIP, LOSS_BCE_LOGITS, LOSS_CCE_CLIP, LOSS_CCE_LOGITS, LOSS_MSE, LOSS_MAE = 0, 1, 2, 3, 4, 5
METRIC_BINARY_ACC, METRIC_CAT_ACC, METRIC_MSE, METRIC_MAE = 0, 1, 2, 3
OPT_ADAM, OPT_SGD = 0, 1

_EPSILON = np.float32(1e-7)  # keras.config.epsilon()


# -- counter-based randomness (rng.py's functions, element by element) -------------------------


@njit(inline="always")
def _pcg(x):
    state = (x * np.uint64(747796405) + np.uint64(2891336453)) & _M32
    word = (((state >> ((state >> np.uint64(28)) + np.uint64(4))) ^ state) * np.uint64(277803737)) & _M32
    return (word >> np.uint64(22)) ^ word


@njit
def _key(seed, w1, w2, w3, w4, w5, n_words):
    """rng.derive_keys(seed, w1, ..., w_n) for n_words <= 5 (words are non-negative)."""
    h = _pcg(np.uint64(seed) & _M32)
    h = _pcg(h ^ (np.uint64(w1) & _M32))
    if n_words > 1:
        h = _pcg(h ^ (np.uint64(w2) & _M32))
    if n_words > 2:
        h = _pcg(h ^ (np.uint64(w3) & _M32))
    if n_words > 3:
        h = _pcg(h ^ (np.uint64(w4) & _M32))
    if n_words > 4:
        h = _pcg(h ^ (np.uint64(w5) & _M32))
    return h


@njit(inline="always")
def _lowbias32(x):
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & _M32
    return x ^ (x >> np.uint64(16))


@njit(inline="always")
def _noise_key(seed, stream, epoch, step, layer):
    return _key(seed, STREAM_NOISE, stream, epoch, step, layer, 5)


@njit
def _permutation(seed, epoch, n, out, bits):
    """rng.permutations for one member: a stable sort of its signed 32-bit row keys."""
    key = _key(seed, STREAM_SHUFFLE, epoch, 0, 0, 0, 2)
    for i in range(n):
        b = np.int64(_lowbias32(key ^ np.uint64(i)))
        bits[i] = b - 4294967296 if b >= 2147483648 else b
    order = np.argsort(bits[:n], kind="mergesort")
    for i in range(n):
        out[i] = order[i]


@njit
def _keep_mask(key, n, threshold, out):
    """rng.keep_mask for one member: 16 bits per element, 0 where they fall below threshold."""
    for j in range((n + 1) // 2):
        b = _lowbias32(key ^ np.uint64(j))
        lo = np.int64(b & np.uint64(0xFFFF))
        out[2 * j] = np.float32(1.0) if lo >= threshold else np.float32(0.0)
        if 2 * j + 1 < n:
            hi = np.int64((b >> np.uint64(16)) & np.uint64(0xFFFF))
            out[2 * j + 1] = np.float32(1.0) if hi >= threshold else np.float32(0.0)


@njit
def _normal(key, n, out):
    """rng.normal for one member: Box-Muller from two 24-bit uniforms, blocks padded to 32."""
    padded = ((n + 31) // 32) * 32
    scale = np.float32(1.0 / (1 << 24))
    two_pi = np.float32(2.0 * math.pi)
    for j in range(n):
        b1 = _lowbias32(key ^ np.uint64(j))
        b2 = _lowbias32(key ^ np.uint64(padded + j))
        u1 = np.float32(((b1 >> np.uint64(8)) & np.uint64(0xFFFFFF)) + np.uint64(1)) * scale
        u2 = np.float32((b2 >> np.uint64(8)) & np.uint64(0xFFFFFF)) * scale
        out[j] = np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(two_pi * u2)


# -- one layer -----------------------------------------------------------------------------------
# Loops index views with their own loop counters only: numba then knows the index is not negative,
# and LLVM vectorizes the innermost loop (over a layer's units), which has no reduction in it.


@njit
def _mat(buf, offset, rows, cols):
    """``buf[offset:offset + rows * cols]`` as a ``(rows, cols)`` matrix (a view)."""
    return buf[offset : offset + rows * cols].reshape(rows, cols)


@njit
def _matmul(A, M, out):
    """out = A @ M, each element summed over the middle index in order from zero, so that
    the result is the plain loop's to the bit. Two rows of A and four of M at a time: each loaded
    value of M serves eight products, and the inner loop (over M's columns) vectorizes."""
    R, J = A.shape
    C = M.shape[1]
    r = 0
    while r + 2 <= R:
        o0, o1 = out[r], out[r + 1]
        for c in range(C):
            o0[c] = np.float32(0.0)
            o1[c] = np.float32(0.0)
        j = 0
        while j + 4 <= J:
            m0, m1, m2, m3 = M[j], M[j + 1], M[j + 2], M[j + 3]
            a0, a1, a2, a3 = A[r, j], A[r, j + 1], A[r, j + 2], A[r, j + 3]
            b0, b1, b2, b3 = A[r + 1, j], A[r + 1, j + 1], A[r + 1, j + 2], A[r + 1, j + 3]
            for c in range(C):
                x = o0[c]
                y = o1[c]
                x += a0 * m0[c]
                y += b0 * m0[c]
                x += a1 * m1[c]
                y += b1 * m1[c]
                x += a2 * m2[c]
                y += b2 * m2[c]
                x += a3 * m3[c]
                y += b3 * m3[c]
                o0[c] = x
                o1[c] = y
            j += 4
        while j < J:
            m0 = M[j]
            a0, b0 = A[r, j], A[r + 1, j]
            for c in range(C):
                o0[c] += a0 * m0[c]
                o1[c] += b0 * m0[c]
            j += 1
        r += 2
    if r < R:
        o0 = out[r]
        for c in range(C):
            o0[c] = np.float32(0.0)
        for j in range(J):
            m0 = M[j]
            a0 = A[r, j]
            for c in range(C):
                o0[c] += a0 * m0[c]


@njit
def _dense(h, W, bias, z):
    """z = h @ W + bias for the rows of h, in Keras's order (the product, then the bias)."""
    _matmul(h, W, z)
    for b in range(h.shape[0]):
        zr = z[b]
        for o in range(W.shape[1]):
            zr[o] += bias[o]


@njit
def _transpose(a, out):
    """out = a.T, in 16 x 16 tiles (a plain loop strides through one of the two a row at a time)."""
    R, C = a.shape
    for r0 in range(0, R, 16):
        r1 = min(r0 + 16, R)
        for c0 in range(0, C, 16):
            c1 = min(c0 + 16, C)
            for r in range(r0, r1):
                ar = a[r]
                for c in range(c0, c1):
                    out[c, r] = ar[c]


@njit
def _backward_dense(h, g, W, gW, gb, wt, g_prev, want_prev):
    """The kernel's and bias's gradients of z = h @ W + b from g = dL/dz (h.T @ g); with
    want_prev, dL/dh = g @ W.T into g_prev (through wt, W's transpose, so that the inner loop
    runs along rows)."""
    n_out = W.shape[1]
    _matmul(h.T, g, gW)
    for o in range(n_out):
        gb[o] = np.float32(0.0)
    for b in range(h.shape[0]):
        gr = g[b]
        for o in range(n_out):
            gb[o] += gr[o]
    if want_prev:
        _transpose(W, wt)
        _matmul(g, wt, g_prev)


@njit
def _activate(act, z):
    for b in range(z.shape[0]):
        r = z[b]
        if act == ACT_RELU:
            for i in range(r.shape[0]):
                r[i] = r[i] if (r[i] > np.float32(0.0) or r[i] != r[i]) else np.float32(0.0)
        elif act == ACT_TANH:
            for i in range(r.shape[0]):
                r[i] = np.tanh(r[i])
        elif act == ACT_SIGMOID:
            for i in range(r.shape[0]):
                r[i] = np.float32(1.0) / (np.float32(1.0) + np.exp(-r[i]))


@njit
def _activation_backward(act, g, a):
    """g *= d act / dz, from the activation's output a (as autograd's backward does)."""
    for b in range(g.shape[0]):
        gr, ar = g[b], a[b]
        if act == ACT_RELU:
            for i in range(gr.shape[0]):
                gr[i] = gr[i] if ar[i] > np.float32(0.0) else np.float32(0.0)
        elif act == ACT_TANH:
            for i in range(gr.shape[0]):
                gr[i] = gr[i] * (np.float32(1.0) - ar[i] * ar[i])
        elif act == ACT_SIGMOID:
            for i in range(gr.shape[0]):
                gr[i] = gr[i] * (np.float32(1.0) - ar[i]) * ar[i]


# -- losses and metrics, one row at a time ---------------------------------------------------------


@njit
def _sigmoid(z):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-z))


@njit(inline="always")
def _clip(x, lo, hi):
    """min(max(x, lo), hi), NaN staying NaN (as torch.clamp): a diverged member must see a NaN
    loss and stop, not a clipped finite one."""
    return x if x != x else min(max(x, lo), hi)


@njit(inline="always")
def _softmax_parts(z, O):
    """The largest logit and the sum of exp(z - largest): softmax(z)[o] = exp(z[o] - top) / total."""
    top = z[0]
    for o in range(1, O):
        top = max(top, z[o])
    total = np.float32(0.0)
    for o in range(O):
        total += np.exp(z[o] - top)
    return top, total


@njit
def _row_loss(kind, z, y, O, scale, grad, want_grad):
    """The loss of one row (its logits z[0:O], targets y[0:O]); with want_grad, its gradient
    times ``scale`` (1 / batch rows) into grad[0:O]. Keras's formulas (see losses.py)."""
    eps = _EPSILON
    one = np.float32(1.0)
    loss = 0.0
    if kind == LOSS_BCE_CLIP or kind == LOSS_BCE_LOGITS:
        for o in range(O):
            s = _sigmoid(z[o])
            if kind == LOSS_BCE_CLIP:
                p = _clip(s, eps, one - eps)
                loss += -(y[o] * np.log(p) + (one - y[o]) * np.log(one - p))
                if want_grad:
                    if s >= eps and s <= one - eps:
                        grad[o] = (p - y[o]) / max((one - p) * p, np.float32(1e-12)) * (s * (one - s)) * (scale / np.float32(O))
                    else:
                        grad[o] = np.float32(0.0)
            else:
                x = z[o]
                loss += max(x, np.float32(0.0)) - x * y[o] + np.log1p(np.exp(-abs(x)))
                if want_grad:
                    grad[o] = (s - y[o]) * (scale / np.float32(O))
        return loss / O
    if kind == LOSS_CCE_CLIP or kind == LOSS_CCE_LOGITS:
        top, total = _softmax_parts(z, O)
        if kind == LOSS_CCE_LOGITS:
            lse = np.log(total)
            ysum = np.float32(0.0)
            for o in range(O):
                loss += -y[o] * (z[o] - top - lse)
                ysum += y[o]
            if want_grad:
                for o in range(O):
                    p = np.exp(z[o] - top) / total
                    grad[o] = (p * ysum - y[o]) * scale
            return loss
        # softmax, renormalized, clipped, then the log (as Keras's torch backend)
        S = np.float32(0.0)
        for o in range(O):
            S += np.exp(z[o] - top) / total
        for o in range(O):
            q = (np.exp(z[o] - top) / total) / S
            c = _clip(q, eps, one - eps)
            loss += -y[o] * np.log(c)
        if want_grad:
            # d/dq of -sum y log clip(q), back through q = p / S and the softmax.
            dot_q = np.float32(0.0)
            for o in range(O):
                p = np.exp(z[o] - top) / total
                q = p / S
                gq = -y[o] / q if (q >= eps and q <= one - eps) else np.float32(0.0)
                grad[o] = gq
                dot_q += gq * p
            dot_p = np.float32(0.0)
            for o in range(O):
                p = np.exp(z[o] - top) / total
                grad[o] = grad[o] / S - dot_q / (S * S)
                dot_p += grad[o] * p
            for o in range(O):
                p = np.exp(z[o] - top) / total
                grad[o] = p * (grad[o] - dot_p) * scale
        return loss
    # regression: mean over the outputs
    for o in range(O):
        d = y[o] - z[o]
        if kind == LOSS_MSE:
            loss += d * d
            if want_grad:
                grad[o] = -(np.float32(2.0) * d) * (scale / np.float32(O))
        else:
            loss += abs(d)
            if want_grad:
                sign = np.float32(1.0) if d > 0 else (np.float32(-1.0) if d < 0 else np.float32(0.0))
                grad[o] = -sign * (scale / np.float32(O))
    return loss / O


@njit
def _row_metric(kind, z, y, O):
    if kind == METRIC_BINARY_ACC:
        hit = 0.0
        for o in range(O):
            pred = np.float32(1.0) if _sigmoid(z[o]) > np.float32(0.5) else np.float32(0.0)
            hit += 1.0 if pred == y[o] else 0.0
        return hit / O
    if kind == METRIC_CAT_ACC:  # the argmax of the softmax (as Keras's), which rounding may tie
        top, total = _softmax_parts(z, O)
        best, truth = 0, 0
        best_p = np.exp(z[0] - top) / total
        for o in range(1, O):
            p = np.exp(z[o] - top) / total
            if p > best_p:
                best, best_p = o, p
            if y[o] > y[truth]:
                truth = o
        return 1.0 if best == truth else 0.0
    total = 0.0
    for o in range(O):
        d = y[o] - z[o]
        total += d * d if kind == METRIC_MSE else abs(d)
    return total / O


# -- one member ------------------------------------------------------------------------------------


@njit
def _sum_abs_or_square(w, square):
    """sum |w| (or sum w**2) in float64, over eight partial sums (element i into sum i % 8,
    then the eight in order): a fixed order, eight times fewer dependent additions in a row."""
    parts = np.zeros(8, dtype=np.float64)
    n = w.shape[0]
    full = n - n % 8
    for i in range(0, full, 8):
        for j in range(8):
            x = np.float64(w[i + j])
            parts[j] += x * x if square else abs(x)
    for i in range(full, n):
        x = np.float64(w[i])
        parts[i - full] += x * x if square else abs(x)
    total = 0.0
    for j in range(8):
        total += parts[j]
    return total


@njit
def _penalty(params, widths, koff, l1, l2):
    """sum over layers of l1 * sum|W| + l2 * sum W**2 (float64 sums), this member's."""
    total = 0.0
    for layer in range(len(widths) - 1):
        W = params[koff[layer] : koff[layer] + widths[layer] * widths[layer + 1]]
        if l1[layer] > 0:
            total += l1[layer] * _sum_abs_or_square(W, False)
        if l2[layer] > 0:
            total += l2[layer] * _sum_abs_or_square(W, True)
    return total


@njit
def _penalties_and_gradients(params, grad, widths, koff, l1, l2):
    """The kernel penalties' value (as :func:`_penalty`) and their gradients added into grad
    (``l1 * sign(w)``, ``w * (2 * l2)``), one pass over each penalized kernel."""
    one, zero = np.float32(1.0), np.float32(0.0)
    total = 0.0
    for layer in range(len(widths) - 1):
        if l1[layer] > 0 or l2[layer] > 0:
            kw, n = koff[layer], widths[layer] * widths[layer + 1]
            W, gW = params[kw : kw + n], grad[kw : kw + n]
            c1, c2 = l1[layer], np.float32(2.0) * l2[layer]
            if l1[layer] > 0:
                total += l1[layer] * _sum_abs_or_square(W, False)
                for i in range(n):
                    w = W[i]
                    gW[i] += (one if w > 0 else (-one if w < 0 else zero)) * c1
            if l2[layer] > 0:
                total += l2[layer] * _sum_abs_or_square(W, True)
                for i in range(n):
                    gW[i] += W[i] * c2
    return total


@njit
def _mask_and_noise(out, f, noise, seed, epoch, step, layer, streams, drop_threshold, drop_keep, gd_std, gn_std):
    """Hidden layer ``layer``'s training-time noise on ``out`` (B, units), in the order of the
    techniques' names: a Bernoulli mask, multiplicative noise, additive noise; ``f`` gets the
    product of the multiplicative factors (for the backward pass)."""
    B, n_units = out.shape
    n = B * n_units
    flat_out, flat_f = out.reshape(n), f.reshape(n)
    for i in range(n):
        flat_f[i] = np.float32(1.0)
    if drop_keep < 1:  # kept units scaled up by 1 / keep (keyed by the hidden layer's index)
        _keep_mask(_noise_key(seed, streams[0], epoch, step, layer), n, drop_threshold, noise)
        for i in range(n):
            flat_out[i] = (flat_out[i] * noise[i]) / drop_keep
            flat_f[i] = noise[i] / drop_keep
    if gd_std > 0:  # (noise is keyed by the layer's index counting the inputs as 0)
        _normal(_noise_key(seed, streams[1], epoch, step, layer + 1), n, noise)
        for i in range(n):
            m = np.float32(1.0) + noise[i] * gd_std
            flat_out[i] = flat_out[i] * m
            flat_f[i] = flat_f[i] * m
    if gn_std > 0:
        _normal(_noise_key(seed, streams[2], epoch, step, layer + 1), n, noise)
        for i in range(n):
            flat_out[i] = flat_out[i] + noise[i] * gn_std


@njit
def _update(params, grad, m1, m2, t, lr, opt_kind, beta_1, beta_2, c1, c2, epsilon, momentum, nesterov):
    """One step of Keras's Adam or SGD on the whole flat buffer (see optimizers.py); ``c1``, ``c2``
    are ``1 - beta`` as Keras computes them (in double precision, then float32)."""
    one = np.float32(1.0)
    P = params.shape[0]
    if opt_kind == OPT_ADAM:
        alpha = lr * np.sqrt(one - beta_2 ** np.float32(t)) / (one - beta_1 ** np.float32(t))
        for i in range(P):
            gi = grad[i]
            m1[i] = m1[i] * beta_1 + gi * c1
            m2[i] = m2[i] * beta_2 + (gi * gi) * c2
            params[i] = params[i] - (m1[i] * alpha) / (np.sqrt(m2[i]) + epsilon)
    elif momentum == 0:
        for i in range(P):
            params[i] = params[i] + (-lr) * grad[i]
    else:
        for i in range(P):
            d = (-lr) * grad[i]
            m1[i] = m1[i] * momentum + d
            if nesterov:
                params[i] = (params[i] + d) + m1[i] * momentum
            else:
                params[i] = params[i] + m1[i]


@njit
def _member_epochs(
    X, Y, Xv, Yv, params, m1, m2, widths, koff, boff, seed, lr, act, loss_kind, metrics, batch_size,
    epoch0, n_epochs, steps_done, opt_kind, beta_1, beta_2, c1, c2, epsilon, momentum, nesterov, streams,
    drop_threshold, drop_keep, gd_std, gn_std, l1, l2, decay, decay_bias, max_norm, prox, smooth_keep, smooth_add,
    hist,
):
    """Train one member for epochs [epoch0, epoch0 + n_epochs) or until its loss is no longer
    finite; returns how many epochs it trained (the last one's row is written either way)."""
    L = len(widths) - 1
    N, O = X.shape[0], widths[L]
    Nv = Xv.shape[0]
    B_max = min(batch_size, N)
    maxw = 0
    for w in widths:
        maxw = max(maxw, w)
    # Per layer j (0: the input; L: the logits): B_max x widths[j] floats at aoff[j].
    aoff = np.zeros(L + 2, dtype=np.int64)
    for j in range(L + 1):
        aoff[j + 1] = aoff[j] + B_max * widths[j]
    acts = np.zeros(aoff[L + 1], dtype=np.float32)  # each dense layer's input (after its noise)
    pre = np.zeros(aoff[L + 1], dtype=np.float32)  # hidden activations before the noise
    factor = np.ones(aoff[L + 1], dtype=np.float32)  # the noise's multiplicative factor
    noise = np.zeros(B_max * maxw, dtype=np.float32)
    g_a = np.zeros(B_max * maxw, dtype=np.float32)
    g_b = np.zeros(B_max * maxw, dtype=np.float32)
    wt = np.zeros(maxw * maxw, dtype=np.float32)
    grad = np.zeros(params.shape[0], dtype=np.float32)
    order = np.zeros(N, dtype=np.int64)
    bits = np.zeros(N, dtype=np.int64)
    yb = np.zeros(O, dtype=np.float32)
    n_metrics = len(metrics)
    steps = (N + batch_size - 1) // batch_size
    one = np.float32(1.0)
    sums = np.zeros(1 + n_metrics, dtype=np.float64)
    vsums = np.zeros(1 + n_metrics, dtype=np.float64)

    for e in range(n_epochs):
        epoch = epoch0 + e
        _permutation(seed, epoch, N, order, bits)
        sums[:] = 0.0
        for step in range(steps):
            start = step * batch_size
            B = min(batch_size, N - start)
            rows = order[start : start + B]
            # -- forward, training mode --------------------------------------------------------
            C = widths[0]
            h = _mat(acts, aoff[0], B, C)
            for b in range(B):
                xr, hr = X[rows[b]], h[b]
                for c in range(C):
                    hr[c] = xr[c]
            if gn_std[0] > 0:  # noise on the inputs
                _normal(_noise_key(seed, streams[2], epoch, step, 0), B * C, noise)
                flat = h.reshape(B * C)
                for i in range(B * C):
                    flat[i] = flat[i] + noise[i] * gn_std[0]
            for layer in range(L):
                n_in, n_out = widths[layer], widths[layer + 1]
                W = _mat(params, koff[layer], n_in, n_out)
                out = _mat(acts, aoff[layer + 1], B, n_out)
                _dense(_mat(acts, aoff[layer], B, n_in), W, params[boff[layer] : boff[layer] + n_out], out)
                if layer == L - 1:
                    break
                _activate(act, out)
                a = _mat(pre, aoff[layer + 1], B, n_out)
                a[:, :] = out
                _mask_and_noise(out, _mat(factor, aoff[layer + 1], B, n_out), noise, seed, epoch, step, layer, streams,
                                drop_threshold[layer], drop_keep[layer], gd_std[layer], gn_std[layer + 1])
            # -- the loss and its gradient -------------------------------------------------------
            logits = _mat(acts, aoff[L], B, O)
            g = _mat(g_a, 0, B, O)
            scale = one / np.float32(B)
            data_loss = 0.0
            for b in range(B):
                yr = Y[rows[b]]
                for o in range(O):
                    yb[o] = yr[o] * smooth_keep + smooth_add
                data_loss += _row_loss(loss_kind, logits[b], yb, O, scale, g[b], True)
                for c in range(n_metrics):
                    sums[1 + c] += _row_metric(metrics[c], logits[b], yr, O)
            # -- backward ------------------------------------------------------------------------
            cur, nxt = g_a, g_b
            for layer in range(L - 1, -1, -1):
                n_in, n_out = widths[layer], widths[layer + 1]
                g = _mat(cur, 0, B, n_out)
                g_prev = _mat(nxt, 0, B, n_in)
                _backward_dense(_mat(acts, aoff[layer], B, n_in), g, _mat(params, koff[layer], n_in, n_out),
                                _mat(grad, koff[layer], n_in, n_out), grad[boff[layer] : boff[layer] + n_out],
                                _mat(wt, 0, n_out, n_in), g_prev, layer > 0)
                if layer == 0:
                    break
                f = _mat(factor, aoff[layer], B, n_in)
                for b in range(B):  # back through the noise, then the activation
                    pr, fr = g_prev[b], f[b]
                    for i in range(n_in):
                        pr[i] = pr[i] * fr[i]
                _activation_backward(act, g_prev, _mat(pre, aoff[layer], B, n_in))
                cur, nxt = nxt, cur
            # -- the penalties and their gradients, then the update and its transforms -----------
            pen = _penalties_and_gradients(params, grad, widths, koff, l1, l2)
            sums[0] += (data_loss / B + pen) * B
            if decay > 0:  # before the update, as Keras's optimizers apply weight_decay
                shrink = one - decay * lr
                for layer in range(L):
                    W = params[koff[layer] : koff[layer] + widths[layer] * widths[layer + 1]]
                    for i in range(W.shape[0]):
                        W[i] = W[i] * shrink
                    if decay_bias:
                        bias = params[boff[layer] : boff[layer] + widths[layer + 1]]
                        for i in range(bias.shape[0]):
                            bias[i] = bias[i] * shrink
            _update(params, grad, m1, m2, steps_done + e * steps + step + 1, lr, opt_kind, beta_1, beta_2, c1, c2, epsilon, momentum, nesterov)
            for layer in range(L - 1):  # a bound on each hidden unit's incoming norm
                if max_norm[layer] > 0:
                    n_in, n_out = widths[layer], widths[layer + 1]
                    W = _mat(params, koff[layer], n_in, n_out)
                    norms = noise[:n_out]
                    norms[:] = np.float32(0.0)
                    for i in range(n_in):
                        wr = W[i]
                        for o in range(n_out):
                            norms[o] += wr[o] * wr[o]
                    for o in range(n_out):
                        norm = np.sqrt(norms[o])
                        norms[o] = min(norm, max_norm[layer]) / (_EPSILON + norm)
                    for i in range(n_in):
                        wr = W[i]
                        for o in range(n_out):
                            wr[o] = wr[o] * norms[o]
            for layer in range(L):  # a soft threshold
                if prox[layer] > 0:
                    thr = lr * prox[layer]
                    W = params[koff[layer] : koff[layer] + widths[layer] * widths[layer + 1]]
                    for i in range(W.shape[0]):
                        w = W[i]
                        mag = max(abs(w) - thr, np.float32(0.0))
                        W[i] = mag if w > 0 else (-mag if w < 0 else w * np.float32(0.0))
        # -- the epoch's logs: the running means, then validation ------------------------------
        row = hist[e]
        for c in range(1 + n_metrics):
            row[c] = sums[c] / N
        finite = math.isfinite(row[0])
        if Nv > 0:
            pen = _penalty(params, widths, koff, l1, l2)
            vsums[:] = 0.0
            for start in range(0, Nv, B_max):
                B = min(B_max, Nv - start)
                h = _mat(acts, aoff[0], B, widths[0])
                h[:, :] = Xv[start : start + B]
                for layer in range(L):
                    n_in, n_out = widths[layer], widths[layer + 1]
                    out = _mat(acts, aoff[layer + 1], B, n_out)
                    _dense(_mat(acts, aoff[layer], B, n_in), _mat(params, koff[layer], n_in, n_out), params[boff[layer] : boff[layer] + n_out], out)
                    if layer < L - 1:
                        _activate(act, out)
                logits = _mat(acts, aoff[L], B, O)
                for b in range(B):
                    yr = Yv[start + b]
                    for o in range(O):
                        yb[o] = yr[o] * smooth_keep + smooth_add
                    vsums[0] += _row_loss(loss_kind, logits[b], yb, O, one, g_b, False)
                    for c in range(n_metrics):
                        vsums[1 + c] += _row_metric(metrics[c], logits[b], yr, O)
            row[1 + n_metrics] = vsums[0] / Nv + pen
            for c in range(n_metrics):
                row[2 + n_metrics + c] = vsums[1 + c] / Nv
            finite = finite and math.isfinite(row[1 + n_metrics])
        if not finite:
            return e + 1
    return n_epochs


@njit(parallel=True, nogil=True)
def train_epochs(
    X, xmap, Y, ymap, Xv, xvmap, Yv, yvmap, params, m1, m2, widths, koff, boff, seeds, lr, act, loss_kind, metrics, batch_size,
    epoch0, n_epochs, steps_done, opt_kind, beta_1, beta_2, c1, c2, epsilon, momentum, nesterov, streams,
    drop_threshold, drop_keep, gd_std, gn_std, l1, l2, decay, decay_bias, max_norm, prox, smooth_keep, smooth_add,
    hist, trained,
):
    """Train every member (row k of params, m1, m2, the settings and hist) for up to n_epochs
    epochs from epoch0; trained[k] gets how many it trained (fewer: its loss became non-finite).
    X, Y, Xv, Yv are (n_sets, N, columns): member k trains on X[xmap[k]] and Y[ymap[k]] and
    validates on Xv[xvmap[k]] and Yv[yvmap[k]] (one shared set, or one set per member, each alike).
    ``streams`` holds the random streams of the mask, the multiplicative and the additive noise."""
    for k in prange(params.shape[0]):
        trained[k] = _member_epochs(
            X[xmap[k]], Y[ymap[k]], Xv[xvmap[k]], Yv[yvmap[k]], params[k], m1[k], m2[k], widths, koff, boff, seeds[k], lr[k],
            act, loss_kind, metrics, batch_size, epoch0, n_epochs, steps_done, opt_kind, beta_1, beta_2, c1, c2, epsilon, momentum, nesterov, streams,
            drop_threshold[k], drop_keep[k], gd_std[k], gn_std[k], l1[k], l2[k], decay[k], decay_bias[k], max_norm[k], prox[k],
            smooth_keep[k], smooth_add[k], hist[k],
        )
