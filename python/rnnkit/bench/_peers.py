"""The implementations ``rnnkit bench`` times: rnnkit (native, or the NumPy
reference standing in), the NumPy reference as a peer, PyTorch and ONNX Runtime.

Each one turns a cell, its inputs and a mode into a ``Runner``: the calls to
time, plus a way to read back y (and dx in training) for the agreement check.
Peers are imported only when asked for, and a missing one is simply absent.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._grid import GATES, REFERENCE_MAX_NH, Shape, functional_args, make_inputs

__all__ = [
    "Runner",
    "Impl",
    "FunctionalImpl",
    "TorchImpl",
    "OrtImpl",
    "available_peers",
    "PEER_NAMES",
]

PEER_NAMES = ("numpy-ref", "torch", "onnxruntime")


@dataclass
class Runner:
    """One implementation of one (cell, shape, mode), ready to call.

    ``forward()`` is the inference call, or the training forward; in training,
    ``backward(forward_result)`` runs BPTT to the input and the weights.
    ``reset()`` (untimed) runs before each training call. ``outputs(f, b)``
    returns ``{"y": ..., "dx": ...}`` as NumPy arrays for the agreement check.
    ``context()`` is entered once around a batch of timed calls.
    ``remote``: set for a peer that lives in the ``--isa`` peer child (_isa.py);
    its calls, samples and settling then happen there, timed there.
    """

    forward: Callable[[], Any]
    backward: Callable[[Any], Any] | None
    outputs: Callable[[Any, Any], dict]
    reset: Callable[[], None] | None = None
    context: Callable[[], Any] = contextlib.nullcontext
    keep: list = field(default_factory=list)  # objects the calls close over
    remote: Any = None


class Impl:
    """An implementation: a name for the table and what it can run."""

    name = ""
    modes = ("inference", "training")
    cells = ("rnn", "lstm", "gru", "indrnn")

    def skip_reason(self, cell: str, mode: str, shape: Shape) -> str | None:
        """Why this implementation has no row here, or None when it runs."""
        if cell not in self.cells:
            return f"no {cell} in {self.name}"
        if mode not in self.modes:
            return f"no {mode} in {self.name}"
        return None

    def prepare(self, cell: str, inputs: dict, mode: str) -> Runner:  # pragma: no cover
        raise NotImplementedError

    def version(self) -> str:
        return ""


class FunctionalImpl(Impl):
    """An rnnkit functional module: ``rnnkit.functional`` or ``rnnkit.reference``.

    ``max_nh`` limits the shapes it runs (the reference is slow on big ones).
    ``fallback`` is used for a cell the module does not export yet.
    """

    def __init__(self, name: str, module, backend: str, max_nh: int | None = None, fallback=None):
        self.name = name
        self.module = module
        self.backend = backend
        self.max_nh = max_nh
        self.fallback = fallback
        self.notes: dict[str, str] = {}  # cell -> why the fallback runs it
        self._chosen: dict[str, tuple[Any, str]] = {}

    def backend_for(self, cell: str) -> tuple[Any, str]:
        """(module, backend name) that runs ``cell``. With a fallback, a cell the
        module lacks, or whose tiny trial call fails (a stale build), falls back."""
        if cell in self._chosen:
            return self._chosen[cell]
        choice = (self.module, self.backend)
        try:
            fwd = getattr(self.module, f"{cell}_forward")
            bwd = getattr(self.module, f"{cell}_backward")
            if self.fallback is not None:
                args = functional_args(cell, make_inputs(cell, 2, 2, 3, 4))
                fwd(*args, training=False)
                out = fwd(*args, training=True)
                bwd(None, None, None, out[-1]) if cell == "lstm" else bwd(None, None, out[-1])
        except Exception as err:
            if self.fallback is None:
                raise
            self.notes[cell] = (
                f"{self.module.__name__}.{cell}_* unusable ({type(err).__name__}: {err})"
            )
            choice = (self.fallback, "reference")
        self._chosen[cell] = choice
        return choice

    def skip_reason(self, cell, mode, shape):
        reason = super().skip_reason(cell, mode, shape)
        if reason is None and self.max_nh is not None and shape.N * shape.H > self.max_nh:
            reason = f"N*H > {self.max_nh} (small shapes only)"
        return reason

    def prepare(self, cell, inputs, mode):
        module, _ = self.backend_for(cell)
        fwd = getattr(module, f"{cell}_forward")
        bwd = getattr(module, f"{cell}_backward")
        args = functional_args(cell, inputs)
        dy = inputs["dy"]
        if mode == "inference":
            return Runner(
                forward=lambda: fwd(*args, training=False),
                backward=None,
                outputs=lambda f, b: {"y": f[0]},
            )
        if cell == "lstm":
            backward = lambda out: bwd(dy, None, None, out[-1])  # noqa: E731
        else:
            backward = lambda out: bwd(dy, None, out[-1])  # noqa: E731
        return Runner(
            forward=lambda: fwd(*args, training=True),
            backward=backward,
            outputs=lambda f, b: {"y": f[0], "dx": b[0]},
        )


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


class TorchImpl(Impl):
    """torch.nn.RNN / LSTM / GRU loaded with the same weights.

    Inference runs under ``torch.inference_mode()``; training is forward, then
    backward of ``y`` with the same dy, to the input, h0 (and c0) and every
    weight, as rnnkit's backward computes them.
    """

    name = "torch"
    cells = ("rnn", "lstm", "gru")

    def __init__(self):
        import torch

        self.torch = torch

    def version(self):
        t = self.torch
        onednn = t.backends.mkldnn.is_available() and t.backends.mkldnn.enabled
        return f"{t.__version__}" + (" (oneDNN on)" if onednn else " (oneDNN off)")

    def module(self, cell: str, inputs: dict, *, nonlinearity="tanh"):
        torch = self.torch
        w_ih = inputs["w_ih"]
        C, H = w_ih.shape[1], inputs["w_hh"].shape[1]
        cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        kw = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        m = cls(C, H, num_layers=1, bias=True, batch_first=False, dtype=torch.float32, **kw)
        m.load_state_dict(
            {
                "weight_ih_l0": torch.from_numpy(np.ascontiguousarray(inputs["w_ih"])),
                "weight_hh_l0": torch.from_numpy(np.ascontiguousarray(inputs["w_hh"])),
                "bias_ih_l0": torch.from_numpy(np.ascontiguousarray(inputs["b_ih"])),
                "bias_hh_l0": torch.from_numpy(np.ascontiguousarray(inputs["b_hh"])),
            }
        )
        return m

    def prepare(self, cell, inputs, mode):
        torch = self.torch
        m = self.module(cell, inputs)
        training = mode == "training"
        x = torch.from_numpy(inputs["x"]).requires_grad_(training)
        h0 = torch.from_numpy(inputs["h0"][None]).requires_grad_(training)  # 1,N,H
        if cell == "lstm":
            c0 = torch.from_numpy(inputs["c0"][None]).requires_grad_(training)
            state = (h0, c0)
        else:
            state = h0
        if not training:
            return Runner(
                forward=lambda: m(x, state),
                backward=None,
                outputs=lambda f, b: {"y": f[0].numpy().copy()},
                context=torch.inference_mode,
                keep=[m, x, state],
            )
        dy = torch.from_numpy(inputs["dy"])
        leaves = [x, h0, *([c0] if cell == "lstm" else []), *m.parameters()]

        def reset():
            for t in leaves:
                t.grad = None

        def backward(out):
            out[0].backward(dy)
            return x.grad

        return Runner(
            forward=lambda: m(x, state),
            backward=backward,
            reset=reset,
            outputs=lambda f, b: {"y": f[0].detach().numpy().copy(), "dx": b.numpy().copy()},
            keep=[m, x, state, dy],
        )


# ---------------------------------------------------------------------------
# ONNX Runtime
# ---------------------------------------------------------------------------

# Rows of PyTorch's gate blocks in ONNX's order: LSTM i,f,g,o -> i,o,f,c and
# GRU r,z,n -> z,r,h. RNN has one block.
_ONNX_GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
_ONNX_OPSET = 14
_ONNX_IR_VERSION = 8  # old enough for any onnxruntime that knows opset 14


def _onnx_gates(cell: str, w: np.ndarray) -> np.ndarray:
    """Reorder the gate blocks (first axis) of a PyTorch-layout weight or bias."""
    blocks = np.split(w, GATES[cell], axis=0)
    return np.concatenate([blocks[i] for i in _ONNX_GATE_ORDER[cell]], axis=0)


def onnx_model(cell: str, inputs: dict, *, nonlinearity: str = "tanh"):
    """A one-node ONNX graph (RNN, LSTM or GRU) with rnnkit's weights as initializers.

    Inputs X [T,N,C], initial_h [1,N,H] (and initial_c); output Y [T,1,N,H].
    GRU uses linear_before_reset=1, which is PyTorch's and rnnkit's GRU.
    """
    from onnx import TensorProto, helper, numpy_helper

    T, N, C = inputs["x"].shape
    H = inputs["w_hh"].shape[1]
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    W = _onnx_gates(cell, inputs["w_ih"])[None]  # 1,G*H,C
    R = _onnx_gates(cell, inputs["w_hh"])[None]  # 1,G*H,H
    B = np.concatenate([_onnx_gates(cell, inputs["b_ih"]), _onnx_gates(cell, inputs["b_hh"])])[
        None
    ]  # 1,2*G*H
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name)
        for a, name in ((W, "W"), (R, "R"), (B, "B"))
    ]
    graph_inputs = [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, N, C]),
        helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, N, H]),
    ]
    node_inputs = ["X", "W", "R", "B", "", "initial_h"]
    if cell == "lstm":
        graph_inputs.append(
            helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [1, N, H])
        )
        node_inputs.append("initial_c")
    attrs = {"hidden_size": H}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    if cell == "rnn":
        attrs["activations"] = [nonlinearity.capitalize()]
    node = helper.make_node(op, node_inputs, ["Y"], **attrs)
    graph = helper.make_graph(
        [node],
        f"rnnkit_bench_{cell}",
        graph_inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, N, H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _ONNX_OPSET)])
    model.ir_version = _ONNX_IR_VERSION
    return model


class OrtImpl(Impl):
    """A single ONNX RNN/LSTM/GRU node in an onnxruntime CPU session:
    intra_op_num_threads = the bench's thread count, inter_op 1, sequential
    execution, all graph optimisations. Inference only."""

    name = "onnxruntime"
    cells = ("rnn", "lstm", "gru")
    modes = ("inference",)

    def __init__(self, threads: int):
        import onnx  # noqa: F401  (the model is built with its helper API)
        import onnxruntime

        self.ort = onnxruntime
        self.threads = threads

    def version(self):
        return self.ort.__version__

    def session(self, model):
        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(
            model.SerializeToString(), so, providers=["CPUExecutionProvider"]
        )

    def prepare(self, cell, inputs, mode):
        sess = self.session(onnx_model(cell, inputs))
        feeds = {"X": inputs["x"], "initial_h": inputs["h0"][None]}
        if cell == "lstm":
            feeds["initial_c"] = inputs["c0"][None]
        return Runner(
            forward=lambda: sess.run(["Y"], feeds),
            backward=None,
            outputs=lambda f, b: {"y": f[0][:, 0]},
            keep=[sess, feeds],
        )


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


def _importable(name: str) -> tuple[bool, str]:
    try:
        importlib.import_module(name)
    except ImportError as err:
        return False, str(err)
    except Exception as err:  # a broken install: report it, do not crash the bench
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def _findable(name: str) -> tuple[bool, str]:
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError) as err:
        return False, str(err)
    return found, "" if found else f"No module named {name!r}"


def available_peers(import_modules: bool = True) -> dict[str, str | None]:
    """Peer name -> None when it can run here, else why not (install hint).
    import_modules=False only looks for them (``--isa``: torch must first load
    in the restricted child, not here)."""
    check = _importable if import_modules else _findable
    out: dict[str, str | None] = {"numpy-ref": None}
    ok, why = check("torch")
    out["torch"] = None if ok else f"not installed ({why}); pip install torch==2.13.0"
    ok1, why1 = check("onnx")
    ok2, why2 = check("onnxruntime")
    if ok1 and ok2:
        out["onnxruntime"] = None
    else:
        out["onnxruntime"] = f"not installed ({why1 or why2}); pip install onnx onnxruntime"
    return out


def rnnkit_backends() -> tuple[Any, Any | None, str]:
    """(reference module, native module or None, why native is missing)."""
    from .. import reference

    try:
        native = importlib.import_module("rnnkit.functional")
    except ImportError as err:
        return reference, None, str(err)
    return reference, native, ""


def make_reference_peer(reference, max_nh: int = REFERENCE_MAX_NH) -> FunctionalImpl:
    return FunctionalImpl("numpy-ref", reference, "reference", max_nh=max_nh)
