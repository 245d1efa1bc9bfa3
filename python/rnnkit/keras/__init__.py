"""rnnkit.keras: Keras 3 recurrent layers and Sequential stacks in and out.

``from_keras`` turns LSTM, GRU, SimpleRNN, Bidirectional, Masking, Embedding,
Dropout and Dense layers (alone or in a Sequential) into a ``KerasStack`` of
rnnkit layers that computes what the Keras model computes, masks included;
``to_keras`` goes back. Exact or refused: activations, merge modes, masks and
options that rnnkit cannot follow exactly raise ValueError naming them.
Needs keras (``pip install 'rnnkit[keras]'``, any backend; the tests use JAX);
``import rnnkit`` never imports it. Inside this package ``keras`` is Keras.
"""

from __future__ import annotations

import numpy as np

try:
    import keras
except ImportError as err:  # pragma: no cover - exercised only without keras
    raise ImportError("rnnkit.keras needs Keras 3: pip install 'rnnkit[keras]'") from err

from ..layers import GRU, LSTM, RNN

__all__ = ["from_keras", "to_keras", "KerasStack", "KerasConversionError"]

_FLOATS = {"float32": np.float32, "float64": np.float64}
# Keras gate blocks -> rnnkit gate blocks (rows of w_ih after the transpose):
# LSTM i,f,c,o is rnnkit's i,f,g,o; GRU z,r,h -> rnnkit r,z,n.
_GRU_FROM_KERAS = (1, 0, 2)


class KerasConversionError(ValueError):
    """A Keras layer or option that rnnkit cannot reproduce exactly."""


def _blocks(a, order, H, axis):
    return np.concatenate(
        [np.take(a, range(g * H, (g + 1) * H), axis=axis) for g in order], axis=axis
    )


# ---------------------------------------------------------------------------
# One Keras recurrent layer <-> one direction of an rnnkit layer
# ---------------------------------------------------------------------------


def _check_recurrent_options(layer, where):
    cfg = layer.get_config()
    kind = type(layer).__name__
    act = cfg.get("activation")
    allowed = ("tanh", "relu") if kind == "SimpleRNN" else ("tanh",)
    if act not in allowed:
        raise KerasConversionError(
            f"{where}: activation={act!r} is refused: rnnkit's {kind} computes "
            f"{' or '.join(allowed)}"
        )
    if kind != "SimpleRNN" and cfg.get("recurrent_activation") != "sigmoid":
        raise KerasConversionError(
            f"{where}: recurrent_activation={cfg.get('recurrent_activation')!r} is refused: "
            "rnnkit's gates are sigmoid"
        )
    if cfg.get("stateful") and getattr(layer, "states", None) is None:
        raise KerasConversionError(
            f"{where}: stateful=True without its state is refused: the layer has no state "
            "yet (build or call it with a fixed batch size first), and starting from zeros "
            "would not be the model"
        )
    dtype = layer.dtype_policy
    if dtype.compute_dtype != dtype.variable_dtype or dtype.variable_dtype not in _FLOATS:
        raise KerasConversionError(
            f"{where}: dtype policy {dtype.name!r} is refused: rnnkit runs float32 or float64 "
            "end to end"
        )
    if not layer.built:
        raise KerasConversionError(f"{where}: the layer is not built (it has no weights yet)")
    return cfg


