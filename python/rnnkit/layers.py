"""Layers: ``Recurrent`` (any ``rnnkit.Cell``) and ``RNN``, ``LSTM``, ``GRU``
and ``IndRNN`` (``Recurrent`` with a built-in cell), stacked and bidirectional.

This is where policy lives, once, in Python, for every cell: parameters and
their PyTorch names, stacking, directions, dropout between layers,
``batch_first``, dtype and shape checks, states. Each (layer, direction) is
one call: of a fused functional backend (``rnnkit.reference`` or the native
``rnnkit.functional``) for the built-in cells, or of the Python-step engine
(``rnnkit.cells._engine``: the cell's pointwise step in Python, native GEMMs).
This file does no cell math of its own.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import warnings
import weakref

import numpy as np

from ._checks import check_tape

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "GRU", "LSTM", "RNN", "IndRNN", "Recurrent", "Tape"]

# Backend name -> module that provides {cell}_forward / {cell}_backward with the
# signatures of docs/cells.md. Imported lazily, by name, on first use.
BACKENDS = {"reference": "rnnkit.reference", "native": "rnnkit.functional"}
DEFAULT_BACKEND = "native"

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_NONLINEARITIES = ("tanh", "relu")


# --------------------------------------------------------------------------
# Backend resolution
# --------------------------------------------------------------------------


def _resolve_backend(backend):
    """Return ``(name, module)`` for a backend name (``None`` = the default)."""
    name = DEFAULT_BACKEND if backend is None else backend
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a string (one of {sorted(BACKENDS)}) or None, "
            f"got {type(backend).__name__}"
        )
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {sorted(BACKENDS)}")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as err:
        raise ValueError(
            f"backend {name!r} is not available: its module {BACKENDS[name]} "
            f"could not be imported ({err})"
        ) from err
    return name, module


# --------------------------------------------------------------------------
# Argument checks (constructor and calls). Messages name the argument and
# give the expected and actual values.
# --------------------------------------------------------------------------


def _check_dtype_arg(dtype) -> np.dtype:
    if dtype is None:  # np.dtype(None) is float64; refuse it rather than guess
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from err
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_dropout(value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"dropout must be a float in [0, 1), got {value!r}")
    p = float(value)
    if not 0.0 <= p < 1.0:  # also rejects nan
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return p


def _check_nonlinearity(value) -> str:
    if not isinstance(value, str) or value not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {_NONLINEARITIES}, got {value!r}")
    return value


def _refuse_masked(name: str, a, hint: str = " and give lengths for padded steps") -> None:
    if np.ma.is_masked(a):  # NumPy would drop the mask and compute on the hidden data
        raise TypeError(
            f"{name} is a masked array with masked entries; rnnkit does not read masks: "
            f"fill them (.filled(...)){hint}"
        )


def _check_float_array(name: str, a, dtype: np.dtype, expected_shape: tuple, shape_doc: str):
    """An ndarray of exactly ``dtype`` (no silent casts) and ``expected_shape``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of dtype {dtype}, got {type(a).__name__}")
    _refuse_masked(name, a)
    if a.dtype != dtype:
        hint = ""
        if a.dtype in _FLOAT_DTYPES:  # a float dtype the layer could have had: say how to fix
            hint = (
                f"; rnnkit does not cast silently: cast {name} "
                f"or build the layer with dtype=np.{a.dtype}"
            )
        elif a.dtype.kind == "f" and a.dtype.newbyteorder("=") == dtype:
            hint = f" in non-native byte order; convert it with {name}.astype(np.{dtype})"
        raise TypeError(f"{name} has dtype {a.dtype} but the layer's dtype is {dtype}{hint}")
    if a.shape != expected_shape:
        raise ValueError(f"{name} must have shape {shape_doc} = {expected_shape}, got {a.shape}")
    return a


