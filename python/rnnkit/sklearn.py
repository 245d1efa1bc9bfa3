"""scikit-learn style estimators over rnnkit's recurrent layers.

``RNNClassifier`` (many-to-one) and ``RNNRegressor`` (many-to-one, or
many-to-many with ``output="sequence"``) take ``X`` as ``[n_samples,
n_timesteps, n_features]`` (or a list of ``[T_i, n_features]`` arrays), with
optional per-sample ``lengths``. They follow scikit-learn's conventions
(``fit``/``predict``/``score``, ``get_params``/``set_params``, ``clone``,
``Pipeline``, ``cross_val_score``) without importing scikit-learn: it is an
optional dependency, needed only by the tools that call these estimators.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time

import numpy as np

from . import nn
from .layers import GRU, LSTM, RNN, IndRNN
from .seq import pack_sequences

__all__ = ["RNNClassifier", "RNNRegressor", "NotFittedError"]

_CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "indrnn": IndRNN}


class NotFittedError(ValueError, AttributeError):
    """predict/score before fit (the same bases as scikit-learn's NotFittedError)."""


# ---------------------------------------------------------------------------
# Parameters: scikit-learn's BaseEstimator protocol, by introspection
# ---------------------------------------------------------------------------


class _Params:
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters (and, with ``deep``, those of nested estimators)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters (``name__sub`` for nested ones); returns self."""
        valid = self._get_param_names()
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {valid}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name, p.default)
            if value is not p.default and not (
                isinstance(value, (int, float, str)) and value == p.default
            ):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _refuse_lossy(name, a):
    """Refuse what a float64 conversion would silently drop: masks and imaginary parts."""
    if np.ma.is_masked(a):
        raise ValueError(
            f"{name} is a masked array with masked entries, which would be read as their "
            "data: fill them (.filled(0)) and give lengths for padded steps"
        )
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real, got complex values")


def _sample_weight(sample_weight, n):
    """None, or float64 ``[n]``, finite and >= 0 (ValueError naming sample_weight)."""
    if sample_weight is None:
        return None
    _refuse_lossy("sample_weight", sample_weight)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"sample_weight must be numeric: {err}") from None
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape (n_samples,) = ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("sample_weight must be finite and >= 0, with a positive sum")
    return w


def _as_batch(X, lengths, dtype, n_features=None):
    """``(X [N, T, F] float C-contiguous copy, lengths int64 [N] or None, ragged)``.

    Values past a sequence's length are ignored (set to 0), so padding may be nan.
    """
    ragged = isinstance(X, (list, tuple)) and len(X) > 0 and not _is_rectangular(X)
    if ragged:
        for i, s in enumerate(X):
            _refuse_lossy(f"X[{i}]", s)
    else:
        _refuse_lossy("X", X)
    if ragged:
        if lengths is not None:
            raise ValueError(
                "lengths must be None when X is a list of [T_i, n_features] arrays: "
                "their lengths are the T_i"
            )
        try:
            Xb, lengths = pack_sequences(
                [np.asarray(s, dtype=np.float64) for s in X], dtype=np.float64, batch_first=True
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"X is a list of sequences, but: {err}") from None
    else:
        try:
            Xb = np.array(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"X must be a numeric array [n_samples, n_timesteps, n_features]: {err}"
            ) from None
    if Xb.ndim != 3:
        hint = ""
        if Xb.ndim == 2:
            hint = (
                "; for a univariate series use X[:, :, None] (one feature per step), or "
                "reshape flat rows to [n_samples, n_timesteps, n_features]"
            )
        raise ValueError(
            f"X must be 3-D [n_samples, n_timesteps, n_features], got {Xb.ndim}-D "
            f"shape {Xb.shape}{hint}"
        )
    N, T, F = Xb.shape
    if N == 0 or T == 0 or F == 0:
        raise ValueError(f"X must have at least one sample, step and feature, got shape {Xb.shape}")
    if n_features is not None and F != n_features:
        raise ValueError(
            f"X has {F} features per step, but the estimator was fitted with {n_features}"
        )
    if lengths is not None:
        _refuse_lossy("lengths", lengths)
        lengths = np.asarray(lengths)
        if lengths.shape != (N,):
            raise ValueError(f"lengths must have shape (n_samples,) = ({N},), got {lengths.shape}")
        if (
            lengths.dtype.kind == "f"
            and np.all(np.isfinite(lengths))
            and np.all(lengths == np.round(lengths))
        ):
            lengths = lengths.astype(np.int64)
        if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must hold integers, got dtype {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(
                f"lengths must lie in 1..n_timesteps = 1..{T}, got values from "
                f"{lengths.min()} to {lengths.max()}"
            )
        lengths = lengths.astype(np.int64)
        Xb[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    if not np.all(np.isfinite(Xb)):
        raise ValueError("X holds nan or inf (within the sequences' lengths)")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(Xb, dtype=dtype)
    if out.dtype != Xb.dtype and not np.all(np.isfinite(out)):
        raise ValueError(f"X holds values too large for {out.dtype}: use dtype='float64'")
    return out, lengths, ragged


def _is_dask(a) -> bool:
    """A dask collection, recognised without importing dask (an optional extra)."""
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "__dask_graph__")


def _dask_module():
    try:
        from . import dask as rnnkit_dask
    except ImportError as err:
        raise ImportError(
            f"X is a dask array, which needs rnnkit's dask extra: {err}"
        ) from None
    return rnnkit_dask


def _is_rectangular(X) -> bool:
    try:
        shapes = {np.shape(s) for s in X}
    except Exception:
        return True
    return len(shapes) == 1


def _step_mask(lengths, N, T):
    if lengths is None:
        return np.ones((N, T), dtype=bool)
    return np.arange(T)[None, :] < lengths[:, None]  # N,T


# ---------------------------------------------------------------------------
# The shared model: recurrent layers, then a linear read-out
# ---------------------------------------------------------------------------


class _RNNEstimator(_Params):
    _many_to_many = False

    def _check_params(self):
        if self.cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {self.cell!r}")
        for name in ("hidden_size", "num_layers", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, lo_open in (("lr", True), ("weight_decay", False), ("dropout", False)):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, numbers.Real)
                or not math.isfinite(v)
                or v < 0
                or (lo_open and v == 0)
            ):
                raise ValueError(
                    f"{name} must be a {'positive' if lo_open else 'non-negative'} number, got {v!r}"
                )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("standardize", "bidirectional"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):  # 'no' would have meant True
                raise ValueError(f"{name} must be True or False, got {v!r}")
        if not isinstance(self.verbose, numbers.Integral):
            raise ValueError(f"verbose must be an integer, got {self.verbose!r}")
        if self.clip is not None and (
            isinstance(self.clip, bool)
            or not isinstance(self.clip, numbers.Real)
            or not self.clip > 0
        ):
            raise ValueError(f"clip must be a positive number or None, got {self.clip!r}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _init_model(self, n_features, n_out, dtype, rng):
        cls = _CELLS[self.cell]
        self.rnn_ = cls(
            n_features,
            self.hidden_size,
            self.num_layers,
            bidirectional=bool(self.bidirectional),
            batch_first=True,
            dropout=float(self.dropout) if self.num_layers > 1 else 0.0,
            dtype=dtype,
            seed=int(rng.integers(2**63)),
            backend=self.backend,
        )
        D = 2 if self.bidirectional else 1
        self.head_ = nn.Linear(
            D * self.hidden_size, n_out, dtype=dtype, seed=int(rng.integers(2**63))
        )
        self._modules = {"rnn": self.rnn_, "head": self.head_}

    # Forward/backward of the whole model on one batch. ``feat`` is the read-out
    # input: the final states (many-to-one) or every step's output (many-to-many).
    def _forward(self, xb, lb, training):
        run = self.rnn_.forward if training else self.rnn_
        res = run(xb, None, lb)
        y, state = res[0], res[1]
        tape = res[2] if training else None
        if self._many_to_many:
            feat = y  # B,T,D*H
        else:
            h_n = state[0] if isinstance(state, tuple) else state  # L*D,B,H
            D = self.rnn_.num_directions
            top = h_n[(self.num_layers - 1) * D :]  # D,B,H
            feat = np.concatenate(list(top), axis=1) if D > 1 else top[0]  # B,D*H
        if training:
            out, htape = self.head_.forward(feat)
            return out, (tape, htape, state)
        return self.head_(feat), None

    def _backward(self, tapes, dout):
        tape, htape, state = tapes
        dfeat = self.head_.backward(htape, dout)
        if self._many_to_many:
            self.rnn_.backward(tape, dfeat, None)
            return
        L, D, H = self.num_layers, self.rnn_.num_directions, self.hidden_size
        B = dfeat.shape[0]
        dh = np.zeros((L * D, B, H), dtype=dfeat.dtype)
        for d in range(D):
            dh[(L - 1) * D + d] = dfeat[:, d * H : (d + 1) * H]
        self.rnn_.backward(tape, None, (dh, None) if isinstance(state, tuple) else dh)

    def _fit_batches(self, Xb, lengths, loss_fn, rng, resume=False):
        params = nn.named_parameters(self._modules)
        grads = nn.named_grads(self._modules)
        opt = nn.Adam(params, lr=float(self.lr), weight_decay=float(self.weight_decay))
        N = Xb.shape[0]
        B = min(int(self.batch_size), N)
        done = 0
        if resume:
            # Continue where the last fit stopped: Adam's moments and step, and
            # the shuffling generator (the data position is an epoch boundary).
            st = self._train_state_
            opt.load_state_dict(st["optimizer"])
            opt.lr, opt.weight_decay = float(self.lr), float(self.weight_decay)
            rng = np.random.default_rng()
            rng.bit_generator.state = st["rng"]
            done = int(st["epochs"])
        else:
            self.loss_curve_ = []
        start = time.perf_counter()
        for epoch in range(done, done + int(self.epochs)):
            order = rng.permutation(N)
            total, count = 0.0, 0
            for i in range(0, N, B):
                idx = order[i : i + B]
                lb = None if lengths is None else lengths[idx]
                out, tapes = self._forward(Xb[idx], lb, training=True)
                loss, dout = loss_fn(out, idx, lb)
                for m in self._modules.values():
                    m.zero_grad()
                self._backward(tapes, dout)
                norm = nn.clip_grad_norm(grads, float(self.clip)) if self.clip is not None else 0.0
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch + 1} (loss {loss}); "
                        "lower lr or set clip"
                    )
                opt.step(grads)
                total += loss * idx.size
                count += idx.size
            self.loss_curve_.append(total / count)
            if self.verbose:
                print(
                    f"epoch {epoch + 1}/{done + self.epochs}  loss {total / count:.5f}  "
                    f"{time.perf_counter() - start:.1f}s",
                    flush=True,
                )
        self.n_iter_ = done + int(self.epochs)
        # The training state a pickled estimator carries, for fit(..., resume=True).
        self._train_state_ = {
            "optimizer": opt.state_dict(),
            "rng": rng.bit_generator.state,
            "epochs": self.n_iter_,
        }

    def _prepare_X(self, X, lengths):
        self._check_fitted()
        Xb, lengths, ragged = _as_batch(X, lengths, self._dtype, self.n_features_in_)
        if self.standardize:
            Xb = (Xb - self.x_mean_) / self.x_scale_
            Xb *= _step_mask(lengths, *Xb.shape[:2])[:, :, None]
        return Xb, lengths, ragged

    def _raw_predict(self, Xb, lengths, batch=512):
        outs = []
        for i in range(0, Xb.shape[0], batch):
            lb = None if lengths is None else lengths[i : i + batch]
            outs.append(
                self._forward(np.ascontiguousarray(Xb[i : i + batch]), lb, training=False)[0]
            )
        return np.concatenate(outs, axis=0)

    def _check_resume(self, resume):
        if not isinstance(resume, (bool, np.bool_)):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if resume and not hasattr(self, "_train_state_"):
            raise ValueError(
                f"resume=True needs a fitted {type(self).__name__} (or one unpickled from a "
                "fitted one) to continue; call fit() first"
            )
        return bool(resume)

    def _fit_X(self, X, lengths, resume=False):
        dtype = self._check_params()
        if resume and dtype != self._dtype:
            raise ValueError(f"resume=True: dtype {dtype} differs from the fitted {self._dtype}")
        self._dtype = dtype
        Xb, lengths, ragged = _as_batch(X, lengths, dtype)
        N, T, F = Xb.shape
        if resume and F != self.n_features_in_:
            raise ValueError(
                f"resume=True: X has {F} features, the fitted model {self.n_features_in_}"
            )
        self.n_features_in_ = F
        mask = _step_mask(lengths, N, T)
        if resume:
            # The model was trained on the first fit's scaling: keep it.
            if self.standardize:
                Xb = (Xb - self.x_mean_) / self.x_scale_
                Xb *= mask[:, :, None]
        elif self.standardize:
            valid = Xb[mask].astype(np.float64)  # M,F
            self.x_mean_ = valid.mean(axis=0).astype(dtype)
            scale = valid.std(axis=0)
            scale[scale == 0] = 1.0
            self.x_scale_ = scale.astype(dtype)
            Xb = (Xb - self.x_mean_) / self.x_scale_
            Xb *= mask[:, :, None]
        return Xb, lengths, ragged, mask

    def _rng(self):
        try:
            return np.random.default_rng(self.random_state)
        except (TypeError, ValueError) as err:
            raise ValueError(
                "random_state must be None, a non-negative integer, a SeedSequence or a "
                f"Generator, got {self.random_state!r} ({err})"
            ) from None

    def _check_fitted(self):
        if not hasattr(self, "rnn_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "rnn_")


_PARAMS_DOC = """
    Parameters
    ----------
    cell : {{"lstm", "gru", "rnn", "indrnn"}}
    hidden_size : int
    num_layers : int
    bidirectional : bool
    dropout : float
        Between recurrent layers, during training.
    epochs : int
        Passes over the training data.
    batch_size : int
    lr : float
        Adam's learning rate.
    clip : float or None
        Global gradient-norm clipping.
    weight_decay : float
        L2 penalty (added to the gradient by Adam).
    standardize : bool
        Scale each input feature to zero mean and unit variance over the
        training steps{y_std} (undone on predictions).
    dtype : "float32" or "float64"
    random_state : int, numpy Generator or None
        Seeds the weights and the shuffling.
    backend : str or None
        The recurrent layers' backend (None: the default).
    verbose : int
        Print the loss after each epoch when > 0.
"""


class RNNClassifier(_RNNEstimator):
    __doc__ = (
        """Sequence classifier: recurrent layers read each sequence; the final
    state (both directions' when bidirectional) goes through a linear layer and a
    softmax. Trained with softmax cross-entropy and Adam.
    """
        + _PARAMS_DOC.format(y_std="")
        + """
    Attributes
    ----------
    classes_ : ndarray, the sorted class labels
    n_features_in_ : int
    loss_curve_ : list of float, mean training loss per epoch
    n_iter_ : int, epochs run
    rnn_, head_ : the trained layer and read-out
    """
    )

    _estimator_type = "classifier"

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        *,
        bidirectional=False,
        dropout=0.0,
        epochs=30,
        batch_size=32,
        lr=0.01,
        clip=5.0,
        weight_decay=0.0,
        standardize=True,
        dtype="float32",
        random_state=None,
        backend=None,
        verbose=0,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip = clip
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.dtype = dtype
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose

    def fit(self, X, y, lengths=None, *, resume=False):
        """Fit on ``X`` ``[n_samples, n_timesteps, n_features]`` (or a list of
        ``[T_i, n_features]`` arrays) and labels ``y`` ``[n_samples]``.
        ``lengths`` (``[n_samples]`` integers) marks the real steps of padded X.

        ``resume=True`` continues the previous fit (of this estimator, or of a
        pickled fitted one) for ``epochs`` more epochs: its weights, Adam's
        moments and step, the shuffling generator and the input scaling. On
        the same data, fit for a epochs then resumed for b equals fit for
        a + b epochs, bitwise.

        A dask array X (and y, lengths) trains data-parallel on the current
        distributed Client (``rnnkit.dask.fit``; docs/distributed.md); resume
        is for one-process fits only."""
        resume = self._check_resume(resume)
        if _is_dask(X):
            if resume:
                raise ValueError("resume=True is for one-process fits; a dask X trains with rnnkit.dask.fit")
            return _dask_module().fit(self, X, y, lengths=lengths)
        Xb, lengths, _, _ = self._fit_X(X, lengths, resume)
        _refuse_lossy("y", y)
        if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype == object):
            # np.asarray(["a", 1]) is ["a", "1"]: predictions would come back as strings
            kinds = {isinstance(v, str) for v in np.asarray(y, dtype=object).ravel()}
            if len(kinds) > 1:
                raise ValueError("y mixes strings and numbers: use labels of one type")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != Xb.shape[0]:
            raise ValueError(
                f"y must be 1-D with one label per sample ({Xb.shape[0]}), got shape {y.shape}"
            )
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y holds nan or inf")
        try:
            self.classes_, codes = np.unique(y, return_inverse=True)
        except TypeError as err:
            raise ValueError(f"y's labels must be sortable (one type, no None): {err}") from None
        if self.classes_.size < 2:
            raise ValueError(f"y must hold at least 2 classes, got {self.classes_.size}")
        if resume:
            if self.head_.out_features != self.classes_.size:
                raise ValueError(
                    f"resume=True: y has {self.classes_.size} classes, the fitted model "
                    f"{self.head_.out_features}"
                )
            rng = None
        else:
            rng = self._rng()
            self._init_model(Xb.shape[2], self.classes_.size, self._dtype, rng)
        codes = codes.reshape(-1)

        def loss_fn(out, idx, lb):
            return nn.softmax_cross_entropy(out, codes[idx])

        self._fit_batches(Xb, lengths, loss_fn, rng, resume)
        return self

    def decision_function(self, X, lengths=None):
        """Logits ``[n_samples, n_classes]`` (a lazy dask array for a dask X)."""
        if _is_dask(X):
            return _dask_module().predict(self, X, lengths, method="decision_function")
        Xb, lengths, _ = self._prepare_X(X, lengths)
        return self._raw_predict(Xb, lengths).astype(np.float64)

    def predict_proba(self, X, lengths=None):
        """Class probabilities ``[n_samples, n_classes]``, columns in ``classes_`` order
        (a lazy dask array for a dask X)."""
        if _is_dask(X):
            return _dask_module().predict(self, X, lengths, method="predict_proba")
        z = self.decision_function(X, lengths)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def predict(self, X, lengths=None):
        """The likeliest class of each sequence, ``[n_samples]`` (a lazy dask
        array for a dask X)."""
        if _is_dask(X):
            return _dask_module().predict(self, X, lengths, method="predict")
        z = self.decision_function(X, lengths)
        return self.classes_[np.argmax(z, axis=1)]

    def score(self, X, y, sample_weight=None, lengths=None):
        """Mean accuracy (weighted by ``sample_weight``)."""
        pred = self.predict(X, lengths)
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ValueError(f"y must have shape {pred.shape}, got {y.shape}")
        w = _sample_weight(sample_weight, len(pred))
        return float(np.average(pred == y, weights=w))

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            input_tags=InputTags(two_d_array=False, three_d_array=True),
        )


class RNNRegressor(_RNNEstimator):
    __doc__ = (
        """Sequence regressor, trained with mean squared error and Adam.

    With ``output="last"`` (many-to-one) the final state goes through a linear
    layer: ``y`` is ``[n_samples]`` or ``[n_samples, n_outputs]``. With
    ``output="sequence"`` (many-to-many) every step's output does: ``y`` is
    ``[n_samples, n_timesteps]`` or ``[n_samples, n_timesteps, n_outputs]``,
    and steps past a sequence's length are left out of the loss (and predicted
    as 0).
    """
        + _PARAMS_DOC.format(y_std=", and each target too")
        + """
    output : {"last", "sequence"}

    Attributes
    ----------
    n_features_in_ : int
    loss_curve_ : list of float, mean training loss (on standardized targets) per epoch
    n_iter_ : int
    rnn_, head_ : the trained layer and read-out
    """
    )

    _estimator_type = "regressor"

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        *,
        output="last",
        bidirectional=False,
        dropout=0.0,
        epochs=30,
        batch_size=32,
        lr=0.01,
        clip=5.0,
        weight_decay=0.0,
        standardize=True,
        dtype="float32",
        random_state=None,
        backend=None,
        verbose=0,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.output = output
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip = clip
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.dtype = dtype
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose

    @property
    def _many_to_many(self):
        return self.output == "sequence"

    def _check_y(self, y, N, T, lengths, ragged):
        ragged_1d = None
        if self.output == "sequence" and ragged:
            for i, s in enumerate(y):
                _refuse_lossy(f"y[{i}]", s)
            try:
                ys = [np.asarray(s, dtype=np.float64) for s in y]
                if len(ys) != N or any(a.ndim not in (1, 2) for a in ys):
                    raise ValueError(f"it has {len(ys)} entries for {N} sequences of X")
                bad = [i for i, a in enumerate(ys) if a.shape[0] != lengths[i]]
                if bad:
                    i = bad[0]
                    raise ValueError(
                        f"y[{i}] has {ys[i].shape[0]} steps but X[{i}] has {lengths[i]}"
                    )
                ragged_1d = all(a.ndim == 1 for a in ys)
                y, _ = pack_sequences(
                    [a.reshape(len(a), -1) for a in ys],
                    dtype=np.float64,
                    batch_first=True,
                    total_length=T,
                )
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"y must be a list of [T_i] or [T_i, n_outputs] arrays like X: {err}"
                ) from None
        else:
            _refuse_lossy("y", y)
            try:
                y = np.array(y, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"y must be numeric: {err}") from None
        if self.output == "last":
            if y.ndim not in (1, 2) or y.shape[0] != N:
                raise ValueError(
                    f"with output='last', y must be [n_samples] or [n_samples, n_outputs] "
                    f"with n_samples = {N}, got shape {y.shape}"
                )
            squeeze = y.ndim == 1
            y2 = y.reshape(N, -1)
            finite = np.all(np.isfinite(y2))
        else:
            if y.ndim not in (2, 3) or y.shape[:2] != (N, T):
                raise ValueError(
                    f"with output='sequence', y must be [n_samples, n_timesteps] or "
                    f"[n_samples, n_timesteps, n_outputs] = [{N}, {T}, ...], got shape {y.shape}"
                )
            squeeze = y.ndim == 2 if ragged_1d is None else ragged_1d
            y2 = y.reshape(N, T, -1).copy()
            mask = _step_mask(lengths, N, T)
            y2[~mask] = 0.0
            finite = np.all(np.isfinite(y2))
        if not finite:
            raise ValueError("y holds nan or inf")
        return y2, squeeze

    def fit(self, X, y, lengths=None, *, resume=False):
        """Fit on ``X`` ``[n_samples, n_timesteps, n_features]`` (or a list of
        ``[T_i, n_features]`` arrays) and ``y`` (see the class docstring).
        ``resume=True`` continues the previous fit exactly (see
        :meth:`RNNClassifier.fit`). A dask array X trains data-parallel
        (``rnnkit.dask.fit``)."""
        if self.output not in ("last", "sequence"):
            raise ValueError(f"output must be 'last' or 'sequence', got {self.output!r}")
        resume = self._check_resume(resume)
        if _is_dask(X):
            if resume:
                raise ValueError("resume=True is for one-process fits; a dask X trains with rnnkit.dask.fit")
            return _dask_module().fit(self, X, y, lengths=lengths)
        Xb, lengths, ragged, mask = self._fit_X(X, lengths, resume)
        N, T, _ = Xb.shape
        y2, squeeze = self._check_y(y, N, T, lengths, ragged)
        self._squeeze = squeeze
        K = y2.shape[-1]
        if resume:
            if self.head_.out_features != K:
                raise ValueError(f"resume=True: y has {K} outputs, the fitted model {self.head_.out_features}")
        elif self.standardize:
            valid = y2[mask] if self._many_to_many else y2
            self.y_mean_ = valid.mean(axis=0)
            scale = valid.std(axis=0)
            scale[scale == 0] = 1.0
            self.y_scale_ = scale
        else:
            self.y_mean_, self.y_scale_ = np.zeros(K), np.ones(K)
        yt = ((y2 - self.y_mean_) / self.y_scale_).astype(self._dtype)
        if self._many_to_many:
            yt *= mask[:, :, None]
        rng = None
        if not resume:
            rng = self._rng()
            self._init_model(Xb.shape[2], K, self._dtype, rng)

        def loss_fn(out, idx, lb):
            m = None if not self._many_to_many else _step_mask(lb, len(idx), T)
            return nn.mse_loss(out, yt[idx], m)

        self._fit_batches(Xb, lengths, loss_fn, rng, resume)
        return self

    def predict(self, X, lengths=None):
        """``[n_samples]`` / ``[n_samples, n_outputs]`` (output="last"), or
        ``[n_samples, n_timesteps(, n_outputs)]`` (output="sequence", a list
        of ``[T_i(, n_outputs)]`` arrays when X was a list; a lazy dask array
        for a dask X)."""
        if _is_dask(X):
            return _dask_module().predict(self, X, lengths, method="predict")
        Xb, lengths, ragged = self._prepare_X(X, lengths)
        out = self._raw_predict(Xb, lengths).astype(np.float64) * self.y_scale_ + self.y_mean_
        if self._many_to_many:
            out *= _step_mask(lengths, *Xb.shape[:2])[:, :, None]
            if self._squeeze:
                out = out[..., 0]
            if ragged:
                return [out[i, :n] for i, n in enumerate(lengths)]
            return out
        return out[:, 0] if self._squeeze else out

    def score(self, X, y, sample_weight=None, lengths=None):
        """R² (coefficient of determination), averaged uniformly over outputs;
        over the real steps only with output="sequence"."""
        pred = self.predict(X, lengths)
        if self._many_to_many:
            Xb, lengths2, ragged = _as_batch(X, lengths, np.float64, self.n_features_in_)
            N, T, _ = Xb.shape
            y2, _ = self._check_y(y, N, T, lengths2, ragged)
            if ragged:
                pred = np.stack(
                    [
                        np.pad(np.asarray(p).reshape(len(p), -1), ((0, T - len(p)), (0, 0)))
                        for p in pred
                    ]
                )
            p2 = np.asarray(pred).reshape(N, T, -1)
            mask = _step_mask(lengths2, N, T)
            yt, pt = y2[mask], p2[mask]  # M,K
            w = _sample_weight(sample_weight, N)
            w = None if w is None else np.broadcast_to(w[:, None], (N, T))[mask]
        else:
            N = len(pred)
            yt, _ = self._check_y(y, N, None, None, False)
            pt = np.asarray(pred).reshape(N, -1)
            if yt.shape != pt.shape:  # (8, 2) against one output broadcast into a wrong R²
                raise ValueError(
                    f"y must have {pt.shape[1]} output(s) per sample, like the fitted "
                    f"estimator, got shape {np.shape(y)}"
                )
            w = _sample_weight(sample_weight, N)
        return _r2(yt, pt, w)

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True, multi_output=True),
            regressor_tags=RegressorTags(),
            input_tags=InputTags(two_d_array=False, three_d_array=True),
        )


def _r2(y, pred, w=None) -> float:
    """R² per output column, averaged (scikit-learn's r2_score, uniform_average)."""
    w = np.ones(y.shape[0]) if w is None else w
    w = w[:, None]
    mean = (w * y).sum(axis=0) / w.sum()
    ss_res = (w * (y - pred) ** 2).sum(axis=0)
    ss_tot = (w * (y - mean) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(
            ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res > 0, 0.0, 1.0)
        )
    return float(r2.mean())
