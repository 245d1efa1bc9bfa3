"""The cell protocol (``rnnkit.Cell``) and the checks the framework applies to
a cell's declaration and to what its methods return.

What a cell is, is documented in docs/cells.md ("Your own cells"). This file
holds no step math and no layer policy (that is rnnkit.layers).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Cell", "CellError", "CellSpec"]

_RECURRENCES = ("gemm", "diag")


class CellError(TypeError):
    """A cell that breaks the protocol: a missing method, a bad declaration,
    or a method that returned the wrong structure, shape or dtype. The
    message names the cell class and the method."""


class CellShapeError(CellError, ValueError):
    """A cell method returned an array of the wrong shape (also a ValueError)."""


class Cell:
    """Base class of a recurrent cell: declare the gates, the recurrence and
    the states, write the pointwise step ``forward`` and ``backward``; the
    layer (:class:`rnnkit.Recurrent`) does the rest. See docs/cells.md.

    Class attributes
    ----------------
    gates : int
        G: ``w_ih`` is ``[G*H, C]``, ``b_ih`` and ``b_hh`` are ``[G*H]``.
    recurrence : {"gemm", "diag"}
        ``"gemm"``: ``w_hh [G*H, H]`` and ``gh = h @ w_hh.T + b_hh``;
        ``"diag"``: ``w_hh [G*H]`` and ``gh = w_hh * [h]*G + b_hh``.
    states : tuple of str
        The carried states, each ``[N, H]``; ``states[0]`` is the output.
    groups : tuple of int or None
        ``"gemm"`` only: gate counts, summing to ``gates``, of groups whose
        recurrent products run one after the other. Group 0 multiplies
        ``states[0]``; group ``j > 0`` multiplies the ``[N, H]`` input that
        :meth:`recurrent_input` computes from the earlier groups' products
        (a GRU that resets before the matmul: ``groups = (2, 1)``, input
        ``r*h``). None means one group.
    bias : bool
        Whether the layer gives the cell ``b_ih`` and ``b_hh`` (added into
        ``gx`` and ``gh``). A cell that normalises the products before any
        bias (layer norm) sets False and declares its own bias parameter.
    """

    gates: int = 1
    recurrence: str = "gemm"
    states: tuple = ("h",)
    groups: tuple | None = None
    bias: bool = True

    def params(self, input_size: int, hidden_size: int) -> dict:
        """Extra parameters of one (layer, direction): ``{name: shape}``."""
        return {}

    def init_param(self, name: str, shape: tuple, generator, bound: float) -> np.ndarray:
        """Initial value of extra parameter ``name`` (float64; cast by the
        layer). Default: U(-bound, bound), bound = 1/sqrt(H), as the weights."""
        return generator.uniform(-bound, bound, size=shape)

    def forward(self, gx, gh, state, params):
        """One step: returns ``(new_state, saved)``. ``gx`` and ``gh`` are
        ``[N, G*H]`` and are the cell's for this step (it may overwrite them
        and keep them in ``saved``); ``state`` and ``params`` are read-only."""
        raise NotImplementedError

    def backward(self, dstate, saved, params):
        """One step back: returns ``(dgx, dgh, dstate_prev, dparams)``."""
        raise NotImplementedError

    def recurrent_input(self, j, gx, gh, state, params):
        """Groups only: the ``[N, H]`` input of group ``j``'s recurrent
        product, from ``gx``, the earlier groups' products ``gh``
        (``[N, sum(groups[:j])*H]``) and the state."""
        raise NotImplementedError

    def recurrent_input_backward(self, j, du, saved, params):
        """Groups only: back through :meth:`recurrent_input` given ``du``
        (``[N, H]``) and the same step's ``saved``: returns ``(dgx, dgh,
        dstate_prev, dparams)`` to add, ``dgh`` ``[N, sum(groups[:j])*H]``;
        any part may be None (zero)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _defines(cell, method: str) -> bool:
    fn = getattr(type(cell), method, None)
    return callable(fn) and fn is not getattr(Cell, method)


