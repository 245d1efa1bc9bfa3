"""The cells rnnkit ships as ``rnnkit.Cell`` objects: the four built-ins
(whose fused native kernels are the fast path of rnnkit.LSTM & co.) and the
variants nobody else ships fused: peephole LSTM (ONNX), layer-normalised LSTM
(haste), GRU resetting before the matmul (Keras/ONNX) and the minimal gated unit.

Pointwise step math only, in NumPy with rnnkit.cells.ops; equations in
docs/cells.md. The layer machinery is rnnkit.layers.
"""

from __future__ import annotations

import numpy as np

from rnnkit.cells._protocol import Cell
from rnnkit.cells.ops import dsigmoid, dtanh, sigmoid, tanh

__all__ = [
    "GRUCell",
    "GRUResetBeforeCell",
    "IndRNNCell",
    "LSTMCell",
    "LayerNormLSTMCell",
    "MGUCell",
    "PeepholeLSTMCell",
    "RNNCell",
]

_NONLINEARITIES = ("tanh", "relu")


def _check_nonlinearity(value):
    if not isinstance(value, str) or value not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}, got {value!r}")
    return value


def _act(name, a):
    if name == "tanh":
        return tanh(a, out=a)
    return np.maximum(a, 0, out=a)


def _dact(name, y, dy):
    if name == "tanh":
        return dtanh(y, dy)
    return dy * (y > 0)


# --------------------------------------------------------------------------
# The built-ins (fused fast path: rnnkit.layers runs them natively unless fused=False)
# --------------------------------------------------------------------------


class RNNCell(Cell):
    """Elman cell: ``h' = act(gx + gh)``, act tanh or relu (PyTorch ``nn.RNN``)."""

    gates, recurrence, states = 1, "gemm", ("h",)
    fused_name = "rnn"

    def __init__(self, nonlinearity="tanh"):
        self.nonlinearity = _check_nonlinearity(nonlinearity)

    def fused_kwargs(self):
        return {"nonlinearity": self.nonlinearity}

    def forward(self, gx, gh, state, params):
        h_new = _act(self.nonlinearity, np.add(gx, gh, out=gx))  # N,H
        return (h_new,), h_new

    def backward(self, dstate, saved, params):
        da = _dact(self.nonlinearity, saved, dstate[0])  # N,H
        return da, da, (None,), {}

    def __repr__(self):
        return f"RNNCell(nonlinearity={self.nonlinearity!r})"


class IndRNNCell(RNNCell):
    """IndRNN cell: ``h' = act(gx + w_hh*h + b_hh)``, one recurrent weight per
    unit (recurrence "diag"), relu by default."""

    recurrence = "diag"
    fused_name = "indrnn"

    def __init__(self, nonlinearity="relu"):
        super().__init__(nonlinearity)

    def __repr__(self):
        return f"IndRNNCell(nonlinearity={self.nonlinearity!r})"


class LSTMCell(Cell):
    """LSTM cell, PyTorch's gate order i, f, g, o: ``c' = f*c + i*g``, ``h' = o*tanh(c')``."""

    gates, recurrence, states = 4, "gemm", ("h", "c")
    fused_name = "lstm"

    def fused_kwargs(self):
        return {}

    def forward(self, gx, gh, state, params):
        h, c = state
        H = h.shape[1]
        a = np.add(gx, gh, out=gx)  # N,4H: pre-activations, then the gates in place
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])
        tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
        sigmoid(a[:, 3 * H :], out=a[:, 3 * H :])
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c_new = f * c  # N,H
        c_new += i * g
        tanh_c = tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (a, c, tanh_c)

    def backward(self, dstate, saved, params):
        dh, dc = dstate
        a, c_prev, tanh_c = saved
        H = c_prev.shape[1]
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        da = np.empty_like(a)  # N,4H
        dsigmoid(o, dh * tanh_c, out=da[:, 3 * H :])
        dc_total = dtanh(tanh_c, dh * o)
        dc_total += dc
        dsigmoid(i, dc_total * g, out=da[:, :H])
        dsigmoid(f, dc_total * c_prev, out=da[:, H : 2 * H])
        dtanh(g, dc_total * i, out=da[:, 2 * H : 3 * H])
        dc_total *= f  # dc_prev
        return da, da, (None, dc_total), {}