def _check_lengths(lengths, T: int, N: int):
    """``None``, or a copy of ``lengths`` as int64 ``[N]`` with values in ``0..T``."""
    if lengths is None:
        return None
    _refuse_masked("lengths", lengths)
    try:
        arr = np.asarray(lengths)
    except (TypeError, ValueError) as err:
        raise TypeError(f"lengths must be an integer array of shape (N,) = ({N},): {err}") from err
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        # before the shape, so that a str, dict or float scalar is called what it is
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != N:
        raise ValueError(f"lengths must have shape (N,) = ({N},), got {arr.shape}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > T:
            raise ValueError(f"lengths must be in 0..T = 0..{T}, got values in {lo}..{hi}")
    return arr.astype(np.int64)  # always a copy: the tape must not alias the caller's array


class _ArrayDict(dict):
    """A dict whose keys and arrays are fixed: entries are updated in place.

    ``d[k] -= lr * g`` works (the in-place op returns the same array, which
    is then "assigned" to itself); binding a key to a different object or
    removing a key raises TypeError, since the layer would silently keep using
    (or lose) the old array.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            "the keys and arrays of layer.parameters / layer.grads are fixed: update an array "
            "in place (p[...] = v, p -= lr * g) or use layer.load_state_dict()"
        )

    def __setitem__(self, key, value):
        if key not in self or dict.__getitem__(self, key) is not value:
            self._refuse()

    __delitem__ = pop = popitem = clear = update = setdefault = __ior__ = _refuse

    def copy(self):
        return dict(self)  # a plain dict (of the same arrays)

    def __reduce__(self):  # copy/pickle would rebuild through the refused __setitem__
        return (type(self), (dict(self),))


# --------------------------------------------------------------------------
# The tape
# --------------------------------------------------------------------------


class Tape:
    """What :meth:`forward` hands to :meth:`backward`: one layer's training pass.

    A tape owns everything backward needs: the backend caches of every
    (layer, direction), in which the inputs and weights are copies taken at
    forward time, and the dropout masks. So backward differentiates exactly
    the forward that made the tape, even if parameters or inputs were changed
    in place since. A tape may be used for several backward calls (each one
    accumulates into the grads again); a tape made by another layer is refused.

    Attributes
    ----------
    caches : dict[(int, int), rnnkit.Cache or tuple]
        What backward needs of layer ``k``, direction ``d`` (0 forward,
        1 reverse), under key ``(k, d)``: the backend cache on the fused
        path, ``(CellSpec, StepCache)`` on the Python-step path (the cell's
        saved values per step, the packed weights).
    masks : list[numpy.ndarray]
        ``masks[k]`` multiplies layer ``k``'s output before it feeds layer
        ``k+1``: shape ``[T, N, D*H]`` (time-major), values ``0`` or
        ``1/(1-p)``. Empty when dropout is off.
    lengths : numpy.ndarray or None
        int64 ``[N]``, as passed to forward.
    batch_first : bool
    shape : tuple
        ``(T, N)`` of the input.
    dtype : numpy.dtype
    """

    def __init__(self, owner, caches, masks, lengths, batch_first, T, N, dtype):
        self._owner = weakref.ref(owner)
        self.caches = caches
        self.masks = masks
        self.lengths = lengths
        self.batch_first = batch_first
        self.shape = (T, N)
        self.dtype = dtype

    def owned_by(self, layer) -> bool:
        return self._owner() is layer

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the tape holds (each buffer once): every
        cache's stored arrays and kept inputs (x, states, weight copies,
        lengths), the dropout masks and lengths. What ``memory=`` shrinks."""
        return _held_nbytes([self.caches, self.masks, self.lengths])

    def __repr__(self) -> str:
        owner = self._owner()
        who = type(owner).__name__ if owner is not None else "<dead layer>"
        T, N = self.shape
        return (
            f"Tape({who}, T={T}, N={N}, dtype={self.dtype}, caches={len(self.caches)}, "
            f"masks={len(self.masks)})"
        )


def _held_nbytes(objs) -> int:
    """Bytes of the distinct array buffers reachable from objs (arrays, and
    the lists, tuples, dicts, Caches and StepCaches holding them; a packed
    native weight counts its rows x cols)."""
    from ._cache import Cache

    seen, total, stack = set(), 0, list(objs)
    while stack:
        o = stack.pop()
        if isinstance(o, np.ndarray):
            root = o
            while isinstance(root.base, np.ndarray):
                root = root.base
            key = (root.__array_interface__["data"][0], root.nbytes)
            if key not in seen:
                seen.add(key)
                total += root.nbytes
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, Cache):
            stack.extend(vars(o).values())
        elif type(o).__name__ == "StepCache":
            stack.extend(getattr(o, n, None) for n in type(o).__slots__)
        elif type(o).__name__ == "UserWeight" and id(o) not in seen:
            seen.add(id(o))
            rows, cols = o.shape
            total += rows * cols * np.dtype(o.dtype).itemsize
    return total


# --------------------------------------------------------------------------
# The layers
# --------------------------------------------------------------------------


