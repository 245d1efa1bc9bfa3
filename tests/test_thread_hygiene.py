"""Thread hygiene: rnnkit's OpenMP workers share a process with NumPy's
OpenBLAS and PyTorch's OpenMP. No crash, no growing pool, no worker that spins
after a call returns, and threadpoolctl sees and limits rnnkit's pool.
Not here: determinism across thread counts (test_threads.py), speed (bench/).

Each check runs in a fresh interpreter (``python test_thread_hygiene.py
--child NAME``): OpenMP reads its wait policy once, when it loads, and other
tests change rnnkit's thread count for the rest of their process.

Run as a script, it prints the measurements that docs/install.md quotes, one
fresh process per libgomp wait policy, interleaved over rounds:

    python tests/test_thread_hygiene.py --measure [--rounds 3]
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import pytest

HERE = os.path.abspath(__file__)


# --- Measurements, used by the children -------------------------------------


def thread_cpu_ns() -> dict[int, int]:
    """CPU time (user + system, ns) of every thread of this process, by tid.
    Linux encodes a thread's CPU clock as ((~tid) << 3) | CPUCLOCK_SCHED(2) |
    CPUCLOCK_PERTHREAD(4); a thread of the same process may read it."""
    out = {}
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        try:
            out[tid] = time.clock_gettime_ns(((~tid) << 3) | 6)
        except OSError:  # the thread ended meanwhile
            pass
    return out


def lstm_args(T, N, C, H, dtype="float32", seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)

    def r(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(dtype)

    return (
        r(T, N, C),
        r(N, H),
        r(N, H),
        r(4 * H, C, s=0.5 / np.sqrt(C)),
        r(4 * H, H, s=0.5 / np.sqrt(H)),
        r(4 * H, s=0.1),
        r(4 * H, s=0.1),
    )


def team_size():
    from rnnkit import _core

    return _core.counters().get("last_team_size")


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


# A shape that really runs 2 threads (the core drops threads that would get
# under ~100k flops per step) and takes a few ms.
BUSY = (50, 64, 256, 256)


def spin_after_calls(repeats=5, idle_s=0.2):
    """CPU time, ms, that rnnkit's workers burn in the idle_s after each call."""
    import rnnkit
    from rnnkit import functional as F

    rnnkit.set_num_threads(2)
    args = lstm_args(*BUSY)
    before = thread_cpu_ns()
    F.lstm_forward(*args, training=False)
    after = thread_cpu_ns()
    main = os.getpid()
    # rnnkit's workers: the threads other than this one that ran during the call.
    workers = [t for t in after if t != main and after[t] > before.get(t, 0)]
    spent = []
    for _ in range(repeats):
        y, h_n, c_n, cache = F.lstm_forward(*args)
        F.lstm_backward(y, h_n, c_n, cache)
        a = thread_cpu_ns()
        time.sleep(idle_s)
        z = thread_cpu_ns()
        spent.append(sum(z.get(t, 0) - a.get(t, 0) for t in workers) / 1e6)
    return {"workers": len(workers), "team": team_size(), "worker_cpu_ms": spent}


def numpy_after_rnnkit(pairs=21, blas_threads=1, loop_matmuls=40):
    """A NumPy loop timed right after an rnnkit call at 2 threads, and the same
    loop without the call. Both arms start with the same 30 ms pause (the
    scheduler favours a thread that has slept; only the call differs), the
    arms alternate which goes first, and the ratio is the median of the pairs'
    ratios: neighbours in time share the machine's background load. The call
    is short (~1 ms, T=8): on a busy machine the scheduler charges any CPU used
    just before the loop against it, and that bias must stay small next to a
    spinning pool's several ms."""
    import numpy as np
    import rnnkit
    from rnnkit import functional as F
    from threadpoolctl import threadpool_limits

    rnnkit.set_num_threads(2)
    args = lstm_args(8, *BUSY[1:])
    rng = np.random.default_rng(1)
    a = rng.standard_normal((192, 192))
    b = rng.standard_normal((192, 192))

    def loop():
        acc = 0.0
        for _ in range(loop_matmuls):
            acc += float(np.tanh(a @ b).sum())
        return acc

    def arm(call):
        time.sleep(0.03)
        if call:
            F.lstm_forward(*args, training=False)
        t0 = time.perf_counter()
        loop()
        return time.perf_counter() - t0

    with threadpool_limits(blas_threads, user_api="blas"):
        loop()
        F.lstm_forward(*args, training=False)
        after, plain = [], []
        for i in range(pairs):
            if i % 2:
                after.append(arm(True))
                plain.append(arm(False))
            else:
                plain.append(arm(False))
                after.append(arm(True))
    ratios = [x / y for x, y in zip(after, plain)]
    return {
        "after_ms": statistics.median(after) * 1e3,
        "plain_ms": statistics.median(plain) * 1e3,
        "median_ratio": statistics.median(ratios),
    }


