"""Fork safety: a child process never hangs, whatever threads the parent used.
GCC's libgomp cannot start threads in a child forked after the parent ran a
team, so such a child runs its calls on 1 thread (bitwise the same results),
warns once, and set_num_threads there says why. Spawned children keep threads.
Not here: determinism across thread counts in one process (test_threads.py).

Each case runs in a fresh interpreter (``python test_fork.py --child METHOD``)
under a timeout, so that a regression fails instead of hanging CI: the parent
makes a 2-thread call, starts a worker by METHOD that sets 2 threads and runs
the same call, and both results must be bitwise equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import rnnkit

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
# Children import the rnnkit this process imported (the source tree in a dev
# setup, site-packages after pip install).
PKG = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
# A shape that really starts a 2-thread team (>= ~100k flops per step).
SHAPE = (20, 64, 128, 128)
TIMEOUT_S = 120


def _work():
    """Forward + backward of an LSTM at 2 threads: digests, team size, warnings."""
    import hashlib
    import warnings

    import numpy as np

    import rnnkit
    from rnnkit import _core

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rnnkit.set_num_threads(2)
        T, N, C, H = SHAPE
        rng = np.random.default_rng(0)
        layer = rnnkit.LSTM(C, H, seed=0, backend="native")
        x = rng.standard_normal((T, N, C)).astype(np.float32)
        y, _, tape = layer.forward(x)
        team = _core.counters()["last_team_size"]
        dx, _ = layer.backward(tape, np.ones_like(y))
    digest = hashlib.sha256()
    for a in (y, dx, *(layer.grads[k] for k in sorted(layer.grads))):
        digest.update(np.ascontiguousarray(a).tobytes())
    return {
        "digest": digest.hexdigest(),
        "team": int(team),
        "limited": bool(_core.threads_limited_by_fork()),
        "threads": int(rnnkit.get_num_threads()),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
    }


def _os_fork():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running atexit handlers
        try:
            os.write(w, json.dumps(_work()).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(b"".join(chunks))


def _child(method):
    import multiprocessing as mp
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
    parent = _work()
    assert parent["team"] == 2, parent  # the parent really ran a team of 2
    if method == "os.fork":
        child = _os_fork()
    elif method == "executor":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as ex:
            child = ex.submit(_work).result(timeout=TIMEOUT_S / 2)
    elif method == "executor-default":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1) as ex:
            child = ex.submit(_work).result(timeout=TIMEOUT_S / 2)
    else:
        with mp.get_context(method).Pool(1) as pool:
            child = pool.apply_async(_work).get(timeout=TIMEOUT_S / 2)
    print(json.dumps({"parent": parent, "child": child}))


METHODS = ["fork", "spawn", "forkserver", "os.fork", "executor", "executor-default"]
FORKED = {"fork", "os.fork", "executor"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("method", METHODS)
def test_child_after_multithreaded_parent_never_hangs(method):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG, ROOT]))
    env.pop("OMP_NUM_THREADS", None)
    try:
        out = subprocess.run(
            [sys.executable, HERE, "--child", method],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{method}: the parent or its child hung ({TIMEOUT_S} s): {err.stderr}")
    assert out.returncode == 0, f"{method}: rc={out.returncode}\n{out.stderr[-3000:]}"
    res = json.loads(out.stdout.strip().splitlines()[-1])
    parent, child = res["parent"], res["child"]
    # Bitwise the same, whatever thread count the child could use.
    assert child["digest"] == parent["digest"], res
    assert not parent["limited"] and parent["warnings"] == [], res
    if method in FORKED or (method == "executor-default" and child["limited"]):
        # Forked after a team: 1 thread, and it says so once (from set_num_threads).
        assert child["limited"] and child["team"] == 1 and child["threads"] == 1, res
        assert len(child["warnings"]) == 1, res
        assert "forked" in child["warnings"][0] and "libgomp" in child["warnings"][0], res
    else:
        # A fresh interpreter keeps its threads.
        assert not child["limited"] and child["team"] == 2 and child["warnings"] == [], res


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_warns_once_at_its_first_call():
    """A child that does not call set_num_threads is told at its first native
    call, once; the flag survives into the child's own children."""
    code = r"""
import json, os, warnings
import numpy as np
import rnnkit
from rnnkit import functional as F
warnings.simplefilter("ignore", DeprecationWarning)
rnnkit.set_num_threads(2)
x = np.ones((20, 64, 128), np.float32)
layer = rnnkit.GRU(128, 128, seed=0, backend="native")
ref = layer(x)[0]
pid = os.fork()
if pid == 0:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = layer(x)[0]
        b = layer(x)[0]
        pid2 = os.fork()
        if pid2 == 0:
            os._exit(0 if rnnkit._core.threads_limited_by_fork() else 3)
        _, st = os.waitpid(pid2, 0)
    n = sum(issubclass(m.category, RuntimeWarning) for m in w)
    ok = n == 1 and np.array_equal(a, ref) and np.array_equal(b, ref) and os.waitstatus_to_exitcode(st) == 0
    os._exit(0 if ok else 2)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st))
"""
    env = dict(os.environ, PYTHONPATH=PKG)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "0", (out.stdout, out.stderr[-3000:])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_forked_before_any_team_keeps_its_threads():
    """Forking before the parent ran a team leaves libgomp usable: no limit."""
    code = r"""
import os, rnnkit, numpy as np
rnnkit.set_num_threads(1)
layer = rnnkit.LSTM(128, 128, seed=0, backend="native")
x = np.ones((20, 64, 128), np.float32)
ref = layer(x)[0]
pid = os.fork()
if pid == 0:
    rnnkit.set_num_threads(2)
    y = layer(x)[0]
    ok = (not rnnkit._core.threads_limited_by_fork()) and rnnkit._core.counters()["last_team_size"] == 2
    os._exit(0 if ok and np.array_equal(y, ref) else 2)
_, st = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(st))
"""
    env = dict(os.environ, PYTHONPATH=PKG)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT_S, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "0", (out.stdout, out.stderr[-3000:])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        sys.exit("usage: test_fork.py --child METHOD")
