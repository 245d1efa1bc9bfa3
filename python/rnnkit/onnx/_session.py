"""rnnkit.onnx.InferenceSession: run ONNX graphs of RNN/LSTM/GRU nodes on rnnkit.

The recurrent nodes become rnnkit layers (``sess.layers``, for fine-tuning);
the plain ops around them (Transpose, Reshape, Concat, Gemm, MatMul, ...) run
in NumPy. It is not a general ONNX runtime: an op outside its list, or an
attribute that changes the math in a way rnnkit cannot follow exactly, is
refused by name when the session is made (or, for weights fed at run time,
when they arrive), never approximated.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..layers import GRU, LSTM, RNN, IndRNN
from ._weights import GATES, from_onnx_order

__all__ = ["InferenceSession", "NodeArg", "UnsupportedModelError"]


class UnsupportedModelError(ValueError):
    """The graph uses an op or an attribute that rnnkit cannot run exactly."""


class NodeArg:
    """A graph input or output, as onnxruntime's ``NodeArg``: name, shape, type."""

    def __init__(self, name, shape, type):
        self.name, self.shape, self.type = name, shape, type

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


_TYPE_NAMES = {
    onnx.TensorProto.FLOAT: "tensor(float)",
    onnx.TensorProto.DOUBLE: "tensor(double)",
    onnx.TensorProto.INT32: "tensor(int32)",
    onnx.TensorProto.INT64: "tensor(int64)",
    onnx.TensorProto.FLOAT16: "tensor(float16)",
    onnx.TensorProto.BOOL: "tensor(bool)",
}


def _value_info(vi) -> NodeArg:
    t = vi.type.tensor_type
    shape = None
    if t.HasField("shape"):
        shape = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        ]
    return NodeArg(vi.name, shape, _TYPE_NAMES.get(t.elem_type, f"tensor({t.elem_type})"))


def _np_dtype(elem_type):
    return helper.tensor_dtype_to_np_dtype(elem_type)


# ---------------------------------------------------------------------------
# Recurrent nodes
# ---------------------------------------------------------------------------

_DEFAULT_ACTIVATIONS = {
    "RNN": (("Tanh",), ("Relu",)),
    "LSTM": (("Sigmoid", "Tanh", "Tanh"),),
    "GRU": (("Sigmoid", "Tanh"),),
}
_KNOWN_ATTRS = {
    "RNN": {
        "activations",
        "activation_alpha",
        "activation_beta",
        "clip",
        "direction",
        "hidden_size",
        "layout",
    },
    "LSTM": {
        "activations",
        "activation_alpha",
        "activation_beta",
        "clip",
        "direction",
        "hidden_size",
        "input_forget",
        "layout",
    },
    "GRU": {
        "activations",
        "activation_alpha",
        "activation_beta",
        "clip",
        "direction",
        "hidden_size",
        "layout",
        "linear_before_reset",
    },
}
_INPUTS = {
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
}


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