def rnnkit_speed(repeats=5, min_time=0.03):
    """rnnkit's own time at 2 threads: inference and training (forward + backward)."""
    import numpy as np
    import rnnkit
    from rnnkit import functional as F

    rnnkit.set_num_threads(2)

    def timed(fn):
        samples = []
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                if time.perf_counter() - t0 >= min_time:
                    break
            samples.append((time.perf_counter() - t0) / n)
        return statistics.median(samples) * 1e3

    out = {}
    for T, N, C, H in [(1000, 1, 64, 64), (100, 16, 128, 128), (100, 64, 256, 256)]:
        args = lstm_args(T, N, C, H)

        def train(args=args):
            y, h_n, c_n, cache = F.lstm_forward(*args)
            F.lstm_backward(np.ones_like(y), h_n, c_n, cache)

        inference = timed(lambda args=args: F.lstm_forward(*args, training=False))
        out[f"T={T} N={N} H={H}"] = {
            "inference_ms": inference,
            "train_ms": timed(train),
            "team": team_size(),
        }
    return out


# --- Children: each runs in a fresh interpreter and prints one JSON line ------


def child_spin():
    return spin_after_calls()


def child_numpy_after():
    return numpy_after_rnnkit()


def child_threadpoolctl():
    import rnnkit
    from rnnkit import functional as F
    from threadpoolctl import threadpool_info, threadpool_limits

    args = lstm_args(5, 24, 64, 129)
    F.lstm_forward(*args, training=False)
    full = rnnkit.get_num_threads()
    with open("/proc/self/maps") as f:
        mapped = sorted({ln.split()[-1] for ln in f if "libgomp" in ln})
    info = [i for i in threadpool_info() if i["user_api"] == "openmp"]
    with threadpool_limits(1, user_api="openmp"):
        limited = rnnkit.get_num_threads()
        F.lstm_forward(*args, training=False)
        limited_team = team_size()
    restored = rnnkit.get_num_threads()
    F.lstm_forward(*args, training=False)
    return {
        "mapped": mapped,
        "openmp_pools": info,
        "full": full,
        "limited": limited,
        "limited_team": limited_team,
        "restored": restored,
        "restored_team": team_size(),
    }


