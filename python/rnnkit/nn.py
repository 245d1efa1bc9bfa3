"""rnnkit.nn: the pieces around the recurrent layers that a training loop needs.

Modules (``Linear``, ``Embedding``) follow the layers' style: ``y = m(x)`` for
inference, ``y, tape = m.forward(x)`` and ``dx = m.backward(tape, dy)`` for
training, with gradients added into ``m.grads``. Losses return ``(loss,
gradient)``. Optimizers and clipping work on dicts ``name -> ndarray`` and
update the arrays in place, so they drive any mix of modules and layers.
This is not an autograd: each backward is written out by hand and checked
against finite differences in the tests.
"""

from __future__ import annotations

import math
import numbers
import types
import weakref
from collections.abc import Mapping

import numpy as np

__all__ = [
    "Module",
    "Linear",
    "Embedding",
    "softmax_cross_entropy",
    "mse_loss",
    "Optimizer",
    "SGD",
    "Adagrad",
    "Adam",
    "clip_grad_norm",
    "clip_grad_value",
    "named_parameters",
    "named_grads",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from err
    if dtype is None or dt not in _FLOATS:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _nonneg_float(name: str, value, *, upper: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not (v >= 0.0) or not math.isfinite(v) or (upper is not None and v >= upper):
        bound = f"[0, {upper})" if upper is not None else ">= 0 and finite"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


def _refuse_masked(name: str, a) -> None:
    """A masked array with masked entries would lose its mask in NumPy's
    arithmetic (the layers refuse them too, rnnkit._checks)."""
    if np.ma.is_masked(a):
        raise TypeError(
            f"{name} is a masked array with masked entries; rnnkit does not read masks: "
            f"fill them ({name}.filled(0)) and mask the loss instead"
        )


class _Tape:
    """What a module's forward keeps for its backward (private)."""

    __slots__ = ("_owner", "saved", "shape")

    def __init__(self, owner, saved, shape):
        self._owner = weakref.ref(owner)
        self.saved = saved
        self.shape = shape


class Module:
    """Base of :class:`Linear` and :class:`Embedding`: named parameters and
    their gradients, the same interface as the recurrent layers."""

    def __init__(self):
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)

    @property
    def parameters(self) -> Mapping[str, np.ndarray]:
        """Read-only mapping name -> the live parameter array (update in place)."""
        return types.MappingProxyType(self._params)

    @property
    def grads(self) -> Mapping[str, np.ndarray]:
        """Read-only mapping name -> gradient; :meth:`backward` adds into it."""
        return types.MappingProxyType(self._grads)

    def zero_grad(self) -> None:
        for g in self._grads.values():
            g.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters."""
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Copy parameters in (strict: same keys, same shapes; cast to the dtype).
        Everything is checked before anything is written."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in self._params]
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        new = {}
        for k, p in self._params.items():
            if np.ma.is_masked(state_dict[k]):  # np.asarray would drop the mask
                raise TypeError(
                    f"state_dict[{k!r}] is a masked array with masked entries; fill them first"
                )
            v = np.asarray(state_dict[k])
            if v.dtype == np.bool_ or v.dtype.kind not in "iuf":
                raise TypeError(
                    f"state_dict[{k!r}] must be a real numeric array, got dtype {v.dtype}"
                )
            if v.shape != p.shape:
                raise ValueError(f"state_dict[{k!r}] must have shape {p.shape}, got {v.shape}")
            with np.errstate(over="ignore", invalid="ignore"):
                cast = v.astype(p.dtype)
            if (np.isinf(cast) & ~np.isinf(v)).any():  # 1e300 into float32: not a cast but a change
                raise ValueError(f"state_dict[{k!r}] has values too large for {p.dtype}")
            if not np.isfinite(cast).all():  # a model that would only output NaN
                raise ValueError(f"state_dict[{k!r}] has non-finite values (NaN or inf)")
            new[k] = cast
        for k, v in new.items():
            np.copyto(self._params[k], v)

    def _check_tape(self, tape) -> None:
        if not isinstance(tape, _Tape):
            raise TypeError(
                f"tape must come from {type(self).__name__}.forward(), got {type(tape).__name__}"
            )
        if tape._owner() is not self:
            raise ValueError(
                "tape was made by another module's forward(); use that module's backward()"
            )


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last axis of ``x`` (PyTorch ``nn.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64, default float32
    seed : int, SeedSequence or None
        Initialisation: ``weight`` ``[out, in]`` and ``bias`` ``[out]`` are
        U(-1/sqrt(in), 1/sqrt(in)), as PyTorch.
    """

    def __init__(self, in_features, out_features, *, bias=True, dtype=np.float32, seed=None):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        self.dtype = _float_dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        self._add_param(
            "weight",
            rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype),
        )
        self.has_bias = bool(bias)
        if self.has_bias:
            self._add_param(
                "bias", rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
            )

    def _check_x(self, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
        _refuse_masked("x", x)
        if isinstance(x, np.ma.MaskedArray):  # nothing masked: its data, as a plain array
            x = x.filled()
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the Linear's dtype is {self.dtype}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape [..., in_features] = [..., {self.in_features}], got {x.shape}"
            )
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Inference: ``[..., in] -> [..., out]``."""
        x = self._check_x(x)
        y = x @ self._params["weight"].T  # ...,out
        if self.has_bias:
            y += self._params["bias"]
        return y

    def forward(self, x: np.ndarray):
        """Training: returns ``(y, tape)``; the tape keeps a copy of ``x`` and of the weight."""
        y = self(x)
        x = self._check_x(x)
        saved = (x.reshape(-1, self.in_features).copy(), self._params["weight"].copy())
        return y, _Tape(self, saved, x.shape)

    def backward(self, tape, dy: np.ndarray) -> np.ndarray:
        """Adds ``dweight`` and ``dbias`` into :attr:`grads`; returns ``dx`` (``x``'s shape)."""
        self._check_tape(tape)
        x2, w = tape.saved
        out_shape = tape.shape[:-1] + (self.out_features,)
        if not isinstance(dy, np.ndarray) or dy.shape != out_shape or dy.dtype != self.dtype:
            raise ValueError(
                f"dy must be a {self.dtype} array of shape {out_shape}, got "
                f"{getattr(dy, 'dtype', type(dy).__name__)} {getattr(dy, 'shape', '')}"
            )
        _refuse_masked("dy", dy)
        if isinstance(dy, np.ma.MaskedArray):
            dy = dy.filled()
        dy2 = dy.reshape(-1, self.out_features)  # M,out
        self._grads["weight"] += dy2.T @ x2  # out,in
        if self.has_bias:
            self._grads["bias"] += dy2.sum(axis=0)
        return (dy2 @ w).reshape(tape.shape)  # ...,in

    def __repr__(self) -> str:
        b = "" if self.has_bias else ", bias=False"
        return f"Linear({self.in_features}, {self.out_features}{b}, dtype={self.dtype})"


class Embedding(Module):
    """A lookup table ``weight [num_embeddings, embedding_dim]``: ``y = weight[ids]``.

    Initialised N(0, 1), as PyTorch. The ids are not differentiable, so
    :meth:`backward` returns nothing; it adds the rows of ``dy`` into the rows
    of ``grads["weight"]`` they were looked up from.
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, seed=None):
        super().__init__()
        self.num_embeddings = _positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.dtype = _float_dtype(dtype)
        rng = np.random.default_rng(seed)
        self._add_param(
            "weight",
            rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype),
        )

    def _check_ids(self, ids) -> np.ndarray:
        _refuse_masked("ids", ids)
        arr = np.asarray(ids)
        if arr.dtype == np.bool_ or (arr.dtype.kind not in "iu" and arr.size):
            raise TypeError(f"ids must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            raise ValueError(
                f"ids must lie in 0..{self.num_embeddings - 1}, got values from "
                f"{arr.min()} to {arr.max()}"
            )
        return arr.astype(np.intp, copy=False)

    def __call__(self, ids) -> np.ndarray:
        """``[...] -> [..., embedding_dim]``."""
        return self._params["weight"][self._check_ids(ids)]

    def forward(self, ids):
        arr = self._check_ids(ids)
        return self._params["weight"][arr], _Tape(self, arr.ravel().copy(), arr.shape)

    def backward(self, tape, dy: np.ndarray) -> None:
        self._check_tape(tape)
        shape = tape.shape + (self.embedding_dim,)
        if not isinstance(dy, np.ndarray) or dy.shape != shape or dy.dtype != self.dtype:
            raise ValueError(
                f"dy must be a {self.dtype} array of shape {shape}, got "
                f"{getattr(dy, 'dtype', type(dy).__name__)} {getattr(dy, 'shape', '')}"
            )
        np.add.at(self._grads["weight"], tape.saved, dy.reshape(-1, self.embedding_dim))
        return None

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype})"


def named_parameters(modules: Mapping[str, object]) -> dict[str, np.ndarray]:
    """One flat dict ``"prefix.name" -> live parameter`` over modules and layers."""
    return {f"{p}.{k}": v for p, m in modules.items() for k, v in m.parameters.items()}


def named_grads(modules: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The gradients, under the names :func:`named_parameters` gives."""
    return {f"{p}.{k}": v for p, m in modules.items() for k, v in m.grads.items()}


# ---------------------------------------------------------------------------
# Losses: each returns (loss as a Python float, gradient w.r.t. the prediction)
# ---------------------------------------------------------------------------


def _check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


def _check_mask(mask, shape: tuple, name_shape: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask must have shape {name_shape} = {shape}, got {m.shape}")
    if m.dtype != np.bool_ and m.dtype.kind not in "iuf":
        raise TypeError(f"mask must be bool or real, got dtype {m.dtype}")
    if m.dtype.kind == "f" and not (np.all(np.isfinite(m)) and np.all(m >= 0)):
        raise ValueError("mask weights must be finite and >= 0")
    if m.dtype.kind == "i" and m.size and m.min() < 0:
        raise ValueError("mask weights must be >= 0")
    return m


def softmax_cross_entropy(logits: np.ndarray, targets, mask=None, *, reduction: str = "mean"):
    """Cross-entropy of ``softmax(logits)`` against integer class targets.

    Parameters
    ----------
    logits : float ndarray ``[..., K]``
    targets : integer array ``[...]``, each in ``0..K-1`` where the mask is non-zero
        (anything, e.g. a padding id, where it is zero).
    mask : bool or real array ``[...]``, optional
        Per-position weights; 0 leaves a position out.
    reduction : ``"mean"`` (default; divided by the mask's sum, or by the
        number of positions) or ``"sum"``.

    Returns
    -------
    loss : float
        In nats. A mask summing to 0 gives 0.0 (and a zero gradient).
    dlogits : ndarray, the shape and dtype of ``logits``
        The gradient of ``loss``: ``(softmax - onehot) * weight / total``.
    """
    reduction = _check_reduction(reduction)
    for name, a in (("logits", logits), ("targets", targets), ("mask", mask)):
        _refuse_masked(name, a)
    if not isinstance(logits, np.ndarray) or logits.dtype not in _FLOATS:
        raise TypeError(
            f"logits must be a float32 or float64 ndarray, got "
            f"{getattr(logits, 'dtype', type(logits).__name__)}"
        )
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must be [..., K] with K >= 1, got shape {logits.shape}")
    K = logits.shape[-1]
    t = np.asarray(targets)
    if t.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets must have shape logits.shape[:-1] = {logits.shape[:-1]}, got {t.shape}"
        )
    if t.dtype == np.bool_ or (t.dtype.kind not in "iu" and t.size):
        raise TypeError(f"targets must hold integers, got dtype {t.dtype}")
    m = _check_mask(mask, t.shape, "targets.shape")
    dt = logits.dtype
    z = logits.reshape(-1, K)  # M,K
    t = t.reshape(-1).astype(np.intp)  # M
    if m is not None:
        w = m.reshape(-1).astype(dt)  # M
        active = w != 0
        t = np.where(active, t, 0)
    else:
        w, active = None, None
    if t.size and (t.min() < 0 or t.max() >= K):
        raise ValueError(
            f"targets must lie in 0..{K - 1} (where the mask is non-zero), got values "
            f"from {t.min()} to {t.max()}"
        )
    M = t.shape[0]
    rows = np.arange(M)
    zmax = z.max(axis=1, keepdims=True)  # M,1
    p = z - zmax  # M,K shifted logits
    np.exp(p, out=p)
    s = p.sum(axis=1, keepdims=True)  # M,1
    logp_t = (z[rows, t] - zmax[:, 0]) - np.log(s[:, 0])  # M
    p /= s  # softmax
    if w is None:
        total = float(M)
        loss = -float(np.sum(logp_t, dtype=np.float64))
    else:
        total = float(np.sum(w, dtype=np.float64))
        loss = -float(np.sum(np.where(active, logp_t * w, 0), dtype=np.float64))
    p[rows, t] -= 1
    scale = 1.0 if reduction == "sum" else (1.0 / total if total > 0 else 0.0)
    if w is None:
        p *= dt.type(scale)
    else:
        p *= (w * dt.type(scale))[:, None]
    if reduction == "mean":
        loss = loss / total if total > 0 else 0.0
    return loss, p.reshape(logits.shape)


def mse_loss(pred: np.ndarray, target, mask=None, *, reduction: str = "mean"):
    """Squared error ``sum(weight * (pred - target)**2)``, averaged by default.

    Parameters
    ----------
    pred : float ndarray
    target : array of ``pred``'s shape
    mask : bool or real array of shape ``pred.shape[:k]`` for some k, optional
        Weights broadcast over the trailing axes; 0 leaves an entry out.
    reduction : ``"mean"`` (divided by the number of entries, or by the mask's
        sum times the entries per mask position) or ``"sum"``.

    Returns
    -------
    loss : float
    dpred : ndarray, ``pred``'s shape and dtype
    """
    reduction = _check_reduction(reduction)
    for name, a in (("pred", pred), ("target", target), ("mask", mask)):
        _refuse_masked(name, a)
    if not isinstance(pred, np.ndarray) or pred.dtype not in _FLOATS:
        raise TypeError(
            f"pred must be a float32 or float64 ndarray, got "
            f"{getattr(pred, 'dtype', type(pred).__name__)}"
        )
    y = np.asarray(target)
    if y.shape != pred.shape:
        raise ValueError(f"target must have pred's shape {pred.shape}, got {y.shape}")
    if y.dtype == np.bool_ or y.dtype.kind not in "iuf":
        raise TypeError(f"target must be real, got dtype {y.dtype}")
    diff = pred - y.astype(pred.dtype, copy=False)
    if mask is None:
        total = float(diff.size)
        loss = float(np.sum(np.square(diff, dtype=np.float64)))
        grad = 2 * diff
    else:
        m = np.asarray(mask)
        if m.ndim > pred.ndim or m.shape != pred.shape[: m.ndim]:
            raise ValueError(
                f"mask must have a leading part of pred's shape {pred.shape}, got {m.shape}"
            )
        m = _check_mask(m, m.shape, "pred.shape[:k]")
        w = m.astype(pred.dtype).reshape(m.shape + (1,) * (pred.ndim - m.ndim))
        per = int(np.prod(pred.shape[m.ndim :], dtype=np.int64))
        total = float(np.sum(m, dtype=np.float64)) * per
        diff = np.where(w != 0, diff, 0)  # masked entries may hold nan or anything
        loss = float(np.sum(w * np.square(diff), dtype=np.float64))
        grad = 2 * w * diff
    if reduction == "mean":
        scale = 1.0 / total if total > 0 else 0.0
        loss *= scale
        grad *= pred.dtype.type(scale)
    return loss, grad.astype(pred.dtype, copy=False)


# ---------------------------------------------------------------------------
# Optimizers: parameters and gradients are dicts name -> ndarray, updated in place
# ---------------------------------------------------------------------------


class Optimizer:
    """Base class. ``params`` is a mapping name -> float ndarray (the live
    arrays: :meth:`step` updates them in place). ``lr`` may be changed
    between steps. ``state_dict()``/``load_state_dict()`` save and restore the
    per-parameter state (momentum buffers, moments) and the step count."""

    _buffers: tuple[str, ...] = ()

    def __init__(self, params: Mapping[str, np.ndarray], lr: float):
        if not hasattr(params, "items"):
            raise TypeError(
                f"params must be a mapping name -> ndarray, got {type(params).__name__}"
            )
        self.params = dict(params)
        if not self.params:
            raise ValueError("params is empty: nothing to optimize")
        for k, p in self.params.items():
            if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS:
                raise TypeError(
                    f"params[{k!r}] must be a float32 or float64 ndarray, got "
                    f"{getattr(p, 'dtype', type(p).__name__)}"
                )
            if not p.flags.writeable:
                raise ValueError(f"params[{k!r}] is read-only; the optimizer updates it in place")
        self.lr = _nonneg_float("lr", lr)
        self.steps = 0
        self.state = {
            b: {k: np.zeros_like(p) for k, p in self.params.items()} for b in self._buffers
        }

    def _check_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        if not hasattr(grads, "keys"):
            raise TypeError(f"grads must be a mapping name -> ndarray, got {type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing = [k for k in self.params if k not in grads]
            unexpected = [k for k in grads if k not in self.params]
            raise ValueError(
                f"grads must have the keys of params: missing {missing}, unexpected {unexpected}"
            )
        for k, p in self.params.items():
            g = grads[k]
            _refuse_masked(f"grads[{k!r}]", g)
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
                raise ValueError(
                    f"grads[{k!r}] must be a {p.dtype} array of shape {p.shape}, got "
                    f"{getattr(g, 'dtype', type(g).__name__)} {getattr(g, 'shape', '')}"
                )

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter in place from ``grads`` (same keys and shapes)."""
        self._check_grads(grads)
        self.steps += 1
        for k, p in self.params.items():
            self._update(k, p, grads[k])

    def _update(self, k: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "lr": self.lr,
            **{f"{b}.{k}": v.copy() for b, d in self.state.items() for k, v in d.items()},
        }

    def load_state_dict(self, sd: Mapping) -> None:
        """Restore :meth:`state_dict`'s output (strict: every buffer, finite,
        the right shape). Everything is checked before anything is written."""
        if not hasattr(sd, "keys") or not hasattr(sd, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping, got {type(sd).__name__}")
        want = ["steps", "lr"] + [f"{b}.{k}" for b, d in self.state.items() for k in d]
        missing = [k for k in want if k not in sd]
        if missing:
            raise ValueError(f"optimizer state_dict is missing keys {missing}")
        new = {}
        for b, d in self.state.items():
            for k, v in d.items():
                src = np.asarray(sd[f"{b}.{k}"])
                if src.dtype.kind not in "iuf":
                    raise TypeError(f"state {b}.{k} must be a real numeric array, got {src.dtype}")
                if src.shape != v.shape:
                    raise ValueError(f"state {b}.{k} must have shape {v.shape}, got {src.shape}")
                if not np.isfinite(src).all():
                    raise ValueError(f"state {b}.{k} has non-finite values (NaN or inf)")
                new[(b, k)] = src
        try:
            steps, lr = int(sd["steps"]), float(sd["lr"])
        except (TypeError, ValueError) as err:
            raise TypeError(f"optimizer state_dict: steps and lr must be numbers ({err})") from None
        if steps < 0 or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"optimizer state_dict: steps must be >= 0 and lr finite >= 0, got {steps}, {lr}")
        for (b, k), src in new.items():
            np.copyto(self.state[b][k], src, casting="unsafe")
        self.steps = steps
        self.lr = lr


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's rule).

    ``g = grad + weight_decay * p``; with momentum, ``buf = momentum * buf +
    (1 - dampening) * g`` (``buf = g`` on the first step) and ``g = buf`` (or
    ``g + momentum * buf`` with ``nesterov``); then ``p -= lr * g``.
    """

    def __init__(
        self, params, lr=0.01, momentum=0.0, *, dampening=0.0, nesterov=False, weight_decay=0.0
    ):
        self._buffers = ("momentum_buffer",) if momentum else ()
        super().__init__(params, lr)
        self.momentum = _nonneg_float("momentum", momentum)
        self.dampening = _nonneg_float("dampening", dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonneg_float("weight_decay", weight_decay)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0")

    def _update(self, k, p, g):
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum:
            buf = self.state["momentum_buffer"][k]
            if self.steps == 1:
                np.copyto(buf, g)
            else:
                buf *= p.dtype.type(self.momentum)
                buf += p.dtype.type(1.0 - self.dampening) * g
            g = g + p.dtype.type(self.momentum) * buf if self.nesterov else buf
        p -= p.dtype.type(self.lr) * g


class Adagrad(Optimizer):
    """Adagrad: ``sum += g*g``; ``p -= lr * g / (sqrt(sum) + eps)`` (PyTorch's rule,
    with ``g = grad + weight_decay * p``)."""

    _buffers = ("sum",)

    def __init__(
        self, params, lr=0.01, *, eps=1e-10, weight_decay=0.0, initial_accumulator_value=0.0
    ):
        super().__init__(params, lr)
        self.eps = _nonneg_float("eps", eps)
        self.weight_decay = _nonneg_float("weight_decay", weight_decay)
        init = _nonneg_float("initial_accumulator_value", initial_accumulator_value)
        for v in self.state["sum"].values():
            v.fill(init)

    def _update(self, k, p, g):
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        s = self.state["sum"][k]
        s += g * g
        p -= p.dtype.type(self.lr) * g / (np.sqrt(s) + p.dtype.type(self.eps))


class Adam(Optimizer):
    """Adam (Kingma and Ba; PyTorch's rule, bias-corrected):

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g*g``,
    ``p -= lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)``, with
    ``g = grad + weight_decay * p`` (L2, not AdamW's decoupled decay).
    """

    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), *, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            _nonneg_float("betas[0]", betas[0], upper=1.0),
            _nonneg_float("betas[1]", betas[1], upper=1.0),
        )
        self.eps = _nonneg_float("eps", eps)
        self.weight_decay = _nonneg_float("weight_decay", weight_decay)

    def _update(self, k, p, g):
        b1, b2 = self.betas
        t = p.dtype.type
        if self.weight_decay:
            g = g + t(self.weight_decay) * p
        m, v = self.state["exp_avg"][k], self.state["exp_avg_sq"][k]
        m *= t(b1)
        m += t(1.0 - b1) * g
        v *= t(b2)
        v += t(1.0 - b2) * (g * g)
        bc1 = 1.0 - b1**self.steps
        bc2 = 1.0 - b2**self.steps
        denom = np.sqrt(v)
        denom *= t(1.0 / math.sqrt(bc2))
        denom += t(self.eps)
        p -= t(self.lr / bc1) * m / denom