class _RecurrentNode:
    """One RNN/LSTM/GRU node: checked attributes, and the rnnkit layer that runs it."""

    def __init__(self, node, index):
        self.node = node
        self.op = node.op_type
        self.name = node.name or f"{self.op}_{index}"
        a = _attrs(node)
        where = f"{self.op} node {self.name!r}"
        unknown = sorted(set(a) - _KNOWN_ATTRS[self.op])
        if unknown:
            raise UnsupportedModelError(f"{where}: unknown attribute(s) {unknown}")
        if "clip" in a:
            raise UnsupportedModelError(
                f"{where}: attribute clip={a['clip']} is refused: rnnkit's cells do not clip "
                "pre-activations, so the numbers would differ"
            )
        for k in ("activation_alpha", "activation_beta"):
            if k in a:
                raise UnsupportedModelError(
                    f"{where}: attribute {k}={a[k]} is refused: rnnkit's activations take no "
                    "parameters"
                )
        if a.get("input_forget", 0) != 0:
            raise UnsupportedModelError(
                f"{where}: attribute input_forget={a['input_forget']} is refused: rnnkit's LSTM "
                "has independent input and forget gates (coupling them changes the math)"
            )
        self.direction = a.get("direction", "forward")
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise UnsupportedModelError(f"{where}: unknown direction {self.direction!r}")
        self.D = 2 if self.direction == "bidirectional" else 1
        self.layout = a.get("layout", 0)
        if self.layout not in (0, 1):
            raise UnsupportedModelError(f"{where}: layout must be 0 or 1, got {self.layout}")
        self.hidden_size = a.get("hidden_size")
        acts = a.get("activations")
        self.nonlinearity = "tanh"
        if acts is not None:
            per_dir = len(_DEFAULT_ACTIVATIONS[self.op][0])
            if len(acts) != per_dir * self.D:
                raise UnsupportedModelError(
                    f"{where}: activations must list {per_dir * self.D} functions for "
                    f"direction={self.direction!r}, got {acts}"
                )
            groups = {tuple(acts[d * per_dir : (d + 1) * per_dir]) for d in range(self.D)}
            allowed = _DEFAULT_ACTIVATIONS[self.op]
            if len(groups) != 1 or next(iter(groups)) not in allowed:
                raise UnsupportedModelError(
                    f"{where}: activations={acts} are refused: rnnkit's {self.op} computes "
                    + " or ".join(str(list(x)) for x in allowed)
                    + " per direction, the same in both directions"
                )
            if self.op == "RNN":
                self.nonlinearity = next(iter(groups))[0].lower()
        self.linear_before_reset = a.get("linear_before_reset", 0)
        names = list(node.input) + [""] * (len(_INPUTS[self.op]) - len(node.input))
        self.inputs = dict(zip(_INPUTS[self.op], names))
        self.layer = None  # built once the weights are known
        self._key = None
        self._static = None  # True: weights are initializers, built at session creation

    # ---- building the layer from ONNX weights ----

    def build(self, W, R, B, P, dtype):
        """The rnnkit layer for these weights (ONNX layout). Called once for
        initializer weights, at each run for fed ones (then cached by value)."""
        where = f"{self.op} node {self.name!r}"
        cell = self.op.lower()
        G = GATES[cell]
        for nm, arr in (("W", W), ("R", R), ("B", B), ("P", P)):
            if arr is not None and arr.dtype != dtype:
                raise TypeError(f"{where}: input {nm} has dtype {arr.dtype}, X has {dtype}")
        if W.ndim != 3 or W.shape[0] != self.D or W.shape[1] % G:
            raise ValueError(
                f"{where}: W must be [num_directions={self.D}, {G}*hidden_size, input_size], "
                f"got {W.shape}"
            )
        H, C = W.shape[1] // G, W.shape[2]
        if self.hidden_size is not None and self.hidden_size != H:
            raise ValueError(f"{where}: hidden_size={self.hidden_size} but W gives {H}")
        if R.shape != (self.D, G * H, H):
            raise ValueError(f"{where}: R must be {(self.D, G * H, H)}, got {R.shape}")
        if B is not None and B.shape != (self.D, 2 * G * H):
            raise ValueError(f"{where}: B must be {(self.D, 2 * G * H)}, got {B.shape}")
        if P is not None and P.shape != (self.D, 3 * H):
            raise ValueError(f"{where}: P must be {(self.D, 3 * H)}, got {P.shape}")
        sd = {}
        for d in range(self.D):
            s = "_l0" + ("_reverse" if d == 1 else "")
            sd["weight_ih" + s] = from_onnx_order(cell, W[d], H)
            sd["weight_hh" + s] = from_onnx_order(cell, R[d], H)
            if B is not None:
                sd["bias_ih" + s] = from_onnx_order(cell, B[d, : G * H], H)
                sd["bias_hh" + s] = from_onnx_order(cell, B[d, G * H :], H)
        kw = dict(bidirectional=self.D == 2, dtype=dtype, bias=B is not None)
        if cell == "lstm" and P is not None and np.any(P != 0):
            return _peephole_lstm_layer(where, C, H, sd, P, kw)
        if cell == "gru" and not self.linear_before_reset:
            return _gru_reset_before_layer(where, C, H, sd, kw)
        if cell == "rnn":
            diag = all(np.array_equal(R[d], np.diag(np.diag(R[d]))) for d in range(self.D))
            if diag:  # an exact IndRNN: R's off-diagonal zeros add exact zeros
                layer = IndRNN(C, H, nonlinearity=self.nonlinearity, **kw)
                for d in range(self.D):
                    s = "_l0" + ("_reverse" if d == 1 else "")
                    sd["weight_hh" + s] = np.diag(R[d]).copy()
            else:
                layer = RNN(C, H, nonlinearity=self.nonlinearity, **kw)
        else:
            layer = {"lstm": LSTM, "gru": GRU}[cell](C, H, **kw)
        layer.load_state_dict(sd)
        return layer

    # ---- running ----

    def run(self, env, get, overridden=frozenset()):
        where = f"{self.op} node {self.name!r}"
        X = get(self.inputs["X"])
        if X.dtype not in (np.float32, np.float64):
            raise TypeError(f"{where}: X must be float32 or float64, got {X.dtype}")
        if X.ndim != 3:
            raise ValueError(f"{where}: X must be 3-D, got shape {X.shape}")
        dtype = X.dtype
        opt = {k: (get(v) if v else None) for k, v in self.inputs.items() if k != "X"}
        weight_names = {self.inputs.get(k) for k in ("W", "R", "B", "P")} - {"", None}
        if self._static is None:
            W, R, B, P = (opt[k] if k in opt else None for k in ("W", "R", "B", "P"))
            key = tuple(
                None if a is None else (a.shape, a.dtype.str, a.tobytes()) for a in (W, R, B, P)
            )
            if key != self._key:
                self.layer, self._key = self.build(W, R, B, P, dtype), key
            layer = self.layer
        elif weight_names & overridden:
            # an initializer fed in this run: a layer for these weights, this run only
            W, R, B, P = (opt[k] if k in opt else None for k in ("W", "R", "B", "P"))
            layer = self.build(W, R, B, P, dtype)
        else:
            layer = self.layer
        if layer.dtype != dtype:
            raise TypeError(f"{where}: X has dtype {dtype}, the weights {layer.dtype}")
        x = X if self.layout == 0 else X.transpose(1, 0, 2)  # T,N,C
        x = np.ascontiguousarray(x)
        T, N, _ = x.shape
        H, D = layer.hidden_size, self.D
        lengths = opt.get("sequence_lens")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (N,):
                raise ValueError(
                    f"{where}: sequence_lens must have shape ({N},), got {lengths.shape}"
                )
        has_c = self.op == "LSTM"

        def state(name):
            s = opt.get(name)
            if s is None:
                return None
            s = s if self.layout == 0 else s.transpose(1, 0, 2)  # D,N,H
            if s.shape != (D, N, H):
                raise ValueError(
                    f"{where}: {name} must be {(D, N, H) if self.layout == 0 else (N, D, H)}, "
                    f"got {opt[name].shape}"
                )
            return np.ascontiguousarray(s, dtype=dtype)

        h0 = state("initial_h")
        c0 = state("initial_c") if has_c else None
        st = ((h0, c0) if (h0 is not None or c0 is not None) else None) if has_c else h0
        if self.direction == "reverse":
            # A forward pass over each sequence reversed within its own length is
            # the reverse direction exactly (the same operations in the same order).
            xr = _flip_within_lengths(x, lengths)
            y, st_n = layer(xr, st, lengths)
            y = _flip_within_lengths(y, lengths)
        else:
            y, st_n = layer(x, st, lengths)
        h_n, c_n = st_n if has_c else (st_n, None)
        Y = y.reshape(T, N, D, H).transpose(0, 2, 1, 3)  # T,D,N,H
        if self.layout == 1:
            Y = Y.transpose(2, 0, 1, 3)  # N,T,D,H
            h_n = h_n.transpose(1, 0, 2)
            c_n = None if c_n is None else c_n.transpose(1, 0, 2)
        outs = [np.ascontiguousarray(Y), np.ascontiguousarray(h_n)]
        if has_c:
            outs.append(np.ascontiguousarray(c_n))
        for name, value in zip(self.node.output, outs):
            if name:
                env[name] = value


def _flip_within_lengths(a, lengths):
    """a[T, N, ...] with each sequence n's first lengths[n] steps in reverse order."""
    T, N = a.shape[:2]
    if lengths is None:
        return np.ascontiguousarray(a[::-1])
    t = np.arange(T)[:, None]
    L = np.asarray(lengths, np.int64)[None, :]
    src = np.where(t < L, L - 1 - t, t)  # T,N
    return np.ascontiguousarray(a[src, np.arange(N)[None, :]])


# ---------------------------------------------------------------------------
# The two ONNX variants that need user cells (rnnkit.Recurrent, from the
# user-cells work). Each is one function; without those cells they are refused.
# ---------------------------------------------------------------------------


def user_cell(cell_name):
    """rnnkit.cells.<cell_name> when rnnkit.Recurrent and that cell exist, else None."""
    import importlib

    import rnnkit

    if not hasattr(rnnkit, "Recurrent"):
        return None
    try:
        cells = importlib.import_module("rnnkit.cells")
    except ImportError:
        cells = getattr(rnnkit, "cells", None)
    return getattr(cells, cell_name, None)


def _make_recurrent(cell_name, C, H, kw):
    import rnnkit

    cell_cls = user_cell(cell_name)
    if cell_cls is None:
        return None
    # Recurrent's signature has no bias switch: a missing ONNX B is zeros (exact)
    kw = {k: v for k, v in kw.items() if k != "bias"}
    try:
        return rnnkit.Recurrent(cell_cls(), C, H, **kw)
    except TypeError:  # a Recurrent that takes the cell class itself
        return rnnkit.Recurrent(cell_cls, C, H, **kw)


