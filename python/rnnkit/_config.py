"""show_config: what this build of rnnkit is and what it runs on."""

from __future__ import annotations

import os
import sys

import numpy as np


def config() -> dict:
    """Version, compiler, CPU features, ISA and threads, as a dict."""
    from . import _core
    from ._version import __version__

    info = dict(_core.build_info())
    feats = dict(_core.cpu_features())
    cfg = {
        "rnnkit": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "compiler": info["compiler"],
        # The fallback kernels' target: a wheel's must be the x86-64 baseline.
        "scalar_target": info.get("scalar_target", "unknown"),
        "openmp": info["openmp"],
        "cpu": info["cpu_brand"] or info["cpu_vendor"] or "unknown",
        "cpu_features": [name for name, on in feats.items() if on and name != "x86_64"],
        "isa_available": [name for name, ok in (("avx512", _core.has_avx512()),
                                                ("avx2", _core.has_avx2_fma()),
                                                ("scalar", True)) if ok],
    }
    for key in ("isa", "num_threads"):
        getter = getattr(_core, "get_" + key, None)
        if getter is not None:
            cfg[key] = getter()
    if "num_threads" not in cfg:
        cfg["num_threads"] = os.cpu_count()
    return cfg


def show_config(file=None) -> None:
    cfg = config()
    out = file if file is not None else sys.stdout
    width = max(len(k) for k in cfg)
    for key, value in cfg.items():
        if isinstance(value, list):
            value = " ".join(value) if value else "none"
        print(f"{key:<{width}} : {value}", file=out)
