"""ISA-fair judging for ``rnnkit bench``: the measured FMA peak of the ISA in
use (the %FMA column), and ``--isa``: the peers run in a child process whose
environment restricts them to the same ISA before they load.

Not the timing loop (``_run``) nor the peers (``_peers``): the child builds the
same Impl classes and times them with the same ``sample``; this module only
starts it, checks what it reports, and relays one request per sample, so the
parent's rnnkit samples and the child's peer samples still take turns.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import tempfile

from ._peers import Impl, OrtImpl, Runner, TorchImpl

__all__ = [
    "ISAS",
    "RESTRICT",
    "FmaPeak",
    "PeerChild",
    "PeerChildError",
    "restriction_check",
]

ISAS = ("avx512", "avx2", "scalar")

# Set in the child's environment, so each library reads it when it loads.
# torch: oneDNN (its LSTM, and the RNN/GRU kernels it has) caps its JIT at
# ONEDNN_MAX_CPU_ISA; ATen's vectorised kernels (the elementwise gate math of
# RNN/GRU) follow ATEN_CPU_CAPABILITY; MKL (torch's BLAS, the GEMMs of RNN and
# GRU) follows MKL_ENABLE_INSTRUCTIONS, on Intel CPUs only (MKL's manual: "not
# available on non-Intel processors"). "scalar" has no exact twin: oneDNN's
# lowest x86 ISA is SSE4.1, ATen's is "default" (the compiler's baseline build);
# for MKL, MKL_CBWR=COMPATIBLE (its reproducibility mode on the SSE2 branch,
# which it honours on any x86 CPU; it also fixes its scheduling, which matters
# little at the bench's thread counts) is exactly rnnkit's baseline (SSE2).
RESTRICT = {
    "avx512": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
    },
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "scalar": {
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "MKL_CBWR": "COMPATIBLE",
    },
}
# What torch must report back for the restriction to count as taken.
EXPECTED = {
    "avx512": {"aten": "AVX512", "onednn": "AVX-512"},
    "avx2": {"aten": "AVX2", "onednn": "AVX2"},
    "scalar": {"aten": "DEFAULT", "onednn": "SSE4.1"},
}
# ONNX Runtime: no documented run-time switch for the ISA of its CPU kernels
# (MLAS picks them by cpuid; its maintainers say so in onnxruntime issues
# #7010 and #12479), so it runs unrestricted and its rows say so.
ORT_UNRESTRICTED = (
    "unrestricted: ONNX Runtime has no documented switch for its CPU kernels' ISA "
    "(MLAS picks them by cpuid)"
)
CHILD_TIMEOUT_S = 900.0  # one request: a sample of the largest shape takes seconds


# ---------------------------------------------------------------------------
# The FMA peak
# ---------------------------------------------------------------------------


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class FmaPeak:
    """rnnkit._core.fma_peak of one ISA at the bench's thread count, float32,
    measured at the run's start and end like P.

    ``gflops`` is the best per-CPU-second rate (FLOPs each probe thread did per
    second of CPU time it got): the cores' peak, which other load on a shared
    machine does not lower. ``gflops_wall`` is the best wall-clock rate: below
    ``gflops`` when the run did not have its cores to itself. With more
    threads than usable CPUs the per-CPU-second sum would count cores that
    are not there, so ``gflops`` is then the wall-clock rate.
    """

    def __init__(self, isa: str, threads: int, seconds: float = 0.1, samples: int = 3):
        from .. import _core

        self._probe = getattr(_core, "fma_peak_info", None)
        self.isa, self.threads = isa, threads
        self.seconds, self.samples = seconds, samples
        self.runs: dict[str, list[dict]] = {"start": [], "end": []}

    @property
    def available(self) -> bool:
        return self._probe is not None

    def measure(self, when: str) -> None:
        if self._probe is None:
            return
        for _ in range(self.samples):
            self.runs[when].append(dict(self._probe(self.isa, self.threads, self.seconds)))

    def _best(self, key: str, when: str | None = None) -> float | None:
        runs = self.runs[when] if when else self.runs["start"] + self.runs["end"]
        vals = [r[key] for r in runs if r.get(key)]
        return max(vals) / 1e9 if vals else None

    @property
    def gflops(self) -> float | None:
        if self.threads > _usable_cpus():
            return self._best("flops_per_s")
        return self._best("flops_per_cpu_s") or self._best("flops_per_s")

    @property
    def gflops_wall(self) -> float | None:
        return self._best("flops_per_s")

    def doc(self) -> dict:
        first = (self.runs["start"] + self.runs["end"] or [{}])[0]
        return {
            "isa": self.isa,
            "threads": self.threads,
            "dtype": "float32",
            "gflops": self.gflops,
            "gflops_wall": self.gflops_wall,
            "per": "wall" if self.threads > _usable_cpus() else "cpu",
            "gflops_start": self._best("flops_per_cpu_s", "start"),
            "gflops_end": self._best("flops_per_cpu_s", "end"),
            "chains": first.get("chains"),
            "lanes": first.get("lanes"),
            "fused": first.get("fused"),
            "seconds_per_run": self.seconds,
            "runs": self.runs,
        }


def fma_peak_text(doc: dict | None) -> str:
    """The header line: the peak, how it was measured, and the wall rate."""
    if not doc or not doc.get("gflops"):
        return "FMA peak: not measured (no native core with fma_peak; %FMA shows -)"
    t = doc["threads"]
    op = "FMA" if doc["fused"] else "multiply + add (no FMA in the baseline)"
    wall = doc.get("gflops_wall")
    per = "wall clock (more threads than CPUs)" if doc.get("per") == "wall" else "per CPU-second"
    return (
        f"FMA peak ({doc['isa']}, {t} thread{'s' * (t > 1)}, float32): {doc['gflops']:.1f} GFLOP/s "
        f"{per} ({doc['chains']} chains of {doc['lanes']}-lane {op} per thread, best of "
        f"{len(doc['runs']['start']) + len(doc['runs']['end'])} x {doc['seconds_per_run'] * 1e3:g} ms"
        + (
            f"; wall clock {wall:.1f}"
            + (": lower, so the probe did not have its cores to itself" if wall < 0.9 * doc["gflops"] else "")
            if wall and doc.get("per") != "wall"
            else ""
        )
        + ")"
    )


# ---------------------------------------------------------------------------
# The restricted peer child
# ---------------------------------------------------------------------------


class PeerChildError(RuntimeError):
    """The child could not start, or stopped answering."""


def _child_env(isa: str) -> dict:
    env = dict(os.environ)
    env.update(RESTRICT[isa])
    for var in ("ONEDNN_VERBOSE", "DNNL_VERBOSE", "MKL_VERBOSE"):
        env.pop(var, None)  # the child reads its verbose output itself, once
    # The child imports the rnnkit that this process runs, wherever it lives.
    import rnnkit

    root = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


class PeerChild:
    """A persistent child process that builds the peers under an ISA
    restriction and answers one request at a time (prepare, call once, one
    sample, settle) over a pair of pipes."""

    def __init__(self, isa: str, threads: int, peers: list[str]):
        self.isa = isa
        self.peers = list(peers)
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        self._stdout = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rnnkit.bench._child", str(req_r), str(rep_w)],
                pass_fds=(req_r, rep_w),
                env=_child_env(isa),
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stderr,
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._tx = os.fdopen(self._req_w, "wb")
        self._rx = os.fdopen(self._rep_r, "rb")
        self.info = self.call("start", threads, self.peers, RESTRICT[isa])

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return text[-2000:]

    def call(self, op: str, *args):
        try:
            pickle.dump((op, args), self._tx, protocol=pickle.HIGHEST_PROTOCOL)
            self._tx.flush()
            ready, _, _ = select.select([self._rx], [], [], CHILD_TIMEOUT_S)
            if not ready:
                raise PeerChildError(
                    f"the peer child (pid {self.proc.pid}) did not answer {op!r} "
                    f"within {CHILD_TIMEOUT_S:g} s"
                )
            status, value = pickle.load(self._rx)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError, OSError) as err:
            self.proc.poll()
            raise PeerChildError(
                f"the peer child (pid {self.proc.pid}) stopped during {op!r} "
                f"(exit status {self.proc.returncode}): {type(err).__name__}; its stderr:\n"
                + (self._stderr_tail() or "(empty)")
            ) from None
        if status != "ok":
            raise RuntimeError(value)
        return value

    def impl(self, name: str) -> ChildImpl:
        return ChildImpl(self, name)

    def close(self) -> None:
        if getattr(self, "proc", None) is None:
            return
        try:
            if self.proc.poll() is None:
                self.call("exit")
        except Exception:  # noqa: BLE001, S110  (a dead child: it is killed below)
            pass
        for f in (self._tx, self._rx):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
        self._stdout.close()
        self.proc = None


class _Remote:
    """What run_shape's call_once, sample and settle do for a child's runner."""

    def __init__(self, child: PeerChild, name: str):
        self.child, self.name = child, name

    def call_once(self):
        return self.child.call("call_once", self.name)

    def sample(self, number: int):
        return self.child.call("sample", self.name, number)

    def settle(self, seconds: float):
        self.child.call("settle", self.name, seconds)


def _in_child(*_):
    raise RuntimeError("this runner runs in the peer child; time it through Runner.remote")


_PEER_CLASSES = {"torch": TorchImpl, "onnxruntime": OrtImpl}


class ChildImpl(Impl):
    """A peer (torch or onnxruntime) that lives in the PeerChild."""

    def __init__(self, child: PeerChild, name: str):
        cls = _PEER_CLASSES[name]
        self.child, self.name = child, name
        self.cells, self.modes = cls.cells, cls.modes
        self.info = child.info.get(name, {})

    def version(self) -> str:
        return self.info.get("version", "")

    def restricted(self) -> bool:
        return self.name == "torch"

    def prepare(self, cell, inputs, mode):
        self.child.call("prepare", self.name, cell, inputs, mode)
        return Runner(
            forward=_in_child,
            backward=None if mode == "inference" else _in_child,
            outputs=_in_child,
            remote=_Remote(self.child, self.name),
        )


def restriction_check(isa: str, info: dict) -> list[str]:
    """Warnings where torch in the child reports another ISA than asked."""
    t = info.get("torch")
    if not t:
        return []
    want = EXPECTED[isa]
    out = []
    if (t.get("cpu_capability") or "").upper() != want["aten"]:
        out.append(
            f"--isa {isa}: torch in the peer child reports CPU capability "
            f"{t.get('cpu_capability')!r}, not {want['aten']!r}: its rows are not restricted as asked"
        )
    onednn = t.get("onednn_isa")
    if onednn is None:
        out.append(f"--isa {isa}: oneDNN in the peer child printed no ISA; its restriction is unchecked")
    elif want["onednn"] not in onednn or (isa == "avx2" and "AVX-512" in onednn):
        out.append(
            f"--isa {isa}: oneDNN in the peer child reports {onednn!r}, not {want['onednn']}: "
            "its rows are not restricted as asked"
        )
    return out


def peer_isa_text(isa: str, info: dict, name: str) -> str:
    """One header line per child peer: what it was told and what it reports."""
    if name == "onnxruntime":
        o = info.get("onnxruntime", {})
        return f"  onnxruntime {o.get('version', '')}: in the peer child, {ORT_UNRESTRICTED}"
    t = info.get("torch", {})
    told = ", ".join(f"{k}={v}" for k, v in RESTRICT[isa].items())
    mkl = t.get("mkl_banner") or "no MKL verbose banner"
    if t.get("mkl_cnr"):
        mkl += f", CNR:{t['mkl_cnr']}"
    mkl_note = ""
    if t.get("cpu_vendor") and "intel" not in t["cpu_vendor"].lower():
        mkl_note = (
            "; MKL ignores MKL_ENABLE_INSTRUCTIONS on non-Intel CPUs"
            + (
                ", CNR:COMPATIBLE holds it to SSE2"
                if t.get("mkl_cnr") == "COMPATIBLE"
                else ": torch's GEMMs (RNN, GRU) run at the ISA MKL picks"
            )
        )
    return (
        f"  torch {t.get('version', '')}: in the peer child (pid {info.get('pid')}), told before "
        f"torch loaded: {told}\n"
        f"    torch reports: CPU capability {t.get('cpu_capability')}, oneDNN "
        f"{t.get('onednn_isa') or '(no ISA printed)'}; MKL: {mkl}{mkl_note}"
    )