def _keras_to_state(layer, where, suffix):
    """(rnnkit class, kwargs, state_dict entries) of one Keras recurrent layer."""
    cfg = _check_recurrent_options(layer, where)
    kind = type(layer).__name__
    cell = layer.cell
    U = np.asarray(keras.ops.convert_to_numpy(cell.recurrent_kernel))
    W = np.asarray(keras.ops.convert_to_numpy(cell.kernel))
    H = int(cfg["units"])
    use_bias = bool(cfg.get("use_bias", True))
    b = np.asarray(keras.ops.convert_to_numpy(cell.bias)) if use_bias else None
    sd = {}
    extra = {}
    if kind == "LSTM":
        cls = LSTM
        sd["weight_ih" + suffix] = W.T.copy()
        sd["weight_hh" + suffix] = U.T.copy()
        if use_bias:
            sd["bias_ih" + suffix] = b.copy()
            sd["bias_hh" + suffix] = np.zeros_like(b)
    elif kind == "GRU":
        sd["weight_ih" + suffix] = _blocks(W.T, _GRU_FROM_KERAS, H, 0)
        sd["weight_hh" + suffix] = _blocks(U.T, _GRU_FROM_KERAS, H, 0)
        if cfg.get("reset_after", True):
            cls = GRU
            if use_bias:
                sd["bias_ih" + suffix] = _blocks(b[0], _GRU_FROM_KERAS, H, 0)
                sd["bias_hh" + suffix] = _blocks(b[1], _GRU_FROM_KERAS, H, 0)
        else:
            cls = "GRUResetBeforeCell"
            z = np.zeros(3 * H, W.dtype)
            sd["bias_ih" + suffix] = _blocks(b, _GRU_FROM_KERAS, H, 0) if use_bias else z
            sd["bias_hh" + suffix] = z.copy()
    elif kind == "SimpleRNN":
        cls = RNN
        extra["nonlinearity"] = cfg["activation"]
        sd["weight_ih" + suffix] = W.T.copy()
        sd["weight_hh" + suffix] = U.T.copy()
        if use_bias:
            sd["bias_ih" + suffix] = b.copy()
            sd["bias_hh" + suffix] = np.zeros_like(b)
    else:
        raise KerasConversionError(f"{where}: {kind} is not a recurrent layer rnnkit converts")
    dtype = _FLOATS[layer.dtype_policy.variable_dtype]
    kw = dict(dtype=dtype, batch_first=True, **extra)
    if cls is not None and cls != "GRUResetBeforeCell":
        kw["bias"] = use_bias
    return cls, W.shape[0], H, kw, sd, cfg


def _gru_reset_before_layer(where, C, H, kw, sd):
    """Keras GRU(reset_after=False) -> rnnkit.Recurrent(GRUResetBeforeCell) (r, z, n)."""
    import importlib

    import rnnkit

    cell = None
    if hasattr(rnnkit, "Recurrent"):
        try:
            cells = importlib.import_module("rnnkit.cells")
        except ImportError:
            cells = getattr(rnnkit, "cells", None)
        cell = getattr(cells, "GRUResetBeforeCell", None)
    if cell is None:
        raise KerasConversionError(
            f"{where}: GRU(reset_after=False) needs rnnkit.cells.GRUResetBeforeCell and "
            "rnnkit.Recurrent, which this rnnkit does not have; rnnkit's GRU is reset-after "
            "(Keras's default, reset_after=True)"
        )
    kw = {k: v for k, v in kw.items() if k != "bias"}  # Recurrent has no bias switch
    try:
        layer = rnnkit.Recurrent(cell(), C, H, **kw)
    except TypeError:  # a Recurrent that takes the cell class itself
        layer = rnnkit.Recurrent(cell, C, H, **kw)
    layer.load_state_dict(sd)
    return layer


def _build(cls, C, H, kw, sd, where):
    if cls == "GRUResetBeforeCell":
        return _gru_reset_before_layer(where, C, H, kw, sd)
    layer = cls(C, H, **kw)
    layer.load_state_dict(sd)
    return layer


# ---------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------