def _peephole_lstm_layer(where, C, H, sd, P, kw):
    """LSTM with peepholes P [D, 3H] (ONNX order i, o, f) -> Recurrent(PeepholeLSTMCell)."""
    layer = _make_recurrent("PeepholeLSTMCell", C, H, kw)
    if layer is None:
        raise UnsupportedModelError(
            f"{where}: peepholes (input P, nonzero) need rnnkit.cells.PeepholeLSTMCell and "
            "rnnkit.Recurrent, which this rnnkit does not have"
        )
    if not kw["bias"]:  # the cell layer always has biases: zeros are exact
        G = 4 * H
        for s in [k[len("weight_ih") :] for k in sd if k.startswith("weight_ih")]:
            sd["bias_ih" + s] = np.zeros(G, kw["dtype"])
            sd["bias_hh" + s] = np.zeros(G, kw["dtype"])
    for d in range(P.shape[0]):
        s = "_l0" + ("_reverse" if d == 1 else "")
        sd["peephole" + s] = P[d].reshape(3, H)
    _load_matching(layer, sd)
    return layer


def _gru_reset_before_layer(where, C, H, sd, kw):
    """GRU with linear_before_reset=0 -> Recurrent(GRUResetBeforeCell) (gates r, z, n)."""
    layer = _make_recurrent("GRUResetBeforeCell", C, H, kw)
    if layer is None:
        raise UnsupportedModelError(
            f"{where}: linear_before_reset=0 (reset-before GRU, ONNX's default) needs "
            "rnnkit.cells.GRUResetBeforeCell and rnnkit.Recurrent, which this rnnkit does not "
            "have; rnnkit's GRU is reset-after (linear_before_reset=1)"
        )
    if not kw["bias"]:
        for s in [k[len("weight_ih") :] for k in sd if k.startswith("weight_ih")]:
            sd["bias_ih" + s] = np.zeros(3 * H, kw["dtype"])
            sd["bias_hh" + s] = np.zeros(3 * H, kw["dtype"])
    _load_matching(layer, sd)
    return layer