class GRUCell(Cell):
    """GRU cell, reset after the matmul (PyTorch ``nn.GRU``), gates r, z, n:
    ``n = tanh(gx_n + r*gh_n)``, ``h' = (1-z)*n + z*h``."""

    gates, recurrence, states = 3, "gemm", ("h",)
    fused_name = "gru"

    def fused_kwargs(self):
        return {}

    def forward(self, gx, gh, state, params):
        (h,) = state
        H = h.shape[1]
        rz = np.add(gx[:, : 2 * H], gh[:, : 2 * H], out=gx[:, : 2 * H])
        sigmoid(rz, out=rz)
        r, z = rz[:, :H], rz[:, H:]
        ghn = gh[:, 2 * H :]
        n = r * ghn  # N,H
        n += gx[:, 2 * H :]
        tanh(n, out=n)
        h_new = h - n  # N,H: h' = n + z*(h - n)
        h_new *= z
        h_new += n
        return (h_new,), (r, z, n, ghn, h)

    def backward(self, dstate, saved, params):
        (dh,) = dstate
        r, z, n, ghn, h = saved
        H = h.shape[1]
        N = h.shape[0]
        dgx = np.empty((N, 3 * H), h.dtype)
        dgh = np.empty((N, 3 * H), h.dtype)
        dn = dh * (1 - z)
        dpre_n = dtanh(n, dn, out=dgx[:, 2 * H :])
        np.multiply(dpre_n, r, out=dgh[:, 2 * H :])
        dsigmoid(r, dpre_n * ghn, out=dgx[:, :H])
        dsigmoid(z, dh * (h - n), out=dgx[:, H : 2 * H])
        dgh[:, : 2 * H] = dgx[:, : 2 * H]
        return dgx, dgh, (dh * z,), {}


# --------------------------------------------------------------------------
# New cells (Python step; the GEMMs still run natively)
# --------------------------------------------------------------------------


class PeepholeLSTMCell(Cell):
    """LSTM with ONNX's peepholes ``P`` (the ``P`` input of ONNX ``LSTM``).

    Weights in PyTorch's layout and gate order i, f, g, o; the extra parameter
    ``peephole`` is ``[3, H]`` in ONNX's order (i, o, f)::

        i = sigmoid(a_i + p_i*c),  f = sigmoid(a_f + p_f*c),  g = tanh(a_g)
        c' = f*c + i*g
        o = sigmoid(a_o + p_o*c'),  h' = o*tanh(c')          (a = gx + gh)
    """

    gates, recurrence, states = 4, "gemm", ("h", "c")

    def params(self, input_size, hidden_size):
        return {"peephole": (3, hidden_size)}

    def forward(self, gx, gh, state, params):
        h, c = state
        H = h.shape[1]
        p = params["peephole"]  # 3,H: i, o, f
        a = np.add(gx, gh, out=gx)  # N,4H
        a[:, :H] += p[0] * c
        a[:, H : 2 * H] += p[2] * c
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])
        tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
        i, f, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H]
        c_new = f * c
        c_new += i * g
        o = a[:, 3 * H :]
        o += p[1] * c_new
        sigmoid(o, out=o)
        tanh_c = tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (a, c, c_new, tanh_c)

    def backward(self, dstate, saved, params):
        dh, dc = dstate
        a, c_prev, c_new, tanh_c = saved
        H = c_prev.shape[1]
        p = params["peephole"]
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        da = np.empty_like(a)
        do_ = dsigmoid(o, dh * tanh_c, out=da[:, 3 * H :])
        dc_total = dtanh(tanh_c, dh * o)
        dc_total += dc
        dc_total += do_ * p[1]
        di = dsigmoid(i, dc_total * g, out=da[:, :H])
        df = dsigmoid(f, dc_total * c_prev, out=da[:, H : 2 * H])
        dtanh(g, dc_total * i, out=da[:, 2 * H : 3 * H])
        dc_prev = dc_total * f
        dc_prev += di * p[0]
        dc_prev += df * p[2]
        dp = np.stack([(di * c_prev).sum(0), (do_ * c_new).sum(0), (df * c_prev).sum(0)])
        return da, da, (None, dc_prev), {"peephole": dp}


