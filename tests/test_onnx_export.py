"""rnnkit.onnx.export: every cell, 2 layers, bidirectional, lengths, written as
ONNX and run by ONNX Runtime (float32 1e-5) and onnx.reference (float64 1e-10),
then back through rnnkit.onnx.InferenceSession; and every refusal's message.
Not the node-case suite (test_onnx_session.py)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import rnnkit  # noqa: E402
from rnnkit import nn  # noqa: E402
from rnnkit.onnx import InferenceSession, export  # noqa: E402

CELLS = [
    ("rnn", lambda **kw: rnnkit.RNN(3, 5, 2, **kw)),
    ("rnn_relu", lambda **kw: rnnkit.RNN(3, 5, 2, nonlinearity="relu", **kw)),
    ("lstm", lambda **kw: rnnkit.LSTM(3, 5, 2, **kw)),
    ("gru", lambda **kw: rnnkit.GRU(3, 5, 2, **kw)),
    ("indrnn", lambda **kw: rnnkit.IndRNN(3, 5, 2, **kw)),
    ("indrnn_tanh", lambda **kw: rnnkit.IndRNN(3, 5, 2, nonlinearity="tanh", **kw)),
]
T, N = 6, 4
LENGTHS = np.array([6, 3, 1, 6])  # any order; 0 is covered with ONNX Runtime below


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def inputs(layer, dtype, rng, N=N, batch_first=False):
    x = rng.standard_normal((N, T, 3) if batch_first else (T, N, 3)).astype(dtype)
    shape = (layer.num_layers * layer.num_directions, N, layer.hidden_size)
    h0 = (0.5 * rng.standard_normal(shape)).astype(dtype)
    c0 = (0.5 * rng.standard_normal(shape)).astype(dtype)
    return x, h0, c0


def rnnkit_run(layer, x, h0, c0, lengths):
    has_c = isinstance(layer, rnnkit.LSTM)
    y, st = layer(x, (h0, c0) if has_c else h0, lengths)
    return [y, *st] if has_c else [y, st]


def feeds(layer, x, h0, c0, lengths):
    f = {"x": x, "h0": h0}
    if isinstance(layer, rnnkit.LSTM):
        f["c0"] = c0
    if lengths is not None:
        f["lengths"] = lengths.astype(np.int32)
    return f


@pytest.mark.parametrize("name,make", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("batch_first", [False, True])
def test_export_then_onnxruntime_float32(name, make, batch_first, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    layer = make(bidirectional=True, batch_first=batch_first, seed=2)
    path = tmp_path / "m.onnx"
    export(layer, path, initial_state=True)
    x, h0, c0 = inputs(layer, np.float32, rng, N=5, batch_first=batch_first)
    lengths = np.array([6, 3, 0, 1, 6])  # with a zero length: the state passes through
    want = rnnkit_run(layer, x, h0, c0, lengths)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds(layer, x, h0, c0, lengths))
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, (k, g.shape, w.shape)
        assert rel(g, w) < 1e-5, f"{name} output {k}: rel err {rel(g, w):.2e}"
    # and back in through rnnkit's own session: the same kernels, the same bits
    mine = InferenceSession(str(path)).run(None, feeds(layer, x, h0, c0, lengths))
    for g, w in zip(mine, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name,make", CELLS, ids=[c[0] for c in CELLS])
def test_export_without_lengths_or_state_onnxruntime(name, make):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(3)
    layer = make(bidirectional=True, seed=4)
    proto = export(layer, None, lengths=False)
    assert [i.name for i in proto.graph.input] == ["x"]
    x, _, _ = inputs(layer, np.float32, rng)
    want = rnnkit_run(layer, x, None, None, None)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for g, w in zip(sess.run(None, {"x": x}), want):
        assert rel(g, w) < 1e-5
    # dynamic T and N: another shape, the same file
    x2 = rng.standard_normal((9, 2, 3)).astype(np.float32)
    for g, w in zip(sess.run(None, {"x": x2}), rnnkit_run(layer, x2, None, None, None)):
        assert rel(g, w) < 1e-5


def _reference_run(proto, f):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(proto).run(None, f)


# onnx.reference's RNN knows only Tanh (and Affine): the relu cells are held to
# ONNX Runtime above (float32), which implements Relu.
TANH_CELLS = [c for c in CELLS if "relu" not in c[0] and c[0] != "indrnn"]


@pytest.mark.parametrize("name,make", TANH_CELLS, ids=[c[0] for c in TANH_CELLS])
def test_export_then_onnx_reference_float64(name, make):
    """onnx.reference (1.23) ignores sequence_lens (its RNN ops take the input
    and drop it), so each sequence runs alone, cut to its own length: that is
    what ONNX's sequence_lens means, and rnnkit's batch must agree with it."""
    rng = np.random.default_rng(5)
    layer = make(bidirectional=True, dtype=np.float64, seed=6)
    proto = export(layer, None, initial_state=True)
    x, h0, c0 = inputs(layer, np.float64, rng)
    want = rnnkit_run(layer, x, h0, c0, LENGTHS)
    for n, L in enumerate(LENGTHS):
        f = feeds(layer, x[:L, n : n + 1], h0[:, n : n + 1], c0[:, n : n + 1], np.array([L]))
        got = _reference_run(proto, f)
        assert rel(got[0][:, 0], want[0][:L, n]) < 1e-10, (
            name,
            n,
            rel(got[0][:, 0], want[0][:L, n]),
        )
        assert not want[0][L:, n].any()  # rnnkit: zeros past the length, as ONNX
        for g, w in zip(got[1:], want[1:]):
            assert rel(g[:, 0], w[:, n]) < 1e-10
    # the whole batch without lengths, in one call
    proto = export(layer, None, lengths=False, initial_state=True)
    want = rnnkit_run(layer, x, h0, c0, None)
    f = {"x": x, "h0": h0, **({"c0": c0} if len(want) == 3 else {})}
    for g, w in zip(_reference_run(proto, f), want):
        assert rel(g, w) < 1e-10


def test_export_graph_shape_one_node_per_layer_and_attributes():
    layer = rnnkit.GRU(3, 4, 3, bidirectional=True, seed=0)
    proto = export(layer, None)
    rec = [n for n in proto.graph.node if n.op_type in ("RNN", "LSTM", "GRU")]
    assert [n.op_type for n in rec] == ["GRU"] * 3
    for n in rec:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        assert a["direction"] == b"bidirectional" and a["linear_before_reset"] == 1
        assert a["hidden_size"] == 4
    ind = export(rnnkit.IndRNN(3, 4, seed=0), None)
    (node,) = [n for n in ind.graph.node if n.op_type == "RNN"]
    R = onnx.numpy_helper.to_array(
        next(t for t in ind.graph.initializer if t.name == node.input[2])
    )
    assert np.count_nonzero(R[0] - np.diag(np.diag(R[0]))) == 0  # diagonal R
    x = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in x[:2]] == ["T", "N"]
    onnx.checker.check_model(proto, full_check=True)


def test_export_stack_with_heads_and_char_model():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(7)
    lstm = rnnkit.LSTM(3, 6, seed=1)
    gru = rnnkit.GRU(6, 4, bidirectional=True, seed=2)
    head = nn.Linear(8, 2, seed=3)
    proto = export([lstm, gru, head], None)
    x = rng.standard_normal((T, N, 3)).astype(np.float32)
    y1, (h1, c1) = lstm(x, None, LENGTHS)
    y2, h2 = gru(y1, None, LENGTHS)
    want = [head(y2), h1, c1, h2]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert names == ["y", "h_n.0", "c_n.0", "h_n.1"]
    got = sess.run(None, {"x": x, "lengths": LENGTHS.astype(np.int32)})
    for k, (g, w) in enumerate(zip(got, want)):
        # past a length y is 0, so the head gives its bias there too: same as rnnkit
        assert rel(g, w) < 1e-5, k

    # rnnkit.nn's {name: module} convention, in order
    proto = export({"rnn": lstm, "rnn2": gru, "head": head}, None)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["y"], {"x": x, "lengths": LENGTHS.astype(np.int32)})[0]
    assert rel(got, want[0]) < 1e-5

    from rnnkit.text import CharModel

    model = CharModel("gru", 8, 2, embedding_dim=4, seed=0, vocab="abcdef")
    proto = export(model, None, lengths=False)
    ids = rng.integers(0, 6, size=(T, N)).astype(np.int64)
    want = model.head(model.rnn(model.embedding(ids))[0])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert rel(sess.run(["y"], {"ids": ids})[0], want) < 1e-5
    assert rel(InferenceSession(proto).run(["y"], {"ids": ids})[0], want) < 1e-6


def test_export_refusals_name_the_reason(tmp_path):
    lstm = rnnkit.LSTM(3, 4, seed=0)
    with pytest.raises(ValueError, match=r"opset must be in 10\.\."):
        export(lstm, None, opset=7)
    with pytest.raises(TypeError, match="opset must be an int"):
        export(lstm, None, opset="17")
    with pytest.raises(TypeError, match="model\\[1\\] is a str, which has no ONNX form"):
        export([lstm, "head"], None)
    with pytest.raises(ValueError, match="empty sequence"):
        export({}, None)
    with pytest.raises(TypeError, match="lengths must be a bool"):
        export(lstm, None, lengths=None)
    with pytest.raises(ValueError, match="disagree on batch_first"):
        export([lstm, rnnkit.GRU(4, 4, batch_first=True)], None)
    with pytest.raises(ValueError, match="mix dtypes"):
        export([lstm, rnnkit.GRU(4, 4, dtype=np.float64)], None)
    with pytest.raises(ValueError, match="only the first module may be one"):
        export([lstm, nn.Embedding(5, 4)], None)
    with pytest.raises(ValueError, match="no recurrent layer"):
        export([nn.Linear(3, 4)], None)
    from rnnkit.text import CharModel

    with pytest.raises(ValueError, match="no weights yet"):
        export(CharModel("lstm", 4, 1), None)


def test_export_refuses_a_user_cell_without_an_onnx_form(monkeypatch):
    """A Recurrent whose cell has no exact ONNX node is refused with the reason.
    Runs without the user-cells work too: a stand-in Recurrent class is enough
    to reach the check (export reads only isinstance and .cell)."""

    class Recurrent:  # the shape export reads: a .cell
        def __init__(self, cell):
            self.cell = cell

    class MinimalGatedCell:
        pass

    monkeypatch.setattr(rnnkit, "Recurrent", Recurrent, raising=False)
    layer = Recurrent(MinimalGatedCell())
    with pytest.raises(ValueError, match="cell MinimalGatedCell: ONNX's RNN, LSTM and GRU"):
        export(layer, None)


def test_import_rnnkit_imports_no_interop_library():
    import subprocess
    import sys

    code = (
        "import sys, rnnkit; "
        "bad = sorted({'onnx', 'onnxruntime', 'keras', 'jax', 'torch'} & set(sys.modules)); "
        "assert not bad, bad"
    )
    env = {**__import__("os").environ, "PYTHONPATH": __import__("os").pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