class Recurrent:
    """A recurrent layer of any :class:`rnnkit.Cell`: stacked, bidirectional,
    with lengths, dropout between layers, truncated BPTT and PyTorch's
    ``state_dict`` names. The one door of every layer: ``rnnkit.LSTM`` & co.
    are ``Recurrent`` with a built-in cell.

    Two paths behind it, the same policy (this class) for both:

    - **fused**: the cell is exactly one of the four built-ins
      (``rnnkit.cells.LSTMCell``, ``GRUCell``, ``RNNCell``, ``IndRNNCell``,
      not a subclass) and ``fused`` is not False: each (layer, direction) is
      one call of the fused native kernel (or of its NumPy twin with
      ``backend="reference"``).
    - **Python step**: any other cell, or ``fused=False``: the cell's
      pointwise ``forward``/``backward`` run in Python per step, every GEMM
      natively (rnnkit.cells._engine).

    Parameters
    ----------
    cell : rnnkit.Cell
        The step (see docs/cells.md for the protocol).
    input_size, hidden_size, num_layers
        C, H and L, as :class:`rnnkit.LSTM`; the rest is keyword-only.
    bidirectional, batch_first, dropout, dtype, seed, bias
        As :class:`rnnkit.LSTM`. ``bias`` is ignored (no biases) for a cell
        that declares ``bias = False``.
    fused : bool or None
        None: fused where the cell allows it; False: always the Python step;
        True: require the fused path (ValueError if the cell has none).
    backend : str or None
        The fused path's functional backend (``"native"`` or ``"reference"``);
        the Python-step path has only the native GEMMs and refuses another.
    memory : {"full", "recompute", "checkpoint"}, default "full"
        What :meth:`forward`'s tape stores for :meth:`backward`
        (docs/training.md): everything, the states of every step (the gates
        are recomputed), or the states every ``segment`` steps (each segment
        is replayed). Gradients are bitwise the same in every mode. The fused
        path only: a Python-step cell refuses the other modes (ValueError).
    segment : int or None
        Steps per segment for "recompute" and "checkpoint"; None: chosen from
        ``max_bytes``, or a default (docs/training.md).
    max_bytes : int or None
        A budget for the tape's stored states plus the backward's segment
        workspace, split evenly over the ``num_layers * D`` (layer,
        direction) calls; the largest segment that fits is used.

    Attributes
    ----------
    parameters, grads : dict str -> numpy.ndarray
        ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
        (PyTorch's names, ``_reverse`` for the reverse direction) and the
        cell's extra parameters as ``{name}_l{k}`` / ``{name}_l{k}_reverse``.
    generator : numpy.random.Generator
        Draws the initial weights, then every dropout mask.
    """

    def __init__(
        self,
        cell,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        bidirectional=False,
        batch_first=False,
        dropout=0.0,
        dtype=np.float32,
        seed=None,
        bias=True,
        fused=None,
        backend=None,
        memory="full",
        segment=None,
        max_bytes=None,
    ):
        from rnnkit.cells import _library
        from rnnkit.cells._protocol import Cell, CellError, CellSpec

        from ._memory import check_memory_args

        self._input_size = _check_positive_int("input_size", input_size)
        self._hidden_size = _check_positive_int("hidden_size", hidden_size)
        self._num_layers = _check_positive_int("num_layers", num_layers)
        self._bidirectional = _check_bool("bidirectional", bidirectional)
        self._batch_first = _check_bool("batch_first", batch_first)
        self._dropout = _check_dropout(dropout)
        self._dtype = _check_dtype_arg(dtype)
        bias = _check_bool("bias", bias)
        if fused is not None:
            fused = _check_bool("fused", fused)
        self._spec = CellSpec(cell, self._input_size, self._hidden_size)
        self._cell_obj = cell
        self._bias = bias and self._spec.bias
        fusable = type(cell) in (_library.LSTMCell, _library.GRUCell, _library.RNNCell, _library.IndRNNCell)
        if fused and not fusable:
            raise ValueError(
                f"fused=True needs one of the built-in cells (LSTMCell, GRUCell, RNNCell, IndRNNCell), "
                f"got {type(cell).__name__}"
            )
        self._fused = fusable and fused is not False
        check_memory_args(memory, segment, max_bytes)
        if memory != "full" and not self._fused:
            raise ValueError(
                f"memory={memory!r} needs the fused path (a built-in cell, fused not False); the Python-step "
                f"path of {type(cell).__name__} stores every step (memory='full')"
            )
        self._memory = (memory, segment, max_bytes)
        self._nonlinearity = getattr(cell, "nonlinearity", None) if fusable else None
        if self._fused:
            # Keep the functions, not the module: a layer stays picklable and deep-copyable.
            self._cell = cell.fused_name  # functional name prefix: rnn, lstm, gru, indrnn
            self._backend, module = _resolve_backend(backend)
            try:
                self._forward_fn = getattr(module, f"{self._cell}_forward")
                self._backward_fn = getattr(module, f"{self._cell}_backward")
            except AttributeError as err:
                raise ValueError(f"backend {self._backend!r} does not provide {self._cell}: {err}") from err
        else:
            self._cell = None
            if backend not in (None, "native"):
                raise ValueError(
                    f"backend={backend!r} applies to the fused built-in cells only; a Python-step cell "
                    "runs its GEMMs natively (backend 'native')"
                )
            self._backend = "native"
        if self._dropout > 0 and self._num_layers == 1:
            warnings.warn(
                f"dropout={self._dropout} has no effect with num_layers=1: dropout is applied "
                "between layers, not after the last one",
                UserWarning,
                stacklevel=3,
            )

        #: The layer's random generator: it draws the initial weights, then every
        #: dropout mask. Masks depend only on this generator's state and on the
        #: shapes, so restoring ``generator.bit_generator.state`` before
        #: :meth:`forward` replays the same masks.
        try:
            self.generator = np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"seed must be None, a non-negative integer, a SeedSequence or a Generator, "
                f"got {seed!r} ({err})"
            ) from None

        H, G, D = self._hidden_size, self._spec.G, self.num_directions
        diag = self._spec.recurrence == "diag"
        # Count in Python ints first: a size too big for an array dimension would
        # otherwise fail inside NumPy without naming the argument.
        per_row = (1 if diag else H) + 2  # w_hh and the biases, per row of w_ih
        n_params = G * H * D * (self._input_size + per_row + (self._num_layers - 1) * (H * D + per_row))
        if n_params > np.iinfo(np.intp).max // 8:
            raise ValueError(
                f"input_size={self._input_size}, hidden_size={H} and num_layers="
                f"{self._num_layers} make {n_params:.3g} parameters, more than memory can hold"
            )
        bound = 1.0 / math.sqrt(H)
        self._params: dict[str, np.ndarray] = {}
        self._extra_specs = []  # per layer k: {name: shape} of the cell's extra params
        for k in range(self._num_layers):
            C_k = self._input_size if k == 0 else H * D
            extra = CellSpec(cell, C_k, H).params if k > 0 else self._spec.params
            self._extra_specs.append(extra)
            for d in range(D):
                suffix = self._suffix(k, d)
                shapes = {
                    "weight_ih" + suffix: (G * H, C_k),
                    "weight_hh" + suffix: (G * H,) if diag else (G * H, H),
                }
                if self._bias:
                    shapes["bias_ih" + suffix] = (G * H,)
                    shapes["bias_hh" + suffix] = (G * H,)
                for name, shape in shapes.items():
                    # Drawn in float64 so float32 and float64 layers of one seed agree.
                    w = self.generator.uniform(-bound, bound, size=shape)
                    self._params[name] = w.astype(self._dtype)
                for pname, shape in extra.items():
                    init = getattr(cell, "init_param", None) or functools.partial(Cell.init_param, cell)
                    w = np.asarray(init(pname, shape, self.generator, bound))
                    if w.shape != shape:
                        raise CellError(
                            f"{type(cell).__name__}.init_param returned shape {w.shape} for {pname!r}, "
                            f"expected {shape}"
                        )
                    self._params[pname + suffix] = w.astype(self._dtype)
        self._params = _ArrayDict(self._params)
        self._grads = _ArrayDict((name, np.zeros_like(p)) for name, p in self._params.items())

    # ---- configuration (read-only: the parameters were shaped by it) ----

    input_size = property(lambda self: self._input_size, doc="C, features of x.")
    hidden_size = property(lambda self: self._hidden_size, doc="H, hidden units.")
    num_layers = property(lambda self: self._num_layers, doc="L, stacked layers.")
    bidirectional = property(lambda self: self._bidirectional)
    batch_first = property(lambda self: self._batch_first)
    dropout = property(lambda self: self._dropout, doc="Dropout probability between layers.")
    dtype = property(lambda self: self._dtype, doc="float32 or float64: params, inputs, outputs.")
    bias = property(lambda self: self._bias)
    backend = property(lambda self: self._backend, doc="Name of the functional backend.")
    nonlinearity = property(lambda self: self._nonlinearity)
    cell = property(lambda self: self._cell_obj, doc="The rnnkit.Cell this layer runs.")
    fused = property(lambda self: self._fused, doc="True when the fused native kernel runs the steps.")
    memory = property(lambda self: self._memory_plan()[0], doc="What the tape stores: full, recompute or checkpoint.")

    def _memory_plan(self):
        # (memory, segment, max_bytes); a layer pickled before the modes existed is "full".
        return getattr(self, "_memory", ("full", None, None))

    @property
    def num_directions(self) -> int:
        """D: 2 if bidirectional, else 1."""
        return 2 if self._bidirectional else 1

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """dict name -> the live parameter array.

        Names, shapes and order follow PyTorch's ``state_dict``. The arrays are
        the layer's own: update them in place (``parameters[k] -= lr * g``) or
        with :meth:`load_state_dict`; binding a key to another array raises
        TypeError.
        """
        return self._params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dict name -> gradient array, the same names and shapes as
        :attr:`parameters` (and as fixed). :meth:`backward` adds into them;
        :meth:`zero_grad` clears them."""
        return self._grads

    def zero_grad(self) -> None:
        """Set every gradient to zero, in place."""
        for g in self._grads.values():
            g.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A dict of copies of the parameters, in PyTorch's names and order."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Copy parameters in from a mapping name -> array-like (strict).

        Values may be anything ``numpy.asarray`` accepts (NumPy arrays, PyTorch
        CPU tensors, nested lists) with a real numeric dtype; they are cast to
        the layer's dtype. Parameters are copied into the existing arrays, so
        references to :attr:`parameters` stay valid. Everything is checked
        before anything is written.

        Raises
        ------
        ValueError
            A missing or unexpected key, a wrong shape, or a NaN or inf value;
            the message names the key.
        TypeError
            A value that is not a real numeric array; the message names the key.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        keys = list(state_dict.keys())
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in keys if k not in self._params]
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        new = {}
        for name, p in self._params.items():
            _refuse_masked(f"state_dict[{name!r}]", state_dict[name], hint="")
            try:
                value = np.asarray(state_dict[name])
            except Exception as err:
                raise TypeError(
                    f"state_dict[{name!r}] is not convertible to an array: {err}"
                ) from err
            if value.dtype == np.bool_ or not (
                np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
            ):
                raise TypeError(
                    f"state_dict[{name!r}] must be a real numeric array, got dtype {value.dtype}"
                )
            if value.shape != p.shape:
                raise ValueError(
                    f"state_dict[{name!r}] must have shape {p.shape}, got {value.shape}"
                )
            with np.errstate(over="ignore", invalid="ignore"):
                cast = value.astype(p.dtype)
            # The cast is documented; overflowing to inf (1e300 into float32) is not:
            # that would be a silently different model.
            overflow = np.isinf(cast) & ~np.isinf(value)
            if overflow.any():
                i = np.unravel_index(np.flatnonzero(overflow)[0], value.shape)
                raise ValueError(
                    f"state_dict[{name!r}] has values too large for {p.dtype}, "
                    f"e.g. {value[i].item()!r} at {tuple(int(j) for j in i)}"
                )
            # NaN or inf weights would load into a model that outputs NaN (or
            # one repeated token): refused, naming the first bad entry.
            bad = ~np.isfinite(cast)
            if bad.any():
                i = np.unravel_index(np.flatnonzero(bad)[0], value.shape)
                raise ValueError(
                    f"state_dict[{name!r}] has non-finite values (NaN or inf), "
                    f"e.g. {cast[i].item()!r} at {tuple(int(j) for j in i)}"
                )
            new[name] = cast
        for name, value in new.items():
            np.copyto(self._params[name], value)

    # ---- running ----

    def __call__(self, x, state=None, lengths=None):
        """Inference: run the layer without dropout and without keeping a tape.

        See :meth:`forward` for the arguments. Returns ``(y, state)``.
        """
        y, state_n, _ = self._run(x, state, lengths, training=False)
        return y, state_n

    def forward(self, x, state=None, lengths=None):
        """Training forward pass: returns ``(y, state, tape)``.

        Parameters
        ----------
        x : numpy.ndarray
            ``[T, N, C]``, or ``[N, T, C]`` with ``batch_first=True``, of exactly
            the layer's dtype. A different float dtype raises TypeError rather
            than being cast: a mismatched dtype is a bug in the caller.
        state : numpy.ndarray, tuple or None
            Initial state: ``h0`` ``[L*D, N, H]`` (LSTM: a tuple ``(h0, c0)``,
            either of which may be None), indexed ``layer*D + direction`` as in
            PyTorch, also with ``batch_first``. None means zeros.
        lengths : array-like of int, optional
            ``[N]`` sequence lengths, in any order, each in ``0..T``. Steps at or
            past a sequence's length leave its state unchanged and write zeros
            to ``y``; the reverse direction starts at each sequence's own last step.

        Returns
        -------
        y : numpy.ndarray
            ``[T, N, D*H]`` (``[N, T, D*H]`` with batch_first): the last layer's
            output, forward direction then reverse on the last axis.
        state : numpy.ndarray or tuple
            Final state, same structure and shapes as the ``state`` argument.
        tape : Tape
            Everything :meth:`backward` needs, including the dropout masks.
        """
        return self._run(x, state, lengths, training=True)

    def backward(self, tape, dy, dstate=None):
        """Backpropagate through the pass recorded in ``tape``.

        Adds the parameter gradients into :attr:`grads` (``+=``), only once every
        direction of every layer has been computed.

        Parameters
        ----------
        tape : Tape
            From this layer's :meth:`forward`.
        dy : numpy.ndarray or None
            Gradient of the loss w.r.t. ``y``, ``y``'s shape and dtype; None = zeros.
            Entries at steps past a sequence's length are ignored (y is constant there).
        dstate : numpy.ndarray, tuple or None
            Gradient w.r.t. the final state, the structure of the state
            (LSTM: ``(dh_n, dc_n)``, either may be None); None = zeros.

        Returns
        -------
        dx : numpy.ndarray
            Gradient w.r.t. ``x``, ``x``'s shape (``batch_first`` respected).
        dstate0 : numpy.ndarray or tuple
            Gradient w.r.t. the initial state, ``[L*D, N, H]`` (LSTM: a tuple
            ``(dh0, dc0)``), returned even when forward's state was None.
        """
        if not isinstance(tape, Tape):
            raise TypeError(f"tape must be a Tape returned by forward(), got {type(tape).__name__}")
        if not tape.owned_by(self):
            raise ValueError(
                "tape was made by another layer's forward(); use that layer's backward()"
            )
        # A Tape is plain and mutable: a missing cache or mask is a ValueError here.
        check_tape(tape, self._num_layers, self.num_directions, self._hidden_size, self._dtype,
                   cache_type=None if self._fused else tuple)
        T, N = tape.shape
        L, D, H, dt = self._num_layers, self.num_directions, self._hidden_size, self._dtype
        S = self._spec.S
        bf = tape.batch_first

        if dy is not None:
            shape = (N, T, D * H) if bf else (T, N, D * H)
            _check_float_array("dy", dy, dt, shape, "[N, T, D*H]" if bf else "[T, N, D*H]")
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2)) if bf else dy
        dfinal = self._check_state("dstate", dstate, N)

        grads = {}  # name -> summed over nothing yet; added into self._grads at the end
        dstate0 = [np.empty((L * D, N, H), dt) for _ in range(S)]
        g = dy  # gradient w.r.t. the output of layer k (time-major), None = zeros
        for k in reversed(range(L)):
            dinput = None
            for d in range(D):
                idx = k * D + d
                g_d = None if g is None else np.ascontiguousarray(g[:, :, d * H : (d + 1) * H])
                df = [None if a is None else a[idx] for a in dfinal]
                dx, ds0, gr = self._backward_direction(tape.caches[(k, d)], g_d, df)
                for i in range(S):
                    dstate0[i][idx] = ds0[i]
                suffix = self._suffix(k, d)
                for name, value in gr.items():
                    grads[name + suffix] = value
                dinput = dx if dinput is None else dinput + dx
            if k > 0 and tape.masks:
                dinput = dinput * tape.masks[k - 1]
            g = dinput
        for name, value in grads.items():
            self._grads[name] += value
        dx = np.ascontiguousarray(g.transpose(1, 0, 2)) if bf else g
        return dx, (tuple(dstate0) if S > 1 else dstate0[0])

    # ---- internals ----

    @staticmethod
    def _suffix(k: int, d: int) -> str:
        return f"_l{k}" + ("_reverse" if d == 1 else "")

    def _param_names(self, k: int, d: int) -> tuple[str, str, str, str]:
        suffix = self._suffix(k, d)
        return ("weight_ih" + suffix, "weight_hh" + suffix, "bias_ih" + suffix, "bias_hh" + suffix)
    def _check_x(self, x):
        """Return ``(x time-major, T, N)`` after checking type, dtype and shape."""
        C = self._input_size
        layout = "[N, T, C]" if self._batch_first else "[T, N, C]"
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"x must be a numpy.ndarray of dtype {self._dtype}, got {type(x).__name__}"
            )
        if x.ndim != 3:
            raise ValueError(
                f"x must be 3-D {layout} with C = input_size = {C}, got shape {x.shape}"
            )
        _check_float_array("x", x, self._dtype, x.shape[:2] + (C,), f"{layout} with C = input_size")
        if x.shape[0] == 0 or x.shape[1] == 0:
            # Empty sequences or batches are refused, as by the functional API.
            raise ValueError(f"x must have T >= 1 and N >= 1 ({layout}), got shape {x.shape}")
        if self._batch_first:
            N, T = x.shape[:2]
            x = x.transpose(1, 0, 2)
        else:
            T, N = x.shape[:2]
        return x, T, N


    def _check_state(self, name: str, state, N: int):
        """Return a list of S arrays ``[L*D, N, H]`` or None from a state or dstate argument."""
        S, names = self._spec.S, self._spec.states
        if state is None:
            return [None] * S
        shape = (self._num_layers * self.num_directions, N, self._hidden_size)
        doc = "[L*D, N, H]"
        if S > 1:
            if not isinstance(state, (tuple, list)) or len(state) != S:
                raise TypeError(
                    f"{name} must be a tuple ({', '.join(names)}) of arrays {doc} or None, "
                    f"got {type(state).__name__}"
                    + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
                )
            out = []
            for i, a in enumerate(state):
                if a is not None:
                    _check_float_array(f"{name}[{i}] ({names[i]})", a, self._dtype, shape, doc)
                out.append(a)
            return out
        if isinstance(state, (tuple, list)):
            raise TypeError(
                f"{name} must be an array {doc} or None (only cells with several states, such as "
                f"LSTM, take a tuple), got {type(state).__name__}"
            )
        return [_check_float_array(name, state, self._dtype, shape, doc)]

    def _call_kwargs(self, reverse, lengths, training):
        kw = {"lengths": lengths, "reverse": reverse, "training": training}
        memory, segment, max_bytes = self._memory_plan()
        if training and memory != "full":
            kw["memory"], kw["segment"] = memory, segment
            if max_bytes is not None:
                kw["max_bytes"] = max(1, max_bytes // (self._num_layers * self.num_directions))
        if self._nonlinearity is not None:
            kw["nonlinearity"] = self._nonlinearity
        return kw

    def _weights(self, k, d, training):
        """``(w_ih, w_hh, b_ih, b_hh, extra params)`` of (layer k, direction d);
        copies in training: the tape keeps the weights as they are now."""
        names = self._param_names(k, d)
        w_ih, w_hh = self._params[names[0]], self._params[names[1]]
        if self._bias:
            b_ih, b_hh = self._params[names[2]], self._params[names[3]]
        else:
            b_ih = b_hh = None
        suffix = self._suffix(k, d)
        extra = {p: self._params[p + suffix] for p in self._extra_specs[k]}
        if training:
            # (The Python-step engine copies the weights it keeps itself:
            # UserWeight holds its own copy, and the biases are not kept.)
            if self._fused:
                w_ih, w_hh = w_ih.copy(), w_hh.copy()
                b_ih = None if b_ih is None else b_ih.copy()
                b_hh = None if b_hh is None else b_hh.copy()
            extra = {p: v.copy() for p, v in extra.items()}
        return w_ih, w_hh, b_ih, b_hh, extra

    def _forward_direction(self, k, d, inp, init, lengths, training):
        """One (layer, direction): ``(y [T,N,H], final states list, cache)``.
        ``init``: a list of S arrays ``[N,H]`` (copies) or None."""
        w_ih, w_hh, b_ih, b_hh, extra = self._weights(k, d, training)
        if not self._fused:
            from rnnkit.cells import _engine

            spec = self._spec if k == 0 else self._layer_spec(k)
            return _engine.forward_direction(spec, inp, init, w_ih, w_hh, b_ih, b_hh, extra, lengths, d == 1,
                                             training)
        if b_ih is None:
            b_ih = b_hh = np.zeros(self._spec.G * self._hidden_size, self._dtype)
        kw = self._call_kwargs(d == 1, lengths, training)
        if self._spec.S == 2:
            y, h_n, c_n, cache = self._forward_fn(inp, init[0], init[1], w_ih, w_hh, b_ih, b_hh, **kw)
            return y, [h_n, c_n], cache
        y, h_n, cache = self._forward_fn(inp, init[0], w_ih, w_hh, b_ih, b_hh, **kw)
        return y, [h_n], cache

    def _backward_direction(self, cache, g_d, dfinal):
        """Back through one (layer, direction): ``(dx, dstate0 list, grads by unsuffixed name)``."""
        if not self._fused:
            from rnnkit.cells import _engine
            from rnnkit.cells._protocol import CellSpec

            if not (
                len(cache) == 2
                and isinstance(cache[0], CellSpec)
                and isinstance(cache[1], _engine.StepCache)
            ):
                raise ValueError(
                    "tape.caches holds a damaged entry: a Python-step layer's cache is a "
                    "(CellSpec, StepCache) pair made by its forward()"
                )
            dx, ds0, grads = _engine.backward_direction(cache[0], cache[1], g_d, dfinal)
            return dx, ds0, grads
        if self._spec.S == 2:
            dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = self._backward_fn(g_d, dfinal[0], dfinal[1], cache)
            ds0 = [dh0, dc0]
        else:
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh = self._backward_fn(g_d, dfinal[0], cache)
            ds0 = [dh0]
        grads = {"weight_ih": dw_ih, "weight_hh": dw_hh}
        if self._bias:
            grads["bias_ih"], grads["bias_hh"] = db_ih, db_hh
        return dx, ds0, grads

    def _layer_spec(self, k):
        from rnnkit.cells._protocol import CellSpec

        cached = getattr(self, "_layer_specs", None)
        if cached is None:
            cached = self._layer_specs = {}
        if k not in cached:
            cached[k] = CellSpec(self._cell_obj, self._hidden_size * self.num_directions, self._hidden_size)
        return cached[k]

    def _run(self, x, state, lengths, training):
        # Validate everything before any backend call.
        x, T, N = self._check_x(x)
        init_states = self._check_state("state", state, N)
        lengths = _check_lengths(lengths, T, N)

        L, D, H, dt = self._num_layers, self.num_directions, self._hidden_size, self._dtype
        S = self._spec.S
        # The tape must not alias anything the caller can change in place; in
        # inference nothing is kept, so nothing is copied beyond the layout.
        inp = np.array(x, dtype=dt, order="C", copy=True) if training else np.ascontiguousarray(x)
        finals = [np.empty((L * D, N, H), dt) for _ in range(S)]
        caches, masks = {}, []
        for k in range(L):
            outs = []
            for d in range(D):
                idx = k * D + d
                init = [None if a is None else np.array(a[idx]) for a in init_states]  # copies: see above
                y, fin, cache = self._forward_direction(k, d, inp, init, lengths, training)
                for i in range(S):
                    finals[i][idx] = fin[i]
                outs.append(y)
                if training:
                    caches[(k, d)] = cache if self._fused else (self._spec if k == 0 else self._layer_spec(k), cache)
            out = outs[0] if D == 1 else np.concatenate(outs, axis=2)  # T,N,D*H
            if training and self._dropout > 0 and k < L - 1:
                keep = self.generator.random(out.shape) >= self._dropout
                mask = keep.astype(dt) * dt.type(1.0 / (1.0 - self._dropout))  # T,N,D*H
                masks.append(mask)
                out = out * mask
            inp = out
        y = np.ascontiguousarray(inp.transpose(1, 0, 2)) if self._batch_first else inp
        state_n = tuple(finals) if S > 1 else finals[0]
        tape = Tape(self, caches, masks, lengths, self._batch_first, T, N, dt) if training else None
        return y, state_n, tape

    def __repr__(self) -> str:
        builtin = type(self) is not Recurrent
        s = f"{type(self).__name__}("
        if not builtin:
            s += f"{self._cell_obj!r}, "
        s += f"{self._input_size}, {self._hidden_size}"
        if self._num_layers != 1:
            s += f", num_layers={self._num_layers}"
        default_nl = getattr(self, "_default_nonlinearity", None)
        if builtin and self._nonlinearity is not None and self._nonlinearity != default_nl:
            s += f", nonlinearity={self._nonlinearity!r}"
        if not self._bias and self._spec.bias:
            s += ", bias=False"
        if self._batch_first:
            s += ", batch_first=True"
        if self._dropout:
            s += f", dropout={self._dropout}"
        if self._bidirectional:
            s += ", bidirectional=True"
        if self._dtype != np.float32:
            s += f", dtype={self._dtype}"
        if not builtin and not self._fused and type(self._cell_obj).__module__ == "rnnkit.cells._library" and \
                hasattr(self._cell_obj, "fused_name"):
            s += ", fused=False"
        if self._backend != DEFAULT_BACKEND:
            s += f", backend={self._backend!r}"
        memory, segment, max_bytes = self._memory_plan()
        if memory != "full":
            s += f", memory={memory!r}"
            s += f", segment={segment}" if segment is not None else ""
            s += f", max_bytes={max_bytes}" if max_bytes is not None else ""
        return s + ")"


_RNNBase = Recurrent  # the name this class had before user cells


_LAYER_DOC = """{summary}

