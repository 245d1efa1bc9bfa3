"""How the ISA builds were compiled, as a wheel needs them: the scalar
fallback for the x86-64 baseline (show_config says so), and an ISA this CPU
lacks refused with a clear error. Not here: the kernels' numbers (the
parity tests, per ISA) or emulated older CPUs (.ci/packaging-test, qemu)."""

from __future__ import annotations

import io
import os
import platform
import re
import subprocess
import sys

import pytest

import rnnkit
from rnnkit import _core

X86 = platform.machine() in ("x86_64", "AMD64")


def test_show_config_states_the_scalar_target():
    buf = io.StringIO()
    rnnkit.show_config(file=buf)
    m = re.search(r"^scalar_target\s+: (.+)$", buf.getvalue(), re.M)
    assert m, buf.getvalue()
    assert m.group(1) == _core.build_info()["scalar_target"]


@pytest.mark.skipif(not X86, reason="x86-64 only")
def test_scalar_kernels_are_built_for_the_x86_64_baseline():
    target = _core.build_info()["scalar_target"]
    assert target == "x86-64 baseline (SSE2)", (
        f"the scalar kernels were built for {target!r}: they would fault on older CPUs "
        "(RNNKIT_NATIVE=ON, or -march in CXXFLAGS? wheels must not use either)"
    )


def _python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=120,
    )


@pytest.mark.parametrize("name", ["avx512", "avx2", "scalar"])
def test_rnnkit_isa_runs_that_isa_or_refuses_it_clearly(name):
    """RNNKIT_ISA=<name>: the kernels of that ISA agree with the reference on an
    LSTM forward and backward; on a CPU (or build) without it, a clear
    ImportError from rnnkit.functional and a working NumPy reference."""
    code = (
        "import numpy as np, rnnkit\n"
        "from rnnkit import reference as R\n"
        "rng = np.random.default_rng(0)\n"
        "T, N, C, H = 3, 5, 7, 19\n"
        "r = lambda *s: rng.standard_normal(s) * 0.3\n"
        "args = (r(T, N, C), r(N, H), r(N, H), r(4 * H, C), r(4 * H, H), r(4 * H), r(4 * H))\n"
        "dy, dh, dc = r(T, N, H), r(N, H), r(N, H)\n"
        "try:\n"
        "    from rnnkit import functional as F\n"
        "except ImportError as e:\n"
        "    R.lstm_forward(*args)\n"
        "    print('refused:', e)\n"
        "    raise SystemExit(0)\n"
        "print('isa:', rnnkit.get_isa())\n"
        "for mod in (F, R):\n"
        "    *out, cache = mod.lstm_forward(*args)\n"
        "    out += list(mod.lstm_backward(dy, dh, dc, cache))\n"
        "    if mod is F: got = out\n"
        "err = max(float(abs(a - b).max()) for a, b in zip(got, out))\n"
        "print('max diff:', err)\n"
        "assert err < 1e-10, err\n"
    )
    res = _python(code, RNNKIT_ISA=name)
    assert res.returncode == 0, res.stderr[-3000:]
    if name in _core.supported_isas():
        assert f"isa: {name}" in res.stdout, res.stdout
    else:
        assert f"refused: RNNKIT_ISA={name}: " in res.stdout, res.stdout
        assert ("is not supported by this CPU" in res.stdout) or ("unknown ISA" in res.stdout)