def child_alternate():
    """torch matmul, NumPy matmul and an rnnkit LSTM in turn, results checked;
    the import order comes from RNNKIT_TEST_ORDER (torch-first or rnnkit-first)."""
    import numpy as np

    blas_threads = set(thread_cpu_ns())  # OpenBLAS starts its pool when NumPy loads
    first, second = ("torch", "rnnkit")
    if os.environ.get("RNNKIT_TEST_ORDER") != "torch-first":
        first, second = second, first
    importlib.import_module(first)
    importlib.import_module(second)
    import rnnkit
    import torch
    from rnnkit import functional as F
    from rnnkit import reference as R

    rnnkit.set_num_threads(2)
    torch.set_num_threads(2)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((256, 256))
    b = rng.standard_normal((256, 256))
    want_mm = a @ b
    args = lstm_args(20, 32, 64, 96, dtype="float64")
    want_y = R.lstm_forward(*args, training=False)[0]
    counts, teams = [], set()
    for _ in range(15):
        got = torch.from_numpy(a) @ torch.from_numpy(b)
        assert np.allclose(got.numpy(), want_mm, rtol=1e-10, atol=1e-10)
        assert np.allclose(a @ b, want_mm, rtol=1e-10, atol=1e-10)
        y = F.lstm_forward(*args, training=False)[0]
        teams.add(team_size())
        err = float(np.abs(y - want_y).max())
        assert err < 1e-10, err
        counts.append(len(os.listdir("/proc/self/task")))
    # Which threads are rnnkit's workers: those that run during an rnnkit call
    # once every pool has gone idle (torch's, if rnnkit shares its libgomp).
    main = os.getpid()
    time.sleep(0.3)
    before = thread_cpu_ns()
    F.lstm_forward(*args, training=False)
    after = thread_cpu_ns()
    workers = {t for t in after if t != main and after[t] > before.get(t, 0)}
    # Then the CPU each group burns in the 200 ms after that call. OpenBLAS's
    # threads (started when NumPy loaded) poll with sched_yield for ~0.1 s after
    # a call by design; they are reported, not judged.
    before = thread_cpu_ns()
    time.sleep(0.2)
    after = thread_cpu_ns()

    def idle_ms(keep):
        return sum(after[t] - before.get(t, 0) for t in after if t != main and keep(t)) / 1e6

    with open("/proc/self/maps") as f:
        mapped = sorted({ln.split()[-1] for ln in f if "libgomp" in ln})
    return {
        "threads": counts,
        "teams": sorted(t for t in teams if t is not None),
        "rnnkit_workers": len(workers),
        "rnnkit_idle_cpu_ms": idle_ms(lambda t: t in workers),
        "other_idle_cpu_ms": idle_ms(lambda t: t not in workers and t not in blas_threads),
        "openblas_idle_cpu_ms": idle_ms(lambda t: t in blas_threads),
        "mapped": mapped,
        "torch": torch.__version__,
    }


CHILDREN = {
    "spin": child_spin,
    "numpy_after": child_numpy_after,
    "threadpoolctl": child_threadpoolctl,
    "alternate": child_alternate,
    "speed": rnnkit_speed,
}


def run_child(name, timeout=120, **env):
    full = dict(os.environ)
    full.update(env)
    res = subprocess.run(
        [sys.executable, HERE, "--child", name],
        check=False,
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )
    assert res.returncode == 0, f"child {name} exited {res.returncode}:\n{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- Tests ---------------------------------------------------------------------

needs_two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs")
needs_linux = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc")


@needs_linux
@needs_two_cpus
def test_workers_do_not_spin_after_a_call():
    """Direct measurement of spinning: the CPU time rnnkit's worker threads
    use in the 200 ms after a call returns. A spinning worker burns up to
    all of it (libgomp's own default spins ~300k rounds, several ms)."""
    out = run_child("spin")
    assert out["workers"] >= 1 and out["team"] == 2, out
    spent = out["worker_cpu_ms"]
    assert statistics.median(spent) < 1.0 and max(spent) < 5.0, (
        f"rnnkit's workers used {spent} ms of CPU in 200 ms idle windows after calls"
    )


@needs_linux
@needs_two_cpus
def test_spin_measurement_sees_a_spinning_pool():
    """The check above can fail: with OMP_WAIT_POLICY=active (the user's
    choice, which rnnkit leaves alone) the same measurement sees the spin."""
    out = run_child("spin", OMP_WAIT_POLICY="active")
    assert statistics.median(out["worker_cpu_ms"]) > 20.0, out


@needs_linux
@needs_two_cpus
def test_numpy_loop_right_after_a_call_is_not_slower():
    """The issue's criterion: a NumPy loop (BLAS on 1 thread) run right after
    an rnnkit call at 2 threads is at most 10% slower than the same loop
    without the call. Paired and repeated; a busy machine gets two more tries.
    (Timing is the weak check; test_workers_do_not_spin_after_a_call is the
    direct one.)"""
    pytest.importorskip("threadpoolctl")
    ratios = []
    for _ in range(3):
        out = run_child("numpy_after")
        ratios.append(out["median_ratio"])
        if out["median_ratio"] <= 1.10:
            break
    assert min(ratios) <= 1.10, f"NumPy loop after an rnnkit call / after a pause: {ratios}"