def _layer_norm(v, gamma, beta, eps):
    """``gamma * (v - mean) / sqrt(var + eps) + beta`` over the last axis;
    returns ``(y, vhat, invstd)`` (vhat: the normalised v, for backward)."""
    mean = v.mean(axis=1, keepdims=True)
    vc = v - mean
    invstd = 1.0 / np.sqrt((vc * vc).mean(axis=1, keepdims=True) + eps)
    vhat = vc * invstd
    y = vhat * gamma
    if beta is not None:
        y += beta
    return y, vhat, invstd


def _layer_norm_backward(dy, vhat, invstd, gamma):
    """Gradients of ``_layer_norm`` w.r.t. v and gamma (beta's is dy.sum(0))."""
    dgamma = (dy * vhat).sum(0)
    dvhat = dy * gamma
    dv = dvhat - dvhat.mean(axis=1, keepdims=True) - vhat * (dvhat * vhat).mean(axis=1, keepdims=True)
    dv *= invstd
    return dv, dgamma


class LayerNormLSTMCell(Cell):
    """haste's LayerNormLSTM: layer norm on the input and recurrent
    pre-activations (each over its 4H values, scale only) and on the cell
    state before its tanh (scale and shift); eps = 1e-5 as haste::

        v  = LN(x W_ih^T; gamma[0]) + LN(h W_hh^T; gamma[1]) + bias
        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of v   (PyTorch's gate order)
        c' = f*c + i*g,   h' = o * tanh(LN(c'; gamma_h, beta_h))

    The layer adds no b_ih/b_hh (``bias = False``): the bias comes after the
    norms, as ``bias`` ``[4H]``. haste orders the gates i, g, f, o; map its
    kernels by permuting gate blocks. Initial values: gamma, gamma_h ones,
    beta_h and bias zeros (haste sets the forget bias to forget_bias=1.0;
    set ``bias_l{k}[H:2H] = 1`` for that).
    """

    gates, recurrence, states = 4, "gemm", ("h", "c")
    bias = False
    eps = 1e-5

    def params(self, input_size, hidden_size):
        H = hidden_size
        return {"gamma": (2, 4 * H), "gamma_h": (H,), "beta_h": (H,), "bias": (4 * H,)}

    def init_param(self, name, shape, generator, bound):
        return np.ones(shape) if name.startswith("gamma") else np.zeros(shape)

    def forward(self, gx, gh, state, params):
        h, c = state
        H = h.shape[1]
        nx, xhat, xinv = _layer_norm(gx, params["gamma"][0], None, self.eps)
        nh, hhat, hinv = _layer_norm(gh, params["gamma"][1], None, self.eps)
        a = nx
        a += nh
        a += params["bias"]
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])
        tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
        sigmoid(a[:, 3 * H :], out=a[:, 3 * H :])
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c_new = f * c
        c_new += i * g
        nc, chat, cinv = _layer_norm(c_new, params["gamma_h"], params["beta_h"], self.eps)
        tanh_nc = tanh(nc, out=nc)
        h_new = o * tanh_nc
        return (h_new, c_new), (a, c, tanh_nc, chat, cinv, xhat, xinv, hhat, hinv)

    def backward(self, dstate, saved, params):
        dh, dc = dstate
        a, c_prev, tanh_nc, chat, cinv, xhat, xinv, hhat, hinv = saved
        H = c_prev.shape[1]
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        dv = np.empty_like(a)
        dsigmoid(o, dh * tanh_nc, out=dv[:, 3 * H :])
        dnc = dtanh(tanh_nc, dh * o)
        dbeta_h = dnc.sum(0)
        dc_new, dgamma_h = _layer_norm_backward(dnc, chat, cinv, params["gamma_h"])
        dc_new += dc
        dsigmoid(i, dc_new * g, out=dv[:, :H])
        dsigmoid(f, dc_new * c_prev, out=dv[:, H : 2 * H])
        dtanh(g, dc_new * i, out=dv[:, 2 * H : 3 * H])
        dgx, dgamma_x = _layer_norm_backward(dv, xhat, xinv, params["gamma"][0])
        dgh, dgamma_r = _layer_norm_backward(dv, hhat, hinv, params["gamma"][1])
        dparams = {
            "gamma": np.stack([dgamma_x, dgamma_r]),
            "gamma_h": dgamma_h,
            "beta_h": dbeta_h,
            "bias": dv.sum(0),
        }
        return dgx, dgh, (None, dc_new * f), dparams