def _load_matching(layer, sd):
    """load_state_dict, minus bias entries for a layer built without biases."""
    keys = set(layer.state_dict())
    layer.load_state_dict({k: v for k, v in sd.items() if k in keys})


# ---------------------------------------------------------------------------
# Plain ops, in NumPy
# ---------------------------------------------------------------------------


def _axes_arg(node_attrs, inputs, i, opset, since):
    if opset >= since:
        return None if len(inputs) <= i or inputs[i] is None else [int(v) for v in inputs[i]]
    return node_attrs.get("axes")


def _op_squeeze(a, ins, opset):
    axes = _axes_arg(a, ins, 1, opset, 13)
    x = ins[0]
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(ax % x.ndim for ax in axes))


def _op_unsqueeze(a, ins, opset):
    axes = _axes_arg(a, ins, 1, opset, 13)
    x = ins[0]
    nd = x.ndim + len(axes)
    for ax in sorted(ax % nd for ax in axes):
        x = np.expand_dims(x, ax)
    return x


def _op_reshape(a, ins, opset):
    x, shape = ins[0], [int(v) for v in ins[1]]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _op_gemm(a, ins, opset):
    A, B = ins[0], ins[1]
    if a.get("transA", 0):
        A = A.T
    if a.get("transB", 0):
        B = B.T
    y = a.get("alpha", 1.0) * (A @ B)
    if len(ins) > 2 and ins[2] is not None:
        y = y + a.get("beta", 1.0) * ins[2]
    return y.astype(ins[0].dtype, copy=False)


def _op_slice(a, ins, opset):
    x = ins[0]
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = list(ins[1]), list(ins[2])
        axes = None if len(ins) < 4 or ins[3] is None else list(ins[3])
        steps = None if len(ins) < 5 or ins[4] is None else list(ins[4])
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    sl = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        sl[int(ax) % x.ndim] = slice(int(s), int(e), int(st))
    return x[tuple(sl)]


def _op_split(a, ins, opset, n_out):
    x, axis = ins[0], a.get("axis", 0)
    split = (
        (ins[1] if len(ins) > 1 and ins[1] is not None else None) if opset >= 13 else a.get("split")
    )
    if split is None:
        return np.array_split(x, n_out, axis=axis)
    return np.split(x, np.cumsum([int(s) for s in split])[:-1], axis=axis)


def _softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _op_constant(a, ins, opset):
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for k, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if k in a:
            return np.array(a[k], dt)
    for k, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if k in a:
            return np.array(a[k], dt)
    raise UnsupportedModelError(f"Constant with attributes {sorted(a)} is not supported")


