"""rnnkit: recurrent neural networks (RNN, LSTM, GRU, IndRNN) for NumPy, with
forward passes and backpropagation through time in SIMD C++ and OpenMP.

``rnnkit.reference`` is the pure-NumPy twin of every native function; the
layers (``rnnkit.LSTM`` and friends) run on either backend.
"""

from __future__ import annotations

from ._cache import Cache
from ._version import __version__
from .layers import GRU, LSTM, RNN, IndRNN, Recurrent
from . import cells
from .cells import Cell, CellError, CellGradientError, check_cell
from . import reference
from .rtrl import RTRLState

__all__ = [
    "__version__",
    "Cache",
    "RNN",
    "LSTM",
    "GRU",
    "IndRNN",
    "reference",
    "functional",
    "RTRLState",
    "rtrl",
    "show_config",
    "cpu_features",
    "get_num_threads",
    "set_num_threads",
    "get_isa",
    "set_isa",
    "release_memory",
    "kernel_params",
    "set_kernel_params",
    "tune",
]
__all__ += ["Recurrent", "Cell", "CellError", "CellGradientError", "check_cell", "cells"]


def __getattr__(name):
    # rnnkit.functional (the native cells) loads on first use, so that a broken
    # or refused native core (say RNNKIT_ISA names an ISA this CPU lacks) fails
    # there, with its message, and the NumPy reference still imports.
    if name == "functional":
        import importlib

        return importlib.import_module(".functional", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cpu_features() -> dict[str, bool]:
    """The instruction-set features this CPU has and the OS enables (cpuid + XCR0)."""
    from . import _core

    return dict(_core.cpu_features())


def get_num_threads() -> int:
    """Threads each native call uses: set_num_threads(n), else OMP_NUM_THREADS,
    else all cores (omp_get_max_threads())."""
    from . import _core

    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use n >= 1 threads in every native call from now on (any thread of the process).

    In a child process forked after a multi-threaded rnnkit call, every call
    runs on 1 thread whatever n is (GCC's OpenMP runtime cannot start threads
    there; results are bitwise the same): asking for more warns
    (RuntimeWarning) and says why. docs/install.md, "Processes and fork"."""
    import operator

    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    from . import _core

    _core.set_num_threads(int(n))
    if n > 1 and _core.threads_limited_by_fork():
        import warnings

        warnings.warn(
            f"set_num_threads({n}): this process was forked after a multi-threaded rnnkit "
            "call, and GCC's OpenMP runtime (libgomp) cannot start threads in such a child: "
            "its calls run on 1 thread (results are bitwise the same). Start workers with "
            "the 'spawn' or 'forkserver' method to use threads there (docs/install.md).",
            RuntimeWarning,
            stacklevel=2,
        )
        _core.note_fork_warning_given()


def get_isa() -> str:
    """The instruction set the native kernels use: 'avx512', 'avx2' or 'scalar'."""
    from . import _core

    return _core.get_isa()


def set_isa(name: str) -> None:
    """Use the kernels of one ISA ('avx512', 'avx2', 'scalar'), as RNNKIT_ISA does.
    ValueError for an unknown name or one this CPU lacks."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    from . import _core, _tune

    _core.set_isa(name)
    _tune.isa_changed()  # the next native call loads (or tunes) that ISA's parameters


def kernel_params() -> dict[str, int]:
    """The native kernels' blocking parameters in use: cache budgets in bytes
    (fwd_slice_bytes, bwd_b_bytes, dx_a_bytes, wg_b_bytes, wg_a_bytes;
    docs/performance.md, "Per-CPU parameters"). They change speed only, never
    a result. Before the first native call this loads the cached autotune for
    this CPU model and ISA if there is one (it never tunes: the first native
    call does, unless RNNKIT_TUNE=0). show_config() says where they came from."""
    from . import _core, _tune

    if _tune.pending:
        _tune.first_use(tune_if_missing=False)
    return dict(_core.kernel_params())


def set_kernel_params(params: dict) -> None:
    """Use these blocking parameters (a dict of some or all of kernel_params()'
    fields, bytes as ints) from now on, in place of the tuned or cpuid ones;
    neither the first-use autotune nor set_isa overrides them. ValueError for
    an unknown field or a value out of range, TypeError for a non-int, each
    naming the field. Results are bitwise the same whatever the values."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of field: bytes, got {type(params).__name__}")
    from . import _tune

    _tune.user_set(params)


def tune(budget: float = 20.0, *, quick: bool = False, verbose: bool = False) -> dict:
    """Re-run the autotune of the kernels' parameters at the current thread
    count (within about ``budget`` seconds; ``quick``: the first-use shape
    only), use the result and write it to the cache file for this CPU model
    and ISA (the same as ``rnnkit tune``). Returns the cache document: the
    parameters, the cpuid defaults and the measurements."""
    from ._tune import run_and_cache

    return run_and_cache(budget, quick=quick, log=print if verbose else None)


def release_memory() -> int:
    """Free the memory native calls keep for reuse; returns the bytes freed.

    A native call's scratch space (the packed weights; in backward also the
    gate gradients of every step, T*N*G*H values) is one allocation, and each
    array it returns one more. Blocks of 2 MiB or more are kept when freed (at
    most 16 blocks and 1 GiB in all, the most recent), so that the next call
    of a similar size touches no fresh page. Call this after training to hand
    that memory back; arrays still in use are not affected, and later calls
    simply allocate again. Safe at any time, from any thread."""
    import sys

    core = sys.modules.get(f"{__name__}._core")
    if core is None:  # never loaded: nothing is kept
        return 0
    freed = core.workspace_cache_bytes()
    core.release_workspace_cache()
    return int(freed)


def show_config(file=None) -> None:
    """Print rnnkit's version, compiler, CPU features, ISA and thread count,
    the cache sizes, and the kernels' blocking parameters in use beside their
    cpuid defaults with where they came from (cpuid, tuned: <file>, set,
    RNNKIT_TUNE=0). A cached tune is loaded here if the first native call has
    not run yet; nothing is tuned."""
    from ._config import show_config as _show

    _show(file=file)


# Training on top of the layers (NumPy only; scikit-learn and tqdm stay optional
# and are imported only by the code that uses them).
from . import nn, data, text, sklearn  # noqa: E402
from . import rtrl  # noqa: E402

__all__ += ["nn", "data", "text", "sklearn"]


def _load_core_with_blocking_workers() -> None:
    # GCC's OpenMP (libgomp) reads its wait policy once, when it loads, and by
    # default its idle workers spin for ~300k rounds (several ms) after every
    # call: CPU stolen from NumPy's BLAS, PyTorch and everyone else on a busy
    # machine. Unless the user chose a policy, load _core (and with it the
    # libgomp it links) under OMP_WAIT_POLICY=passive, then remove the variable,
    # so that neither other OpenMP runtimes loaded later nor child processes see
    # it. A libgomp that is already loaded (one soname shared with another
    # package) keeps its settings. docs/install.md has the measurements. Called
    # last: nothing above loads _core (tests/test_thread_hygiene.py would see
    # the spin if something did).
    import os

    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        from . import _core  # noqa: F401
    except ImportError:
        pass  # raised again, with its message, where the native core is used
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


_load_core_with_blocking_workers()