{equations}

The layer is ``rnnkit.Recurrent`` with ``rnnkit.cells.{name}Cell`` on its fused
native kernel; ``rnnkit.Recurrent(rnnkit.cells.{name}Cell(), ..., fused=False)``
runs the same cell step by step in Python (same results) and is where a
cell of your own plugs in (docs/cells.md).

Parameters
----------
input_size : int
    C, features of each input step.
hidden_size : int
    H, hidden units per direction.
num_layers : int, default 1
    L, stacked layers; layer ``k > 0`` reads the ``D*H`` outputs of layer ``k-1``.
    The arguments after it are keyword-only (PyTorch orders them differently).
bidirectional : bool, default False
    Add a reverse direction (D = 2); its outputs follow the forward ones on the
    last axis of ``y``.
batch_first : bool, default False
    ``x`` and ``y`` are ``[N, T, ·]`` instead of ``[T, N, ·]``; states stay
    ``[L*D, N, H]``, as in PyTorch.
dropout : float, default 0.0
    Inverted dropout with probability ``p`` on the outputs of every layer but
    the last, in :meth:`forward` only. Must be in ``[0, 1)``.
dtype : float32 or float64, default float32
    The dtype of the parameters, and the dtype every input must already have.
seed : int, numpy.random.SeedSequence or None
    Seeds :attr:`generator`, which draws the initial weights (U(-1/sqrt(H),
    1/sqrt(H)), as PyTorch) and then the dropout masks.