class KerasStack:
    """rnnkit's twin of a Keras recurrent model: call it as the Keras model.

    ``stack(x, mask=None)`` takes Keras's batch-major input (``[N, T, C]``, or
    integer ids ``[N, T]`` when the stack starts with an Embedding) and returns
    what the Keras model returns. A mask (given, or made by Masking or
    ``Embedding(mask_zero=True)``) must be right padding, a run of True then
    False in each row: it becomes rnnkit's ``lengths``. Keras's own handling
    of masked steps is reproduced: zeros inside Bidirectional and wherever
    ``zero_output_for_mask=True``, else the last valid output carried forward.

    Attributes
    ----------
    layers : list of rnnkit layers
        One per Keras recurrent layer (a Bidirectional is one bidirectional
        layer), ``batch_first=True``, in order: fine-tune them in place.
    steps : list of (kind, object, options)
        The whole pipeline, for to_keras.
    """

    def __init__(self, steps):
        self.steps = steps
        self.layers = [s[1] for s in steps if s[0] == "rnn"]

    def reset_states(self) -> None:
        """Zero the carried state of every stateful layer (Keras's reset_states)."""
        for kind, _, opt in self.steps:
            if kind == "rnn" and opt["state"] is not None:
                for a in opt["state"]:
                    a.fill(0)

    def __call__(self, x, mask=None):
        x = np.asarray(x)
        lengths = None if mask is None else _lengths_from_mask(mask, x.shape[:2])
        out, state_out = x, None
        for kind, obj, opt in self.steps:
            if kind == "embedding":
                ids = out.astype(np.int64)
                if opt["mask_zero"]:
                    lengths = _lengths_from_mask(ids != 0, ids.shape)
                out = obj[ids]
            elif kind == "masking":
                lengths = _lengths_from_mask(
                    np.any(out != opt["mask_value"], axis=-1), out.shape[:2]
                )
            elif kind == "dropout":
                continue  # inference: identity, as in Keras
            elif kind == "dense":
                out = out @ obj[0]
                if obj[1] is not None:
                    out = out + obj[1]
                if opt["activation"] == "relu":
                    out = np.maximum(out, 0)
                elif opt["activation"] == "tanh":
                    out = np.tanh(out)
            else:
                out, state_out = _run_recurrent(obj, opt, out, lengths)
                if not opt["return_sequences"]:
                    lengths = None
        return out if state_out is None else [out, *state_out]


def _lengths_from_mask(mask, shape):
    m = np.asarray(mask)
    if m.shape != tuple(shape) or m.dtype != np.bool_:
        raise ValueError(
            f"mask must be a bool array of shape {tuple(shape)}, got {m.dtype} {m.shape}"
        )
    lengths = m.sum(axis=1)
    prefix = np.arange(m.shape[1])[None, :] < lengths[:, None]
    bad = np.flatnonzero(np.any(prefix != m, axis=1))
    if bad.size:
        raise ValueError(
            f"mask row {int(bad[0])} is not right padding (True then False): rnnkit maps a mask "
            "to lengths, and a mask with holes would skip steps in the middle, which lengths "
            "cannot express"
        )
    return lengths


def _flip_within(a, lengths):
    N, T = a.shape[:2]
    if lengths is None:
        return np.ascontiguousarray(a[:, ::-1])
    t = np.arange(T)[None, :]
    L = np.asarray(lengths)[:, None]
    src = np.where(t < L, L - 1 - t, t)  # N,T
    return np.ascontiguousarray(a[np.arange(N)[:, None], src])


