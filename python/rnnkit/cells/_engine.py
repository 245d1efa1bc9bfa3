"""The Python-step engine: one direction of one layer of a cell written in
Python (rnnkit.Cell), forward and backward through time.

The GEMMs run natively (rnnkit._core.UserWeight and friends): the input side
as one GEMM over all T*N rows, the recurrent product per step against weights
packed once per call, dh_prev += dgh @ w_hh per step, and dW_ih, dW_hh, db and
dx as whole-sequence GEMMs after the loop. Only the cell's pointwise forward
and backward run in Python. Lengths and the per-sequence reverse are applied
here (the cell never sees them): the reverse direction runs on a copy of the
input reversed within each sequence, so that in processing order every
sequence's padding comes last. Stacking, directions and dropout are the
layer's (rnnkit.layers).
"""

from __future__ import annotations

import numpy as np

from rnnkit import _core, _tune

__all__ = ["StepCache", "backward_direction", "forward_direction", "reverse_time"]


def reverse_time(a, lengths):
    """``out[t, n] = a[len_n - 1 - t, n]`` for ``t < len_n``, else 0 (its own
    inverse on the valid steps); a plain flip without lengths."""
    if lengths is None:
        return np.ascontiguousarray(a[::-1])
    T, N = a.shape[:2]
    src = lengths[None, :] - 1 - np.arange(T)[:, None]  # T,N
    valid = src >= 0
    out = a[np.where(valid, src, 0), np.arange(N)[None, :]]
    out[~valid] = 0
    return out


class StepCache:
    """What backward needs from one (layer, direction) of a Python-step cell:
    the (processing-order) input, the states h before every step, the group
    inputs, what the cell saved at each step, the packed weights, the params."""

    __slots__ = ("active", "has_bias", "hs", "lengths", "params", "reverse", "saved", "us", "w_diag", "w_hh",
                 "w_ih", "xs")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def _readonly(a):
    v = a.view()
    v.flags.writeable = False
    return v


def forward_direction(spec, x, state0, w_ih, w_hh, b_ih, b_hh, params, lengths, reverse, training):
    """Run one direction. ``x`` ``[T, N, C]`` (time-major, C-contiguous),
    ``state0`` a list of S arrays ``[N, H]`` or None (zeros), ``b_*`` None
    when the cell takes no bias, ``lengths`` int64 ``[N]`` or None.
    Returns ``(y [T, N, H], final states list, StepCache or None)``."""
    cell = spec.cell
    T, N, C = x.shape
    G, S = spec.G, spec.S
    H = w_ih.shape[0] // G
    GH = G * H
    dt = x.dtype
    if lengths is not None and (lengths == T).all():
        lengths = None  # every step active: no masks at all
    active = None if lengths is None else np.arange(T)[:, None] < lengths[None, :]  # T,N
    if reverse:
        xs = reverse_time(x, lengths)
    elif active is not None:
        xs = np.where(active[..., None], x, 0).astype(dt, copy=False)  # padding may be anything (nan)
    else:
        xs = x

    W_ih = _core.UserWeight(w_ih)
    GX = np.empty((T, N, GH), dt)  # T,N,G*H: x @ w_ih.T + b_ih
    W_ih.matmul_t(xs.reshape(T * N, C), GX.reshape(T * N, GH), b_ih)
    GHs = np.empty((T, N, GH), dt)  # one per step: the cell may keep its gh

    groups, offs = spec.groups, spec.offsets
    if spec.recurrence == "gemm":
        W_hh = [_core.UserWeight(w_hh[o * H : (o + g) * H]) for o, g in zip(offs, groups)]  # packed once
        b_hh_g = [None if b_hh is None else b_hh[o * H : (o + g) * H] for o, g in zip(offs, groups)]
        w_diag = None
    else:
        W_hh, b_hh_g = None, None
        w_diag = w_hh.reshape(G, H).copy()  # G,H
    b_diag = None if (b_hh is None or spec.recurrence == "gemm") else b_hh.reshape(G, H)

    params_ro = {k: _readonly(v) for k, v in params.items()}
    hs = np.empty((T + 1, N, H), dt)  # T+1,N,H: h before step s at hs[s]
    hs[0] = 0 if state0[0] is None else state0[0]
    hs_ro = _readonly(hs)  # what the cell sees: it must not write the states
    cur = [hs_ro[0]] + [np.zeros((N, H), dt) if a is None else a for a in state0[1:]]
    us = [None] + [np.empty((T, N, H), dt) for _ in groups[1:]]
    saved_all = [] if training else None
    one_group = W_hh is not None and len(groups) == 1
    W0, b0 = (W_hh[0], b_hh_g[0]) if W_hh is not None else (None, None)
    shape = (N, H)
    forward = cell.forward

    for s in range(T):
        gx, gh = GX[s], GHs[s]
        state = tuple(cur)
        if one_group:
            W0.matmul_t(hs[s], gh, b0)
        elif W_hh is not None:
            W0.matmul_t(hs[s], gh[:, : groups[0] * H], b0)
            for j in range(1, len(groups)):
                lo, hi = offs[j] * H, (offs[j] + groups[j]) * H
                u = cell.recurrent_input(j, gx, gh[:, :lo], state, params_ro)
                spec.array("recurrent_input", "u", u, shape, dt)
                us[j][s] = u
                W_hh[j].matmul_t(us[j][s], gh[:, lo:hi], b_hh_g[j])
        else:
            gh3 = gh.reshape(N, G, H)
            np.multiply(w_diag[None], hs[s][:, None, :], out=gh3)
            if b_diag is not None:
                gh3 += b_diag
        out = forward(gx, gh, state, params_ro)
        # The protocol checks, cheap when all is well (the full check names what is wrong).
        if type(out) is tuple and len(out) == 2 and type(out[0]) is tuple and len(out[0]) == S:
            new_state, saved = out
            for a in new_state:
                if type(a) is not np.ndarray or a.shape != shape or a.dtype != dt:
                    new_state = spec.state_tuple("forward", "new_state", new_state, N, H, dt, False)
                    break
        else:
            new_state, saved = spec.pair("forward", out, "new_state", "saved")
            new_state = spec.state_tuple("forward", "new_state", new_state, N, H, dt, False)
        if active is not None and not active[s].all():
            m = active[s][:, None]  # past a sequence's end the state stays as it was
            new_state = tuple(np.where(m, a, b) for a, b in zip(new_state, cur))
        hs[s + 1] = new_state[0]
        cur = [hs_ro[s + 1], *new_state[1:]]
        if training:
            saved_all.append(saved)

    ys = hs[1:]
    if active is not None:
        ys = np.where(active[..., None], ys, 0).astype(dt, copy=False)
    y = reverse_time(ys, lengths) if reverse else (ys if active is not None else ys.copy())
    final = [np.array(a) for a in cur]
    cache = None
    if training:
        cache = StepCache(xs=xs if xs is not x else x, hs=hs, us=us, saved=saved_all, w_ih=W_ih, w_hh=W_hh,
                          w_diag=w_diag, params=params_ro, active=active, lengths=lengths, reverse=reverse,
                          has_bias=b_ih is not None)
    return y, final, cache


