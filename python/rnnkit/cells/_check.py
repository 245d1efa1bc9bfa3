"""``check_cell``: a cell's backward against central finite differences, on
one step and then through whole layers (lengths with 0 and T, reverse, two
layers, bidirectional). For cell authors and for rnnkit's own tests.

Not a speed test and not a check of the forward math itself (only that
backward is the derivative of forward).
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._protocol import CellSpec

__all__ = ["CellGradientError", "check_cell"]


class CellGradientError(AssertionError):
    """A cell's gradient disagrees with central finite differences. The
    message names the cell, the gradient and its relative error."""


def _tolerances(dtype):
    if np.dtype(dtype) == np.float64:
        return 1e-6, 1e-6  # eps, tol
    return 1e-2, 5e-2


def _entries(a, rng, max_entries):
    n = a.size
    if n <= max_entries:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_entries, replace=False))


def _compare(cell_name, what, analytic, numeric, tol):
    analytic = np.asarray(analytic, np.float64)
    numeric = np.asarray(numeric, np.float64)
    if not np.all(np.isfinite(analytic)):
        raise CellGradientError(f"{cell_name}: the gradient of {what} is not finite: {analytic}")
    diff = np.abs(analytic - numeric)
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    if scale < 1e-9:  # both vanish
        if diff.max(initial=0.0) <= 1e-9:
            return
        scale = 1.0
    err = np.linalg.norm(analytic - numeric) / scale
    if err > tol:
        i = int(np.argmax(diff))
        raise CellGradientError(
            f"{cell_name}: the gradient of {what} disagrees with central finite differences: "
            f"relative error {err:.3e} > {tol:.0e} (largest at entry {i}: analytic {analytic.flat[i]:.6g}, "
            f"numeric {numeric.flat[i]:.6g})"
        )


def _numeric(f, arrays, rng, eps, max_entries):
    """Central differences of the scalar f() w.r.t. entries of each array (in place, restored)."""
    out = []
    for a in arrays:
        idx = _entries(a, rng, max_entries)
        flat = a.reshape(-1)
        g = np.empty(len(idx))
        for n, i in enumerate(idx):
            v = flat[i]
            flat[i] = v + eps
            fp = f()
            flat[i] = v - eps
            fm = f()
            flat[i] = v
            g[n] = (fp - fm) / (2 * eps)
        out.append((idx, g))
    return out


def _step_check(spec, C, H, dt, rng, eps, tol, max_entries):
    cell, name = spec.cell, spec.name
    N, G, S = 3, spec.G, spec.S
    gx = rng.standard_normal((N, G * H)).astype(dt)
    gh = rng.standard_normal((N, G * H)).astype(dt)
    state = [0.5 * rng.standard_normal((N, H)).astype(dt) for _ in range(S)]
    params = {k: (0.5 + 0.5 * rng.uniform(size=s)).astype(dt) * rng.choice([-1, 1], size=s) for k, s in spec.params.items()}
    w = [rng.standard_normal((N, H)).astype(dt) for _ in range(S)]

    def run():
        out = spec.pair("forward", cell.forward(gx.copy(), gh.copy(), tuple(a.copy() for a in state), params),
                        "new_state", "saved")
        return spec.state_tuple("forward", "new_state", out[0], N, H, dt, False), out[1]

    def loss():
        new_state, _ = run()
        return float(sum(np.sum(wi * si) for wi, si in zip(w, new_state)))

    _, saved = run()
    out = cell.backward(tuple(wi.copy() for wi in w), saved, params)
    if not isinstance(out, tuple) or len(out) != 4:
        raise CellGradientError(f"{name}.backward must return (dgx, dgh, dstate_prev, dparams)")
    dgx, dgh, dprev, dp = out
    spec.array("backward", "dgx", dgx, (N, G * H), dt)
    spec.array("backward", "dgh", dgh, (N, G * H), dt)
    dprev = spec.state_tuple("backward", "dstate_prev", dprev, N, H, dt, True)
    dp = spec.dparams("backward", dp, params)
    arrays = [gx, gh, *state, *params.values()]
    analytic = [dgx, dgh] + [np.zeros((N, H), dt) if d is None else d for d in dprev] + [dp[k] for k in params]
    labels = ["dgx", "dgh"] + [f"dstate_prev[{i}] ({s})" for i, s in enumerate(spec.states)] + [
        f"dparams[{k!r}]" for k in params]
    for (idx, num), a, label in zip(_numeric(loss, arrays, rng, eps, max_entries), analytic, labels):
        _compare(name, f"{label} (one step of forward/backward)", a.reshape(-1)[idx], num, tol)

    # Each later group's recurrent input, against recurrent_input_backward.
    for j in range(1, len(spec.groups)):
        lo = spec.offsets[j] * H
        wu = rng.standard_normal((N, H)).astype(dt)
        ghj = gh[:, :lo]

        ghj = np.ascontiguousarray(ghj)

        def loss_u(j=j, ghj=ghj, wu=wu):
            u = cell.recurrent_input(j, gx.copy(), ghj.copy(), tuple(a.copy() for a in state), params)
            spec.array("recurrent_input", "u", u, (N, H), dt)
            return float(np.sum(wu * u))

        _, saved = run()
        ex = cell.recurrent_input_backward(j, wu.copy(), saved, params)
        if not isinstance(ex, tuple) or len(ex) != 4:
            raise CellGradientError(f"{name}.recurrent_input_backward must return (dgx, dgh, dstate_prev, dparams)")
        e_dgx, e_dgh, e_dprev, e_dp = ex
        e_dgx = np.zeros_like(gx) if e_dgx is None else spec.array("recurrent_input_backward", "dgx", e_dgx, gx.shape, dt)
        e_dgh = np.zeros((N, lo), dt) if e_dgh is None else spec.array("recurrent_input_backward", "dgh", e_dgh, (N, lo), dt)
        e_dprev = [None] * S if e_dprev is None else spec.state_tuple(
            "recurrent_input_backward", "dstate_prev", e_dprev, N, H, dt, True)
        e_dp = spec.dparams("recurrent_input_backward", e_dp, params, allow_missing=True)
        arrays = [gx, ghj, *state, *params.values()]
        analytic = [e_dgx, e_dgh] + [np.zeros((N, H), dt) if d is None else d for d in e_dprev] + [
            np.zeros_like(params[k]) if e_dp.get(k) is None else e_dp[k] for k in params]
        for (idx, num), a, label in zip(_numeric(loss_u, arrays, rng, eps, max_entries), analytic, labels):
            _compare(name, f"{label} (recurrent_input of group {j})", a.reshape(-1)[idx], num, tol)


def _layer_check(cell, C, H, dt, rng, eps, tol, max_entries, *, L, bidirectional, lengths, T, N):
    from rnnkit.layers import Recurrent

    name = type(cell).__name__
    layer = Recurrent(cell, C, H, L, bidirectional=bidirectional, dtype=dt, seed=int(rng.integers(2**31)),
                      fused=False)
    for p in layer.parameters.values():  # away from special initial values (gamma = 1, bias = 0)
        p += (0.2 * rng.standard_normal(p.shape)).astype(dt)
    S = layer._spec.S
    D = layer.num_directions
    x = rng.standard_normal((T, N, C)).astype(dt)
    st = [0.5 * rng.standard_normal((L * D, N, H)).astype(dt) for _ in range(S)]
    wy = rng.standard_normal((T, N, D * H)).astype(dt)
    ws = [rng.standard_normal((L * D, N, H)).astype(dt) for _ in range(S)]

    def pack(states):
        return tuple(states) if S > 1 else states[0]

    def unpack(states):
        return list(states) if S > 1 else [states]

    def loss():
        y, s_n = layer(x, pack(st), lengths)
        return float(np.sum(wy * y) + sum(np.sum(w * s) for w, s in zip(ws, unpack(s_n))))

    layer.zero_grad()
    _, _, tape = layer.forward(x, pack(st), lengths)
    dx, ds0 = layer.backward(tape, wy, pack(ws))
    ds0 = unpack(ds0)
    where = f"(layer: L={L}, bidirectional={bidirectional}, lengths={None if lengths is None else list(lengths)})"
    names = list(layer.parameters)
    arrays = [layer.parameters[k] for k in names] + [x, *st]
    analytic = [layer.grads[k] for k in names] + [dx, *ds0]
    labels = names + ["x"] + [f"state[{i}] ({s})" for i, s in enumerate(layer._spec.states)]
    for (idx, num), a, label in zip(_numeric(loss, arrays, rng, eps, max_entries), analytic, labels):
        _compare(name, f"{label} {where}", a.reshape(-1)[idx], num, tol)


def check_cell(cell, input_size=3, hidden_size=4, dtype=np.float64, *, seed=0, max_entries=24, tol=None, eps=None):
    """Check a cell's backward against central finite differences.

    First one step (``forward``/``backward``, and for cells with ``groups``
    each ``recurrent_input``/``recurrent_input_backward``) w.r.t. ``gx``,
    ``gh``, every state and every extra parameter; then whole layers
    (``rnnkit.Recurrent(cell, ..., fused=False)``): one layer, one
    direction, no lengths; and two layers, bidirectional, ``lengths``
    ``[T, 0, 2]`` (so padding, zero-length sequences and the per-sequence
    reverse are all crossed), w.r.t. every parameter, ``x`` and the initial
    state. Arrays larger than ``max_entries`` are checked on a random subset
    of entries.

    Parameters
    ----------
    cell : rnnkit.Cell
    input_size, hidden_size : int
        C and H of the check (small: every entry costs two forward passes).
    dtype : float64 (default) or float32
        float64: step 1e-6, tolerance 1e-6 (relative, norm-wise per
        gradient); float32: 1e-2 and 5e-2, a smoke test only.
    seed : int
        The random inputs (the check is deterministic for a seed).

    Raises
    ------
    CellGradientError
        (an AssertionError) naming the cell, the gradient and its error.
    rnnkit.CellError
        The cell breaks the protocol (names the cell and the method).
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    d_eps, d_tol = _tolerances(dt)
    eps = d_eps if eps is None else eps
    tol = d_tol if tol is None else tol
    rng = np.random.default_rng(seed)
    C, H = int(input_size), int(hidden_size)
    spec = CellSpec(cell, C, H)
    _step_check(spec, C, H, dt, rng, eps, tol, max_entries)
    T, N = 4, 3
    _layer_check(cell, C, H, dt, rng, eps, tol, max_entries, L=1, bidirectional=False, lengths=None, T=T, N=N)
    _layer_check(cell, C, H, dt, rng, eps, tol, max_entries, L=2, bidirectional=True,
                 lengths=np.array([T, 0, 2]), T=T, N=N)
