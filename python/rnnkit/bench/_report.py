"""What ``rnnkit bench`` writes: the text table, the JSON document and the plot.

Speedup is always peer ms / rnnkit ms, measured in the same run: above 1 means
rnnkit is faster.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from ._grid import ROW_MODES
from ._run import Row

__all__ = ["speedups", "format_table", "format_summary", "to_json", "write_plot", "SCHEMA"]

SCHEMA = "rnnkit-bench/1"
BASE = "rnnkit"


def _index(rows: list[Row]) -> dict:
    return {(r.cell, r.mode, r.shape, r.impl): r for r in rows}


def speedups(rows: list[Row]) -> dict:
    """(cell, mode, shape, peer) -> peer ms / rnnkit ms, where both were timed."""
    idx = _index(rows)
    out = {}
    for r in rows:
        if r.impl == BASE or r.median_s is None:
            continue
        base = idx.get((r.cell, r.mode, r.shape, BASE))
        if base is not None and base.median_s:
            out[(r.cell, r.mode, r.shape, r.impl)] = r.median_s / base.median_s
    return out


def _ms(s: float | None) -> str:
    if s is None:
        return "-"
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _gf(g: float) -> str:
    return f"{g:.1f}" if g >= 10 else f"{g:.2f}" if g >= 0.1 else f"{g:.1e}"


def _x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


MODE_TITLES = {
    "inference": "inference",
    "training": "training: forward + backward (forward / backward split on the right)",
}


def format_table(
    rows: list[Row],
    impls: list[str],
    P: float | None,
    fma: float | None = None,
    labels: dict | None = None,
) -> str:
    """One section per (cell, mode); one line per (shape, implementation).
    %P is GFLOP/s over P, %FMA over ``fma`` (the FMA peak of the ISA in use, in
    GFLOP/s); ``labels`` renames implementations for display only."""
    idx = _index(rows)
    sp = speedups(rows)
    labels = labels or {}
    cells = list(dict.fromkeys(r.cell for r in rows))
    modes = list(dict.fromkeys(r.mode for r in rows if r.mode in ROW_MODES))
    width = max([len(labels.get(i, i)) for i in impls] + [7])
    lines = []
    for cell in cells:
        for mode in modes:
            shapes = list(dict.fromkeys(r.shape for r in rows if r.cell == cell and r.mode == mode))
            if not shapes:
                continue
            train = mode == "training"
            lines.append("")
            lines.append(f"{cell} {MODE_TITLES[mode]}")
            head = (
                f"{'T':>5} {'N':>4} {'C':>5} {'H':>5}  {'impl':<{width}} {'ms':>9} {'±':>4} "
                f"{'GFLOP/s':>8} {'%P':>5} {'%FMA':>5} {'speedup':>8}"
            )
            if train:
                head += f"   {'fwd ms':>8} {'speedup':>8}   {'bwd ms':>8} {'speedup':>8}"
            lines.append(head)
            lines.append("-" * len(head))
            for shape in shapes:
                first = True
                for impl in impls:
                    r = idx.get((cell, mode, shape, impl))
                    if r is None:
                        continue
                    lead = (
                        f"{shape.T:>5} {shape.N:>4} {shape.C:>5} {shape.H:>5}"
                        if first
                        else " " * 22
                    )
                    first = False
                    name = labels.get(impl, impl)
                    if impl == BASE and r.backend == "reference":
                        name = "rnnkit*"
                    if r.median_s is None:
                        note = "-"
                        if r.skipped and r.skipped.startswith(("MISMATCH", "failed")):
                            note = r.skipped.split(":")[0].split()[0]
                        lines.append(
                            f"{lead}  {name:<{width}} {'-':>9} {'':>4} {'-':>8} {'-':>5} {'-':>5} "
                            f"{note:>8}"
                        )
                        continue
                    g = r.gflops
                    pct = f"{100 * g / P:.0f}%" if P else "-"
                    pct_fma = f"{100 * g / fma:.0f}%" if fma else "-"
                    ratio = "" if impl == BASE else _x(sp.get((cell, mode, shape, impl)))
                    line = (
                        f"{lead}  {name:<{width}} {_ms(r.median_s):>9} {100 * r.spread:>3.0f}% "
                        f"{_gf(g):>8} {pct:>5} {pct_fma:>5} {ratio:>8}"
                    )
                    if train:
                        for part in ("training-forward", "training-backward"):
                            rp = idx.get((cell, part, shape, impl))
                            s = sp.get((cell, part, shape, impl))
                            line += f"   {_ms(rp.median_s if rp else None):>8} {(_x(s) if s else ''):>8}"
                    lines.append(line)
    return "\n".join(lines)


def _geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def format_summary(rows: list[Row], impls: list[str], labels: dict | None = None) -> str:
    """Geometric-mean speedup (and min..max) over the shapes, per cell, mode and peer."""
    sp = speedups(rows)
    labels = labels or {}
    peers = [i for i in impls if i != BASE]
    if not peers:
        return ""
    groups = defaultdict(list)
    for (cell, mode, _shape, peer), v in sp.items():
        groups[(cell, mode, peer)].append(v)
    keys = list(dict.fromkeys((r.cell, r.mode) for r in rows))
    col = max([24] + [len(labels.get(p, p)) + 2 for p in peers])
    lines = [
        "",
        "rnnkit speedup = peer ms / rnnkit ms (geometric mean over shapes, min..max)",
        f"{'cell':<7} {'mode':<18}" + "".join(f"{labels.get(p, p):>{col}}" for p in peers),
    ]
    for cell, mode in keys:
        cells_ = []
        for p in peers:
            v = groups.get((cell, mode, p))
            cells_.append(f"{_geomean(v):.2f}x ({min(v):.2f}..{max(v):.2f})" if v else "-")
        if all(c == "-" for c in cells_):
            continue
        lines.append(f"{cell:<7} {mode:<18}" + "".join(f"{c:>{col}}" for c in cells_))
    return "\n".join(lines) if len(lines) > 3 else ""


def to_json(
    rows: list[Row], meta: dict, ceiling: dict, fma: dict | None = None, isas: dict | None = None
) -> dict:
    """The document: meta, the ceiling P, the FMA peak and every row. ``isas``:
    implementation -> the ISA it ran under ("unrestricted": whatever it picks)."""
    sp = speedups(rows)
    P = ceiling.get("gflops")
    F = (fma or {}).get("gflops")
    isas = isas or {}
    results = []
    for r in rows:
        g = r.gflops
        results.append(
            {
                "cell": r.cell,
                "mode": r.mode,
                "T": r.shape.T,
                "N": r.shape.N,
                "C": r.shape.C,
                "H": r.shape.H,
                "impl": r.impl,
                "backend": r.backend or None,
                "gflop": r.flops / 1e9,
                "ms": r.median_s * 1e3 if r.median_s is not None else None,
                "ms_min": min(r.samples_s) * 1e3 if r.samples_s else None,
                "ms_max": max(r.samples_s) * 1e3 if r.samples_s else None,
                "spread": r.spread,
                "samples_ms": [s * 1e3 for s in r.samples_s],
                "calls_per_sample": r.number or None,
                "gflops": g,
                "fraction_of_P": g / P if (g is not None and P) else None,
                "fraction_of_fma_peak": g / F if (g is not None and F) else None,
                "isa": isas.get(r.impl),
                "speedup": sp.get((r.cell, r.mode, r.shape, r.impl)),
                "agrees": r.agrees,
                "rel_err": r.rel_err or None,
                "skipped": r.skipped,
            }
        )
    return {
        "schema": SCHEMA,
        "meta": meta,
        "ceiling": ceiling,
        "fma_peak": fma,
        "results": results,
    }


def _finite(obj):
    """JSON has no inf or nan: write them as strings (an infinite relative error
    means a peer's output had another shape or was not finite)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str, doc: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_finite(doc), fh, indent=1, allow_nan=False, default=str)
        fh.write("\n")


def write_plot(path: str, rows: list[Row], peer: str = "torch", title_extra: str = "") -> int:
    """Speedup over one peer per shape, one panel per cell, a bar per mode
    (inference; training = forward + backward).
    Returns the number of panels drawn (0: nothing to plot, no file written)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    sp = speedups(rows)
    cells = [
        c
        for c in dict.fromkeys(r.cell for r in rows)
        if any(k[0] == c and k[3] == peer for k in sp)
    ]
    if not cells:
        return 0
    modes = [m for m in ("inference", "training") if any(k[1] == m and k[3] == peer for k in sp)]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.8), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        shapes = list(dict.fromkeys(r.shape for r in rows if r.cell == cell))
        w = 0.8 / len(modes)
        for j, mode in enumerate(modes):
            xs, ys = [], []
            for i, s in enumerate(shapes):
                v = sp.get((cell, mode, s, peer))
                if v is not None:
                    xs.append(i - 0.4 + w * (j + 0.5))
                    ys.append(v)
            ax.bar(xs, ys, width=w, label=mode)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([f"N{s.N}\nH{s.H}" for s in shapes], fontsize=8)
        ax.set_title(cell)
        ax.set_ylabel(f"{peer} ms / rnnkit ms")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"rnnkit speedup over {peer} (above 1: rnnkit faster){title_extra}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(cells)