def _run_recurrent(layer, opt, x, lengths):
    x = np.ascontiguousarray(x, dtype=layer.dtype)
    init = None
    if opt["state"] is not None:  # a stateful layer: start where the last call ended
        N = opt["state"][0].shape[0]
        if x.shape[0] != N:
            raise ValueError(
                f"x has batch size {x.shape[0]}, but the stateful layer's state is for {N}"
            )
        parts = [s[None] for s in opt["state"]]  # 1,N,H each
        init = tuple(parts) if len(parts) == 2 else parts[0]
    if opt["go_backwards"]:
        # Keras runs the whole padded sequence reversed: masked steps come first
        # and keep the state, so it starts at each sequence's own last step and
        # returns its outputs in the order it made them (reversed time).
        y, st = layer(_flip_within(x, lengths), init, lengths)
    else:
        y, st = layer(x, init, lengths)
    has_c = isinstance(st, tuple)
    if opt["state"] is not None:
        opt["state"] = [a[0].copy() for a in (st if has_c else (st,))]
    h, c = st if has_c else (st, None)
    H = layer.hidden_size
    if (
        opt["return_sequences"]
        and lengths is not None
        and not opt["zero_output"]
        and not opt["go_backwards"]
    ):
        # Keras repeats the last output at masked steps (zero_output_for_mask=False,
        # or any unrolled layer). A backward direction saw the padding first, so
        # its masked outputs are zeros either way: only the forward half carries.
        y = y.copy()
        y[..., :H] = _carry_last_output(y[..., :H], lengths, h0=np.zeros_like(y[:, 0, :H]))
    if opt["merge"] is not None and opt["merge"] != "concat":
        f, b = y[..., :H], y[..., H:]
        y = {"sum": f + b, "mul": f * b, "ave": (f + b) / 2}[opt["merge"]]
    if not opt["return_sequences"]:
        if layer.bidirectional:
            last = np.concatenate([h[0], h[1]], axis=-1)
            if opt["merge"] not in (None, "concat"):
                f, b = h[0], h[1]
                last = {"sum": f + b, "mul": f * b, "ave": (f + b) / 2}[opt["merge"]]
            out = last
        else:
            out = h[0]
    else:
        if opt["go_backwards"]:
            # outputs in processing order, the padding first: zeros either way
            # (nothing was output before it to carry)
            out = _keras_order_backwards(y, lengths)
        else:
            out = y
    states = None
    if opt["return_state"]:
        states = [h[0]] if not has_c else [h[0], c[0]]
        if layer.bidirectional:
            states = [h[0], c[0], h[1], c[1]] if has_c else [h[0], h[1]]
    return out, states


def _keras_order_backwards(y, lengths):
    """rnnkit's y of the flipped input, in Keras's go_backwards output order."""
    if lengths is None:
        return y
    # Keras processed [pad..., x_{L-1}, ..., x_0]: its output t is zero/carried
    # for the T-L padding steps first, then the outputs of x_{L-1}..x_0.
    N, T = y.shape[:2]
    out = np.zeros_like(y)
    for n in range(N):
        L = int(lengths[n])
        out[n, T - L :] = y[n, :L]
    return out


def _carry_last_output(y, lengths, h0):
    """Keras's zero_output_for_mask=False: a masked step repeats the last output."""
    N, T = y.shape[:2]
    out = y.copy()
    valid = np.zeros((N, T), bool)
    for n in range(N):
        valid[n, : int(lengths[n])] = True
    last = h0.copy()
    for t in range(T):
        last = np.where(valid[:, t : t + 1], y[:, t], last)
        out[:, t] = last
    return out


def _recurrent_step(layer, where):
    kind = type(layer).__name__
    if kind == "Bidirectional":
        merge = layer.merge_mode
        if merge not in ("concat", "sum", "ave", "mul"):
            raise KerasConversionError(
                f"{where}: Bidirectional(merge_mode={merge!r}) is refused: rnnkit concatenates "
                "the directions, and applies sum, ave or mul after the layer; nothing else"
            )
        fw, bw = layer.forward_layer, layer.backward_layer
        if fw.stateful or bw.stateful:
            raise KerasConversionError(
                f"{where}: a stateful Bidirectional is refused: its backward direction would "
                "start each call from the previous call's state, which rnnkit's reverse "
                "direction does not do"
            )
        if type(fw) is not type(bw):
            raise KerasConversionError(f"{where}: forward and backward layers differ in type")
        cls, C, H, kw, sd, cfg = _keras_to_state(fw, where + ".forward_layer", "_l0")
        cls2, C2, H2, kw2, sd2, cfg2 = _keras_to_state(bw, where + ".backward_layer", "_l0_reverse")
        if (cls2, C2, H2, kw2) != (cls, C, H, kw):
            raise KerasConversionError(f"{where}: the two directions differ in size or options")
        if cfg["go_backwards"] or not cfg2["go_backwards"]:
            raise KerasConversionError(f"{where}: expected a forward and a go_backwards layer")
        sd.update(sd2)
        rnn = _build(cls, C, H, dict(kw, bidirectional=True), sd, where)
        opt = dict(
            state=None,
            return_sequences=bool(fw.return_sequences),
            return_state=bool(layer.return_state),
            go_backwards=False,
            merge=merge,
            # Bidirectional asks for zeros at masked steps, but Keras's unrolled
            # loop ignores zero_output_for_mask (3.15): follow what it does.
            zero_output=not fw.unroll,
            keras_kind=type(fw).__name__,
            keras_config=cfg,
        )
        return ("rnn", rnn, opt)
    cls, C, H, kw, sd, cfg = _keras_to_state(layer, where, "_l0")
    rnn = _build(cls, C, H, kw, sd, where)
    state = None
    if cfg.get("stateful"):  # carried from call to call, as Keras does
        state = [_to_np(v).astype(rnn.dtype) for v in layer.states]
    opt = dict(
        state=state,
        return_sequences=bool(cfg["return_sequences"]),
        return_state=bool(cfg["return_state"]),
        go_backwards=bool(cfg["go_backwards"]),
        merge=None,
        zero_output=bool(cfg.get("zero_output_for_mask", False)) and not cfg.get("unroll"),
        keras_kind=kind,
        keras_config=cfg,
    )
    return ("rnn", rnn, opt)


def _to_np(v):
    return np.asarray(keras.ops.convert_to_numpy(v))


def _step(layer, where, first):
    kind = type(layer).__name__
    if kind in ("LSTM", "GRU", "SimpleRNN", "Bidirectional"):
        return _recurrent_step(layer, where)
    if kind == "InputLayer":
        return None
    if kind == "Masking":
        return ("masking", None, {"mask_value": float(layer.mask_value)})
    if kind == "Dropout":
        return ("dropout", None, {"rate": float(layer.rate)})
    if kind == "Embedding":
        if not first:
            raise KerasConversionError(f"{where}: an Embedding must come first")
        return ("embedding", _to_np(layer.embeddings), {"mask_zero": bool(layer.mask_zero)})
    if kind == "Dense":
        act = layer.get_config()["activation"]
        if act not in ("linear", "relu", "tanh"):
            raise KerasConversionError(
                f"{where}: Dense(activation={act!r}) is refused (linear, relu or tanh only)"
            )
        b = _to_np(layer.bias) if layer.use_bias else None
        return ("dense", (_to_np(layer.kernel), b), {"activation": act})
    raise KerasConversionError(
        f"{where}: {kind} is not supported (LSTM, GRU, SimpleRNN, Bidirectional, Masking, "
        "Embedding, Dropout, Dense)"
    )


def from_keras(layer_or_model):
    """A :class:`KerasStack` that computes what the Keras layer or Sequential
    model computes; its ``.layers`` are the rnnkit layers (``batch_first``).

    Converted: LSTM and GRU (tanh, sigmoid gates; GRU ``reset_after=True`` as
    rnnkit's GRU, ``reset_after=False`` through ``rnnkit.cells.GRUResetBeforeCell``),
    SimpleRNN (tanh or relu), with or without bias, ``return_sequences``,
    ``return_state``, ``go_backwards``; Bidirectional (``concat``, and ``sum``,
    ``ave``, ``mul`` applied after the layer); Masking, Embedding (first),
    Dropout (identity in inference) and Dense (linear, relu, tanh).

    A ``stateful=True`` layer brings its current state, and the stack carries
    it from call to call as Keras does (``stack.reset_states()`` zeroes it).

    Refused (KerasConversionError, naming the option): other activations and
    merge modes, a stateful layer without its state (not built yet) and a
    stateful Bidirectional, mixed-precision policies, unbuilt layers, other
    layer types. Keras's recurrent dropout only acts in training and is
    not carried over.
    """
    if isinstance(layer_or_model, keras.Sequential):
        items = [
            (f"{layer_or_model.name}.layers[{i}]", l) for i, l in enumerate(layer_or_model.layers)
        ]
    elif isinstance(layer_or_model, keras.layers.Layer) and not isinstance(
        layer_or_model, keras.Model
    ):
        items = [(layer_or_model.name, layer_or_model)]
    else:
        raise TypeError(
            "from_keras takes a Keras layer or a keras.Sequential model, got "
            f"{type(layer_or_model).__name__}"
        )
    steps = []
    for i, (where, l) in enumerate(items):
        s = _step(l, where, first=not steps)
        if s is not None:
            steps.append(s)
    if not any(s[0] == "rnn" for s in steps):
        raise KerasConversionError("the model has no recurrent layer to convert")
    return KerasStack(steps)


