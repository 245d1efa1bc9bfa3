"""show_config: what this build of rnnkit is and what it runs on, and the
kernels' per-CPU parameters with where they came from (rnnkit._tune)."""

from __future__ import annotations

import os
import sys

import numpy as np


def config() -> dict:
    """Version, compiler, CPU features, ISA, threads, cache sizes and the
    kernels' parameters (in use, cpuid defaults, where from), as a dict."""
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
    if hasattr(_core, "kernel_params"):
        from . import _tune

        if _tune.pending:  # a cached tune is loaded (cheap); none is run here
            _tune.first_use(tune_if_missing=False)
        cfg["cache_sizes"] = {k: int(v) for k, v in _core.cache_sizes().items()}
        cfg["kernel_params"] = dict(_core.kernel_params())
        cfg["kernel_params_cpuid"] = dict(_core.cpuid_params())
        cfg["kernel_params_source"] = _tune.describe_source()
    return cfg


def _bytes(n: int) -> str:
    if n == 0:
        return "0"
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def _text(key, value) -> str:
    if key == "cache_sizes":
        return ", ".join(f"{k} {_bytes(v) if v else 'unknown'}" for k, v in value.items())
    if key in ("kernel_params", "kernel_params_cpuid"):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(value) if value else "none"
    return str(value)


def show_config(file=None) -> None:
    cfg = config()
    out = file if file is not None else sys.stdout
    width = max(len(k) for k in cfg)
    for key, value in cfg.items():
        print(f"{key:<{width}} : {_text(key, value)}", file=out)
