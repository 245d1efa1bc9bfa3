"""The kernels' per-CPU parameters: a short measured autotune, its cache file
per CPU model and ISA, and the first-use hook that loads (or makes) it.

Not here: the parameters themselves (cache budgets in bytes, defaults from
cpuid: csrc/include/rnnkit/params.h) or any math. No result depends on what
is chosen here, only speed (tests/test_tune.py proves it across the
candidates). docs/performance.md, "Per-CPU parameters".
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import tempfile
import threading
import time

__all__ = ["PARAMS", "cache_dir", "cache_path", "candidates", "cpu_key", "first_use", "tune"]

# The fields of rnnkit/params.h in tuning order, each with the kernels whose
# speed it changes. bwd_b_bytes comes before dx_a_bytes and wg_b_bytes before
# wg_a_bytes: the second budget of each pair is counted in blocks of the first.
PARAMS = ("fwd_slice_bytes", "bwd_b_bytes", "dx_a_bytes", "wg_b_bytes", "wg_a_bytes")
_KERNEL = {
    "fwd_slice_bytes": "forward",
    "bwd_b_bytes": "backward",
    "dx_a_bytes": "backward",
    "wg_b_bytes": "backward",
    "wg_a_bytes": "backward",
}
# Around the cpuid default; 0 (the whole panel at once) only where it means
# something. A candidate must beat the default by more than this to replace it:
# smaller gains are within the noise of a shared machine.
_FACTORS = (0.5, 1, 2, 4)
_MIN_GAIN = 0.03
_FORMAT = 1  # of the cache file

# (N, C=H, T) of the LSTM float32 shapes timed. The first-use tune (about 2 s on
# a 2-core Zen 3) times one; `rnnkit tune` adds a small batch and a large H.
SHAPES_QUICK = ((64, 384, 2),)
SHAPES_FULL = ((64, 512, 4), (16, 1024, 4), (64, 1024, 2))
QUICK_BUDGET = 2.0


def candidates(name: str, default: int) -> list[int]:
    """The values the tuner may choose for one parameter, the default first."""
    out = [int(default)]
    for f in _FACTORS:
        v = max(512, int(default * f))
        if v not in out:
            out.append(v)
    if name == "fwd_slice_bytes" and 0 not in out:
        out.append(0)
    return out


# --- Where the file lives and what it is keyed by ---------------------------


def cache_dir() -> str:
    """RNNKIT_CACHE_DIR, else $XDG_CACHE_HOME/rnnkit, else ~/.cache/rnnkit."""
    d = os.environ.get("RNNKIT_CACHE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rnnkit")


def _cpuinfo() -> tuple[str | None, str | None]:
    """(family, model) from /proc/cpuinfo (Linux), else (None, None): _core
    exposes the vendor and brand but not these."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            text = f.read(65536)
    except OSError:
        return None, None
    fam = re.search(r"^cpu family\s*:\s*(\d+)", text, re.MULTILINE)
    mod = re.search(r"^model\s*:\s*(\d+)", text, re.MULTILINE)
    return (fam.group(1) if fam else None), (mod.group(1) if mod else None)


def cpu_key(isa: str | None = None) -> dict:
    """What a cached result is valid for: vendor, family, model (or the brand
    where those are unknown), the ISA in use and the cache sizes."""
    from . import _core

    info = dict(_core.build_info())
    vendor = info.get("cpu_vendor") or "unknown"
    family, model = _cpuinfo()
    if family is None or model is None:
        family, model = "brand", info.get("cpu_brand") or "unknown"
    return {
        "vendor": vendor,
        "family": family,
        "model": model,
        "isa": isa if isa is not None else _core.get_isa(),
        "cache_sizes": dict(_core.cache_sizes()),
    }


def cache_path(key: dict | None = None) -> str:
    """The cache file for this CPU model and ISA (dtype-agnostic), e.g.
    ``~/.cache/rnnkit/tune-AuthenticAMD-25-1-avx2.json``."""
    key = cpu_key() if key is None else key
    parts = [key["vendor"], key["family"], key["model"], key["isa"]]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)).strip("_") or "unknown" for p in parts)
    return os.path.join(cache_dir(), f"tune-{name}.json")


