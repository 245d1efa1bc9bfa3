"""``rnnkit bench``: argument parsing and the run, from thread settings to the table.

The rnnkit row is the native backend (``rnnkit.functional``) when it imports,
else the NumPy reference stands in (marked ``rnnkit*``). Peers are whichever of
the NumPy reference, PyTorch and ONNX Runtime are installed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import sys

import numpy as np

from ._grid import CELLS, GRID, MODES, QUICK_GRID, REFERENCE_MAX_NH, T_DEFAULT, Shape
from ._peers import (
    PEER_NAMES,
    FunctionalImpl,
    OrtImpl,
    TorchImpl,
    available_peers,
    make_reference_peer,
    rnnkit_backends,
)
from ._isa import (
    ISAS,
    FmaPeak,
    PeerChild,
    PeerChildError,
    fma_peak_text,
    peer_isa_text,
    restriction_check,
)
from ._report import format_summary, format_table, to_json, write_json, write_plot
from ._run import CEILING_SHAPE, Ceiling, Settings, ThreadSettings, default_threads, run_shape

__all__ = ["main", "build_parser"]

PROG = "rnnkit bench"
PEER_ALIASES = {
    "reference": "numpy-ref",
    "numpy": "numpy-ref",
    "ref": "numpy-ref",
    "ort": "onnxruntime",
    "pytorch": "torch",
}


# ---------------------------------------------------------------------------
# Argument types: each raises ArgumentTypeError, which argparse reports cleanly.
# ---------------------------------------------------------------------------


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {s!r}") from None
    if not (0 <= v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {s!r}")
    return v


def _choices(allowed, aliases=None, allow_none=False):
    aliases = aliases or {}

    def parse(s: str) -> list[str]:
        items = [p.strip().lower() for p in s.replace(" ", ",").split(",") if p.strip()]
        if allow_none and items == ["none"]:
            return []
        if not items:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list from {', '.join(allowed)}"
            )
        out = []
        for item in items:
            item = aliases.get(item, item)
            if item not in allowed:
                raise argparse.ArgumentTypeError(
                    f"invalid choice {item!r} (choose from {', '.join(allowed)}"
                    + (", or none)" if allow_none else ")")
                )
            if item not in out:
                out.append(item)
        return out

    return parse


def _grid(s: str) -> list[Shape]:
    """'TxNxH' or 'TxNxCxH', several separated by commas: '5x2x8,5x1x3x4'."""
    shapes = []
    for part in s.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            dims = [int(d) for d in part.lower().split("x")]
        except ValueError:
            dims = []
        if len(dims) not in (3, 4) or min(dims) < 1:
            raise argparse.ArgumentTypeError(
                f"expected TxNxH or TxNxCxH with positive integers, got {part!r}"
            )
        T, N, *rest = dims
        C, H = (rest[0], rest[0]) if len(rest) == 1 else rest
        shapes.append(Shape(T, N, C, H))
    if not shapes:
        raise argparse.ArgumentTypeError("expected at least one shape, e.g. 5x2x8")
    return shapes


def _counts(s: str) -> list[int]:
    """'1,2' or '1,2,4': at least two distinct positive thread counts."""
    parts = [p for p in s.replace(" ", ",").split(",") if p]
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        counts = []
    if len(counts) < 2 or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(
            f"expected two or more distinct positive thread counts, e.g. 1,2; got {s!r}"
        )
    return counts


def _ceiling(s: str):
    if s.lower() == "none":
        return None
    try:
        dims = tuple(int(d) for d in s.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"expected MxKxN with positive integers or none, got {s!r}"
        )
    return dims


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Time rnnkit's cells side by side with the NumPy reference, PyTorch and ONNX Runtime "
            "(whichever are installed), in one process, at one thread count, interleaving the "
            f"runs. Grid: T={T_DEFAULT}, N in 1,16,64, C=H in 64,256,1024, float32. Prints ms, "
            "GFLOP/s, the fraction of P (numpy.matmul GFLOP/s on [6400,1024]x[1024,4096] at the "
            "same thread count) and rnnkit's speedup = peer ms / rnnkit ms."
        ),
        epilog="Example: rnnkit bench --threads 1 --quick --json bench.json --plot bench.png",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads for every implementation and NumPy's BLAS "
        "(default: OMP_NUM_THREADS, else the CPUs this process may use)",
    )
    p.add_argument(
        "--scaling",
        type=_counts,
        default=None,
        metavar="LIST",
        help="instead of the peer table: rnnkit alone at these thread counts (e.g. 1,2), "
        "the counts taking turns sample by sample within each shape, and the speedup "
        "over the first count",
    )
    p.add_argument(
        "--cells",
        type=_choices(CELLS),
        default=list(CELLS),
        metavar="LIST",
        help=f"comma-separated cells (default: {','.join(CELLS)})",
    )
    p.add_argument(
        "--modes",
        type=_choices(MODES, {"train": "training", "infer": "inference"}),
        default=list(MODES),
        metavar="LIST",
        help="inference and/or training (forward+backward, with each half "
        "reported too); default: both",
    )
    p.add_argument(
        "--peers",
        type=_choices(PEER_NAMES, PEER_ALIASES, allow_none=True),
        default=None,
        metavar="LIST",
        help=f"peers to compare with, from {','.join(PEER_NAMES)}, or none "
        "(default: every one installed)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small grid (N in 1,16 with H in 64,256, and N=1 with H=1024) and fewer "
        "repeats: under a minute",
    )
    p.add_argument(
        "--repeat",
        type=_positive_int,
        default=None,
        metavar="R",
        help="timed samples per implementation and shape; the row is their median "
        "(default 5, --quick 3)",
    )
    p.add_argument(
        "--min-time",
        type=_nonneg_float,
        default=None,
        metavar="SECONDS",
        help="each sample repeats the call until it lasts this long (default 0.05, --quick 0.01)",
    )
    p.add_argument(
        "--settle",
        type=_nonneg_float,
        default=None,
        metavar="SECONDS",
        help="seconds of untimed calls of an implementation before each of its samples, "
        "so that the previous runtime's threads have stopped spinning and idle cores are "
        "awake (default 0.05 with more than one thread, else 0)",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "native", "reference"),
        default="auto",
        help="what the rnnkit row runs: native (rnnkit.functional), reference, or auto: "
        "native when it imports, else the reference stands in (default)",
    )
    p.add_argument(
        "--reference-max-nh",
        type=_positive_int,
        default=REFERENCE_MAX_NH,
        metavar="NH",
        help=f"run the NumPy reference peer only where N*H <= NH (default {REFERENCE_MAX_NH})",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        default=None,
        help="also write every row, with its samples, as JSON",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="also plot the speedup over PyTorch per shape, one panel per cell (needs matplotlib)",
    )
    p.add_argument(
        "--plot-peer",
        type=_choices(PEER_NAMES, PEER_ALIASES),
        default=["torch"],
        metavar="PEER",
        help="the peer that --plot compares with (default torch)",
    )
    p.add_argument(
        "--user-cells",
        action="store_true",
        help="also time each cell as a user cell: rnnkit.Recurrent(rnnkit.cells.<Cell>(), "
        "fused=False), the step in Python and the GEMMs native (rows 'rnnkit-step')",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument(
        "--rtrl",
        action="store_true",
        help="time each RTRL mode per step against BPTT, with the napkin math (docs/rtrl.md); "
        "--cells limits its rows to those cells",
    )
    p.add_argument(
        "--isa",
        choices=ISAS,
        default=None,
        help="force rnnkit's kernels to this ISA (as RNNKIT_ISA does) and run torch and "
        "onnxruntime in a child process restricted to the same ISA before they load "
        "(torch: ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS; "
        "onnxruntime has no such switch and runs unrestricted); the child and rnnkit take "
        "turns sample by sample (default: the native ISA, peers in this process)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="peak RSS and time of an LSTM training step in each memory mode and in torch, "
        "each in its own process (docs/training.md)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar or counter on stderr"
    )
    # For tests and tuning: a custom grid and a smaller (or no) ceiling GEMM.
    p.add_argument("--grid", type=_grid, default=None, help=argparse.SUPPRESS)
    p.add_argument("--ceiling", type=_ceiling, default=CEILING_SHAPE, help=argparse.SUPPRESS)
    return p


# ---------------------------------------------------------------------------
# Progress: tqdm when installed, else a counter on stderr
# ---------------------------------------------------------------------------


class Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.n = total, 0
        self.enabled = enabled
        self.bar = None
        self.tty = sys.stderr.isatty()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=total,
                    unit="run",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    desc="rnnkit bench",
                )

    def start(self, label: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=True)
        else:
            end = "\r" if self.tty else "\n"
            print(
                f"[{self.n + 1}/{self.total}] {label}\033[K"
                if self.tty
                else f"[{self.n + 1}/{self.total}] {label}",
                end=end,
                file=sys.stderr,
                flush=True,
            )

    def advance(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            if self.enabled and self.tty:
                print("\r\033[K", end="", file=sys.stderr)
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _rnnkit_impl(args, parser):
    reference, native, why = rnnkit_backends()
    if args.backend == "native" and native is None:
        parser.error(f"--backend native: rnnkit.functional does not import here ({why})")
    if args.backend == "reference" or native is None:
        note = (
            "the NumPy reference (--backend reference)"
            if args.backend == "reference"
            else f"the NumPy reference standing in: rnnkit.functional does not import ({why})"
        )
        return FunctionalImpl("rnnkit", reference, "reference"), note, reference, False
    return (
        FunctionalImpl("rnnkit", native, "native", fallback=reference),
        "native (rnnkit.functional)",
        reference,
        True,
    )


def _isa() -> str:
    try:
        from .. import _core
    except ImportError:
        return ""
    get = getattr(_core, "get_isa", None)
    try:
        return str(get()) if callable(get) else ""
    except ValueError:  # a bad RNNKIT_ISA: the first native call reports it
        return ""


def _round_trip() -> float | None:
    """ns for a cache line to go between two CPUs and back (None without the
    native core or a second CPU): the floor of a per-step barrier."""
    try:
        from .. import _core
    except ImportError:
        return None
    probe = getattr(_core, "core_round_trip_ns", None)
    return probe() if callable(probe) else None


def _round_trip_text(rt: dict) -> str | None:
    if rt.get("start") is None:
        return None
    end = f", {rt['end']:.0f} at end" if rt.get("end") is not None else ""
    return (
        f"core-to-core round trip (first two usable CPUs): {rt['start']:.0f} ns at start{end}; "
        f"each step of a team pays at least one"
    )


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ""
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return f"{info.get('internal_api')} {info.get('version') or ''} ({info.get('architecture') or '?'})".strip()
    return ""


def _cpu() -> str:
    """The CPU's name, with its family and model where /proc/cpuinfo has them: the
    brand string alone does not tell an AMD Zen 4 (family 25) from a Zen 5 (26)."""
    name, fam, model = "", "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and not name:
                    name = value
                elif key == "cpu family" and not fam:
                    fam = value
                elif key == "model" and not model:
                    model = value
                elif not line.strip() and name:
                    break
    except OSError:
        pass
    if not name:
        try:
            from .. import _core

            info = dict(_core.build_info())
            name = info.get("cpu_brand") or info.get("cpu_vendor") or ""
        except Exception:
            pass
    name = name or platform.processor() or platform.machine()
    return f"{name} (family {fam}, model {model})" if fam else name


def _kernel_params() -> dict | None:
    """The blocking parameters the rnnkit rows ran with, and where from
    (cpuid, tuned: <file>, set; docs/performance.md, "Per-CPU parameters")."""
    try:
        from .. import _core, _tune
    except ImportError:
        return None
    get = getattr(_core, "kernel_params", None)
    if get is None:
        return None
    return {"params": dict(get()), "source": _tune.describe_source()}


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    before = _isa()
    try:
        return _main(argv)
    finally:
        while _children:  # the --isa peer child, however the run ended
            _children.pop().close()
        if before and _isa() != before:  # --isa: rnnkit's ISA as it was
            from .. import _core

            _core.set_isa(before)


_children: list = []


def _force_isa(args, parser, native: bool) -> None:
    """--isa: checks, then switches rnnkit's kernels (at run time: set_isa)."""
    if args.isa is None:
        return
    if not native:
        parser.error(
            f"--isa {args.isa} forces rnnkit's native kernels, which do not run here "
            "(--backend reference, or rnnkit.functional does not import)"
        )
    from .. import _core

    have = list(_core.supported_isas())
    if args.isa not in have:
        parser.error(
            f"--isa {args.isa}: this CPU ({_cpu()}) or build lacks it; it has {', '.join(have)}"
        )
    _core.set_isa(args.isa)


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rtrl:
        from ._rtrl import main_rtrl

        _force_isa(args, parser, importlib.util.find_spec("rnnkit._core") is not None)
        return main_rtrl(args)
    if args.memory:
        from ._memory import main_memory

        return main_memory(args)

    # Everything that can fail cheaply fails now, before minutes of timing.
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error(
            "--plot needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install 'rnnkit[bench]')"
        )
    for opt, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            d = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(d):
                parser.error(f"{opt} {path}: directory {d} does not exist")
    # --isa: only look for torch here; it must first load in the restricted child.
    available = available_peers() if args.isa is None else available_peers(import_modules=False)
    if args.peers is None:
        peers = [p for p in PEER_NAMES if available[p] is None]
        missing = {p: available[p] for p in PEER_NAMES if available[p] is not None}
    else:
        peers = args.peers
        for p in peers:
            if available[p] is not None:
                parser.error(f"--peers {p}: {available[p]}")
        missing = {}
    plot_peer = args.plot_peer[0]
    if args.plot is not None and plot_peer not in peers:
        why = available.get(plot_peer) or "not among --peers"
        parser.error(f"--plot draws the speedup over {plot_peer}, which will not run: {why}")

    rnnkit_impl, rnnkit_note, reference, native = _rnnkit_impl(args, parser)
    _force_isa(args, parser, native)
    if args.scaling is not None:
        return _main_scaling(args, parser, rnnkit_impl, native, argv)
    threads = args.threads or default_threads()
    grid, settings, tasks = _plan(args)
    settings.settle = args.settle if args.settle is not None else (0.05 if threads > 1 else 0.0)

    impls = [rnnkit_impl]
    if args.user_cells and native:
        from ._user_cells import StepCellImpl

        impls.append(StepCellImpl())
    if "numpy-ref" in peers and native:  # with no native core, rnnkit already is the reference
        impls.append(make_reference_peer(reference, args.reference_max_nh))
    child = None
    child_peers = [p for p in ("torch", "onnxruntime") if p in peers]
    if args.isa is not None and child_peers:
        try:
            child = PeerChild(args.isa, threads, child_peers)
        except (PeerChildError, RuntimeError) as err:
            print(f"{PROG}: error: --isa {args.isa}: the restricted peer child failed: {err}",
                  file=sys.stderr)
            return 1
        _children.append(child)
    if "torch" in peers:
        impls.append(child.impl("torch") if child else TorchImpl())
    if "onnxruntime" in peers:
        impls.append(child.impl("onnxruntime") if child else OrtImpl(threads))
    names = [i.name for i in impls]
    isa_in_use = _isa() if native else None
    # The ISA each implementation runs under, for the JSON and the labels.
    isas = {n: "unrestricted" for n in names}
    if native:
        isas.update({n: isa_in_use for n in names if n in ("rnnkit", "rnnkit-step")})
    if child and "torch" in names:
        isas["torch"] = args.isa
    labels = {}
    if args.isa is not None:
        labels = {n: f"{n} ({v})" for n, v in isas.items()}
        labels.pop("rnnkit", None)  # the baseline's own name: tools and the plot key on it

    progress = Progress(len(tasks), enabled=not args.no_progress)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        progress.write(f"warning: {msg}")

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = _loadavg()
    rows = []
    ceiling = Ceiling(args.ceiling) if args.ceiling else None
    ceil_samples = 1 if args.quick else 2
    if threads > default_cpus():
        warn(f"--threads {threads} is more than the {default_cpus()} CPUs this process may use")
    if load_start is not None and load_start > default_cpus() - threads + 0.5:
        warn(
            f"load average {load_start:.1f} on {default_cpus()} CPUs: other processes want the cores "
            f"this run needs, so times are inflated and noisy"
            + (
                "; with more than one thread, per-step barriers make them erratic"
                if threads > 1
                else ""
            )
        )
    if child is not None:
        for w in restriction_check(args.isa, child.info):
            warn(w)
    # Each probe run lasts as long as two samples (20-100 ms): enough for a
    # stable peak (it checks the clock every ~10-100 us), cheap in a quick run.
    fma_s = min(0.1, max(0.02, 2 * settings.min_time))
    fma = FmaPeak(isa_in_use, threads, seconds=fma_s) if isa_in_use else None
    interrupted = False
    round_trip = {"start": _round_trip()}
    with ThreadSettings(threads) as ts:
        try:
            if fma:
                progress.start("FMA peak")
                fma.measure("start")
            if ceiling:
                progress.start("numpy.matmul ceiling")
                ceiling.measure("start", ceil_samples)
            for cell, shape, mode in tasks:
                progress.start(f"{cell} {mode} T{shape.T} N{shape.N} C{shape.C} H{shape.H}")
                rows.extend(run_shape(cell, shape, mode, impls, settings, warn=warn))
                progress.advance()
            round_trip["end"] = _round_trip()  # before numpy's BLAS threads spin again
            if ceiling:
                progress.start("numpy.matmul ceiling")
                ceiling.measure("end", ceil_samples, warmup=0)
            if fma:
                progress.start("FMA peak")
                fma.measure("end")
        except KeyboardInterrupt:  # report what was measured so far
            interrupted = True
        finally:
            progress.close()
    if child is not None:
        _children.remove(child)
        child.close()
    if interrupted:
        warn(f"interrupted after {progress.n} of {len(tasks)} runs: the table is partial")
    round_trip.setdefault("end", None)
    load_end = _loadavg()

    for cell, note in getattr(rnnkit_impl, "notes", {}).items():
        warnings.append(f"rnnkit {cell}: the NumPy reference stands in: {note}")
    P = ceiling.gflops() if ceiling else None
    ceiling_doc = {"shape": list(args.ceiling) if args.ceiling else None, "gflops": P}
    if ceiling:
        ceiling_doc.update(
            gflops_start=ceiling.gflops("start"),
            gflops_end=ceiling.gflops("end"),
            samples_s=ceiling.samples_s,
        )
        ceiling.release()
    fma_doc = fma.doc() if fma and fma.available else None
    F = fma_doc["gflops"] if fma_doc else None

    versions = {"rnnkit": _version(), "numpy": np.__version__, "python": platform.python_version()}
    for impl in impls[1:]:
        if impl.version():
            versions[impl.name] = impl.version()
    if "onnxruntime" in names:
        import onnx

        versions["onnx"] = onnx.__version__
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu(),
        "cpus_usable": default_cpus(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "threads": threads,
        "thread_settings": ts.report,
        "core_round_trip_ns": round_trip,
        "dtype": "float32",
        "rnnkit_backend": "native" if native else "reference",
        "rnnkit_note": rnnkit_note,
        "isa": _isa() or None,
        "kernel_params": _kernel_params(),
        "isa_forced": args.isa,
        "impl_isa": isas,
        "peer_child": (
            {k: v for k, v in child.info.items() if k != "thread_settings"} if child else None
        ),
        "peer_child_thread_settings": child.info.get("thread_settings") if child else None,
        "blas": _blas() or None,
        "versions": versions,
        "impls": names,
        "peers_missing": missing,
        "grid": [list(s) for s in grid],
        "cells": args.cells,
        "modes": args.modes,
        "repeat": settings.repeat,
        "min_time_s": settings.min_time,
        "settle_s": settings.settle,
        "reference_max_nh": args.reference_max_nh,
        "agree_rtol": _agree_rtol(),
        "warnings": warnings,
        "argv": list(sys.argv[1:] if argv is None else argv),
    }

    out = sys.stdout
    print(_header(meta, ceiling_doc, impls, settings, args, fma_doc), file=out)
    if child is not None:
        print(f"--isa {args.isa}: rnnkit's kernels set to {isa_in_use}; the peers below run in "
              "a child process, one sample per request, taking turns with rnnkit's:", file=out)
        for n in child.peers:
            print(peer_isa_text(args.isa, child.info, n), file=out)
        for k, v in (child.info.get("thread_settings") or {}).items():
            print(f"    child threads, {k}: {v}", file=out)
    if args.isa is not None and "numpy-ref" in names:
        print("  numpy-ref: in this process, unrestricted (NumPy picks its own SIMD)", file=out)
    if args.isa is not None and P:
        print("P is numpy's BLAS at whatever ISA it picks (not restricted by --isa); "
              "%FMA is the measure of the ISA asked for", file=out)
    print(format_table(rows, names, P, F, labels), file=out)
    summary = format_summary(rows, names, labels)
    if summary:
        print(summary, file=out)
    notes = [
        "",
        "-: not run here (no such peer for this cell or mode, or a shape too big for the reference).",
    ]
    if not native or getattr(rnnkit_impl, "notes", None):
        notes.append("rnnkit*: the NumPy reference stands in for the native core.")
    for cell, note in getattr(rnnkit_impl, "notes", {}).items():
        notes.append(f"rnnkit* for {cell}: {note}")
    mismatches = [w for w in warnings if "MISMATCH" in w]
    if mismatches:
        notes.append(
            f"MISMATCH: {len(mismatches)} peer row(s) disagreed with rnnkit's outputs and were "
            "not timed (see the warnings above)."
        )
    notes.extend(
        f"warning: {w}" for w in warnings
    )  # repeated here so that a pasted table keeps them
    print("\n".join(notes), file=out)

    rc = 130 if interrupted else 0
    if args.json:
        try:
            write_json(args.json, to_json(rows, meta, ceiling_doc, fma_doc, isas))
        except OSError as err:
            print(f"{PROG}: error: cannot write {args.json}: {err}", file=sys.stderr)
            rc = rc or 1
        else:
            print(f"wrote {args.json}", file=out)
    if args.plot:
        try:
            drawn = write_plot(
                args.plot, rows, plot_peer, f"; {threads} thread{'s' * (threads > 1)}"
            )
        except OSError as err:
            print(f"{PROG}: error: cannot write {args.plot}: {err}", file=sys.stderr)
            rc = rc or 1
        else:
            if drawn:
                print(f"wrote {args.plot}", file=out)
            else:
                print(
                    f"{PROG}: no {plot_peer} rows to plot (cells {','.join(args.cells)}); "
                    f"{args.plot} not written",
                    file=sys.stderr,
                )
                rc = rc or 1
    return rc


