"""rnnkit.onnx.export: rnnkit layers, stacks and models as standard ONNX.

One ONNX RNN/LSTM/GRU node per stacked layer (``direction="bidirectional"``
where it applies), with the Transpose/Reshape nodes that give rnnkit's
``[T, N, D*H]``. Everything written is exact: what ONNX cannot express
exactly is refused with the reason, never approximated. This file builds
graphs only; it runs nothing (InferenceSession and the tests run them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import nn
from ..layers import GRU, LSTM, RNN, IndRNN
from ._weights import to_onnx_order

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

#: Opset written when ``opset=None``: new enough for every op we emit, old
#: enough for any ONNX Runtime of the last few years.
DEFAULT_OPSET = 17
#: Slice with inputs (opset 10) is the newest op form the graphs use.
MIN_OPSET = 10

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
_ACT = {"tanh": "Tanh", "relu": "Relu"}


class _Spec:
    """One stacked layer as one ONNX node: op, directions, weights in ONNX layout."""

    def __init__(self, op, D, H, W, R, B, attrs, P=None):
        self.op, self.D, self.H, self.W, self.R, self.B, self.attrs, self.P = (
            op,
            D,
            H,
            W,
            R,
            B,
            attrs,
            P,
        )


def _builtin_specs(layer, cell=None, nonlinearity=None) -> list[_Spec]:
    """The ONNX nodes of a built-in layer (RNN, LSTM, GRU, IndRNN), or of a
    Recurrent running one of the four built-in cells (``cell`` given)."""
    if cell is None:
        cell = {RNN: "rnn", LSTM: "lstm", GRU: "gru", IndRNN: "indrnn"}[type(layer)]
        nonlinearity = layer.nonlinearity
    H, D, P = layer.hidden_size, layer.num_directions, layer.parameters
    onnx_cell = "rnn" if cell == "indrnn" else cell
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[onnx_cell]
    specs = []
    for k in range(layer.num_layers):
        sfx = [f"_l{k}", f"_l{k}_reverse"][:D]
        W = np.stack([to_onnx_order(onnx_cell, P["weight_ih" + s], H) for s in sfx])
        if cell == "indrnn":
            # h @ diag(w)^T adds only exact zeros to w*h: the same numbers.
            R = np.stack([np.diag(P["weight_hh" + s]) for s in sfx])
        else:
            R = np.stack([to_onnx_order(onnx_cell, P["weight_hh" + s], H) for s in sfx])
        B = None
        if "bias_ih" + sfx[0] in P:
            B = np.stack(
                [
                    np.concatenate(
                        [to_onnx_order(onnx_cell, P[b + s], H) for b in ("bias_ih", "bias_hh")]
                    )
                    for s in sfx
                ]
            )
        attrs = {}
        if cell in ("rnn", "indrnn"):
            attrs["activations"] = [_ACT[nonlinearity]] * D
        if cell == "gru":
            attrs["linear_before_reset"] = 1  # rnnkit's GRU is reset-after
        specs.append(_Spec(op, D, H, W, R, B, attrs))
    return specs


# ---------------------------------------------------------------------------
# User cells (rnnkit.Recurrent, from the user-cells work). Two of them have an
# exact ONNX form; every other cell is refused. Each mapping is one function.
# ---------------------------------------------------------------------------


def _recurrent_cell_name(layer) -> str:
    cell = getattr(layer, "cell", None)
    if cell is None:
        cell = getattr(layer, "_cell", None)
    cls = cell if isinstance(cell, type) else type(cell)
    return cls.__name__


def _peephole_lstm_specs(layer) -> list[_Spec]:
    """Recurrent(PeepholeLSTMCell) -> LSTM nodes with P (peephole order i, o, f in both)."""
    specs = []
    H, D, P = layer.hidden_size, layer.num_directions, layer.parameters
    for k in range(layer.num_layers):
        sfx = [f"_l{k}", f"_l{k}_reverse"][:D]
        W = np.stack([to_onnx_order("lstm", P["weight_ih" + s], H) for s in sfx])
        R = np.stack([to_onnx_order("lstm", P["weight_hh" + s], H) for s in sfx])
        B = np.stack(
            [
                np.concatenate([to_onnx_order("lstm", P[b + s], H) for b in ("bias_ih", "bias_hh")])
                for s in sfx
            ]
        )
        Pp = np.stack([np.asarray(P["peephole" + s]).reshape(3 * H) for s in sfx])
        specs.append(_Spec("LSTM", D, H, W, R, B, {}, P=Pp))
    return specs


def _gru_reset_before_specs(layer) -> list[_Spec]:
    """Recurrent(GRUResetBeforeCell) -> GRU nodes with linear_before_reset=0."""
    specs = []
    H, D, P = layer.hidden_size, layer.num_directions, layer.parameters
    for k in range(layer.num_layers):
        sfx = [f"_l{k}", f"_l{k}_reverse"][:D]
        W = np.stack([to_onnx_order("gru", P["weight_ih" + s], H) for s in sfx])
        R = np.stack([to_onnx_order("gru", P["weight_hh" + s], H) for s in sfx])
        B = np.stack(
            [
                np.concatenate([to_onnx_order("gru", P[b + s], H) for b in ("bias_ih", "bias_hh")])
                for s in sfx
            ]
        )
        specs.append(_Spec("GRU", D, H, W, R, B, {"linear_before_reset": 0}))
    return specs


_RECURRENT_CELLS = {
    "PeepholeLSTMCell": (_peephole_lstm_specs, True),
    "GRUResetBeforeCell": (_gru_reset_before_specs, False),
}
# rnnkit.Recurrent(rnnkit.cells.LSTMCell(), ...) and friends: the built-in math.
_BUILTIN_CELLS = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": "rnn", "IndRNNCell": "indrnn"}


def _is_recurrent(obj) -> bool:
    import rnnkit

    R = getattr(rnnkit, "Recurrent", None)
    return R is not None and isinstance(obj, R)


def _recurrent_info(obj):
    """(specs, has_c) of any recurrent layer we can write, else None."""
    if type(obj) in (RNN, LSTM, GRU, IndRNN):
        return _builtin_specs(obj), isinstance(obj, LSTM)
    if _is_recurrent(obj):
        from ._session import user_cell

        name = _recurrent_cell_name(obj)
        cell = getattr(obj, "cell", None)
        cell = getattr(obj, "_cell", None) if cell is None else cell
        # the very class rnnkit.cells ships, not a subclass or a namesake
        exact = user_cell(name) is not None and type(cell) is user_cell(name)
        if exact and name in _BUILTIN_CELLS:
            kind = _BUILTIN_CELLS[name]
            return _builtin_specs(obj, kind, getattr(cell, "nonlinearity", None)), kind == "lstm"
        if name not in _RECURRENT_CELLS or not exact:
            raise ValueError(
                f"cannot export rnnkit.Recurrent with cell {name}: ONNX's RNN, LSTM and GRU "
                f"nodes express exactly only {sorted(_RECURRENT_CELLS)} among user cells, and "
                "rnnkit writes nothing approximate"
            )
        fn, has_c = _RECURRENT_CELLS[name]
        return fn(obj), has_c
    return None


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------


class _Graph:
    def __init__(self, dtype):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.dtype = np.dtype(dtype)
        self._n = 0

    def name(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base, value):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, n_out=1, base=None, **attrs):
        outs = [self.name(base or op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs if n_out > 1 else outs[0]


def _flatten_model(model):
    """The model as a list of modules in order (embedding?, layers and heads)."""
    from ..text import CharModel

    if isinstance(model, CharModel):
        if not model.built:
            raise ValueError("the CharModel has no weights yet: fit() or load() it first")
        return [model.embedding, model.rnn, model.head]
    if isinstance(model, Mapping):  # rnnkit.nn's convention: {name: module}, in order
        model = list(model.values())
    if isinstance(model, (list, tuple)):
        if not model:
            raise ValueError("model is an empty sequence: nothing to export")
        return list(model)
    return [model]


def export(model, path, *, opset=None, lengths=True, initial_state=False):
    """Write ``model`` to ``path`` as a standard ONNX file; returns the ModelProto.

    Parameters
    ----------
    model : rnnkit layer, sequence, or rnnkit.text.CharModel
        An ``RNN``, ``LSTM``, ``GRU`` or ``IndRNN`` (any ``num_layers``,
        bidirectional, ``batch_first``, with or without bias); a list or tuple
        of such layers and ``rnnkit.nn.Linear`` heads, optionally led by an
        ``rnnkit.nn.Embedding`` (input: integer ids), or a dict name -> module
        of them in order (rnnkit.nn's convention); or a ``CharModel``.
    path : str or os.PathLike or None
        Where to write; None writes nothing (the ModelProto is returned).
    opset : int, optional
        The ai.onnx opset to declare (``MIN_OPSET``..the installed onnx's
        newest); default ``DEFAULT_OPSET``.
    lengths : bool, default True
        Add a graph input ``lengths`` (int32 ``[N]``) fed to every node's
        ``sequence_lens``. It must then be fed (use ``T`` for full sequences).
    initial_state : bool, default False
        Add graph inputs ``h0`` (and ``c0`` for LSTM), ``[L*D, N, H]`` as in
        rnnkit; without them the nodes start from zeros.

    The graph's input ``x`` (or ``ids``) has dynamic axes ``T`` and ``N``, in
    the first layer's layout (``[N, T, C]`` with ``batch_first``). Outputs:
    ``y`` (``[T, N, D*H]``, or the last head's output) and the final states
    ``h_n`` (and ``c_n``) ``[L*D, N, H]``; several recurrent layers give
    ``h_n.0``, ``h_n.1``, ...

    Raises
    ------
    TypeError
        A module that has no ONNX form here (the message names it).
    ValueError
        A bad opset, an unbuilt model, layers that disagree on batch_first or
        dtype, or a user cell without an exact ONNX form (with the reason).
    """
    if opset is None:
        opset = DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int in {MIN_OPSET}..{newest}, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be in {MIN_OPSET}..{newest}, got {opset}")
    for name, v in (("lengths", lengths), ("initial_state", initial_state)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {v!r}")

    modules = _flatten_model(model)
    recurrent = []  # (index, specs, has_c, layer)
    for i, m in enumerate(modules):
        info = _recurrent_info(m)
        if info is not None:
            recurrent.append((i, info[0], info[1], m))
        elif isinstance(m, nn.Embedding):
            if i != 0:
                raise ValueError(f"model[{i}] is an Embedding: only the first module may be one")
        elif not isinstance(m, nn.Linear):
            raise TypeError(
                f"model[{i}] is a {type(m).__name__}, which has no ONNX form here: expected "
                "rnnkit RNN, LSTM, GRU, IndRNN, rnnkit.Recurrent with an ONNX-expressible "
                "cell, rnnkit.nn.Linear, or a leading rnnkit.nn.Embedding"
            )
    if not recurrent:
        raise ValueError("model has no recurrent layer: nothing for RNN/LSTM/GRU nodes to do")
    dtypes = {np.dtype(m.dtype) for m in modules}
    if len(dtypes) != 1:
        raise ValueError(f"the modules mix dtypes {sorted(map(str, dtypes))}; use one dtype")
    dtype = dtypes.pop()
    bfs = {bool(m.batch_first) for _, _, _, m in recurrent}
    if len(bfs) != 1:
        raise ValueError("the recurrent layers disagree on batch_first; use one layout")
    batch_first = bfs.pop()
    elem = _ELEM[dtype]
    g = _Graph(dtype)
    axes = ["N", "T"] if batch_first else ["T", "N"]

    first = modules[0]
    if isinstance(first, nn.Embedding):
        g.inputs.append(helper.make_tensor_value_info("ids", TensorProto.INT64, axes))
        table = g.const("embedding_weight", first.parameters["weight"])
        cur = g.node("Gather", [table, "ids"], base="embedded", axis=0)
        modules = modules[1:]
        offset = 1
    else:
        C = (
            recurrent[0][3].input_size
            if recurrent[0][0] == 0
            else first.parameters["weight"].shape[1]
        )
        g.inputs.append(helper.make_tensor_value_info("x", elem, axes + [C]))
        cur, offset = "x", 0
    if batch_first:
        cur = g.node("Transpose", [cur], base="x_tnc", perm=[1, 0, 2])
    if lengths:
        g.inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["N"]))
    seq_lens = "lengths" if lengths else ""
    multi = len(recurrent) > 1
    by_index = {i - offset: (specs, has_c, layer) for i, specs, has_c, layer in recurrent}

    for j, m in enumerate(modules):
        if isinstance(m, nn.Linear):
            w = g.const("head_weight_t", np.ascontiguousarray(m.parameters["weight"].T))
            cur = g.node("MatMul", [cur, w], base="head")
            if "bias" in m.parameters:
                cur = g.node("Add", [cur, g.const("head_bias", m.parameters["bias"])], base="head")
            continue
        specs, has_c, _ = by_index[j]
        r = recurrent.index(next(t for t in recurrent if t[3] is m))
        tag = f".{r}" if multi else ""
        L, D, H = len(specs), specs[0].D, specs[0].H
        h0 = c0 = None
        if initial_state:
            h0 = "h0" + tag
            g.inputs.append(helper.make_tensor_value_info(h0, elem, [L * D, "N", H]))
            if has_c:
                c0 = "c0" + tag
                g.inputs.append(helper.make_tensor_value_info(c0, elem, [L * D, "N", H]))
        hs, cs = [], []
        zero_len = None
        if initial_state and lengths:
            # ONNX Runtime writes Y_h = Y_c = 0 for a sequence of length 0 (the
            # spec is silent); rnnkit keeps the initial state, so say so in the graph.
            is0 = g.node("Equal", [seq_lens, g.const("zero", np.array(0, np.int32))], base="len0")
            zero_len = g.node(
                "Reshape", [is0, g.const("shape", np.array([1, -1, 1], np.int64))], base="len0"
            )
        for k, s in enumerate(specs):
            ins = [cur, g.const("W", s.W), g.const("R", s.R)]
            ins.append(g.const("B", s.B) if s.B is not None else "")
            ins.append(seq_lens)
            for st in [h0, c0] if has_c else [h0]:
                if st is None:
                    ins.append("")
                elif L == 1:
                    ins.append(st)
                else:
                    ins.append(
                        g.node(
                            "Slice",
                            [
                                st,
                                g.const("starts", np.array([k * D], np.int64)),
                                g.const("ends", np.array([(k + 1) * D], np.int64)),
                                g.const("axes", np.array([0], np.int64)),
                            ],
                            base="state",
                        )
                    )
            if s.P is not None:
                ins.append(g.const("P", s.P))
            while ins and ins[-1] == "":
                ins.pop()
            attrs = dict(s.attrs)
            if D == 2:
                attrs["direction"] = "bidirectional"
            outs = g.node(
                s.op, ins, n_out=3 if has_c else 2, base=s.op.lower(), hidden_size=H, **attrs
            )
            Y = outs[0]
            finals = outs[1:]
            if zero_len is not None:
                finals = [
                    g.node("Where", [zero_len, init, fin], base="state_n")
                    for init, fin in zip(ins[5 : 5 + len(finals)], finals)
                ]
            hs.append(finals[0])
            if has_c:
                cs.append(finals[1])
            # Y [T, D, N, H] -> [T, N, D, H] -> [T, N, D*H]
            Y = g.node("Transpose", [Y], base="y_tndh", perm=[0, 2, 1, 3])
            cur = g.node(
                "Reshape", [Y, g.const("shape", np.array([0, 0, D * H], np.int64))], base="y"
            )
        for name, parts in (("h_n", hs), ("c_n", cs)):
            if not parts:
                continue
            out = name + tag
            if len(parts) == 1:
                g.nodes.append(helper.make_node("Identity", parts, [out], name=g.name("Identity")))
            else:
                g.nodes.append(
                    helper.make_node("Concat", parts, [out], name=g.name("Concat"), axis=0)
                )
            g.outputs.append(helper.make_tensor_value_info(out, elem, [L * D, "N", H]))
    if batch_first:
        cur = g.node("Transpose", [cur], base="y_ntc", perm=[1, 0, 2])
    g.nodes.append(helper.make_node("Identity", [cur], ["y"], name=g.name("Identity")))
    g.outputs.insert(0, helper.make_tensor_value_info("y", elem, axes + [None]))

    graph = helper.make_graph(g.nodes, "rnnkit", g.inputs, g.outputs, g.inits)
    proto = helper.make_model_gen_version(
        graph, producer_name="rnnkit", opset_imports=[helper.make_opsetid("", int(opset))]
    )
    from .._version import __version__

    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto
