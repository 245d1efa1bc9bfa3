"""rnnkit.torch: PyTorch's nn.RNN/LSTM/GRU in and out, and rnnkit layers inside
PyTorch training loops.

``from_torch`` / ``to_torch`` convert modules exactly (same names, shapes and
gate order: a state_dict copy) or refuse what would change the math.
``RNNFunction`` is a ``torch.autograd.Function`` whose forward and backward
are an rnnkit layer's; ``RNNModule`` wraps it as an ``nn.Module`` with torch
Parameters. Needs torch (``pip install 'rnnkit[torch]'``); ``import rnnkit``
never imports it. Inside this package ``torch`` is PyTorch (absolute imports).
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError("rnnkit.torch needs PyTorch: pip install 'rnnkit[torch]'") from err

from ..layers import GRU, LSTM, RNN, IndRNN

__all__ = ["from_torch", "to_torch", "RNNFunction", "RNNModule"]

_TORCH_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _layer_class(module):
    # Exact types: a subclass may override forward with other math.
    for tcls, rcls in ((torch.nn.LSTM, LSTM), (torch.nn.GRU, GRU), (torch.nn.RNN, RNN)):
        if type(module) is tcls:
            return rcls
    raise TypeError(
        f"module must be a torch.nn.RNN, LSTM or GRU (exactly, not a subclass), "
        f"got {type(module).__name__}"
    )


def from_torch(module, *, backend=None):
    """An rnnkit layer with ``module``'s configuration and a copy of its weights.

    ``torch.nn.RNN`` (tanh or relu), ``LSTM`` and ``GRU`` with any
    ``num_layers``, ``bidirectional``, ``batch_first``, ``bias`` and
    ``dropout``, in float32 or float64, on any device (weights are copied to
    the CPU). Refused: ``proj_size`` (an LSTM with projections: rnnkit has
    none), parametrizations and forward hooks (weight_norm and the like),
    other dtypes, subclasses and other module types.
    """
    from torch.nn.utils import parametrize

    if isinstance(module, torch.nn.Module) and parametrize.is_parametrized(module):
        raise ValueError(
            "a parametrized module (e.g. weight_norm or spectral_norm through "
            "torch.nn.utils.parametrize) is refused: its weights are recomputed at each "
            "forward, so a copy of them would be a different model; remove the "
            "parametrization first (parametrize.remove_parametrizations)"
        )
    cls = _layer_class(module)
    proj = getattr(module, "proj_size", 0)
    if proj:
        raise ValueError(
            f"torch.nn.LSTM with proj_size={proj} is refused: rnnkit's LSTM has no output "
            "projection (h would be [.., proj_size] = W_hr h), so the math would differ"
        )
    if module._forward_pre_hooks or module._forward_hooks:
        raise ValueError(
            "a module with forward hooks (e.g. the old torch.nn.utils.weight_norm) is "
            "refused: hooks may change its weights or outputs, which a copy would not follow"
        )
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _TORCH_DTYPES:
        raise TypeError(
            f"the module's parameters must all be float32 or float64, got {sorted(map(str, dtypes))}"
        )
    dtype = _TORCH_DTYPES[next(iter(dtypes))]
    kw = dict(
        bidirectional=bool(module.bidirectional),
        batch_first=bool(module.batch_first),
        dropout=float(module.dropout) if module.num_layers > 1 else 0.0,
        dtype=dtype,
        bias=bool(module.bias),
        backend=backend,
    )
    if cls is RNN:
        kw["nonlinearity"] = module.nonlinearity
    layer = cls(module.input_size, module.hidden_size, module.num_layers, **kw)
    layer.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    return layer


def to_torch(layer):
    """A ``torch.nn.RNN``/``LSTM``/``GRU`` with ``layer``'s configuration and a
    copy of its weights (CPU, the layer's dtype). IndRNN and user cells have no
    PyTorch module and are refused."""
    tcls = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}.get(type(layer))
    if tcls is None:
        what = (
            "IndRNN (PyTorch has no independently recurrent layer)"
            if isinstance(layer, IndRNN)
            else type(layer).__name__
        )
        raise TypeError(f"to_torch takes an rnnkit RNN, LSTM or GRU, got {what}")
    kw = dict(
        num_layers=layer.num_layers,
        bias=layer.bias,
        batch_first=layer.batch_first,
        dropout=layer.dropout,
        bidirectional=layer.bidirectional,
        dtype=_NP_TO_TORCH[np.dtype(layer.dtype)],
    )
    if tcls is torch.nn.RNN:
        kw["nonlinearity"] = layer.nonlinearity
    module = tcls(layer.input_size, layer.hidden_size, **kw)
    with torch.no_grad():
        module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


def _np(t, dtype):
    if t is None:
        return None
    a = t.detach().cpu().numpy()
    if a.dtype != dtype:
        raise TypeError(f"tensor has dtype {a.dtype} but the rnnkit layer's dtype is {dtype}")
    return a


class RNNFunction(torch.autograd.Function):
    """``y, h_n[, c_n] = RNNFunction.apply(layer, lengths, x, h0, c0, *weights)``.

    Forward and backward are ``layer.forward`` and ``layer.backward`` (rnnkit's
    kernels). ``weights`` are tensors in ``layer.parameters`` order; they are
    copied into the layer before the forward pass, and their gradients come
    back from ``layer.grads`` (which this function zeroes first). ``h0`` and
    ``c0`` may be None (zeros; ``c0`` is ignored by RNN and GRU). ``lengths``
    is None or an integer array ``[N]``. Every tensor lives on the CPU, in the
    layer's dtype.
    """

    @staticmethod
    def forward(ctx, layer, lengths, x, h0, c0, *weights):
        dt = np.dtype(layer.dtype)
        names = list(layer.parameters)
        if len(weights) != len(names):
            raise ValueError(f"expected {len(names)} weight tensors ({names}), got {len(weights)}")
        for name, w in zip(names, weights):
            np.copyto(layer.parameters[name], _np(w, dt))
        has_c = isinstance(layer, LSTM)
        state = None
        if h0 is not None or (has_c and c0 is not None):
            state = (_np(h0, dt), _np(c0, dt)) if has_c else _np(h0, dt)
        lengths_np = (
            None
            if lengths is None
            else np.asarray(lengths.cpu().numpy() if isinstance(lengths, torch.Tensor) else lengths)
        )
        y, st, tape = layer.forward(_np(x, dt), state, lengths_np)
        ctx.layer, ctx.tape, ctx.has_c = layer, tape, has_c
        ctx.given = (h0 is not None, c0 is not None)  # a None input gets a None gradient
        outs = [torch.from_numpy(y)]
        if has_c:
            outs += [torch.from_numpy(st[0]), torch.from_numpy(st[1])]
        else:
            outs.append(torch.from_numpy(st))
        return tuple(outs)

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        layer, dt = ctx.layer, np.dtype(ctx.layer.dtype)
        layer.zero_grad()
        dstate = (_np(dh_n, dt), _np(dc_n, dt)) if ctx.has_c else _np(dh_n, dt)
        dy_np = None if dy is None else np.ascontiguousarray(_np(dy, dt))
        dx, dstate0 = layer.backward(ctx.tape, dy_np, dstate)
        dh0, dc0 = dstate0 if ctx.has_c else (dstate0, None)
        grads = [torch.from_numpy(g.copy()) for g in layer.grads.values()]
        return (
            None,
            None,
            torch.from_numpy(dx),
            torch.from_numpy(dh0) if ctx.given[0] else None,
            torch.from_numpy(dc0) if (dc0 is not None and ctx.given[1]) else None,
            *grads,
        )


class RNNModule(torch.nn.Module):
    """An rnnkit layer as a ``torch.nn.Module``: a fast CPU recurrent layer in
    a PyTorch model, trained by PyTorch's optimizers.

    The layer's parameters become torch Parameters of the same names (a copy:
    PyTorch owns them from here on; each forward copies them into the layer).
    ``forward(x, state=None, lengths=None)`` returns ``(y, state)`` as
    ``torch.nn.LSTM``/``GRU``/``RNN`` do (LSTM: ``state = (h, c)``), with
    gradients for ``x``, the state and every Parameter.

    Parameters
    ----------
    layer : rnnkit layer, or a torch.nn.RNN/LSTM/GRU (converted by from_torch)
    """

    def __init__(self, layer):
        super().__init__()
        if isinstance(layer, torch.nn.Module):
            layer = from_torch(layer)
        if type(layer) not in (RNN, LSTM, GRU, IndRNN):
            raise TypeError(
                f"layer must be an rnnkit RNN, LSTM, GRU or IndRNN, got {type(layer).__name__}"
            )
        self.layer = layer
        for name, p in layer.parameters.items():
            self.register_parameter(name, torch.nn.Parameter(torch.from_numpy(p.copy())))

    def forward(self, x, state=None, lengths=None):
        has_c = isinstance(self.layer, LSTM)
        h0, c0 = (state if state is not None else (None, None)) if has_c else (state, None)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        weights = [getattr(self, n) for n in self.layer.parameters]
        outs = RNNFunction.apply(self.layer, lengths, x, h0, c0, *weights)
        return (outs[0], (outs[1], outs[2])) if has_c else (outs[0], outs[1])

    def to_layer(self):
        """The rnnkit layer with this module's current Parameters copied in
        (after PyTorch's optimizer steps, the layer itself holds the weights
        of the last forward). Returns ``self.layer``."""
        dt = np.dtype(self.layer.dtype)
        for name in self.layer.parameters:
            np.copyto(self.layer.parameters[name], _np(getattr(self, name), dt))
        return self.layer

    def extra_repr(self) -> str:
        return repr(self.layer)