def read_cache(path: str, key: dict) -> dict | None:
    """The parameters of a cache file written for this CPU, ISA and rnnkit
    version, or None: a missing, corrupt or foreign file is ignored (the next
    tune overwrites it), never an error."""
    from . import _core
    from ._version import __version__

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("rnnkit") != __version__:
        return None
    if doc.get("key") != key:
        return None
    params = doc.get("params")
    if not isinstance(params, dict) or set(params) != set(PARAMS):
        return None
    if not all(type(v) is int for v in params.values()):
        return None
    # The core's own range checks, without keeping what is tried.
    before, source = _core.kernel_params(), _core.kernel_params_source()
    try:
        _core.set_kernel_params(params, "check")
    except (ValueError, TypeError):
        return None
    finally:
        _core.set_kernel_params(before, source)
    return doc


def write_cache(path: str, doc: dict) -> None:
    """Atomically: a temporary file in the same directory, then os.replace."""
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- The measurement ----------------------------------------------------------


class _Problem:
    """One LSTM float32 shape, its forward and backward callable straight on
    _core (the arguments checked once, here), so that the first-use hook is
    not re-entered and the timings hold no Python checks."""

    def __init__(self, N: int, H: int, T: int, seed: int = 0):
        import numpy as np

        from . import _core
        from ._checks import check_forward

        rng = np.random.default_rng(seed)
        f32 = np.float32
        C, G = H, 4
        s = 1.0 / math.sqrt(H)
        def randn(*shape, scale=1.0):
            return rng.standard_normal(shape, dtype=f32) * f32(scale)

        x = randn(T, N, C)
        h0, c0 = randn(N, H, scale=0.1), randn(N, H, scale=0.1)
        w_ih, w_hh = randn(G * H, C, scale=s), randn(G * H, H, scale=s)
        b = randn(G * H, scale=0.1)
        a = check_forward("lstm", x, h0, c0, w_ih, w_hh, b, b.copy(), None, False, None, training=True)
        self.a, self.core, self.shape = a, _core, (N, H, T)
        y, h_n, c_n, arrays = self.forward()
        self.dy, self.dh_n, self.dc_n = randn(*y.shape), randn(*h_n.shape), randn(*c_n.shape)
        self.arrays = arrays

    def forward(self):
        a = self.a
        return self.core.lstm_forward(a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.lengths, a.reverse, True)

    def backward(self):
        a, r = self.a, self.arrays
        return self.core.lstm_backward(
            self.dy, self.dh_n, self.dc_n, a.x, a.h0, a.c0, a.w_ih, a.w_hh, a.lengths, a.reverse,
            r["h"], r["c"], r["tanh_c"], r["gates"],
        )

    def run(self, kernel: str) -> float:
        fn = self.forward if kernel == "forward" else self.backward
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def tune(budget: float = QUICK_BUDGET, shapes=SHAPES_QUICK, *, log=None) -> dict:
    """Measure the candidates of every parameter, coordinate-wise (one at a
    time, the others at their best so far), on ``shapes`` at the current
    thread count, within about ``budget`` seconds; set the winners and return
    the cache document (parameters, measurements). Parameters the budget does
    not reach keep their cpuid defaults (the document says which)."""
    from . import _core
    from ._version import __version__

    t_start = time.perf_counter()
    default = dict(_core.cpuid_params())
    best = dict(default)
    _core.set_kernel_params(best, "tuning")
    cands_of = {name: candidates(name, default[name]) for name in PARAMS}
    calls = {k: sum(len(c) for n, c in cands_of.items() if _KERNEL[n] == k) for k in ("forward", "backward")}
    # The shapes in order, each built and warmed up once (pages, thread team:
    # that call also says what one costs), as long as two rounds of every
    # candidate on the shapes so far still fit the budget; the first always.
    problems, cost = [], {"forward": 0.0, "backward": 0.0}
    for shape in shapes:
        p = _Problem(*shape)
        c = {}
        for k in cost:
            p.run(k)
            c[k] = p.run(k)
        per_round = sum((cost[k] + c[k]) * calls[k] for k in cost)
        if problems and time.perf_counter() - t_start + 2 * per_round > budget:
            break
        problems.append(p)
        for k in cost:
            cost[k] += c[k]
    # As many rounds as fit the budget (2 to 7); where even 2 do not, the
    # parameters the budget does not reach keep their defaults.
    per_round = sum(cost[k] * calls[k] for k in cost)
    left = budget - (time.perf_counter() - t_start)
    # (A third more than the rounds themselves: the confirmations of winners,
    # and calls slower than the warm-up's.)
    rounds = max(2, min(7, int(left / max(1e-6, 1.35 * per_round))))
    measured = {}
    for name in PARAMS:
        kernel = _KERNEL[name]
        cands = cands_of[name]
        left = budget - (time.perf_counter() - t_start)
        if left < rounds * cost[kernel] * len(cands):
            measured[name] = {"skipped": "budget", "candidates": cands}
            if log:
                log(f"{name}: not tuned (budget), kept {best[name]}")
            continue
        # Round robin over the candidates, every shape in each round, the
        # order rotated each round, so that drift in the machine's load hits
        # every candidate alike. times[c][r][s]: candidate, round, shape.
        times = [[[math.inf] * len(problems) for _ in range(rounds)] for _ in cands]
        for r in range(rounds):
            for j in range(len(cands)):
                ci = (j + r) % len(cands)
                _core.set_kernel_params({**best, name: cands[ci]}, "tuning")
                for pi, p in enumerate(problems):
                    times[ci][r][pi] = p.run(kernel)
        # Each candidate against the value in use (the default) two ways, as
        # the geometric mean over shapes of the time ratio: of the minimum
        # over rounds, and the median over rounds of the ratio within a
        # round (paired, back to back). A candidate replaces the default only
        # if both say it is more than _MIN_GAIN faster: on a loaded machine a
        # single call varies by 20%.
        mins = [[min(times[ci][r][pi] for r in range(rounds)) for pi in range(len(problems))] for ci in range(len(cands))]
        ratio = [_gmean([t / t0 for t, t0 in zip(mins[ci], mins[0])]) for ci in range(len(cands))]
        paired = [
            _median([_gmean([t / t0 for t, t0 in zip(times[ci][r], times[0][r])]) for r in range(rounds)])
            for ci in range(len(cands))
        ]
        pick = min(range(len(cands)), key=lambda i: max(ratio[i], paired[i]))
        if max(ratio[pick], paired[pick]) > 1.0 - _MIN_GAIN:
            pick = 0
        # A winner is measured again, head to head with the default in
        # alternating order (ABBA), and kept only if it wins again by the same
        # two tests: with a few rounds, the best of five noisy candidates
        # beats the default by chance more often than not. No time for that
        # within the budget: the default stays.
        confirm = None
        if pick != 0:
            if budget - (time.perf_counter() - t_start) < 2 * rounds * cost[kernel]:
                confirm = {"skipped": "budget"}
                pick = 0
            else:
                pair = [[[0.0] * len(problems) for _ in range(rounds)] for _ in range(2)]
                for r in range(rounds):
                    for ci in ((0, 1) if r % 2 == 0 else (1, 0)):
                        _core.set_kernel_params({**best, name: cands[0 if ci == 0 else pick]}, "tuning")
                        for pi, p in enumerate(problems):
                            pair[ci][r][pi] = p.run(kernel)
                c_min = _gmean([min(pair[1][r][pi] for r in range(rounds)) / min(pair[0][r][pi] for r in range(rounds))
                                for pi in range(len(problems))])
                c_paired = _median([_gmean([t / t0 for t, t0 in zip(pair[1][r], pair[0][r])]) for r in range(rounds)])
                confirm = {"ratio_of_min": round(c_min, 4), "paired_ratio_median": round(c_paired, 4)}
                if max(c_min, c_paired) > 1.0 - _MIN_GAIN:
                    pick = 0
        best[name] = cands[pick]
        _core.set_kernel_params(best, "tuning")
        measured[name] = {
            "kernel": kernel,
            "rounds": rounds,
            "candidates": cands,
            "min_seconds": [[round(t, 6) for t in ts] for ts in mins],
            "ratio_of_min": [round(x, 4) for x in ratio],
            "paired_ratio_median": [round(x, 4) for x in paired],
            "confirm": confirm,
            "chosen": cands[pick],
            # Of the value chosen, as the second (unbiased) measurement says; 1.0: the default.
            "speedup": round(1.0 / max(confirm["ratio_of_min"], confirm["paired_ratio_median"]), 4) if pick else 1.0,
        }
        if log:
            log(f"{name}: {cands[pick]} (cpuid {default[name]}), {measured[name]['speedup']:.3f}x, {rounds} rounds")
    return {
        "format": _FORMAT,
        "rnnkit": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": _core.get_num_threads(),
        "key": cpu_key(),
        "params": best,
        "cpuid_params": default,
        "shapes": [{"cell": "lstm", "dtype": "float32", "N": n, "C": h, "H": h, "T": t}
                   for n, h, t in (p.shape for p in problems)],
        "budget_s": budget,
        "elapsed_s": round(time.perf_counter() - t_start, 3),
        "measurements": measured,
    }