# ---------------------------------------------------------------------------
# Back to Keras
# ---------------------------------------------------------------------------


def _keras_layer_from(kind, H, cfg, dtype):
    cls = getattr(keras.layers, kind)
    kw = dict(
        units=H,
        stateful=bool(cfg.get("stateful", False)),
        return_sequences=cfg["return_sequences"],
        return_state=cfg["return_state"],
        go_backwards=cfg["go_backwards"],
        use_bias=cfg["use_bias"],
        dtype=dtype,
        unroll=bool(cfg.get("unroll", False)),
    )
    if kind == "SimpleRNN":
        kw["activation"] = cfg["activation"]
    if kind == "GRU":
        kw["reset_after"] = cfg["reset_after"]
    return cls(**kw)


def _set_keras_weights(klayer, rnn, suffix, kind, reset_after=True):
    P = rnn.parameters
    H = rnn.hidden_size
    w_ih, w_hh = P["weight_ih" + suffix], P["weight_hh" + suffix]
    has_b = ("bias_ih" + suffix) in P
    if kind in ("LSTM", "SimpleRNN"):
        ws = [w_ih.T, w_hh.T]
        if has_b:
            # Keras keeps one bias: b_ih + b_hh (rounded once, in the layer's dtype)
            ws.append(P["bias_ih" + suffix] + P["bias_hh" + suffix])
    else:
        inv = _GRU_FROM_KERAS  # r,z,n <-> z,r,h is its own inverse
        ws = [_blocks(w_ih, inv, H, 0).T, _blocks(w_hh, inv, H, 0).T]
        if has_b:
            bi, bh = (_blocks(P[b + suffix], inv, H, 0) for b in ("bias_ih", "bias_hh"))
            ws.append(np.stack([bi, bh]) if reset_after else bi + bh)
    klayer.set_weights([np.ascontiguousarray(w) for w in ws])


def to_keras(model, *, unroll=False):
    """A built ``keras.Sequential`` computing what ``model`` computes.

    ``model`` is a :class:`KerasStack` (from from_keras: the same layers and
    options come back, weights bitwise equal) or an rnnkit ``LSTM``, ``GRU``
    or ``RNN`` (any ``num_layers``, bidirectional: one Keras layer, or
    ``Bidirectional(merge_mode="concat")``, per stacked layer, with
    ``return_sequences=True``, and ``Dropout`` between layers when the rnnkit
    layer has dropout). The Keras model takes ``[N, T, C]`` (Keras is
    batch-major) whatever the layer's ``batch_first``. LSTM and SimpleRNN keep
    one bias, so theirs is ``b_ih + b_hh``. IndRNN and user cells have no Keras
    layer and are refused. ``unroll`` is Keras's execution option for the new
    layers (the same math; faster for short sequences, compiling nothing).
    """
    if isinstance(model, KerasStack):
        return _stack_to_keras(model)
    kind = {LSTM: "LSTM", GRU: "GRU", RNN: "SimpleRNN"}.get(type(model))
    if kind is None:
        raise TypeError(
            f"to_keras takes a KerasStack or an rnnkit LSTM, GRU or RNN, got {type(model).__name__}"
        )
    dtype = np.dtype(model.dtype).name
    cfg = dict(
        return_sequences=True,
        return_state=False,
        go_backwards=False,
        use_bias=model.bias,
        activation=model.nonlinearity,
        reset_after=True,
        unroll=bool(unroll),
    )
    seq = [keras.Input((None, model.input_size), dtype=dtype)]
    built = []
    for k in range(model.num_layers):
        if k and model.dropout:
            seq.append(keras.layers.Dropout(model.dropout))
        fw = _keras_layer_from(kind, model.hidden_size, cfg, dtype)
        if model.bidirectional:
            bw = _keras_layer_from(kind, model.hidden_size, dict(cfg, go_backwards=True), dtype)
            layer = keras.layers.Bidirectional(fw, backward_layer=bw, merge_mode="concat")
            built.append((layer, k))
        else:
            layer = fw
            built.append((layer, k))
        seq.append(layer)
    km = keras.Sequential(seq)
    for layer, k in built:
        if model.bidirectional:
            _set_keras_weights(layer.forward_layer, model, f"_l{k}", kind)
            _set_keras_weights(layer.backward_layer, model, f"_l{k}_reverse", kind)
        else:
            _set_keras_weights(layer, model, f"_l{k}", kind)
    return km


