"""The peer child of ``rnnkit bench --isa``: ``python -m rnnkit.bench._child
REQ_FD REP_FD``, started by ``_isa.PeerChild`` with the ISA restriction in its
environment, so that torch and onnxruntime read it when they load here.

It builds the peers (the same TorchImpl / OrtImpl as the in-process run) and
answers one pickled request at a time: prepare, call once, one sample (timed
here, with the same ``_run.sample``), settle. Not a server for anything else.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile


def _captured_stdout(fn) -> str:
    """Run fn with the C-level stdout (fd 1) sent to a file; return what it wrote
    (oneDNN's and MKL's verbose lines are printed by C code)."""
    import ctypes

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def probe_torch(torch) -> dict:
    """What torch in this process says about its ISA: ATen's CPU capability,
    the ISA oneDNN prints when its verbose mode first runs a primitive (a tiny
    LSTM), and MKL's verbose banner (a small GEMM)."""
    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_vendor": _cpu_vendor()}

    def lstm():
        m = torch.nn.LSTM(8, 8)
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.inference_mode():
            m(torch.zeros(2, 1, 8))

    def gemm():
        a = torch.ones(64, 64)
        with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
            torch.mm(a, a)

    text = _captured_stdout(lstm)
    out["onednn_isa"] = next(
        (ln.split("isa:", 1)[1].strip() for ln in text.splitlines() if ",isa:" in ln), None
    )
    text = _captured_stdout(gemm)
    banner = [ln for ln in text.splitlines() if ln.startswith("MKL_VERBOSE") and "(" not in ln[:40]]
    out["mkl_banner"] = banner[0][len("MKL_VERBOSE") :].strip() if banner else None
    # The call's own line says which reproducibility branch ran ("CNR:OFF", or
    # "CNR:COMPATIBLE" under MKL_CBWR=COMPATIBLE).
    cnr = [w for ln in text.splitlines() if "GEMM(" in ln for w in ln.split() if w.startswith("CNR:")]
    out["mkl_cnr"] = cnr[0][4:] if cnr else None
    return out


class State:
    def __init__(self):
        self.impls = {}
        self.runners = {}
        self.threads = None


def op_start(st: State, threads: int, peers: list, env: dict) -> dict:
    from ._peers import OrtImpl, TorchImpl
    from ._run import ThreadSettings

    info = {"pid": os.getpid(), "env": {k: os.environ.get(k) for k in env}}
    if "torch" in peers:
        import torch

        st.impls["torch"] = TorchImpl()
        info["torch"] = {"version": st.impls["torch"].version(), **probe_torch(torch)}
    if "onnxruntime" in peers:
        st.impls["onnxruntime"] = OrtImpl(threads)
        info["onnxruntime"] = {"version": st.impls["onnxruntime"].version()}
    # Kept entered for the child's life: torch's and every BLAS pool's threads.
    st.threads = ThreadSettings(threads).__enter__()
    info["thread_settings"] = st.threads.report
    return info


def op_prepare(st: State, name: str, cell: str, inputs: dict, mode: str) -> None:
    st.runners.pop(name, None)  # the previous shape's, before this one is built
    st.runners[name] = st.impls[name].prepare(cell, inputs, mode)


def op_call_once(st: State, name: str) -> dict:
    from ._run import call_once

    return call_once(st.runners[name])[0]


def op_sample(st: State, name: str, number: int):
    from ._run import sample

    return sample(st.runners[name], number)


def op_settle(st: State, name: str, seconds: float) -> None:
    from ._run import Settings, _settle

    _settle(Settings(settle=seconds), st.runners[name])


def op_release(st: State, name: str) -> None:
    st.runners.pop(name, None)


OPS = {
    "start": op_start,
    "prepare": op_prepare,
    "call_once": op_call_once,
    "sample": op_sample,
    "settle": op_settle,
    "release": op_release,
    "exit": lambda st: None,
}


def serve(rx, tx) -> None:
    st = State()
    while True:
        try:
            op, args = pickle.load(rx)
        except EOFError:  # the parent closed its end: done
            return
        try:
            reply = ("ok", OPS[op](st, *args))
        except Exception as err:  # noqa: BLE001  (every failure goes back to the parent)
            reply = ("error", f"{type(err).__name__}: {err}")
        try:
            pickle.dump(reply, tx, protocol=pickle.HIGHEST_PROTOCOL)
            tx.flush()
        except BrokenPipeError:
            return
        if op == "exit":
            return


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Ctrl-C in the terminal reaches the whole process group: the parent
    # decides, and closes the pipes, which ends this loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rx = os.fdopen(int(argv[0]), "rb")
    tx = os.fdopen(int(argv[1]), "wb")
    serve(rx, tx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