def _gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


# --- First use ----------------------------------------------------------------

# True until the parameters for this process (and ISA) are settled: the native
# entry points test this one attribute and call first_use() while it holds.
pending = True
_lock = threading.RLock()
_busy = False
_user_set = False  # rnnkit.set_kernel_params was called: never overridden


def enabled() -> bool:
    return os.environ.get("RNNKIT_TUNE", "1").strip().lower() not in ("0", "false", "no", "off")


def apply(doc: dict, path: str) -> None:
    from . import _core

    _core.set_kernel_params(doc["params"], f"tuned: {path}")


def first_use(*, tune_if_missing: bool = True) -> None:
    """Settle the parameters once: RNNKIT_TUNE=0 keeps the cpuid defaults and
    touches no file; else the cached file for this CPU model and ISA is
    loaded, or (tune_if_missing) the short autotune runs and writes it.
    A file that cannot be written costs a warning, never the call."""
    global pending
    with _lock:
        if not pending or _busy:
            return
        from . import _core

        if _user_set or not enabled():
            if not _user_set:
                _core.set_kernel_params(_core.cpuid_params(), "cpuid (RNNKIT_TUNE=0)")
            pending = False
            return
        key = cpu_key()
        path = cache_path(key)
        doc = read_cache(path, key)
        if doc is not None:
            apply(doc, path)
            pending = False
            return
        if not tune_if_missing:
            return
        _busy_set(True)
        try:
            doc = tune(QUICK_BUDGET, SHAPES_QUICK)
        except BaseException:
            _core.set_kernel_params(_core.cpuid_params(), "cpuid")
            raise
        finally:
            _busy_set(False)
        pending = False
        try:
            write_cache(path, doc)
        except OSError as err:
            import warnings

            _core.set_kernel_params(doc["params"], "tuned (not cached)")
            warnings.warn(f"rnnkit: the kernel parameters tuned could not be cached in {path}: {err}",
                          RuntimeWarning, stacklevel=3)
            return
        apply(doc, path)


