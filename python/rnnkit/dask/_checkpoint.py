"""Checkpoints of a distributed training run: one pickle-free ``.npz`` in the
style of ``CharModel.save`` (a JSON header stored as uint8, then arrays under
``param.<name>`` and ``optim.<key>``), written whole and then renamed, so a
driver killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

FORMAT = "rnnkit.dask.TrainState"
VERSION = 1


def save(path, kind, params, optimizer, step, position, rng_state, losses, extra=None, more=None):
    from .._version import __version__

    header = {
        "format": FORMAT,
        "version": VERSION,
        "rnnkit": __version__,
        "kind": kind,
        "step": int(step),
        "position": position,
        "rng_state": rng_state,
        "losses": [float(v) for v in losses],
        "extra": extra or {},
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for k, v in params.items():
        arrays["param." + k] = v
    for k, v in optimizer.state_dict().items():
        arrays["optim." + k] = np.asarray(v)
    for k, v in (more or {}).items():
        arrays["more." + k] = np.asarray(v)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path, kind, params, N=None, B=None):
    """The checkpoint's contents, checked against the model being trained."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"resume_from: no such checkpoint: {path!r}")
    what = f"resume_from={path!r} is not a usable rnnkit.dask checkpoint"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        header = json.loads(data.pop("header").tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError, AttributeError) as err:
        raise ValueError(f"{what}: unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{what}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise ValueError(f"{what}: version {header.get('version')!r}, this rnnkit reads {VERSION}")
    if header.get("kind") != kind:
        raise ValueError(f"{what}: it was written for a {header.get('kind')!r} run, not {kind!r}")
    stored = {k[6:]: v for k, v in data.items() if k.startswith("param.")}
    if set(stored) != set(params):
        raise ValueError(
            f"{what}: its weights do not match the model: missing {sorted(set(params) - set(stored))}, "
            f"unexpected {sorted(set(stored) - set(params))}"
        )
    for k, p in params.items():
        if stored[k].shape != p.shape or stored[k].dtype != p.dtype:
            raise ValueError(
                f"{what}: weight {k!r} is {stored[k].dtype} {stored[k].shape}, the model's is "
                f"{p.dtype} {p.shape}"
            )
    extra = header.get("extra", {})
    for name, v in (("N", N), ("batch_size", B)):
        if v is not None and extra.get(name, v) != v:
            raise ValueError(f"{what}: it was written with {name}={extra[name]}, this run has {v}")
    opt = {k[6:]: v for k, v in data.items() if k.startswith("optim.")}
    opt["steps"] = int(opt["steps"])
    opt["lr"] = float(opt["lr"])
    return {
        "params": stored,
        "optimizer": opt,
        "step": int(header["step"]),
        "position": header["position"],
        "rng_state": header["rng_state"],
        "losses": header["losses"],
        "extra": extra,
        "more": {k[5:]: v for k, v in data.items() if k.startswith("more.")},
    }
