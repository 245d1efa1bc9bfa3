"""The two ONNX variants that map to user cells (linear_before_reset=0 to
rnnkit.cells.GRUResetBeforeCell, peepholes to PeepholeLSTMCell), in and out
of rnnkit.onnx, against the shipped node cases and ONNX Runtime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import rnnkit  # noqa: E402
from rnnkit.onnx import InferenceSession, export  # noqa: E402
from rnnkit.onnx._session import user_cell  # noqa: E402
from test_onnx_session import CASES, make_node_model, needs_cell, rel  # noqa: E402


def test_the_cells_are_found():
    for name in ("PeepholeLSTMCell", "GRUResetBeforeCell", "LSTMCell", "GRUCell", "RNNCell", "IndRNNCell"):
        assert user_cell(name) is getattr(rnnkit.cells, name)


NEEDING = sorted(n for n, c in CASES.items() if needs_cell(c))


def test_seven_cases_need_the_cells():
    assert len(NEEDING) == 7, NEEDING


@pytest.mark.parametrize("name", NEEDING)
def test_node_cases_through_the_cells(name):
    case = CASES[name]
    ins, outs = case.data_sets[0]
    sess = InferenceSession(case.model)
    got = sess.run(None, {a.name: v for a, v in zip(sess.get_inputs(), ins)})
    for g, w in zip(got, outs):
        assert g.shape == w.shape and rel(g, w) < 1e-5, (name, rel(g, w))


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_reset_before_gru_node_against_onnxruntime(direction):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    model, feeds = make_node_model(
        "GRU",
        direction,
        0,
        np.float32,
        5,
        3,
        3,
        4,
        initializers=True,
        rng=rng,
        extra=[("linear_before_reset", 0)],
    )
    feeds["sequence_lens"] = np.array([5, 2, 4], np.int32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    sess = InferenceSession(model)
    assert type(next(iter(sess.layers.values()))).__name__ == "Recurrent"
    for g, w in zip(sess.run(None, feeds), want):
        assert rel(g, w) < 1e-5


@pytest.mark.parametrize("cell", ["PeepholeLSTMCell", "GRUResetBeforeCell"])
def test_export_of_the_cells_runs_on_onnxruntime(cell):
    ort = pytest.importorskip("onnxruntime")
    layer = rnnkit.Recurrent(user_cell(cell)(), 3, 4, 2, bidirectional=True, seed=1)
    proto = export(layer, None, initial_state=True)
    ops = [n.op_type for n in proto.graph.node if n.op_type in ("LSTM", "GRU")]
    assert ops == (["LSTM"] * 2 if cell == "PeepholeLSTMCell" else ["GRU"] * 2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, 3, 4)).astype(np.float32)
    c0 = rng.standard_normal((4, 3, 4)).astype(np.float32)
    lengths = np.array([5, 1, 3])
    has_c = cell == "PeepholeLSTMCell"
    y, st = layer(x, (h0, c0) if has_c else h0, lengths)
    want = [y, *st] if has_c else [y, st]
    feeds = {"x": x, "lengths": lengths.astype(np.int32), "h0": h0, **({"c0": c0} if has_c else {})}
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    for g, w in zip(got, want):
        assert rel(g, w) < 1e-5


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell", "IndRNNCell"])
def test_export_of_a_recurrent_with_a_builtin_cell(cell):
    """rnnkit.Recurrent(rnnkit.cells.LSTMCell(), ...) is the built-in math:
    written as the built-in layer would be."""
    ort = pytest.importorskip("onnxruntime")
    layer = rnnkit.Recurrent(user_cell(cell)(), 3, 4, 2, bidirectional=True, seed=3)
    proto = export(layer, None, lengths=False)
    x = np.random.default_rng(4).standard_normal((5, 2, 3)).astype(np.float32)
    y, _ = layer(x)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert rel(sess.run(["y"], {"x": x})[0], y) < 1e-5