def isa_changed() -> None:
    """After set_isa: the next native call settles the parameters of that ISA."""
    global pending
    with _lock:
        if not _user_set:
            pending = True


def user_set(params: dict) -> None:
    """rnnkit.set_kernel_params: these parameters, and no tune or file over them."""
    global pending, _user_set
    from . import _core

    with _lock:
        _core.set_kernel_params(params, "set")
        _user_set, pending = True, False


def reset_state() -> None:
    """Back to the state of a fresh process (tests): cpuid defaults, hook armed."""
    global pending, _user_set
    from . import _core

    with _lock:
        _core.set_kernel_params(_core.cpuid_params(), "cpuid")
        pending, _user_set = True, False


def run_and_cache(budget: float, *, quick: bool = False, log=None) -> dict:
    """rnnkit.tune / `rnnkit tune`: tune now (the full shape set unless
    quick), use the result and write the cache file; returns its document."""
    global pending, _user_set
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise TypeError(f"budget must be a number of seconds, got {type(budget).__name__}")
    if not (budget > 0) or not math.isfinite(budget):
        raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
    if not enabled():
        raise RuntimeError("RNNKIT_TUNE=0 is set: the kernels keep their cpuid defaults and no "
                           "tune file is read or written; unset it to tune")
    from . import _core

    with _lock:
        key = cpu_key()
        path = cache_path(key)
        _busy_set(True)
        try:
            doc = tune(budget, SHAPES_QUICK if quick else SHAPES_FULL, log=log)
        except BaseException:
            _core.set_kernel_params(_core.cpuid_params(), "cpuid")
            raise
        finally:
            _busy_set(False)
        write_cache(path, doc)
        apply(doc, path)
        pending, _user_set = False, False
        doc["path"] = path
        return doc


def _busy_set(on: bool) -> None:
    global _busy
    _busy = on


def remove_cache() -> str | None:
    """`rnnkit tune --reset`: delete this CPU model and ISA's file; the path
    removed, or None if there was none. The parameters in use go back to the
    cpuid defaults, and the next native call tunes afresh."""
    global pending
    from . import _core

    with _lock:
        path = cache_path()
        try:
            os.unlink(path)
        except FileNotFoundError:
            path = None
        if not _user_set:
            _core.set_kernel_params(_core.cpuid_params(), "cpuid")
            pending = True
        return path


def describe_source() -> str:
    """Where the parameters in use come from, for show_config."""
    from . import _core

    src = _core.kernel_params_source()
    if src == "cpuid" and pending:
        if not enabled():
            return "cpuid (RNNKIT_TUNE=0)"
        return f"cpuid (the first native call loads or writes {cache_path()})"
    return src