class CellSpec:
    """A cell's declaration, checked once, and the checks of its returns."""

    def __init__(self, cell, input_size: int, hidden_size: int):
        name = type(cell).__name__
        self.cell, self.name = cell, name
        if isinstance(cell, type):
            raise CellError(f"cell must be a cell instance, got the class {cell.__name__} (write {cell.__name__}())")
        for attr in ("gates", "recurrence", "states"):
            if not hasattr(cell, attr):
                raise CellError(f"{name} is missing the attribute {attr!r} of the rnnkit.Cell protocol")
        G = cell.gates
        if isinstance(G, (bool, np.bool_)) or not isinstance(G, numbers.Integral) or G < 1:
            raise CellError(f"{name}.gates must be a positive integer, got {G!r}")
        self.G = int(G)
        if cell.recurrence not in _RECURRENCES:
            raise CellError(f"{name}.recurrence must be one of {_RECURRENCES}, got {cell.recurrence!r}")
        self.recurrence = cell.recurrence
        states = cell.states
        if isinstance(states, str) or not isinstance(states, (tuple, list)) or not states:
            raise CellError(f"{name}.states must be a non-empty tuple of names, got {states!r}")
        if not all(isinstance(s, str) and s for s in states) or len(set(states)) != len(states):
            raise CellError(f"{name}.states must be distinct non-empty strings, got {states!r}")
        self.states = tuple(states)
        self.S = len(self.states)
        for method in ("forward", "backward"):
            if not callable(getattr(cell, method, None)) or (isinstance(cell, Cell) and not _defines(cell, method)):
                raise CellError(f"{name}.{method} is missing: a cell must define forward() and backward()")
        groups = getattr(cell, "groups", None)
        if groups is None:
            self.groups = (self.G,)
        else:
            if (
                not isinstance(groups, (tuple, list))
                or not groups
                or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1 for g in groups)
                or sum(groups) != self.G
            ):
                raise CellError(f"{name}.groups must be positive gate counts summing to gates={self.G}, got {groups!r}")
            self.groups = tuple(int(g) for g in groups)
            if len(self.groups) > 1:
                if self.recurrence != "gemm":
                    raise CellError(f"{name}.groups needs recurrence 'gemm', got {self.recurrence!r}")
                for method in ("recurrent_input", "recurrent_input_backward"):
                    if not callable(getattr(cell, method, None)) or (
                        isinstance(cell, Cell) and not _defines(cell, method)
                    ):
                        raise CellError(f"{name}.{method} is missing: a cell with groups={self.groups} must define it")
        self.offsets = tuple(sum(self.groups[:j]) for j in range(len(self.groups)))  # in gates
        self.bias = bool(getattr(cell, "bias", True))
        spec = {}
        if callable(getattr(cell, "params", None)):
            spec = cell.params(input_size, hidden_size)
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise CellError(f"{name}.params must return a dict name -> shape, got {type(spec).__name__}")
        self.params = {}
        for pname, shape in spec.items():
            if not isinstance(pname, str) or not pname.isidentifier():
                raise CellError(f"{name}.params: parameter names must be identifiers, got {pname!r}")
            if pname in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                raise CellError(f"{name}.params: {pname!r} is a name the layer uses")
            if isinstance(shape, numbers.Integral):
                shape = (int(shape),)
            try:
                shape = tuple(int(d) for d in shape)
            except TypeError:
                raise CellError(f"{name}.params[{pname!r}] must be a shape tuple, got {shape!r}") from None
            if any(d < 1 for d in shape):
                raise CellError(f"{name}.params[{pname!r}] must have positive dimensions, got {shape}")
            self.params[pname] = shape

    # ---- the checks of what the methods return ----

    def array(self, method, what, a, shape, dtype):
        if not isinstance(a, np.ndarray):
            raise CellError(f"{self.name}.{method} returned {what} of type {type(a).__name__}, expected a numpy.ndarray")
        if a.dtype != dtype:
            raise CellError(f"{self.name}.{method} returned {what} of dtype {a.dtype}, expected {dtype}")
        if a.shape != shape:
            raise CellShapeError(f"{self.name}.{method} returned {what} of shape {a.shape}, expected {shape}")
        return a

    def pair(self, method, out, first, second):
        if not isinstance(out, tuple) or len(out) != 2:
            got = f"a tuple of length {len(out)}" if isinstance(out, tuple) else type(out).__name__
            raise CellError(f"{self.name}.{method} must return a tuple ({first}, {second}), got {got}")
        return out

    def state_tuple(self, method, what, st, N, H, dtype, allow_none):
        if self.S == 1 and isinstance(st, np.ndarray):
            st = (st,)
        if not isinstance(st, (tuple, list)) or len(st) != self.S:
            got = f"{len(st)} states" if isinstance(st, (tuple, list)) else type(st).__name__
            raise CellError(
                f"{self.name}.{method} returned {what} with {got}, expected a tuple of {self.S} "
                f"({', '.join(self.states)}) as {self.name}.states declares"
            )
        for i, a in enumerate(st):
            if a is None and allow_none:
                continue
            self.array(method, f"{what}[{i}] ({self.states[i]})", a, (N, H), dtype)
        return tuple(st)

    def dparams(self, method, dp, params, allow_missing=False):
        if not self.params:
            if dp:
                raise CellError(f"{self.name}.{method} returned dparams {sorted(dp)} but the cell declares no params")
            return {}
        if dp is None and allow_missing:
            return {}
        if not isinstance(dp, dict):
            raise CellError(
                f"{self.name}.{method} must return dparams as a dict with keys {sorted(self.params)}, "
                f"got {type(dp).__name__}"
            )
        extra = [k for k in dp if k not in self.params]
        missing = [k for k in self.params if k not in dp]
        if extra or (missing and not allow_missing):
            raise CellError(
                f"{self.name}.{method} returned dparams with missing keys {missing} and unexpected keys {extra}"
            )
        for k, g in dp.items():
            if g is None and allow_missing:
                continue
            self.array(method, f"dparams[{k!r}]", g, params[k].shape, params[k].dtype)
        return dp