_OPS = {
    "Identity": lambda a, i, o: i[0],
    "Constant": _op_constant,
    "Transpose": lambda a, i, o: np.transpose(i[0], a.get("perm")),
    "Squeeze": _op_squeeze,
    "Unsqueeze": _op_unsqueeze,
    "Concat": lambda a, i, o: np.concatenate([x for x in i if x is not None], axis=a["axis"]),
    "Reshape": _op_reshape,
    "Flatten": lambda a, i, o: i[0].reshape(
        int(np.prod(i[0].shape[: a.get("axis", 1) % max(i[0].ndim, 1)] or [1])), -1
    ),
    "Gemm": _op_gemm,
    "MatMul": lambda a, i, o: np.matmul(i[0], i[1]),
    "Add": lambda a, i, o: np.add(i[0], i[1]),
    "Sub": lambda a, i, o: np.subtract(i[0], i[1]),
    "Mul": lambda a, i, o: np.multiply(i[0], i[1]),
    "Div": lambda a, i, o: np.divide(i[0], i[1]) if i[0].dtype.kind == "f" else i[0] // i[1],
    "Relu": lambda a, i, o: np.maximum(i[0], 0).astype(i[0].dtype),
    "Tanh": lambda a, i, o: np.tanh(i[0]),
    "Sigmoid": lambda a, i, o: (1 / (1 + np.exp(-i[0]))).astype(i[0].dtype),
    "Softmax": lambda a, i, o: _softmax(i[0], a.get("axis", -1 if o >= 13 else 1)),
    "LogSoftmax": lambda a, i, o: np.log(_softmax(i[0], a.get("axis", -1 if o >= 13 else 1))),
    "Slice": _op_slice,
    "Gather": lambda a, i, o: np.take(i[0], i[1].astype(np.int64), axis=a.get("axis", 0)),
    "Shape": lambda a, i, o: np.array(i[0].shape[a.get("start", 0) : a.get("end")], np.int64),
    "ConstantOfShape": lambda a, i, o: np.full(
        [int(v) for v in i[0]],
        numpy_helper.to_array(a["value"]).reshape(-1)[0] if "value" in a else np.float32(0),
        dtype=numpy_helper.to_array(a["value"]).dtype if "value" in a else np.float32,
    ),
    "Expand": lambda a, i, o: i[0] * np.ones([int(v) for v in i[1]], i[0].dtype),
    "Cast": lambda a, i, o: i[0].astype(_np_dtype(a["to"])),
    "Equal": lambda a, i, o: np.equal(i[0], i[1]),
    "Where": lambda a, i, o: np.where(i[0], i[1], i[2]),
}
_MULTI_OUT = {"Split": _op_split}


