"""``rnnkit bench --scaling 1,2``: rnnkit's speedup with more threads, per shape.

Two separate runs at 1 and at 2 threads measure the machine twice, minutes
apart; on a shared VM their ratio then carries the drift between them. Here
the thread counts take turns within each shape instead: every sample at one
count is followed by one at the next, in alternating order, all in one
process, and each row is the median of its samples. Only rnnkit runs: other
runtimes' pools would spin between the samples (see ``--settle``).
"""

from __future__ import annotations

import statistics

from ._grid import make_inputs, mode_flops
from ._run import Settings, call_once, calls_per_sample, sample

__all__ = ["run_scaling", "format_scaling"]


def run_scaling(tasks, impl, counts, settings: Settings, set_threads, progress=None) -> list[dict]:
    """One dict per (cell, shape, mode): median ms per thread count, the
    samples, and speedup[c] = ms at counts[0] / ms at c."""
    results = []
    for cell, shape, mode in tasks:
        if progress is not None:
            progress.start(f"{cell} {mode} T{shape.T} N{shape.N} C{shape.C} H{shape.H}")
        inputs = make_inputs(cell, *shape, seed=settings.seed)
        runner = impl.prepare(cell, inputs, mode)
        number = {}
        for c in counts:  # warm-up at every count, then size the samples
            set_threads(c)
            call_once(runner)
            f, b = sample(runner, 1)
            number[c] = calls_per_sample(settings, f + b)
        samples = {c: [] for c in counts}
        for rep in range(settings.repeat):
            for c in counts if rep % 2 == 0 else counts[::-1]:
                set_threads(c)
                f, b = sample(runner, number[c])
                samples[c].append(f + b)
        ms = {c: statistics.median(samples[c]) * 1e3 for c in counts}
        flops = mode_flops(cell, mode, shape)
        results.append(
            {
                "cell": cell,
                "mode": mode,
                "T": shape.T,
                "N": shape.N,
                "C": shape.C,
                "H": shape.H,
                "gflop": flops / 1e9,
                "ms": {str(c): ms[c] for c in counts},
                "samples_ms": {str(c): [s * 1e3 for s in samples[c]] for c in counts},
                "calls_per_sample": {str(c): number[c] for c in counts},
                "speedup": {str(c): ms[counts[0]] / ms[c] for c in counts},
            }
        )
        if progress is not None:
            progress.advance()
    return results


def format_scaling(results: list[dict], counts: list[int]) -> str:
    """A table per (cell, mode): ms at each count and the speedup over the first."""
    base = counts[0]
    head = (
        ["T", "N", "C", "H"]
        + [f"{c} thr ms" for c in counts]
        + [f"x{c}/{base}" for c in counts[1:]]
    )
    widths = [5, 5, 6, 6] + [11] * len(counts) + [8] * (len(counts) - 1)
    lines = []
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["cell"], r["mode"]), []).append(r)
    for (cell, mode), rows in groups.items():
        lines.append("")
        lines.append(
            f"{cell} {mode}: rnnkit ms (median), speedup over {base} thread{'s' * (base > 1)}"
        )
        lines.append("".join(h.rjust(w) for h, w in zip(head, widths)))
        lines.append("-" * sum(widths))
        for r in rows:
            cells = [r["T"], r["N"], r["C"], r["H"]]
            cells += [f"{r['ms'][str(c)]:.3g}" for c in counts]
            cells += [f"{r['speedup'][str(c)]:.2f}x" for c in counts[1:]]
            lines.append("".join(str(v).rjust(w) for v, w in zip(cells, widths)))
    return "\n".join(lines)
