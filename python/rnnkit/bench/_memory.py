"""``rnnkit bench --memory``: peak RSS and time of one LSTM training step
(forward + backward through rnnkit.LSTM) in each memory mode, and of
PyTorch's nn.LSTM, each in a process of its own (docs/training.md).

Each worker makes x, dy and the weights, touches them, runs a tiny warm-up
call (libraries and thread pools loaded), then takes its baseline: it writes
"5" to /proc/self/clear_refs, which resets the kernel's high-water mark
(VmHWM) to the current RSS. Peak over baseline = VmHWM after the step - VmRSS
at the baseline. Where clear_refs cannot be written, VmHWM before and after
are compared instead, and the row says so. Not a timing suite: one step per
process; --repeat R runs R rounds of the processes, the impls taking turns,
and reports each impl's best time and highest peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

__all__ = ["main_memory", "measure", "format_memory"]

MODES = ("full", "recompute", "checkpoint")
DEFAULT_SHAPE = (1000, 64, 1024, 1024)  # T, N, C, H: issue 13's target


def _status_kib(field):
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _worker(impl, T, N, C, H, threads, seed, segment, repeat):
    """One process: returns the measurement as a dict."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, C)).astype(np.float32)
    dy = rng.standard_normal((T, N, H)).astype(np.float32)
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
        lstm = torch.nn.LSTM(C, H)
        xt = torch.from_numpy(x).requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def step(xs, dys):
            xs.grad = None
            y, _ = lstm(xs)
            y.backward(dys)

        args = (xt, dyt)
        warm = (torch.from_numpy(x[:2].copy()).requires_grad_(True), torch.from_numpy(dy[:2].copy()))
    else:
        import rnnkit

        rnnkit.set_num_threads(threads)
        kw = {} if impl == "full" else {"memory": impl, "segment": segment}
        layer = rnnkit.LSTM(C, H, seed=seed, **kw)
        tapes = []  # (tape.nbytes, the segment its call used)

        def step(xs, dys):
            _, _, tape = layer.forward(xs)
            tapes.append((tape.nbytes, getattr(tape.caches[(0, 0)], "segment", None)))
            layer.backward(tape, dys)

        args = (x, dy)
        warm = (x[:2].copy(), dy[:2].copy())
    step(*warm)  # libraries, thread pools and first-use allocations outside the baseline
    x.sum(), dy.sum()  # touched
    best, peak, method = float("inf"), 0, None
    for _ in range(repeat):
        base = _status_kib("VmRSS")
        if _reset_peak():
            method = "clear_refs"
            hwm0 = base
        else:
            method = "VmHWM delta"
            hwm0 = max(base, _status_kib("VmHWM"))
        t0, c0 = time.perf_counter(), time.process_time()
        step(*args)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        peak = max(peak, _status_kib("VmHWM") - hwm0)
        if dt < best:
            best, cpu = dt, dc
    row = {"impl": impl, "T": T, "N": N, "C": C, "H": H, "threads": threads, "time_s": best, "cpu_s": cpu,
           "peak_mib": peak / 1024, "method": method}
    if impl != "torch":
        row["tape_mib"] = tapes[-1][0] / 2**20
        row["segment"] = tapes[-1][1]
    return row


def measure(shape, threads, impls, *, seed=0, segment=None, rounds=1, timeout=None):
    """Run each impl in a process of its own, ``rounds`` times, the impls
    taking turns round by round (a slow spell of a shared machine then falls
    on all of them); returns one row per impl: the best time and the highest
    peak of its rounds."""
    T, N, C, H = shape
    best = {}
    for _ in range(rounds):
        for impl in impls:
            cmd = [sys.executable, "-m", "rnnkit.bench._memory", impl, str(T), str(N), str(C), str(H),
                   str(threads), str(seed), "0" if segment is None else str(segment), "1"]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"memory worker {impl} failed ({proc.returncode}): {proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            if impl in best:
                if best[impl]["time_s"] < row["time_s"]:
                    row["time_s"], row["cpu_s"] = best[impl]["time_s"], best[impl]["cpu_s"]
                row["peak_mib"] = max(row["peak_mib"], best[impl]["peak_mib"])
            row["rounds"] = best.get(impl, {}).get("rounds", 0) + 1
            best[impl] = row
    return [best[i] for i in impls]


def format_memory(rows):
    """The table: peak RSS over baseline and time, beside torch's and full's."""
    torch_peak = next((r["peak_mib"] for r in rows if r["impl"] == "torch"), None)
    full_time = next((r["time_s"] for r in rows if r["impl"] == "full"), None)
    full_cpu = next((r["cpu_s"] for r in rows if r["impl"] == "full"), None)
    lines = [("| impl | segment | peak RSS over baseline (MiB) | x torch | tape (MiB) | time (s) | x full "
              "| CPU time (s) | x full |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = "torch nn.LSTM" if r["impl"] == "torch" else f"rnnkit {r['impl']}"
        seg = r.get("segment")
        peak, t = r["peak_mib"], r["time_s"]
        vs_torch = "" if torch_peak is None else f"{peak / torch_peak:.2f}x"
        vs_full = "" if full_time is None else f"{t / full_time:.2f}x"
        tape = "" if "tape_mib" not in r else f"{r['tape_mib']:.0f}"
        cpu = r["cpu_s"]
        cpu_full = "" if full_cpu is None else f"{cpu / full_cpu:.2f}x"
        lines.append(f"| {name} | {'' if seg is None else seg} | {peak:.0f} | {vs_torch} | {tape} | {t:.2f} | "
                     f"{vs_full} | {cpu:.2f} | {cpu_full} |")
    methods = sorted({r["method"] for r in rows})
    rounds = max(r.get("rounds", 1) for r in rows)
    lines.append(f"(peak: VmHWM after the step minus VmRSS at the baseline, reset by {', '.join(methods)}; "
                 f"{rounds} process(es) per impl, best time (with its CPU time, all threads), highest peak)")
    return "\n".join(lines)


def main_memory(args) -> int:
    import importlib.util
    import platform

    import rnnkit

    threads = args.threads or rnnkit.get_num_threads()
    shapes = [(s.T, s.N, s.C, s.H) for s in args.grid] if args.grid else [DEFAULT_SHAPE]
    impls = list(MODES) + (["torch"] if importlib.util.find_spec("torch") is not None else [])
    all_rows = []
    for shape in shapes:
        print(f"rnnkit bench --memory: LSTM training step T={shape[0]} N={shape[1]} C={shape[2]} H={shape[3]}, "
              f"float32, {threads} threads, {platform.processor() or platform.machine()}, "
              f"{time.strftime('%Y-%m-%d', time.gmtime())}", flush=True)
        rows = measure(shape, threads, impls, seed=args.seed, rounds=args.repeat or 1)
        print(format_memory(rows), flush=True)
        all_rows += rows
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"schema": "rnnkit-bench-memory/1", "rows": all_rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    impl, T, N, C, H, threads, seed, segment, repeat = sys.argv[1:10]
    print(json.dumps(_worker(impl, int(T), int(N), int(C), int(H), int(threads), int(seed),
                             int(segment) or None, int(repeat))))