# ---------------------------------------------------------------------------
# Gradient clipping, in place
# ---------------------------------------------------------------------------


def _grad_arrays(grads) -> list[np.ndarray]:
    if hasattr(grads, "values"):
        arrays = list(grads.values())
    else:
        arrays = list(grads)
    for a in arrays:
        _refuse_masked("a gradient", a)
        if not isinstance(a, np.ndarray) or a.dtype not in _FLOATS:
            raise TypeError(
                f"gradients must be float32 or float64 ndarrays, got "
                f"{getattr(a, 'dtype', type(a).__name__)}"
            )
    return arrays


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale all gradients together, in place, so that their global L2 norm is
    at most ``max_norm`` (PyTorch's ``clip_grad_norm_``: the factor is
    ``max_norm / (norm + 1e-6)``, applied only when it is below 1).

    ``grads`` is a mapping name -> ndarray, or an iterable of ndarrays.
    Returns the global norm before clipping, as a float; when it is not finite
    (nan or inf), nothing is scaled and the caller decides what to do.
    """
    max_norm = _nonneg_float("max_norm", max_norm)
    arrays = _grad_arrays(grads)
    total = 0.0
    for a in arrays:
        flat = a.reshape(-1)
        total += float(np.dot(flat, flat))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        return norm
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for a in arrays:
            a *= a.dtype.type(coef)
    return norm


def clip_grad_value(grads, clip_value: float) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, in place."""
    clip_value = _nonneg_float("clip_value", clip_value)
    for a in _grad_arrays(grads):
        np.clip(a, -clip_value, clip_value, out=a)