def _plan(args):
    """The grid, the sampling settings (no settle) and the (cell, shape, mode) runs."""
    grid = args.grid or (list(QUICK_GRID) if args.quick else list(GRID))
    settings = Settings(
        repeat=args.repeat or (3 if args.quick else 5),
        min_time=args.min_time if args.min_time is not None else (0.01 if args.quick else 0.05),
        seed=args.seed,
    )
    tasks = [(cell, shape, mode) for cell in args.cells for shape in grid for mode in args.modes]
    return grid, settings, tasks


def _main_scaling(args, parser, rnnkit_impl, native, argv) -> int:
    from ._scaling import format_scaling, run_scaling

    if not native:
        parser.error("--scaling measures the native core's threads, which does not import here")
    if args.threads is not None:
        parser.error("--scaling sets the thread counts itself; leave out --threads")
    if args.plot is not None:
        parser.error("--plot draws the peer table; it does not go with --scaling")
    counts = args.scaling
    grid, settings, tasks = _plan(args)
    progress = Progress(len(tasks), enabled=not args.no_progress)
    cpus = default_cpus()
    warnings = []
    if max(counts) > cpus:
        warnings.append(
            f"--scaling {max(counts)} is more than the {cpus} CPUs this process may use"
        )
    load_start = _loadavg()
    if load_start is not None and load_start > cpus - max(counts) + 0.5:
        warnings.append(
            f"load average {load_start:.1f} on {cpus} CPUs: other processes want the cores this run needs"
        )
    for w in warnings:
        progress.write(f"warning: {w}")
    import rnnkit

    started = datetime.datetime.now(datetime.timezone.utc)
    before = rnnkit.get_num_threads()
    interrupted = False
    results = []
    round_trip = {"start": _round_trip()}
    try:
        results = run_scaling(
            tasks, rnnkit_impl, counts, settings, rnnkit.set_num_threads, progress
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        rnnkit.set_num_threads(before)
        progress.close()
    round_trip["end"] = _round_trip()
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu(),
        "cpus_usable": cpus,
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
        "counts": counts,
        "core_round_trip_ns": round_trip,
        "isa": _isa() or None,
        "kernel_params": _kernel_params(),
        "versions": {
            "rnnkit": _version(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "grid": [list(s) for s in grid],
        "cells": args.cells,
        "modes": args.modes,
        "repeat": settings.repeat,
        "min_time_s": settings.min_time,
        "warnings": warnings,
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    out = sys.stdout
    round_trip_text = _round_trip_text(round_trip)
    print(
        f"rnnkit bench --scaling  {meta['date']}  {meta['cpu']}, {cpus} usable CPUs, "
        f"load average {load_start if load_start is not None else float('nan'):.2f} at start, "
        f"{meta['loadavg_end'] if meta['loadavg_end'] is not None else float('nan'):.2f} at end\n"
        f"rnnkit native, ISA {meta['isa']}, float32; thread counts {','.join(map(str, counts))} take "
        f"turns sample by sample (order alternating) within each shape, in this one process\n"
        f"ms: median of {settings.repeat} samples, each the mean over enough calls to last >= "
        f"{settings.min_time * 1e3:g} ms; training = forward + backward"
        + (f"\n{round_trip_text}" if round_trip_text else ""),
        file=out,
    )
    print(format_scaling(results, counts), file=out)
    for w in warnings:
        print(f"warning: {w}", file=out)
    if interrupted:
        print(f"warning: interrupted after {len(results)} of {len(tasks)} runs", file=out)
    rc = 130 if interrupted else 0
    if args.json:
        try:
            write_json(
                args.json, {"schema": "rnnkit-bench-scaling/1", "meta": meta, "results": results}
            )
        except OSError as err:
            print(f"{PROG}: error: cannot write {args.json}: {err}", file=sys.stderr)
            rc = rc or 1
        else:
            print(f"wrote {args.json}", file=out)
    return rc


def default_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _version() -> str:
    from .._version import __version__

    return __version__


def _agree_rtol() -> float:
    from ._run import AGREE_RTOL

    return AGREE_RTOL


def _header(meta, ceiling, impls, settings, args, fma_doc=None) -> str:
    t = meta["threads"]
    la = meta["loadavg_start"], meta["loadavg_end"]
    load = f", load average {la[0]:.2f} at start, {la[1]:.2f} at end" if None not in la else ""
    lines = [
        f"rnnkit bench  {meta['date']}  {meta['host']}: {meta['cpu']}, {meta['cpus_usable']} usable CPUs{load}",
        f"float32, time-major, C = H; {t} thread{'s' * (t > 1)} for every implementation:",
        *(f"  {k}: {v}" for k, v in meta["thread_settings"].items()),
        f"rnnkit: {meta['rnnkit_note']}" + (f", ISA {meta['isa']}" if meta["isa"] else ""),
    ]
    rt = _round_trip_text(meta.get("core_round_trip_ns") or {})
    if rt:
        lines.append(rt)
    peer_desc = []
    for impl in impls[1:]:
        d = impl.name
        if impl.version():
            d += f" {impl.version()}"
        if getattr(impl, "max_nh", None):
            d += f" (N*H <= {impl.max_nh} only)"
        if impl.modes == ("inference",):
            d += " (inference only)"
        peer_desc.append(d)
    lines.append("peers: " + (", ".join(peer_desc) or "none"))
    if meta["peers_missing"]:
        lines.append(
            "not installed: "
            + "; ".join(f"{k}: {v.split('; ')[-1]}" for k, v in meta["peers_missing"].items())
        )
    if ceiling.get("gflops"):
        M, K, N = ceiling["shape"]
        drift = ""
        s, e = ceiling.get("gflops_start"), ceiling.get("gflops_end")
        if s and e:
            drift = f" (start {s:.1f}, end {e:.1f})"
        blas = f", {meta['blas']}" if meta["blas"] else ""
        lines.append(
            f"P = numpy.matmul [{M},{K}]x[{K},{N}] float32 at {t} thread{'s' * (t > 1)}: "
            f"{ceiling['gflops']:.1f} GFLOP/s{drift}{blas}"
        )
    else:
        lines.append("P: not measured (%P shows -)")
    lines.append(fma_peak_text(fma_doc))  # beside P: what %FMA divides by
    lines.append(
        f"ms: median of {settings.repeat} samples, each the mean over enough calls to last "
        f">= {settings.min_time * 1e3:g} ms, implementations interleaved round-robin per shape"
        + (
            f", {settings.settle * 1e3:g} ms of untimed calls before each sample"
            if settings.settle > 0
            else ""
        )
        + "; ±: half the min-max range of the samples"
    )
    lines.append(
        "FLOPs: forward 2*T*N*G*H*(C+H) (G = 1, 4, 3 for RNN, LSTM, GRU; IndRNN 2*T*N*H*(C+1)); "
        "backward 2x, training 3x forward"
    )
    lines.append(
        "speedup = peer ms / rnnkit ms (above 1: rnnkit is faster); "
        f"every peer's y (and dx) agree with rnnkit's to {meta['agree_rtol']:g} before it is timed"
    )
    return "\n".join(lines)
