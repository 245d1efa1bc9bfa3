"""Measurement: the agreement check, warm-up, interleaved timing, the numpy.matmul
ceiling P, and the thread settings that every runtime shares for one run.

Timing is time.perf_counter around each call (inference: around a batch of
calls). A sample is the mean over ``number`` calls, chosen so that a sample
lasts at least ``min_time``; a row is the median of ``repeat`` samples. Within a
shape the implementations take turns, one sample each per round, and each round
starts one further along the list, so drift and position effects spread evenly.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from ._grid import ROW_MODES, Shape, make_inputs, mode_flops
from ._peers import Impl, Runner

__all__ = [
    "Settings",
    "Row",
    "agreement",
    "run_shape",
    "measure_ceiling",
    "ThreadSettings",
    "AGREE_RTOL",
]

# Norm-wise relative error allowed between a peer and rnnkit: loose for float32
# over T steps, yet orders of magnitude below what a different computation
# (another gate order, a transposed weight, a missing bias) produces.
AGREE_RTOL = 1e-3
MAX_NUMBER = 10_000


@dataclass
class Settings:
    repeat: int = 5
    min_time: float = 0.05  # seconds per sample
    seed: int = 0
    # Seconds of untimed calls of the next implementation before each of its
    # samples (and before sizing one). With more than one thread, the previous
    # implementation's pool may still be spinning (libgomp in torch: several ms
    # after each call; ORT's workers: about 40 ms), and on a machine with as
    # many cores as threads that spin takes a core from the next team, whose
    # threads then wait for each other at every step. Calls, not a sleep: in a
    # VM an idle vCPU takes milliseconds to be scheduled again, so a pause
    # would hand the next samples that penalty instead. Every runtime thus
    # starts its samples as it would in a program that runs only it.
    settle: float = 0.0


@dataclass
class Row:
    """One table row: an implementation at one (cell, row mode, shape)."""

    cell: str
    mode: str  # inference, training, training-forward, training-backward
    shape: Shape
    impl: str
    backend: str = ""  # for the rnnkit row: native or reference
    samples_s: list = field(default_factory=list)  # seconds per call, one per sample
    number: int = 0  # calls per sample
    skipped: str | None = None  # why there is no time
    agrees: bool | None = None  # None: the baseline itself, or not checked
    rel_err: dict = field(default_factory=dict)  # output name -> norm-wise relative error

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.samples_s) if self.samples_s else None

    @property
    def spread(self) -> float | None:
        """Half the min-max range of the samples, relative to the median."""
        if not self.samples_s or not self.median_s:
            return None
        return (max(self.samples_s) - min(self.samples_s)) / 2 / self.median_s

    @property
    def flops(self) -> float:
        return mode_flops(self.cell, self.mode, self.shape)

    @property
    def gflops(self) -> float | None:
        m = self.median_s
        return self.flops / m / 1e9 if m else None


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    num = np.linalg.norm(a - b)
    if not np.isfinite(num):
        return math.inf
    return float(num / max(np.linalg.norm(b), np.finfo(np.float64).tiny))


def agreement(base: dict, peer: dict, rtol: float = AGREE_RTOL) -> tuple[bool, dict]:
    """Compare a peer's outputs with rnnkit's, name by name (y, and dx in training)."""
    errs = {name: rel_err(peer[name], base[name]) for name in base if name in peer}
    return bool(errs) and all(e <= rtol for e in errs.values()), errs


def call_once(runner: Runner) -> tuple[dict, float, float]:
    """One untimed-for-the-table call: outputs, forward and backward seconds."""
    if runner.remote is not None:
        return runner.remote.call_once(), 0.0, 0.0
    with runner.context():
        if runner.reset is not None:
            runner.reset()
        t0 = time.perf_counter()
        f = runner.forward()
        t1 = time.perf_counter()
        b = runner.backward(f) if runner.backward is not None else None
        t2 = time.perf_counter()
        out = runner.outputs(f, b)
    return out, t1 - t0, t2 - t1


def sample(runner: Runner, number: int) -> tuple[float, float]:
    """Mean seconds per call over ``number`` calls: (forward, backward)."""
    if runner.remote is not None:  # timed in the --isa peer child, by this function
        return runner.remote.sample(number)
    pc = time.perf_counter
    forward, backward, reset = runner.forward, runner.backward, runner.reset
    with runner.context():
        if backward is None:
            t0 = pc()
            for _ in range(number):
                forward()
            return (pc() - t0) / number, 0.0
        fsum = bsum = 0.0
        for _ in range(number):
            if reset is not None:
                reset()
            t0 = pc()
            f = forward()
            t1 = pc()
            g = backward(f)
            t2 = pc()
            del f, g  # freed outside the timed spans
            fsum += t1 - t0
            bsum += t2 - t1
        return fsum / number, bsum / number


def calls_per_sample(settings: Settings, seconds_per_call: float) -> int:
    """Calls that make one sample last at least ``settings.min_time``."""
    return max(1, min(MAX_NUMBER, math.ceil(settings.min_time / max(seconds_per_call, 1e-9))))


def _settle(settings: Settings, runner: Runner) -> None:
    if settings.settle <= 0:
        return
    if runner.remote is not None:
        return runner.remote.settle(settings.settle)
    end = time.perf_counter() + settings.settle
    with runner.context():
        while time.perf_counter() < end:
            if runner.reset is not None:
                runner.reset()
            f = runner.forward()
            if runner.backward is not None:
                runner.backward(f)
            del f


def run_shape(
    cell: str, shape: Shape, mode: str, impls: list[Impl], settings: Settings, warn=None
) -> list[Row]:
    """Time every implementation at one (cell, shape, mode), interleaved.

    ``impls[0]`` is rnnkit, the baseline of the agreement check. A peer whose
    outputs disagree gets no time (``agrees=False``), so the table never sets
    two different computations side by side.
    """
    warn = warn or (lambda msg: None)
    row_modes = ROW_MODES[mode]
    inputs = make_inputs(cell, *shape, seed=settings.seed)
    rows: dict[str, dict[str, Row]] = {}
    runners: dict[str, Runner] = {}
    for impl in impls:
        backend = getattr(impl, "backend_for", None)
        rows[impl.name] = {m: Row(cell, m, shape, impl.name) for m in row_modes}
        if backend is not None and impl is impls[0]:
            for r in rows[impl.name].values():
                r.backend = backend(cell)[1]
        reason = impl.skip_reason(cell, mode, shape)
        if reason is None:
            try:
                runners[impl.name] = impl.prepare(cell, inputs, mode)
            except Exception as err:  # a peer that cannot build this model: say so, go on
                reason = f"could not prepare: {type(err).__name__}: {err}"
                warn(f"{impl.name} {cell} {mode} {shape.label()}: {reason}")
        if reason is not None:
            for r in rows[impl.name].values():
                r.skipped = reason

    # Agreement check; it is also the first warm-up call.
    base_name = impls[0].name
    base_out = None
    if base_name in runners:
        base_out = call_once(runners[base_name])[0]
    for name in list(runners):
        if name == base_name:
            continue
        out = None
        if base_out is None:
            reason = "no rnnkit row to compare with"
        else:
            try:
                out = call_once(runners[name])[0]
            except Exception as err:  # a peer that fails on this shape: say so, go on
                out = None
                reason = f"failed: {type(err).__name__}: {err}"
                warn(f"{name} {cell} {mode} {shape.label()}: {reason}")
        if out is not None:
            ok, errs = agreement(base_out, out)
            for r in rows[name].values():
                r.agrees, r.rel_err = ok, errs
            if ok:
                continue
            worst = ", ".join(f"{k} rel. err {v:.2e}" for k, v in errs.items())
            reason = f"MISMATCH with rnnkit ({worst} > {AGREE_RTOL:g}): not timed"
            warn(f"{name} {cell} {mode} {shape.label()}: {reason}")
        for r in rows[name].values():
            r.skipped = reason
        del runners[name]

    # Second warm-up, which also sizes the samples.
    numbers = {}
    for name, runner in runners.items():
        _settle(settings, runner)
        f, b = sample(runner, 1)
        numbers[name] = calls_per_sample(settings, f + b)
        for r in rows[name].values():
            r.number = numbers[name]

    names = list(runners)
    for rep in range(settings.repeat):
        k = rep % len(names) if names else 0
        for name in names[k:] + names[:k]:
            _settle(settings, runners[name])
            f, b = sample(runners[name], numbers[name])
            if mode == "inference":
                rows[name]["inference"].samples_s.append(f)
            else:
                rows[name]["training"].samples_s.append(f + b)
                rows[name]["training-forward"].samples_s.append(f)
                rows[name]["training-backward"].samples_s.append(b)
    runners.clear()
    return [r for impl in impls for r in rows[impl.name].values()]


# ---------------------------------------------------------------------------
# The practical ceiling P
# ---------------------------------------------------------------------------

CEILING_SHAPE = (6400, 1024, 4096)  # [M,K] x [K,N]: T*N = 100*64 rows, C = H = 1024, 4 gates


class Ceiling:
    """numpy.matmul GFLOP/s on one float32 GEMM, measured at the run's start and end."""

    def __init__(self, shape=CEILING_SHAPE, seed: int = 0):
        self.shape = tuple(shape)
        M, K, N = self.shape
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((M, K), dtype=np.float32)
        self.b = rng.standard_normal((K, N), dtype=np.float32)
        self.c = np.empty((M, N), np.float32)
        self.flops = 2.0 * M * K * N
        self.samples_s: dict[str, list[float]] = {"start": [], "end": []}

    def measure(self, when: str, samples: int, warmup: int = 1) -> None:
        for _ in range(warmup):
            np.matmul(self.a, self.b, out=self.c)
        for _ in range(samples):
            t0 = time.perf_counter()
            np.matmul(self.a, self.b, out=self.c)
            self.samples_s[when].append(time.perf_counter() - t0)

    def gflops(self, when: str | None = None) -> float | None:
        s = self.samples_s[when] if when else self.samples_s["start"] + self.samples_s["end"]
        return self.flops / statistics.median(s) / 1e9 if s else None

    def release(self) -> None:
        self.a = self.b = self.c = None