def _stack_to_keras(stack):
    seq, todo = [], []
    first = stack.steps[0]
    for kind, obj, opt in stack.steps:
        if kind == "embedding":
            layer = keras.layers.Embedding(
                obj.shape[0], obj.shape[1], mask_zero=opt["mask_zero"], dtype=obj.dtype.name
            )
            todo.append((layer, [obj]))
        elif kind == "masking":
            layer = keras.layers.Masking(opt["mask_value"])
        elif kind == "dropout":
            layer = keras.layers.Dropout(opt["rate"])
        elif kind == "dense":
            W, b = obj
            layer = keras.layers.Dense(
                W.shape[1], activation=opt["activation"], use_bias=b is not None, dtype=W.dtype.name
            )
            todo.append((layer, [W] + ([b] if b is not None else [])))
        else:
            rnn = obj
            kk, cfg = opt["keras_kind"], opt["keras_config"]
            dtype = np.dtype(rnn.dtype).name
            ra = cfg.get("reset_after", True)
            if opt["merge"] is not None:
                fw = _keras_layer_from(
                    kk,
                    rnn.hidden_size,
                    dict(cfg, go_backwards=False, return_state=opt["return_state"]),
                    dtype,
                )
                bw = _keras_layer_from(
                    kk,
                    rnn.hidden_size,
                    dict(cfg, go_backwards=True, return_state=opt["return_state"]),
                    dtype,
                )
                layer = keras.layers.Bidirectional(fw, backward_layer=bw, merge_mode=opt["merge"])
                todo.append(("bi", layer, rnn, kk, ra))
            else:
                layer = _keras_layer_from(kk, rnn.hidden_size, cfg, dtype)
                todo.append(("uni", layer, rnn, kk, ra))
        seq.append(layer)
    if first[0] == "embedding":
        inp = keras.Input((None,), dtype="int64")
    else:
        rnn0 = next(s[1] for s in stack.steps if s[0] == "rnn")
        C = rnn0.input_size
        for kind, obj, _ in stack.steps:
            if kind == "dense":
                C = obj[0].shape[0]
                break
            if kind == "rnn":
                break
        states = [s[2]["state"] for s in stack.steps if s[0] == "rnn" and s[2]["state"] is not None]
        batch = states[0][0].shape[0] if states else None
        inp = keras.Input(batch_shape=(batch, None, C), dtype=np.dtype(rnn0.dtype).name)
    km = (
        keras.Sequential([inp] + seq)
        if not any(s[0] == "rnn" and s[2]["return_state"] for s in stack.steps)
        else None
    )
    if km is None:  # a layer returning its state: a functional model around it
        x = inp
        for layer in seq:
            x = layer(x)
        km = keras.Model(inp, x)
    for item in todo:
        if item[0] == "bi":
            _, layer, rnn, kk, ra = item
            _set_keras_weights(layer.forward_layer, rnn, "_l0", kk, ra)
            _set_keras_weights(layer.backward_layer, rnn, "_l0_reverse", kk, ra)
        elif item[0] == "uni":
            _, layer, rnn, kk, ra = item
            _set_keras_weights(layer, rnn, "_l0", kk, ra)
            opt = next(s[2] for s in stack.steps if s[1] is rnn)
            if opt["state"] is not None:
                for var, value in zip(layer.states, opt["state"]):
                    var.assign(value)
        else:
            layer, ws = item
            layer.set_weights(ws)
    return km