@needs_linux
def test_threadpoolctl_sees_and_limits_rnnkit():
    pytest.importorskip("threadpoolctl")
    out = run_child("threadpoolctl")
    files = [os.path.realpath(p["filepath"]) for p in out["openmp_pools"]]
    for path in out["mapped"]:
        assert os.path.realpath(path) in files, (path, out["openmp_pools"])
    wheel_gomp = [p for p in out["mapped"] if f"{os.sep}rnnkit.libs{os.sep}" in p]
    if wheel_gomp:  # an auditwheel-repaired install: its libgomp, under a hashed name
        assert any(p["prefix"] == "libgomp" for p in out["openmp_pools"]), out
    assert out["limited"] == 1 and out["limited_team"] in (1, None), out
    assert out["restored"] == out["full"], out
    if usable_cpus() >= 2:
        assert out["full"] >= 2 and out["restored_team"] in (None, *range(2, out["full"] + 1)), out


@needs_linux
@pytest.mark.parametrize("order", ["rnnkit-first", "torch-first"])
def test_alternating_with_torch_and_numpy(order):
    pytest.importorskip("torch")
    out = run_child("alternate", timeout=300, RNNKIT_TEST_ORDER=order)
    counts = out["threads"]
    # The pools are made once: the thread count is flat after the first round,
    # and bounded by one pool per runtime (OpenBLAS, torch's, rnnkit's).
    assert counts[1:] == [counts[1]] * (len(counts) - 1), counts
    assert counts[-1] <= 8 + 3 * (os.cpu_count() or 1), counts
    if usable_cpus() >= 2:
        assert out["teams"] == [2], out
    # rnnkit's workers do not spin after its call. Where torch loaded libgomp
    # first, rnnkit may share torch's runtime and so its wait policy
    # (docs/install.md): then bounded (libgomp's default spin), not zero.
    assert out["rnnkit_workers"] >= 1, out
    limit = 1.0 if order == "rnnkit-first" else 20.0
    assert out["rnnkit_idle_cpu_ms"] < limit, out


# --- Script ----------------------------------------------------------------------

SETTINGS = {
    "libgomp default (GOMP_SPINCOUNT=300000)": {"GOMP_SPINCOUNT": "300000"},
    "rnnkit default": {},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}


def measure(rounds):
    """Every setting in a fresh process, interleaved, `rounds` times; medians."""
    keep = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    base = {k: v for k, v in os.environ.items() if k not in keep}
    rows = {name: [] for name in SETTINGS}
    for r in range(rounds):
        for name, env in SETTINGS.items():
            load = os.getloadavg()[0]
            row = {
                "load": load,
                "spin": run_child_env("spin", base, env),
                "numpy1": run_child_env("numpy_after", base, env),
            }
            row["speed"] = run_child_env("speed", base, env)
            rows[name].append(row)
            print(f"round {r + 1} load {load:.1f}: {name}: done", file=sys.stderr, flush=True)
    med = statistics.median
    print(
        f"{usable_cpus()} CPUs, rnnkit at 2 threads, NumPy's BLAS at 1; "
        f"median over {rounds} rounds (each a fresh process)"
    )
    shapes = list(rows["rnnkit default"][0]["speed"])
    head = ["setting", "worker CPU ms / 200 ms idle", "NumPy loop after/pause"]
    head += [f"{s} inf / train ms" for s in shapes]
    print(" | ".join(head))
    for name, rs in rows.items():
        cells = [
            name,
            f"{med(med(r['spin']['worker_cpu_ms']) for r in rs):.2f}",
            f"{med(r['numpy1']['median_ratio'] for r in rs):.3f}",
        ]
        for s in shapes:
            cells.append(
                f"{med(r['speed'][s]['inference_ms'] for r in rs):.2f} / "
                f"{med(r['speed'][s]['train_ms'] for r in rs):.2f}"
            )
        print(" | ".join(cells))
    print(
        "load average during the rounds:",
        " ".join(f"{r['load']:.1f}" for rs in rows.values() for r in rs),
    )
    return rows


def run_child_env(name, base, env):
    full = dict(base)
    full.update(env)
    res = subprocess.run(
        [sys.executable, HERE, "--child", name],
        check=False,
        capture_output=True,
        text=True,
        env=full,
        timeout=600,
    )
    if res.returncode != 0:
        raise SystemExit(f"child {name} {env} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="rnnkit thread-hygiene measurements")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write every sample here")
    opt = ap.parse_args()
    if opt.child:
        print(json.dumps(CHILDREN[opt.child]()))
    elif opt.measure:
        rows = measure(opt.rounds)
        if opt.json:
            with open(opt.json, "w") as f:
                json.dump(rows, f, indent=1)
    else:
        ap.print_help()
