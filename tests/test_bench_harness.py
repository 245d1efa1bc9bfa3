"""The harness behind ``rnnkit bench`` (rnnkit.bench), on tiny grids: the run end
to end and its JSON, the FLOP counts, the peer-agreement guard, interleaving,
thread settings and clean argument errors. It checks the harness, not speed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import rnnkit
from rnnkit import bench
from rnnkit.bench import _cli, _report, _run
from rnnkit.bench._grid import Shape
from rnnkit.bench._peers import FunctionalImpl, Impl, Runner

TINY = [
    "--grid",
    "5x2x8,4x1x3x5",
    "--threads",
    "1",
    "--repeat",
    "2",
    "--min-time",
    "0",
    "--ceiling",
    "32x32x32",
    "--no-progress",
]
SHAPE = Shape(4, 3, 5, 6)


def run_main(argv, capsys):
    rc = bench.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------
# FLOPs and the grid
# ---------------------------------------------------------------------------


def test_forward_flops_follow_the_formula():
    T, N, C, H = 100, 64, 1024, 1024
    assert bench.forward_flops("rnn", T, N, C, H) == 2 * T * N * 1 * H * (C + H)
    assert bench.forward_flops("lstm", T, N, C, H) == 2 * T * N * 4 * H * (C + H)
    assert bench.forward_flops("gru", T, N, C, H) == 2 * T * N * 3 * H * (C + H)
    assert bench.forward_flops("indrnn", T, N, C, H) == 2 * T * N * H * (C + 1)
    assert bench.forward_flops("lstm", 100, 64, 1024, 1024) == pytest.approx(107.4e9, rel=1e-3)
    with pytest.raises(ValueError, match="unknown cell"):
        bench.forward_flops("transformer", T, N, C, H)


@pytest.mark.parametrize("cell", bench.CELLS)
def test_training_counts_three_forwards(cell):
    s = Shape(7, 3, 5, 6)
    fwd = bench.forward_flops(cell, *s)
    assert bench.mode_flops(cell, "inference", s) == fwd
    assert bench.mode_flops(cell, "training-forward", s) == fwd
    assert bench.mode_flops(cell, "training-backward", s) == 2 * fwd
    assert bench.mode_flops(cell, "training", s) == 3 * fwd


def test_grid_is_the_issues_grid():
    assert {(s.T, s.N, s.C, s.H) for s in bench.GRID} == {
        (100, n, h, h) for n in (1, 16, 64) for h in (64, 256, 1024)
    }
    assert set(bench.QUICK_GRID) <= set(bench.GRID)


@pytest.mark.parametrize("cell", bench.CELLS)
def test_inputs_have_the_functional_layout(cell):
    T, N, C, H = 3, 2, 5, 4
    G = bench.GATES[cell]
    inp = bench.make_inputs(cell, T, N, C, H)
    assert inp["x"].shape == (T, N, C) and inp["dy"].shape == (T, N, H)
    assert inp["w_ih"].shape == (G * H, C)
    assert inp["w_hh"].shape == ((H,) if cell == "indrnn" else (G * H, H))
    assert all(a.dtype == np.float32 for a in inp.values())
    args = bench.functional_args(cell, inp)
    y = getattr(rnnkit.reference, f"{cell}_forward")(*args, training=False)[0]
    assert y.shape == (T, N, H)


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def test_tiny_grid_end_to_end_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc, out, err = run_main(
        ["--quick", *TINY, "--backend", "reference", "--json", str(path)], capsys
    )
    assert rc == 0, err
    assert "Traceback" not in err
    for cell in bench.CELLS:
        assert f"{cell} inference" in out and f"{cell} training" in out
    assert "P = numpy.matmul [32,32]x[32,32]" in out
    doc = json.loads(path.read_text())
    assert doc["schema"] == "rnnkit-bench/1"
    assert {"meta", "ceiling", "results"} <= doc.keys()
    meta = doc["meta"]
    for key in (
        "date",
        "cpu",
        "threads",
        "thread_settings",
        "core_round_trip_ns",
        "rnnkit_backend",
        "versions",
        "impls",
        "grid",
        "repeat",
        "min_time_s",
        "settle_s",
        "agree_rtol",
        "warnings",
    ):
        assert key in meta, key
    assert meta["threads"] == 1 and meta["rnnkit_backend"] == "reference" and meta["repeat"] == 2
    assert meta["settle_s"] == 0  # no pools to wait for at 1 thread
    assert meta["grid"] == [[5, 2, 8, 8], [4, 1, 3, 5]]
    assert doc["ceiling"]["shape"] == [32, 32, 32] and doc["ceiling"]["gflops"] > 0
    P = doc["ceiling"]["gflops"]
    results = doc["results"]
    keys = {
        "cell",
        "mode",
        "T",
        "N",
        "C",
        "H",
        "impl",
        "backend",
        "gflop",
        "ms",
        "ms_min",
        "ms_max",
        "spread",
        "samples_ms",
        "calls_per_sample",
        "gflops",
        "fraction_of_P",
        "speedup",
        "agrees",
        "rel_err",
        "skipped",
    }
    assert all(keys <= r.keys() for r in results)
    modes = {"inference", "training", "training-forward", "training-backward"}
    for cell in bench.CELLS:
        for shape in ((5, 2, 8, 8), (4, 1, 3, 5)):
            got = {
                r["mode"]
                for r in results
                if r["cell"] == cell
                and r["impl"] == "rnnkit"
                and (r["T"], r["N"], r["C"], r["H"]) == shape
            }
            assert got == modes, (cell, shape)
    for r in results:
        assert r["gflop"] * 1e9 == pytest.approx(
            bench.mode_flops(r["cell"], r["mode"], Shape(r["T"], r["N"], r["C"], r["H"]))
        )
        if r["impl"] == "rnnkit":
            assert r["skipped"] is None and r["ms"] > 0 and len(r["samples_ms"]) == 2
            assert r["ms_min"] <= r["ms"] <= r["ms_max"]
            assert r["gflops"] == pytest.approx(r["gflop"] / r["ms"] * 1e3)
            assert r["fraction_of_P"] == pytest.approx(r["gflops"] / P)
            assert r["speedup"] is None
        elif r["ms"] is not None:  # a timed peer: agreed first, has a speedup
            assert r["agrees"] is True and r["speedup"] > 0
        else:
            assert r["skipped"]
    # IndRNN has no torch or ONNX Runtime peer, ORT no training: '-' rows, not errors.
    for r in results:
        if r["impl"] in ("torch", "onnxruntime") and (
            r["cell"] == "indrnn" or (r["impl"] == "onnxruntime" and r["mode"] != "inference")
        ):
            assert r["ms"] is None and r["skipped"].startswith("no ")


def test_native_row_appears_when_functional_imports(monkeypatch, tmp_path, capsys):
    """A stand-in rnnkit.functional with only lstm: the rnnkit row is 'native'
    for lstm, falls back to the reference for gru, and the reference is a peer."""
    fake = types.ModuleType("rnnkit.functional")
    fake.lstm_forward = rnnkit.reference.lstm_forward
    fake.lstm_backward = rnnkit.reference.lstm_backward
    monkeypatch.setitem(sys.modules, "rnnkit.functional", fake)
    path = tmp_path / "b.json"
    rc, out, err = run_main(
        [
            *TINY,
            "--cells",
            "lstm,gru",
            "--modes",
            "inference",
            "--peers",
            "reference",
            "--ceiling",
            "none",
            "--json",
            str(path),
        ],
        capsys,
    )
    assert rc == 0, err
    doc = json.loads(path.read_text())
    assert doc["meta"]["rnnkit_backend"] == "native"
    assert doc["meta"]["impls"] == ["rnnkit", "numpy-ref"]
    backends = {r["cell"]: r["backend"] for r in doc["results"] if r["impl"] == "rnnkit"}
    assert backends == {"lstm": "native", "gru": "reference"}
    ref = [r for r in doc["results"] if r["impl"] == "numpy-ref"]
    assert ref and all(r["agrees"] and r["speedup"] > 0 for r in ref)
    assert all(r["fraction_of_P"] is None for r in doc["results"])  # --ceiling none


def test_auto_backend_matches_what_imports(tmp_path, capsys):
    path = tmp_path / "b.json"
    rc, _, err = run_main(
        [*TINY, "--cells", "rnn", "--modes", "inference", "--peers", "none", "--json", str(path)],
        capsys,
    )
    assert rc == 0, err
    native = importlib.util.find_spec("rnnkit.functional") is not None
    assert json.loads(path.read_text())["meta"]["rnnkit_backend"] == (
        "native" if native else "reference"
    )


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    png = tmp_path / "bench.png"
    rc, out, err = run_main(
        [
            *TINY,
            "--cells",
            "lstm,indrnn",
            "--backend",
            "reference",
            "--peers",
            "torch",
            "--plot",
            str(png),
        ],
        capsys,
    )
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------
# The agreement guard and the timing loop
# ---------------------------------------------------------------------------


def _ref_impl():
    return FunctionalImpl("rnnkit", rnnkit.reference, "reference")


@pytest.mark.parametrize("mode", ["inference", "training"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_torch_peer_agrees_with_the_reference(cell, mode):
    pytest.importorskip("torch")
    from rnnkit.bench._peers import TorchImpl

    rows = _run.run_shape(
        cell, SHAPE, mode, [_ref_impl(), TorchImpl()], _run.Settings(repeat=1, min_time=0)
    )
    torch_rows = [r for r in rows if r.impl == "torch"]
    assert torch_rows and all(r.agrees and r.samples_s for r in torch_rows)
    assert set(torch_rows[0].rel_err) == ({"y"} if mode == "inference" else {"y", "dx"})
    assert max(torch_rows[0].rel_err.values()) < 1e-5


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_onnxruntime_peer_agrees_with_the_reference(cell):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from rnnkit.bench._peers import OrtImpl

    rows = _run.run_shape(
        cell, SHAPE, "inference", [_ref_impl(), OrtImpl(1)], _run.Settings(repeat=1, min_time=0)
    )
    (ort,) = [r for r in rows if r.impl == "onnxruntime"]
    assert ort.agrees and ort.samples_s and ort.rel_err["y"] < 1e-5


class _WrongPeer(FunctionalImpl):
    """The reference with its recurrent weights transposed: a different computation."""

    def prepare(self, cell, inputs, mode):
        wrong = dict(
            inputs,
            w_hh=np.ascontiguousarray(inputs["w_hh"].T)
            if inputs["w_hh"].ndim == 2
            else -inputs["w_hh"],
        )
        return super().prepare(cell, wrong, mode)


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_a_disagreeing_peer_is_flagged_and_not_timed(mode):
    warnings = []
    wrong = _WrongPeer("wrong", rnnkit.reference, "reference")
    rows = _run.run_shape(
        "rnn",
        Shape(4, 3, 6, 6),
        mode,
        [_ref_impl(), wrong],
        _run.Settings(repeat=2, min_time=0),
        warn=warnings.append,
    )
    bad = [r for r in rows if r.impl == "wrong"]
    assert bad and all(r.agrees is False and not r.samples_s for r in bad)
    assert bad[0].skipped.startswith("MISMATCH") and bad[0].rel_err["y"] > _run.AGREE_RTOL
    assert len(warnings) == 1 and "MISMATCH" in warnings[0]
    assert not any(k[3] == "wrong" for k in _report.speedups(rows))
    assert "MISMATCH" in _report.format_table(rows, ["rnnkit", "wrong"], P=None)


def test_agreement_catches_shape_and_nan():
    y = np.ones((2, 3), np.float32)
    assert _run.agreement({"y": y}, {"y": y + 1e-6})[0]
    assert not _run.agreement({"y": y}, {"y": y[:1]})[0]
    assert not _run.agreement({"y": y}, {"y": np.full_like(y, np.nan)})[0]
    assert not _run.agreement({"y": y}, {})[0]  # nothing compared is not agreement


class _Logged(Impl):
    modes = ("inference",)

    def __init__(self, name, log):
        self.name, self.log = name, log

    def prepare(self, cell, inputs, mode):
        y = np.zeros((1,))
        return Runner(
            forward=lambda: self.log.append(self.name) or (y,),
            backward=None,
            outputs=lambda f, b: {"y": y},
        )


def test_runs_are_interleaved_round_robin():
    log = []
    impls = [_Logged(n, log) for n in "abc"]
    rows = _run.run_shape("rnn", SHAPE, "inference", impls, _run.Settings(repeat=3, min_time=0))
    # check (a, b, c), one sizing call each, then rounds that start one further along
    assert "".join(log) == "abc" + "abc" + "abc" + "bca" + "cab"
    assert all(len(r.samples_s) == 3 and r.number == 1 for r in rows)


def test_scaling_alternates_thread_counts_within_each_shape(monkeypatch):
    from rnnkit.bench import _scaling

    log = []
    impl = _Logged("rnnkit", log)
    counts_seen = []
    tasks = [("rnn", SHAPE, "inference")]
    results = _scaling.run_scaling(
        tasks, impl, [1, 2], _run.Settings(repeat=4, min_time=0), counts_seen.append
    )
    # warm-up and sizing at 1 then 2, then samples in alternating order
    assert counts_seen == [1, 2] + [1, 2, 2, 1, 1, 2, 2, 1]
    (r,) = results
    assert set(r["ms"]) == {"1", "2"} and len(r["samples_ms"]["2"]) == 4
    assert r["speedup"]["1"] == 1.0
    assert r["speedup"]["2"] == pytest.approx(r["ms"]["1"] / r["ms"]["2"])


def test_scaling_cli_end_to_end(tmp_path, capsys):
    pytest.importorskip("rnnkit._core")  # --scaling measures the native core
    path = tmp_path / "s.json"
    before = rnnkit.get_num_threads()
    rc, out, err = run_main(
        [
            "--scaling",
            "1,2",
            "--grid",
            "5x2x8",
            "--cells",
            "lstm",
            "--repeat",
            "2",
            "--min-time",
            "0",
            "--no-progress",
            "--json",
            str(path),
        ],
        capsys,
    )
    assert rc == 0, err
    assert (
        "lstm inference: rnnkit ms" in out and "lstm training: rnnkit ms" in out and "x2/1" in out
    )
    doc = json.loads(path.read_text())
    assert doc["schema"] == "rnnkit-bench-scaling/1" and doc["meta"]["counts"] == [1, 2]
    assert {(r["cell"], r["mode"]) for r in doc["results"]} == {
        ("lstm", "inference"),
        ("lstm", "training"),
    }
    for r in doc["results"]:
        assert r["ms"]["1"] > 0 and r["ms"]["2"] > 0 and len(r["samples_ms"]["1"]) == 2
    assert rnnkit.get_num_threads() == before  # restored
    if len(os.sched_getaffinity(0)) >= 2:  # the barrier's floor, measured at both ends
        rt = doc["meta"]["core_round_trip_ns"]
        assert 0 < rt["start"] < 1e6 and 0 < rt["end"] < 1e6, rt
        assert "core-to-core round trip (first two usable CPUs)" in out


def test_settle_runs_the_next_implementation_before_every_sample(monkeypatch):
    log = []
    real_sample = _run.sample

    def logged_sample(runner, number):
        log.append("|")  # a timed sample (or the sizing call) starts here
        return real_sample(runner, number)

    monkeypatch.setattr(_run, "sample", logged_sample)
    impls = [_Logged(n, log) for n in "ab"]
    _run.run_shape(
        "rnn", SHAPE, "inference", impls, _run.Settings(repeat=3, min_time=0, settle=0.005)
    )
    # the check calls a and b once; then every sample (2 sizing + 2 x 3 timed)
    # is preceded by untimed calls of its own implementation, none by a sleep
    assert log[:2] == ["a", "b"]
    starts = [i for i, e in enumerate(log) if e == "|"]
    assert len(starts) == 2 + 2 * 3
    for i in starts:
        sampled = log[i + 1]
        assert log[i - 1] == sampled and log[i - 2] == sampled, log[i - 3 : i + 2]


def test_speedup_is_peer_time_over_rnnkit_time():
    rows = [
        _run.Row("lstm", "inference", SHAPE, "rnnkit", samples_s=[1.0, 2.0, 3.0]),
        _run.Row("lstm", "inference", SHAPE, "torch", samples_s=[5.0, 6.0, 100.0]),
    ]
    assert _report.speedups(rows) == {("lstm", "inference", SHAPE, "torch"): 3.0}
    assert rows[0].spread == pytest.approx(0.5)


def test_thread_settings_are_set_and_restored():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with _run.ThreadSettings(target) as ts:
        assert torch.get_num_threads() == target
        assert {"rnnkit", "torch", "blas", "onnxruntime"} <= ts.report.keys()
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--cells", "bogus"], "invalid choice 'bogus'"),
        (["--modes", "fast"], "invalid choice 'fast'"),
        (["--threads", "0"], "positive integer"),
        (["--repeat", "x"], "positive integer"),
        (["--min-time", "-1"], ">= 0"),
        (["--settle", "-0.1"], ">= 0"),
        (["--scaling", "2"], "two or more distinct"),
        (["--scaling", "1,1"], "two or more distinct"),
        (["--scaling", "0,1"], "two or more distinct"),
        (["--scaling", "1,x"], "two or more distinct"),
        (["--scaling", "1,2", "--threads", "2"], "leave out --threads"),
        (["--grid", "5x2"], "TxNxH"),
        (["--grid", "0x1x1"], "TxNxH"),
        (["--peers", "tensorflow"], "invalid choice 'tensorflow'"),
        (["--backend", "gpu"], "invalid choice"),
        (["--json", "/nonexistent-dir/b.json"], "does not exist"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_argument_errors_are_clean(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "rnnkit bench: error:" in err and needle in err and "Traceback" not in err


def test_plot_without_matplotlib_is_a_clean_error(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        _cli.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(SystemExit) as exc:
        bench.main(["--plot", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_missing_peer_asked_for_is_a_clean_error(monkeypatch, capsys):
    monkeypatch.setattr(
        _cli,
        "available_peers",
        lambda: {
            "numpy-ref": None,
            "torch": "not installed; pip install torch==2.13.0",
            "onnxruntime": None,
        },
    )
    with pytest.raises(SystemExit) as exc:
        bench.main(["--peers", "torch"])
    assert exc.value.code == 2
    assert "pip install torch==2.13.0" in capsys.readouterr().err


def test_rnnkit_cli_dispatches_to_bench(capsys):
    from rnnkit.__main__ import main as rnnkit_main

    with pytest.raises(SystemExit) as exc:
        rnnkit_main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: rnnkit bench" in out and "--threads" in out and "--grid" not in out


def test_python_dash_m_runs():
    res = subprocess.run(
        [sys.executable, "-m", "rnnkit.bench", "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "--quick" in res.stdout


class _FailingPeer(FunctionalImpl):
    def prepare(self, cell, inputs, mode):
        runner = super().prepare(cell, inputs, mode)
        runner.forward = lambda: 1 / 0
        return runner


def test_a_failing_peer_is_reported_not_raised():
    warnings = []
    rows = _run.run_shape(
        "gru",
        SHAPE,
        "inference",
        [_ref_impl(), _FailingPeer("broken", rnnkit.reference, "reference")],
        _run.Settings(repeat=1, min_time=0),
        warn=warnings.append,
    )
    (bad,) = [r for r in rows if r.impl == "broken"]
    assert bad.skipped.startswith("failed: ZeroDivisionError") and not bad.samples_s
    assert len(warnings) == 1


def test_json_has_no_bare_infinities(tmp_path):
    row = _run.Row(
        "rnn",
        "inference",
        SHAPE,
        "wrong",
        skipped="MISMATCH",
        agrees=False,
        rel_err={"y": float("inf")},
    )
    path = tmp_path / "b.json"
    _report.write_json(str(path), _report.to_json([row], {}, {"gflops": None}))
    assert json.loads(path.read_text())["results"][0]["rel_err"] == {"y": "inf"}


def test_ctrl_c_prints_the_partial_table(monkeypatch, capsys):
    real = _cli.run_shape
    calls = []

    def interrupt_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(_cli, "run_shape", interrupt_second)
    rc, out, err = run_main(
        [*TINY, "--cells", "rnn", "--peers", "none", "--ceiling", "none"], capsys
    )
    assert rc == 130
    assert "rnn inference" in out and "interrupted after 1 of 4 runs" in err