bias : bool, default True
    Without bias there are no ``bias_*`` parameters.
backend : str or None
    ``"reference"`` (NumPy) or ``"native"`` (C++); None picks the default.
memory : {{"full", "recompute", "checkpoint"}}, default "full"
    What :meth:`forward`'s tape stores: everything; the states of every step
    (backward recomputes the gates); or the states every ``segment`` steps
    (backward replays each segment). Gradients are bitwise those of "full";
    see docs/training.md for the memory and time of each.
segment, max_bytes : int or None
    Steps per segment, or a byte budget (tape states plus backward workspace,
    split over the layer's calls) the segment is chosen from; None: a default.
{extra}
Attributes
----------
parameters : dict str -> numpy.ndarray
    {names}
grads : dict str -> numpy.ndarray
    Accumulated gradients, the same names and shapes.
generator : numpy.random.Generator
    Draws the dropout masks; restoring ``generator.bit_generator.state`` before
    :meth:`forward` replays the same masks (they depend on nothing else but
    the shapes).

Examples
--------
>>> layer = rnnkit.{name}(8, 16, num_layers=2, seed=0)
>>> x = np.zeros((5, 3, 8), np.float32)             # T, N, C
>>> y, state = layer(x)                            # inference
>>> y, state, tape = layer.forward(x)              # training
>>> dx, dstate = layer.backward(tape, np.ones_like(y))
"""

_NAMES_DOC = (
    "``weight_ih_l{{k}}`` ``[{G}H, C_k]``, ``weight_hh_l{{k}}`` {hh},\n"
    "    ``bias_ih_l{{k}}`` and ``bias_hh_l{{k}}`` ``[{G}H]``, with suffix ``_reverse``\n"
    "    for the reverse direction; ``C_0 = C`` and ``C_k = D*H`` after."
)


class _BuiltinLayer(Recurrent):
    """A layer of one built-in cell, on its fused native kernel (Recurrent's
    fast path); ``rnnkit.Recurrent(rnnkit.cells.LSTMCell(), ..., fused=False)``
    runs the same cell through the Python-step path."""

    _default_nonlinearity: str | None = None

    def _make_cell(self, nonlinearity):  # pragma: no cover - overridden
        raise NotImplementedError

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        bidirectional=False,
        batch_first=False,
        dropout=0.0,
        dtype=np.float32,
        seed=None,
        bias=True,
        backend=None,
        nonlinearity=None,
        memory="full",
        segment=None,
        max_bytes=None,
    ):
        super().__init__(
            self._make_cell(nonlinearity),
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            dtype=dtype,
            seed=seed,
            bias=bias,
            fused=True,
            backend=backend,
            memory=memory,
            segment=segment,
            max_bytes=max_bytes,
        )


class RNN(_BuiltinLayer):
    _default_nonlinearity = "tanh"

    def _make_cell(self, nonlinearity):
        from rnnkit.cells import RNNCell

        return RNNCell(_check_nonlinearity(nonlinearity))

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh", bidirectional=False,
                 batch_first=False, dropout=0.0, dtype=np.float32, seed=None, bias=True, backend=None,
                 memory="full", segment=None, max_bytes=None):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity=nonlinearity,
                         bidirectional=bidirectional, batch_first=batch_first, dropout=dropout, dtype=dtype,
                         seed=seed, bias=bias, backend=backend,
                         memory=memory, segment=segment, max_bytes=max_bytes)


class LSTM(_BuiltinLayer):
    def _make_cell(self, nonlinearity):
        from rnnkit.cells import LSTMCell

        return LSTMCell()

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False, batch_first=False,
                 dropout=0.0, dtype=np.float32, seed=None, bias=True, backend=None,
                 memory="full", segment=None, max_bytes=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, dropout=dropout, dtype=dtype, seed=seed, bias=bias,
                         backend=backend, memory=memory, segment=segment, max_bytes=max_bytes)


class GRU(_BuiltinLayer):
    def _make_cell(self, nonlinearity):
        from rnnkit.cells import GRUCell

        return GRUCell()

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False, batch_first=False,
                 dropout=0.0, dtype=np.float32, seed=None, bias=True, backend=None,
                 memory="full", segment=None, max_bytes=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, dropout=dropout, dtype=dtype, seed=seed, bias=bias,
                         backend=backend, memory=memory, segment=segment, max_bytes=max_bytes)


class IndRNN(_BuiltinLayer):
    _default_nonlinearity = "relu"

    def _make_cell(self, nonlinearity):
        from rnnkit.cells import IndRNNCell

        return IndRNNCell(_check_nonlinearity(nonlinearity))

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="relu", bidirectional=False,
                 batch_first=False, dropout=0.0, dtype=np.float32, seed=None, bias=True, backend=None,
                 memory="full", segment=None, max_bytes=None):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity=nonlinearity,
                         bidirectional=bidirectional, batch_first=batch_first, dropout=dropout, dtype=dtype,
                         seed=seed, bias=bias, backend=backend,
                         memory=memory, segment=segment, max_bytes=max_bytes)


_NONLIN_DOC = """nonlinearity : {{"tanh", "relu"}}, default "{default}"
    The activation.
"""

RNN.__doc__ = _LAYER_DOC.format(
    summary="Elman RNN layer (PyTorch ``nn.RNN``), on NumPy arrays.",
    equations="``h' = act(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)``; state ``h [L*D, N, H]``.",
    extra=_NONLIN_DOC.format(default="tanh"),
    names=_NAMES_DOC.format(G="", hh="``[H, H]``"),
    name="RNN",
)
LSTM.__doc__ = _LAYER_DOC.format(
    summary="LSTM layer (PyTorch ``nn.LSTM``, gates i, f, g, o), on NumPy arrays.",
    equations=(
        "``c' = f*c + i*g``, ``h' = o*tanh(c')``; the state is a tuple ``(h, c)``, each\n"
        "``[L*D, N, H]``, and so are ``dstate`` and the returned gradient of the state."
    ),
    extra="",
    names=_NAMES_DOC.format(G="4", hh="``[4H, H]``"),
    name="LSTM",
)
GRU.__doc__ = _LAYER_DOC.format(
    summary="GRU layer (PyTorch ``nn.GRU``, reset-after, gates r, z, n), on NumPy arrays.",
    equations=(
        "``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``, ``h' = (1-z)*n + z*h``; "
        "state ``h [L*D, N, H]``."
    ),
    extra="",
    names=_NAMES_DOC.format(G="3", hh="``[3H, H]``"),
    name="GRU",
)
IndRNN.__doc__ = _LAYER_DOC.format(
    summary="IndRNN layer (independently recurrent: one recurrent weight per unit).",
    equations="``h' = act(x @ w_ih.T + b_ih + w_hh*h + b_hh)``; state ``h [L*D, N, H]``.",
    extra=_NONLIN_DOC.format(default="relu"),
    names=_NAMES_DOC.format(G="", hh="``[H]`` (a vector)"),
    name="IndRNN",
)