def backward_direction(spec, cache, dy, dfinal):
    """Back through one direction: ``dy`` ``[T, N, H]`` (time order) or None,
    ``dfinal`` a list of S arrays or None. Returns ``(dx, dstate0 list, grads)``
    with grads ``{"weight_ih", "weight_hh", ["bias_ih", "bias_hh"], *params}``."""
    if _tune.pending:  # its weight-gradient GEMMs read the per-CPU parameters
        _tune.first_use()
    cell = spec.cell
    xs, hs = cache.xs, cache.hs
    T, N, C = xs.shape
    H = hs.shape[2]
    G, S = spec.G, spec.S
    GH = G * H
    dt = hs.dtype
    active, lengths, params = cache.active, cache.lengths, cache.params
    groups, offs = spec.groups, spec.offsets
    grouped = len(groups) > 1

    dys = None
    if dy is not None:
        dys = reverse_time(dy, lengths) if cache.reverse else dy
        if active is not None:
            dys = np.where(active[..., None], dys, 0).astype(dt, copy=False)  # y is constant there

    dGX = np.empty((T, N, GH), dt)
    dGH = np.empty((T, N, GH), dt)
    shared = np.zeros(T, bool)  # steps where the cell returned dgh is dgx (stored once, in dGX)
    carry = [np.zeros((N, H), dt) if a is None else np.array(a, dtype=dt) for a in dfinal]
    dparams = {k: np.zeros_like(v) for k, v in params.items()}

    shape = (N, H)
    backward = cell.backward
    for s in reversed(range(T)):
        ds = [carry[0] + dys[s] if dys is not None else carry[0], *carry[1:]]
        keep = None
        if active is not None and not active[s].all():
            m = active[s][:, None]
            keep = [np.where(m, 0, d).astype(dt, copy=False) for d in ds]  # passes through untouched
            ds = [np.where(m, d, 0).astype(dt, copy=False) for d in ds]
        out = backward(tuple(ds), cache.saved[s], params)
        if type(out) is not tuple or len(out) != 4:
            got = f"a tuple of length {len(out)}" if isinstance(out, tuple) else type(out).__name__
            raise spec_error(spec, "backward", f"must return (dgx, dgh, dstate_prev, dparams), got {got}")
        dgx, dgh, dprev, dp = out
        if type(dgx) is not np.ndarray or dgx.shape != (N, GH) or dgx.dtype != dt:
            spec.array("backward", "dgx", dgx, (N, GH), dt)
        if dgh is not dgx and (type(dgh) is not np.ndarray or dgh.shape != (N, GH) or dgh.dtype != dt):
            spec.array("backward", "dgh", dgh, (N, GH), dt)
        ok = type(dprev) is tuple and len(dprev) == S
        if ok:
            for a in dprev:
                if a is not None and (type(a) is not np.ndarray or a.shape != shape or a.dtype != dt):
                    ok = False
                    break
        dprev = list(dprev) if ok else list(spec.state_tuple("backward", "dstate_prev", dprev, N, H, dt, True))
        if dp or params:
            dp = spec.dparams("backward", dp, params)
            for k, g in dp.items():
                dparams[k] += g
        dGX[s] = dgx
        if dgh is dgx and not grouped:
            shared[s] = True
            dgh_s = dGX[s]
        else:
            dGH[s] = dgh
            dgh_s = dGH[s]
        for j in range(len(groups) - 1, 0, -1):
            lo, hi = offs[j] * H, (offs[j] + groups[j]) * H
            du = np.empty((N, H), dt)
            cache.w_hh[j].matmul(dGH[s][:, lo:hi], du)
            ex = cell.recurrent_input_backward(j, du, cache.saved[s], params)
            if not isinstance(ex, tuple) or len(ex) != 4:
                raise spec_error(spec, "recurrent_input_backward", "must return (dgx, dgh, dstate_prev, dparams)")
            e_dgx, e_dgh, e_dprev, e_dp = ex
            if e_dgx is not None:
                dGX[s] += spec.array("recurrent_input_backward", "dgx", e_dgx, (N, GH), dt)
            if e_dgh is not None:
                dGH[s][:, :lo] += spec.array("recurrent_input_backward", "dgh", e_dgh, (N, lo), dt)
            if e_dprev is not None:
                e_dprev = spec.state_tuple("recurrent_input_backward", "dstate_prev", e_dprev, N, H, dt, True)
                for i, g in enumerate(e_dprev):
                    if g is not None:
                        dprev[i] = g if dprev[i] is None else dprev[i] + g
            for k, g in spec.dparams("recurrent_input_backward", e_dp, params, allow_missing=True).items():
                if g is not None:
                    dparams[k] += g
        dh_prev = np.empty(shape, dt)
        if cache.w_hh is not None:
            g0 = dgh_s if not grouped else dgh_s[:, : groups[0] * H]
            if dprev[0] is None:
                cache.w_hh[0].matmul(g0, dh_prev)
            else:
                np.copyto(dh_prev, dprev[0])
                cache.w_hh[0].matmul(g0, dh_prev, accumulate=True)
        else:
            np.sum(dgh_s.reshape(N, G, H) * cache.w_diag[None], axis=1, out=dh_prev)
            if dprev[0] is not None:
                dh_prev += dprev[0]
        carry = [dh_prev] + [np.zeros(shape, dt) if a is None else a for a in dprev[1:]]
        if keep is not None:
            carry = [c + k for c, k in zip(carry, keep)]

    # Whole-sequence GEMMs after the loop.
    if shared.all():
        dGH = dGX
    elif shared.any():
        dGH[shared] = dGX[shared]
    dGX2, dGH2 = dGX.reshape(T * N, GH), dGH.reshape(T * N, GH)
    grads = {}
    dw_ih = np.empty((GH, C), dt)
    _core.user_gemm_tn(dGX2, xs.reshape(T * N, C), dw_ih)
    grads["weight_ih"] = dw_ih
    if cache.w_hh is not None:
        dw_hh = np.empty((GH, H), dt)
        for j, (o, g) in enumerate(zip(offs, groups)):
            src = hs[:-1] if j == 0 else cache.us[j]
            _core.user_gemm_tn(dGH2[:, o * H : (o + g) * H], src.reshape(T * N, H), dw_hh[o * H : (o + g) * H])
    else:
        dw_hh = (dGH.reshape(T * N, G, H) * hs[:-1].reshape(T * N, 1, H)).sum(axis=0).reshape(GH)
    grads["weight_hh"] = dw_hh
    if cache.has_bias:
        db_ih, db_hh = np.empty(GH, dt), np.empty(GH, dt)
        _core.user_colsum(dGX2, db_ih)
        if dGH is dGX:
            db_hh[...] = db_ih
        else:
            _core.user_colsum(dGH2, db_hh)
        grads["bias_ih"], grads["bias_hh"] = db_ih, db_hh
    dxs = np.empty((T, N, C), dt)
    cache.w_ih.matmul(dGX2, dxs.reshape(T * N, C))
    dx = reverse_time(dxs, lengths) if cache.reverse else dxs
    grads.update(dparams)
    return dx, carry, grads


def spec_error(spec, method, what):
    from rnnkit.cells._protocol import CellError

    return CellError(f"{spec.name}.{method} {what}")
