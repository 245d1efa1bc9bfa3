"""Helpers the RTRL tests share: calling a cell's *_rtrl and *_forward/_backward
with one set of arguments, and results by name (dh0, dw_ih, ...)."""

from __future__ import annotations

import numpy as np

from rnnkit import reference as R

GRAD_NAMES = {
    "lstm": ("dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"),
}
DEFAULT_GRADS = ("dh0", "dw_ih", "dw_hh", "db_ih", "db_hh")


def grad_names(cell):
    return GRAD_NAMES.get(cell, DEFAULT_GRADS)


def rtrl(module, cell, nonlinearity, pos, dy, **kw):
    """Outputs of <cell>_rtrl by name, and the state."""
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    out = getattr(module, f"{cell}_rtrl")(*pos, dy, **kw)
    *outs, grads, state = out
    names = ["y", "h_n", "c_n"] if cell == "lstm" else ["y", "h_n"]
    res = dict(zip(names, outs))
    res.update(zip(grad_names(cell), grads))
    return res, state


def bptt(cell, nonlinearity, pos, dy, lengths=None, reverse=False):
    """The reference BPTT gradients of sum <dy, y>, by name (dx dropped)."""
    kw = {"lengths": lengths, "reverse": reverse}
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    *outs, cache = getattr(R, f"{cell}_forward")(*pos, **kw)
    none = [None, None] if cell == "lstm" else [None]
    back = getattr(R, f"{cell}_backward")(dy, *none, cache)
    res = dict(zip(grad_names(cell), back[1:]))
    res["y"] = outs[0]
    return res


def diagonal_w_hh(cell, w_hh, G):
    """w_hh with each gate's [H, H] block made diagonal (IndRNN: unchanged)."""
    if cell == "indrnn":
        return w_hh
    H = w_hh.shape[1]
    return (w_hh.reshape(G, H, H) * np.eye(H, dtype=w_hh.dtype)).reshape(G * H, H)


def w_hh_index(cell):
    return 4 if cell == "lstm" else 3