class InferenceSession:
    """Run an ONNX model's recurrent graph on rnnkit, with onnxruntime's interface.

    Parameters
    ----------
    path_or_model : str, os.PathLike, bytes or onnx.ModelProto
        The model. Weights may be initializers (the layers are built once,
        here) or graph inputs fed at each run.

    Attributes
    ----------
    layers : dict str -> rnnkit layer
        The layer behind each RNN/LSTM/GRU node (by node name) whose weights
        are initializers: ``RNN`` (``IndRNN`` when R is diagonal), ``LSTM``,
        ``GRU`` (linear_before_reset=1), or a user-cell ``Recurrent``. They are
        time-major, one layer each, and the session runs on their live
        parameters: fine-tune them in place and the session follows. A
        ``direction="reverse"`` node's layer is a forward layer that the session
        runs over each sequence reversed within its length (exactly the reverse
        direction).

    Raises
    ------
    UnsupportedModelError (a ValueError)
        An op outside the supported list, another domain, or an attribute that
        changes the math (``clip``, ``input_forget=1``, non-default
        ``activations``, ``activation_alpha``/``beta``); the message names it.
    """

    def __init__(self, path_or_model, sess_options=None, providers=None, **kwargs):
        if isinstance(path_or_model, onnx.ModelProto):
            model = path_or_model
        elif isinstance(path_or_model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(path_or_model))
        elif isinstance(path_or_model, (str, os.PathLike)):
            model = onnx.load(os.fspath(path_or_model))
        else:
            raise TypeError(
                "path_or_model must be a path, bytes or an onnx.ModelProto, "
                f"got {type(path_or_model).__name__}"
            )
        self._model = model
        g = model.graph
        self._opset = 1
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self._opset = o.version
        self._inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self._inputs = [_value_info(v) for v in g.input if v.name not in self._inits]
        self._input_types = {
            v.name: v.type.tensor_type.elem_type for v in g.input if v.name not in self._inits
        }
        self._outputs = [_value_info(v) for v in g.output]
        self._steps = []
        self.layers = {}
        for idx, node in enumerate(g.node):
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedModelError(
                    f"node {node.name!r}: op {node.domain}::{node.op_type} (domain "
                    f"{node.domain!r}) is not supported; only the ai.onnx domain is"
                )
            if node.op_type in ("RNN", "LSTM", "GRU"):
                r = _RecurrentNode(node, idx)
                names = [r.inputs[k] for k in ("W", "R", "B", "P") if k in r.inputs]
                if all((not n) or n in self._inits for n in names) and r.inputs["W"]:
                    X_dtype = self._inits[r.inputs["W"]].dtype
                    W, R = self._inits[r.inputs["W"]], self._inits[r.inputs["R"]]
                    B = self._inits.get(r.inputs["B"]) if r.inputs["B"] else None
                    P = self._inits.get(r.inputs.get("P")) if r.inputs.get("P") else None
                    r.layer = r.build(W, R, B, P, X_dtype)
                    r._static = True
                    self.layers[r.name] = r.layer
                self._steps.append(r)
            elif node.op_type in _OPS or node.op_type in _MULTI_OUT:
                self._steps.append(node)
            else:
                raise UnsupportedModelError(
                    f"node {node.name!r}: op {node.op_type} is not supported by "
                    "rnnkit.onnx.InferenceSession (supported: RNN, LSTM, GRU, "
                    + ", ".join(sorted(list(_OPS) + list(_MULTI_OUT)))
                    + ")"
                )

    def get_inputs(self):
        """The inputs to feed (graph inputs that are not initializers)."""
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_modelmeta(self):
        return self._model.metadata_props

    def run(self, output_names, input_feed, run_options=None):
        """Evaluate the graph: a list of arrays, one per name in ``output_names``
        (None: every graph output), as onnxruntime's ``InferenceSession.run``."""
        if not isinstance(input_feed, dict):
            raise TypeError(
                f"input_feed must be a dict name -> array, got {type(input_feed).__name__}"
            )
        known = {a.name for a in self._inputs}
        unknown = sorted(set(input_feed) - known - set(self._inits))
        if unknown:
            raise ValueError(
                f"input_feed has unknown input(s) {unknown}; the inputs are {sorted(known)}"
            )
        env = dict(self._inits)
        for arg in self._inputs:
            if arg.name not in input_feed:
                raise ValueError(f"input {arg.name!r} is missing from input_feed")
            v = input_feed[arg.name]
            if np.ma.is_masked(v):
                raise TypeError(f"input {arg.name!r} is a masked array; fill it (and feed lengths)")
            v = np.asarray(v)
            want = _np_dtype(self._input_types[arg.name])
            if v.dtype != want:
                raise TypeError(
                    f"input {arg.name!r} must have dtype {want} ({arg.type}), got {v.dtype}"
                )
            if arg.shape is not None:
                ok = v.ndim == len(arg.shape) and all(
                    not isinstance(d, int) or d == 0 or d == s for d, s in zip(arg.shape, v.shape)
                )
                if not ok:
                    raise ValueError(
                        f"input {arg.name!r} must have shape {arg.shape}, got {v.shape}"
                    )
            env[arg.name] = v
        overridden = frozenset(n for n in input_feed if n in self._inits)
        for name in overridden:  # an overridable initializer (the graph lists it as an input)
            env[name] = np.asarray(input_feed[name])

        def get(name):
            if name not in env:
                raise ValueError(f"value {name!r} is not computed by any earlier node")
            return env[name]

        for step in self._steps:
            if isinstance(step, _RecurrentNode):
                step.run(env, get, overridden)
                continue
            ins = [get(n) if n else None for n in step.input]
            a = _attrs(step)
            if step.op_type in _MULTI_OUT:
                outs = _MULTI_OUT[step.op_type](a, ins, self._opset, len(step.output))
            else:
                outs = [_OPS[step.op_type](a, ins, self._opset)]
            for n, v in zip(step.output, outs):
                if n:
                    env[n] = np.asarray(v)
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        missing = [n for n in names if n not in env]
        if missing:
            raise ValueError(f"output(s) {missing} are not computed by the graph")
        return [env[n] for n in names]
