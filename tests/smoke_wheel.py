"""Smoke test of an installed rnnkit: run outside the source tree, with NumPy as
the only dependency, by cibuildwheel's test-command and by .ci/packaging-test.
Not a pytest file (no test_ prefix): the suite checks all of this in depth.

Every cell, forward and backward, float32 and float64, on every ISA this CPU
runs, against rnnkit.reference. An ISA the CPU lacks must raise a clear error.

    python smoke_wheel.py [--no-compiler] [--vendored-openmp] [--quick] [--emulator CMD]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

# (cell, nonlinearity or None, G)
CELLS = [
    ("rnn", "tanh", 1),
    ("rnn", "relu", 1),
    ("lstm", None, 4),
    ("gru", None, 3),
    ("indrnn", "relu", 1),
    ("indrnn", "tanh", 1),
]
TOL = {np.float64: 1e-10, np.float32: 1e-5}
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++")


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    den = max(np.linalg.norm(b), 1e-3 * np.sqrt(b.size))
    return float(np.linalg.norm(a - b) / den)


def cell_args(cell, G, T, N, C, H, dtype, rng):
    def r(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(dtype)

    w_hh = r(H, s=0.5) if cell == "indrnn" else r(G * H, H, s=0.5 / np.sqrt(H))
    pos = [r(T, N, C), r(N, H)] + ([r(N, H)] if cell == "lstm" else [])
    pos += [r(G * H, C, s=0.5 / np.sqrt(C)), w_hh, r(G * H, s=0.3), r(G * H, s=0.3)]
    grads = [r(T, N, H), r(N, H)] + ([r(N, H)] if cell == "lstm" else [])
    return pos, grads


def forward_backward(mod, cell, nonlinearity, pos, grads, lengths):
    kw = {"lengths": lengths}
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    *outs, cache = getattr(mod, f"{cell}_forward")(*pos, **kw)
    back = getattr(mod, f"{cell}_backward")(*grads, cache)
    return list(outs) + list(back)


def check_cells(isa, threads, quick):
    """Native vs reference for every cell and dtype; returns the number of checks."""
    import rnnkit
    from rnnkit import functional as F
    from rnnkit import reference as R

    rnnkit.set_isa(isa)
    rnnkit.set_num_threads(threads)
    assert rnnkit.get_isa() == isa, (rnnkit.get_isa(), isa)
    rng = np.random.default_rng(1234)
    # H = 19 and 37: not a multiple of any vector width; N large enough that
    # 2 threads really split the hidden units at H = 37.
    shapes = [(3, 2, 5, 19)] if quick else [(1, 1, 3, 19), (6, 3, 5, 19), (5, 24, 16, 37)]
    n = 0
    for T, N, C, H in shapes:
        lengths = rng.integers(0, T + 1, size=N)
        lengths[0] = T
        if N > 1:
            lengths[-1] = 0
        for dtype in (np.float32, np.float64):
            for cell, nonlinearity, G in CELLS:
                pos, grads = cell_args(cell, G, T, N, C, H, dtype, rng)
                got = forward_backward(F, cell, nonlinearity, pos, grads, lengths)
                want = forward_backward(R, cell, nonlinearity, pos, grads, lengths)
                for i, (a, b) in enumerate(zip(got, want)):
                    assert a.dtype == dtype, f"{cell} output {i}: dtype {a.dtype}, want {dtype}"
                    err = rel_err(a, b)
                    assert err <= TOL[dtype], (
                        f"isa={isa} threads={threads} {cell}/{nonlinearity} "
                        f"{np.dtype(dtype).name} T,N,C,H={T, N, C, H}: output {i} "
                        f"rel err {err:.3g} > {TOL[dtype]}"
                    )
                n += 1
    return n


def check_refused_isas(emulator):
    """An ISA this CPU lacks: set_isa raises ValueError, RNNKIT_ISA fails the
    import of rnnkit.functional with the same message; no crash. Under a user-mode
    emulator (qemu-x86_64 -cpu ...) the child must run in it too: the emulator
    does not follow exec."""
    import rnnkit
    from rnnkit import _core

    supported = list(_core.supported_isas())
    missing = [i for i in ("avx512", "avx2") if i not in supported]
    if not rnnkit.cpu_features()["x86_64"]:
        missing = []  # not in this build at all: 'unknown ISA', checked below
    for isa in missing + ["avx1024"]:
        try:
            rnnkit.set_isa(isa)
        except ValueError as e:
            msg = str(e)
        else:
            raise AssertionError(f"set_isa({isa!r}) did not raise")
        want = "unknown ISA" if isa == "avx1024" else "is not supported by this CPU"
        assert want in msg, msg
        code = "import rnnkit.functional"
        res = subprocess.run(
            emulator + [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            env=dict(os.environ, RNNKIT_ISA=isa),
            timeout=600,
        )
        assert res.returncode == 1 and f"RNNKIT_ISA={isa}: " in res.stderr, (
            f"RNNKIT_ISA={isa}: exit {res.returncode}\n{res.stderr[-2000:]}"
        )
        print(f"  RNNKIT_ISA={isa}: {res.stderr.strip().splitlines()[-1]}")
    return missing


def openmp_libraries():
    """The OpenMP runtimes mapped into this process."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libgomp" in line or "libomp" in line}
    return sorted(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--no-compiler", action="store_true", help="fail if a C or C++ compiler is on PATH"
    )
    ap.add_argument(
        "--vendored-openmp",
        action="store_true",
        help="fail unless the OpenMP runtime comes from rnnkit.libs (auditwheel)",
    )
    ap.add_argument("--quick", action="store_true", help="one small shape (slow emulators)")
    ap.add_argument(
        "--emulator",
        default="",
        help="command that runs this script, e.g. 'qemu-x86_64 -cpu Nehalem-v1', "
        "for the child processes",
    )
    opt = ap.parse_args()

    if opt.no_compiler:
        found = {c: shutil.which(c) for c in COMPILERS if shutil.which(c)}
        assert not found, f"a compiler is on PATH: {found}"
        print(f"no compiler on PATH ({', '.join(COMPILERS)}: none found)")

    import rnnkit

    here = os.path.dirname(os.path.abspath(__file__))
    pkg = os.path.dirname(os.path.abspath(rnnkit.__file__))
    assert not pkg.startswith(os.path.dirname(here) + os.sep + "python"), (
        f"rnnkit was imported from the source tree ({pkg}), not from an installed wheel"
    )
    print(f"rnnkit {rnnkit.__version__} from {pkg}")
    print(f"numpy {np.__version__} from {os.path.dirname(np.__file__)}")
    rnnkit.show_config()

    from rnnkit import _core

    isas = list(_core.supported_isas())
    env_isa = os.environ.get("RNNKIT_ISA")
    if env_isa:
        assert rnnkit.get_isa() == env_isa.lower(), (rnnkit.get_isa(), env_isa)
        isas = [env_isa.lower()]
    total = 0
    for isa in isas:
        for threads in (1, 2):
            n = check_cells(isa, threads, opt.quick)
            total += n
            print(
                f"  isa={isa:<6} threads={threads}: {n} cell/dtype/shape cases agree with "
                f"rnnkit.reference (every output and gradient)"
            )
    missing = check_refused_isas(opt.emulator.split())

    gomp = openmp_libraries()
    print("OpenMP runtime(s) mapped:", ", ".join(gomp) or "none")
    if opt.vendored_openmp:
        vendored = [p for p in gomp if os.sep + "rnnkit.libs" + os.sep in p]
        assert vendored and len(gomp) == 1, f"want only rnnkit.libs/libgomp-*, got {gomp}"
    print(
        f"smoke ok: {total} cases on ISA {', '.join(isas)}; "
        f"refused as unsupported: {', '.join(missing) or 'none (this CPU has them all)'}"
    )


if __name__ == "__main__":
    main()
