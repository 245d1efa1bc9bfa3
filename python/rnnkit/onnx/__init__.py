"""rnnkit.onnx: rnnkit models out to ONNX, and ONNX recurrent graphs in.

``export`` writes standard ONNX (RNN/LSTM/GRU nodes); ``InferenceSession``
runs ONNX graphs of RNN/LSTM/GRU nodes on rnnkit's kernels, with
onnxruntime's interface. Both are exact or refuse. Needs the ``onnx`` package
(``pip install 'rnnkit[onnx]'``); ``import rnnkit`` never imports it.
"""

from __future__ import annotations

try:
    import onnx as _onnx  # noqa: F401  (the real onnx package: absolute import)
except ImportError as err:  # pragma: no cover - exercised only without onnx
    raise ImportError("rnnkit.onnx needs the onnx package: pip install 'rnnkit[onnx]'") from err

from ._export import DEFAULT_OPSET, MIN_OPSET, export
from ._session import InferenceSession, NodeArg, UnsupportedModelError

__all__ = [
    "export",
    "InferenceSession",
    "NodeArg",
    "UnsupportedModelError",
    "DEFAULT_OPSET",
    "MIN_OPSET",
]