def measure_ceiling(shape=CEILING_SHAPE, samples: int = 3) -> float:
    """numpy.matmul GFLOP/s at the current thread settings (one-off helper)."""
    c = Ceiling(shape)
    c.measure("start", samples)
    return c.gflops()


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _rnnkit_thread_api():
    """(get, set) for rnnkit's thread count, wherever this build has them."""
    import importlib

    owners = []
    for name in ("rnnkit", "rnnkit.functional", "rnnkit._core"):
        try:
            owners.append(importlib.import_module(name))
        except ImportError:
            pass
    for owner in owners:
        setter = getattr(owner, "set_num_threads", None)
        if callable(setter):
            return getattr(owner, "get_num_threads", None), setter
    return None, None


class ThreadSettings:
    """Set one thread count everywhere for the run, and put things back after.

    rnnkit (set_num_threads, if this build has it), PyTorch (set_num_threads,
    inter-op 1), every BLAS and OpenMP runtime loaded in the process (through
    threadpoolctl, if installed; NumPy's BLAS is the one that matters) and ONNX
    Runtime (its session options, set where the session is built).
    """

    def __init__(self, threads: int):
        self.threads = threads
        self.report: dict[str, str] = {}
        self._undo: list = []

    def __enter__(self):
        n = self.threads
        get, set_ = _rnnkit_thread_api()
        if set_ is not None:
            before = get() if get else None
            set_(n)
            if before is not None:
                self._undo.append(lambda: set_(before))
            self.report["rnnkit"] = f"set_num_threads({n})"
        else:
            self.report["rnnkit"] = (
                "no set_num_threads in this build; OpenMP follows threadpoolctl/OMP_NUM_THREADS"
            )
        import sys

        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            self._undo.append(lambda: torch.set_num_threads(before))
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # only settable before torch's first parallel work
                pass
            self.report["torch"] = f"set_num_threads({n})"
        try:
            from threadpoolctl import threadpool_info, threadpool_limits
        except ImportError:
            self.report["blas"] = (
                "threadpoolctl not installed: NumPy's BLAS threads left as they are"
            )
        else:
            limits = threadpool_limits(limits=n)
            self._undo.append(limits.restore_original_limits)
            libs = sorted(
                {f"{i['internal_api']} {i.get('version') or ''}".strip() for i in threadpool_info()}
            )
            self.report["blas"] = f"threadpoolctl limits={n}: " + (
                ", ".join(libs) or "no pools found"
            )
        self.report["onnxruntime"] = f"intra_op_num_threads={n}, inter_op_num_threads=1, sequential"
        return self

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:
                pass
        self._undo.clear()
        return False