class GRUResetBeforeCell(Cell):
    """GRU that resets before the matmul (Keras ``reset_after=False``, ONNX
    ``linear_before_reset=0``), PyTorch-like layout: ``w_ih [3H, C]``,
    ``w_hh [3H, H]``, ``b_ih``, ``b_hh [3H]``, gate order r, z, n::

        r = sigmoid(gx_r + gh_r),  z = sigmoid(gx_z + gh_z)
        n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
        h' = (1-z)*n + z*h

    Its n gate's recurrent product multiplies ``r*h``, not ``h``: groups
    ``(2, 1)``, the second group's input given by :meth:`recurrent_input`.
    """

    gates, recurrence, states = 3, "gemm", ("h",)
    groups = (2, 1)

    def recurrent_input(self, j, gx, gh, state, params):
        (h,) = state
        H = h.shape[1]
        r = sigmoid(gx[:, :H] + gh[:, :H])
        r *= h
        return r  # r*h

    def forward(self, gx, gh, state, params):
        (h,) = state
        H = h.shape[1]
        a = np.add(gx, gh, out=gx)  # N,3H
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])
        tanh(a[:, 2 * H :], out=a[:, 2 * H :])
        r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        h_new = h - n
        h_new *= z
        h_new += n
        return (h_new,), (r, z, n, h)

    def backward(self, dstate, saved, params):
        (dh,) = dstate
        r, z, n, h = saved
        N, H = h.shape
        da = np.zeros((N, 3 * H), h.dtype)  # the r part comes from recurrent_input_backward
        dtanh(n, dh * (1 - z), out=da[:, 2 * H :])
        dsigmoid(z, dh * (h - n), out=da[:, H : 2 * H])
        return da, da, (dh * z,), {}

    def recurrent_input_backward(self, j, du, saved, params):
        r, z, n, h = saved
        N, H = h.shape
        dr = dsigmoid(r, du * h)
        dgx = np.zeros((N, 3 * H), h.dtype)
        dgx[:, :H] = dr
        dgh = np.zeros((N, 2 * H), h.dtype)
        dgh[:, :H] = dr
        return dgx, dgh, (du * r,), None


class MGUCell(Cell):
    """Minimal gated unit (Zhou et al. 2016), gates f, h~::

        f  = sigmoid(W_f x + b_if + U_f h + b_hf)
        h~ = tanh(W_h x + b_ih~ + U_h (f*h) + b_hh~)
        h' = (1-f)*h + f*h~

    ``w_ih [2H, C]``, ``w_hh [2H, H]``, biases ``[2H]``; groups ``(1, 1)``:
    the h~ product multiplies ``f*h``.
    """

    gates, recurrence, states = 2, "gemm", ("h",)
    groups = (1, 1)

    def recurrent_input(self, j, gx, gh, state, params):
        (h,) = state
        f = sigmoid(gx[:, : h.shape[1]] + gh)
        f *= h
        return f  # f*h

    def forward(self, gx, gh, state, params):
        (h,) = state
        H = h.shape[1]
        a = np.add(gx, gh, out=gx)  # N,2H
        sigmoid(a[:, :H], out=a[:, :H])
        tanh(a[:, H:], out=a[:, H:])
        f, ht = a[:, :H], a[:, H:]
        h_new = ht - h
        h_new *= f
        h_new += h
        return (h_new,), (f, ht, h)

    def backward(self, dstate, saved, params):
        (dh,) = dstate
        f, ht, h = saved
        N, H = h.shape
        da = np.empty((N, 2 * H), h.dtype)
        dsigmoid(f, dh * (ht - h), out=da[:, :H])
        dtanh(ht, dh * f, out=da[:, H:])
        return da, da, (dh * (1 - f),), {}

    def recurrent_input_backward(self, j, du, saved, params):
        f, ht, h = saved
        N, H = h.shape
        dpre_f = dsigmoid(f, du * h)
        dgx = np.zeros((N, 2 * H), h.dtype)
        dgx[:, :H] = dpre_f
        return dgx, dpre_f, (du * f,), None
