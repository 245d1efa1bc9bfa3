"""rnnkit.onnx.InferenceSession: every RNN, LSTM and GRU node case that the
installed onnx package ships (onnx/backend/test/case/node/{rnn,lstm,gru}.py),
in float32 against the cases' outputs and in float64 against onnx.reference;
random nodes (layouts, states, lengths, Y_c) against onnx.reference and ONNX
Runtime; sess.layers; and each refused attribute's message."""

import importlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.onnx import InferenceSession, UnsupportedModelError  # noqa: E402
from rnnkit.onnx._session import user_cell  # noqa: E402


def _node_cases():
    import onnx.backend.test.case.node as node_cases

    before = len(node_cases._NodeTestCases)
    for m in ("rnn", "lstm", "gru"):  # importing a module runs its export_* (the cases)
        importlib.import_module(f"onnx.backend.test.case.node.{m}")
    cases = [
        c
        for c in node_cases._NodeTestCases[before if before else 0 :]
        if c.model.graph.node[0].op_type in ("RNN", "LSTM", "GRU")
    ]
    if not cases:  # imported earlier in this process: take them from the list
        cases = [
            c
            for c in node_cases._NodeTestCases
            if c.model.graph.node[0].op_type in ("RNN", "LSTM", "GRU")
        ]
    return {c.name: c for c in cases}


CASES = _node_cases()


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def needs_cell(case):
    """The user cell a case needs (None: a built-in layer runs it)."""
    node = case.model.graph.node[0]
    if node.op_type == "GRU" and not _attr(node, "linear_before_reset", 0):
        return "GRUResetBeforeCell"
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        return "PeepholeLSTMCell"
    return None


def skip_without_cell(cell):
    # The cases that map to a user cell need it found (rnnkit.cells ships it).
    if cell is not None:
        assert user_cell(cell) is not None, f"rnnkit.cells.{cell} not found"


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def test_all_shipped_cases_are_collected():
    # 6 RNN + 6 LSTM + 6 GRU in onnx 1.23; a new onnx with more cases runs them too
    ops = sorted(c.model.graph.node[0].op_type for c in CASES.values())
    assert ops.count("RNN") >= 6 and ops.count("LSTM") >= 6 and ops.count("GRU") >= 6


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_node_case_float32(name):
    case = CASES[name]
    skip_without_cell(needs_cell(case))
    ins, outs = case.data_sets[0]
    sess = InferenceSession(case.model)
    feeds = {a.name: v for a, v in zip(sess.get_inputs(), ins)}
    got = sess.run(None, feeds)
    assert len(got) == len(outs)
    for g, want in zip(got, outs):
        assert g.shape == want.shape and g.dtype == want.dtype
        assert rel(g, want) < 1e-5, f"{name}: rel err {rel(g, want):.2e}"


def as_float64(model, lbr=None):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    if lbr is not None:
        node = m.graph.node[0]
        keep = [a for a in node.attribute if a.name != "linear_before_reset"]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("linear_before_reset", lbr)])
    return m


def with_lbr(model, lbr):
    m = as_float64(model, lbr)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.DOUBLE:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


def f64(a):
    return a.astype(np.float64) if a.dtype == np.float32 else a


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_node_case_float64_against_onnx_reference(name):
    from onnx.reference import ReferenceEvaluator

    case = CASES[name]
    skip_without_cell(needs_cell(case))
    ins, _ = case.data_sets[0]
    model = as_float64(case.model)
    ins = [f64(a) for a in ins]
    names = [i.name for i in model.graph.input]
    want = ReferenceEvaluator(model).run(None, dict(zip(names, ins)))
    got = InferenceSession(model).run(None, dict(zip(names, ins)))
    for g, w in zip(got, want):
        assert g.dtype == np.float64 and rel(g, w) < 1e-10, (name, rel(g, w))


GRU_CASES = sorted(n for n, c in CASES.items() if c.model.graph.node[0].op_type == "GRU")


@pytest.mark.parametrize("name", GRU_CASES)
def test_onnx_gru_cases_with_linear_before_reset_1(name):
    """The shipped GRU cases are reset-before (ONNX's default); the same cases
    with linear_before_reset=1 run on rnnkit's own GRU, against onnx.reference
    (float64, 1e-10) and ONNX Runtime (float32, 1e-5)."""
    from onnx.reference import ReferenceEvaluator

    case = CASES[name]
    ins, _ = case.data_sets[0]
    m64 = as_float64(case.model, lbr=1)
    names = [i.name for i in m64.graph.input]
    ins64 = [f64(a) for a in ins]
    want = ReferenceEvaluator(m64).run(None, dict(zip(names, ins64)))
    sess = InferenceSession(m64)
    for g, w in zip(sess.run(None, dict(zip(names, ins64))), want):
        assert rel(g, w) < 1e-10
    m32 = with_lbr(case.model, 1)
    if _attr(m32.graph.node[0], "layout", 0) == 0:
        ort = pytest.importorskip("onnxruntime")
        o = ort.InferenceSession(m32.SerializeToString(), providers=["CPUExecutionProvider"])
        want = o.run(None, dict(zip(names, ins)))
    else:  # ONNX Runtime has no layout=1 kernel; the float64 reference, cast
        want = [w.astype(np.float32) for w in want]
    for g, w in zip(InferenceSession(m32).run(None, dict(zip(names, ins))), want):
        assert rel(g, w) < 1e-5


# ---------------------------------------------------------------------------
# Random nodes: layouts, states, Y_c, weights as initializers, sess.layers
# ---------------------------------------------------------------------------

G = {"RNN": 1, "LSTM": 4, "GRU": 3}


def make_node_model(op, direction, layout, dtype, T, N, C, H, *, initializers, rng, extra=()):
    D = 2 if direction == "bidirectional" else 1
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    w = {
        "W": (0.5 * rng.standard_normal((D, G[op] * H, C))).astype(dtype),
        "R": (0.5 * rng.standard_normal((D, G[op] * H, H))).astype(dtype),
        "B": (0.3 * rng.standard_normal((D, 2 * G[op] * H))).astype(dtype),
    }
    xs = (N, T, C) if layout else (T, N, C)
    hs = (N, D, H) if layout else (D, N, H)
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h"] + (
        ["initial_c"] if op == "LSTM" else []
    )
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    attrs = dict(hidden_size=H, direction=direction, layout=layout, **dict(extra))
    if op == "GRU":
        attrs.setdefault("linear_before_reset", 1)
    node = helper.make_node(op, names, outs, name="rec", **attrs)
    vi = [helper.make_tensor_value_info("X", elem, list(xs))]
    inits = []
    for k, v in w.items():
        if initializers:
            inits.append(numpy_helper.from_array(v, k))
        else:
            vi.append(helper.make_tensor_value_info(k, elem, list(v.shape)))
    vi.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [N]))
    for s in names[5:]:
        vi.append(helper.make_tensor_value_info(s, elem, list(hs)))
    ovi = [helper.make_tensor_value_info(o, elem, None) for o in outs]
    graph = helper.make_graph([node], "g", vi, ovi, inits)
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", 14)])
    feeds = {"X": rng.standard_normal(xs).astype(dtype)}
    if not initializers:
        feeds.update(w)
    feeds["sequence_lens"] = np.full(N, T, np.int32)
    for s in names[5:]:
        feeds[s] = (0.5 * rng.standard_normal(hs)).astype(dtype)
    return model, feeds


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_random_nodes_against_onnx_reference_float64(op, direction, layout):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(hash((op, direction, layout)) % 2**32)
    model, feeds = make_node_model(
        op, direction, layout, np.float64, 5, 3, 4, 6, initializers=layout == 1, rng=rng
    )
    want = ReferenceEvaluator(model).run(None, feeds)
    sess = InferenceSession(model)
    got = sess.run(None, feeds)
    assert len(got) == len(want) == (3 if op == "LSTM" else 2)
    for g, w in zip(got, want):
        assert g.shape == w.shape and rel(g, w) < 1e-10
    if layout == 1:  # initializers: the layer is built once and handed back
        (layer,) = sess.layers.values()
        assert type(layer).__name__ == {"RNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[op]
        assert layer.bidirectional == (direction == "bidirectional")


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_random_nodes_with_sequence_lens_against_onnxruntime(op, direction):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(hash((op, direction)) % 2**32)
    model, feeds = make_node_model(
        op, direction, 0, np.float32, 7, 4, 3, 5, initializers=False, rng=rng
    )
    feeds["sequence_lens"] = np.array([7, 2, 5, 1], np.int32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    got = InferenceSession(model).run(None, feeds)
    for g, w in zip(got, want):
        assert rel(g, w) < 1e-5, (op, direction, rel(g, w))


def test_zero_length_keeps_the_initial_state_where_onnxruntime_writes_zeros():
    """A documented difference (docs/interop.md): for sequence_lens 0, rnnkit's
    Y_h is initial_h (the state is unchanged), ONNX Runtime's is 0; the spec
    says nothing. Y is 0 in both."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    model, feeds = make_node_model(
        "LSTM", "forward", 0, np.float32, 4, 2, 3, 5, initializers=True, rng=rng
    )
    feeds["sequence_lens"] = np.array([4, 0], np.int32)
    Y, Y_h, Y_c = InferenceSession(model).run(None, feeds)
    oY, oY_h, _ = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feeds)
    np.testing.assert_array_equal(Y_h[:, 1], feeds["initial_h"][:, 1])
    np.testing.assert_array_equal(Y_c[:, 1], feeds["initial_c"][:, 1])
    assert not oY_h[:, 1].any() and not Y[:, :, 1].any() and not oY[:, :, 1].any()
    assert rel(Y_h[:, 0], oY_h[:, 0]) < 1e-5


def test_layers_are_live_for_fine_tuning_and_diagonal_R_is_an_indrnn():
    rng = np.random.default_rng(1)
    model, feeds = make_node_model(
        "GRU", "forward", 0, np.float64, 5, 2, 3, 4, initializers=True, rng=rng
    )
    sess = InferenceSession(model)
    (layer,) = sess.layers.values()
    y, h = layer(feeds["X"], feeds["initial_h"])
    Y, Y_h = sess.run(["Y", "Y_h"], feeds)
    np.testing.assert_array_equal(Y[:, 0], y)
    np.testing.assert_array_equal(Y_h, h)
    layer.parameters["bias_ih_l0"][...] += 1.0  # fine-tune in place: the session follows
    np.testing.assert_array_equal(
        sess.run(["Y"], feeds)[0][:, 0], layer(feeds["X"], feeds["initial_h"])[0]
    )
    # an RNN whose R is diagonal is an IndRNN, exactly
    ind = rnnkit.IndRNN(3, 4, dtype=np.float64, seed=0)
    proto = rnnkit.onnx.export(ind, None, lengths=False)
    s2 = InferenceSession(proto.SerializeToString())
    (l2,) = s2.layers.values()
    assert isinstance(l2, rnnkit.IndRNN)
    np.testing.assert_array_equal(l2.parameters["weight_hh_l0"], ind.parameters["weight_hh_l0"])


def test_interface_like_onnxruntime(tmp_path):
    rng = np.random.default_rng(2)
    model, feeds = make_node_model(
        "LSTM", "bidirectional", 0, np.float32, 3, 2, 3, 4, initializers=True, rng=rng
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    sess = InferenceSession(str(path))
    assert [a.name for a in sess.get_inputs()] == ["X", "sequence_lens", "initial_h", "initial_c"]
    assert sess.get_inputs()[0].type == "tensor(float)" and sess.get_inputs()[0].shape == [3, 2, 3]
    assert [a.name for a in sess.get_outputs()] == ["Y", "Y_h", "Y_c"]
    (Y_c,) = sess.run(["Y_c"], feeds)
    assert Y_c.shape == (2, 2, 4)
    with pytest.raises(ValueError, match="input 'initial_c' is missing"):
        sess.run(None, {k: v for k, v in feeds.items() if k != "initial_c"})
    with pytest.raises(TypeError, match="input 'X' must have dtype float32"):
        sess.run(None, {**feeds, "X": feeds["X"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"input 'X' must have shape \[3, 2, 3\]"):
        sess.run(None, {**feeds, "X": feeds["X"][:2]})
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['Z'\]"):
        sess.run(None, {**feeds, "Z": feeds["X"]})
    with pytest.raises(TypeError, match="path_or_model must be"):
        InferenceSession(3)


# ---------------------------------------------------------------------------
# Refusals, by name
# ---------------------------------------------------------------------------

REFUSED = [
    ("RNN", {"clip": 3.0}, "attribute clip=3.0 is refused"),
    ("LSTM", {"clip": 10.0}, "attribute clip=10.0 is refused"),
    ("GRU", {"clip": 1.0}, "attribute clip=1.0 is refused"),
    ("LSTM", {"input_forget": 1}, "attribute input_forget=1 is refused"),
    ("RNN", {"activations": ["Sigmoid"]}, r"activations=\['Sigmoid'\] are refused"),
    (
        "LSTM",
        {"activations": ["Sigmoid", "Relu", "Tanh"]},
        r"activations=\['Sigmoid', 'Relu', 'Tanh'\] are refused",
    ),
    (
        "GRU",
        {"activations": ["HardSigmoid", "Tanh"]},
        r"activations=\['HardSigmoid', 'Tanh'\] are refused",
    ),
    (
        "RNN",
        {"activations": ["Tanh"], "activation_alpha": [0.5]},
        r"activation_alpha=\[0.5\] is refused",
    ),
    ("GRU", {"activation_beta": [0.5]}, r"activation_beta=\[0.5\] is refused"),
    ("LSTM", {"foo": 1}, r"unknown attribute\(s\) \['foo'\]"),
]


@pytest.mark.parametrize("op,extra,message", REFUSED)
def test_math_changing_attributes_are_refused_by_name(op, extra, message):
    rng = np.random.default_rng(0)
    model, _ = make_node_model(
        op, "forward", 0, np.float32, 3, 2, 3, 4, initializers=True, rng=rng, extra=extra.items()
    )
    with pytest.raises(UnsupportedModelError, match=message):
        InferenceSession(model)


def test_default_activations_spelt_out_are_accepted():
    rng = np.random.default_rng(0)
    for op, acts in (
        ("RNN", ["Relu", "Relu"]),
        ("LSTM", ["Sigmoid", "Tanh", "Tanh"] * 2),
        ("GRU", ["Sigmoid", "Tanh"] * 2),
    ):
        model, feeds = make_node_model(
            op,
            "bidirectional",
            0,
            np.float32,
            3,
            2,
            3,
            4,
            initializers=True,
            rng=rng,
            extra=[("activations", acts)],
        )
        InferenceSession(model).run(None, feeds)


def test_unsupported_ops_and_domains_are_refused_by_name():
    X = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])
    Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])
    m = helper.make_model(
        helper.make_graph([helper.make_node("Erf", ["X"], ["Y"], name="e")], "g", [X], [Y])
    )
    with pytest.raises(UnsupportedModelError, match="op Erf is not supported"):
        InferenceSession(m)
    m = helper.make_model(
        helper.make_graph(
            [helper.make_node("Foo", ["X"], ["Y"], name="f", domain="com.example")], "g", [X], [Y]
        )
    )
    with pytest.raises(UnsupportedModelError, match="com.example::Foo"):
        InferenceSession(m)


def test_reset_before_gru_and_peepholes_without_the_user_cells_are_refused_by_name():
    """Without rnnkit.Recurrent these two variants are refused, naming what they
    need; with it (after the user-cells merge) they map to the cells and run."""
    have = user_cell("GRUResetBeforeCell") is not None
    rng = np.random.default_rng(0)
    model, feeds = make_node_model(
        "GRU",
        "forward",
        0,
        np.float32,
        3,
        2,
        3,
        4,
        initializers=True,
        rng=rng,
        extra=[("linear_before_reset", 0)],
    )
    if have:
        InferenceSession(model).run(None, feeds)
    else:
        with pytest.raises(
            UnsupportedModelError,
            match="linear_before_reset=0 .* needs rnnkit.cells.GRUResetBeforeCell",
        ):
            InferenceSession(model)
    case = CASES["test_lstm_with_peepholes"]
    if user_cell("PeepholeLSTMCell") is not None:
        return  # test_onnx_node_case_* run it
    ins, _ = case.data_sets[0]
    sess = InferenceSession(case.model)  # P is a feed: refused when it arrives
    with pytest.raises(
        UnsupportedModelError,
        match=r"peepholes \(input P, nonzero\) need rnnkit.cells.PeepholeLSTMCell",
    ):
        sess.run(None, {a.name: v for a, v in zip(sess.get_inputs(), ins)})
    # all-zero peepholes are a plain LSTM: exact, no cell needed
    feeds = {a.name: v for a, v in zip(sess.get_inputs(), ins)}
    feeds["P"] = np.zeros_like(feeds["P"])
    sess.run(None, feeds)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_a_pytorch_exported_model_runs_with_its_plain_ops(cell):
    """torch.onnx.export (TorchScript exporter) writes the recurrent nodes with
    Shape/Gather/ConstantOfShape/Slice/Unsqueeze/Concat around them and a
    MatMul/Add head: the session runs it all and gives PyTorch's numbers."""
    torch = pytest.importorskip("torch")
    import io

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(3, 4, 2, bidirectional=True)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y)

    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(5, 2, 3)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"])
    sess = InferenceSession(buf.getvalue())
    assert len(sess.layers) == 2
    (y,) = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert rel(y, want) < 1e-5


def test_a_fed_initializer_overrides_the_built_layer_for_that_run():
    """An initializer that the graph also lists as an input may be fed (as in
    onnxruntime); the run uses the fed weights, never silently the built ones."""
    rng = np.random.default_rng(4)
    model, feeds = make_node_model(
        "RNN", "forward", 0, np.float64, 4, 2, 3, 5, initializers=True, rng=rng
    )
    W = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "W"))
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.DOUBLE, list(W.shape)))
    sess = InferenceSession(model)
    base = sess.run(["Y_h"], feeds)[0]
    W2 = W * 0.5
    got = sess.run(["Y_h"], {**feeds, "W": W2})[0]
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(model).run(["Y_h"], {**feeds, "W": W2})[0]
    assert rel(got, want) < 1e-10 and not np.allclose(got, base)
    np.testing.assert_array_equal(sess.run(["Y_h"], feeds)[0], base)  # the built layer is untouched


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_layout_1_with_sequence_lens_and_states_matches_layout_0_on_onnxruntime(op):
    """ONNX Runtime has no layout=1 kernel and onnx.reference ignores
    sequence_lens, so layout=1 with lengths is held to ONNX Runtime's layout=0
    run of the same node, transposed."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(9)
    m0, f0 = make_node_model(
        op, "bidirectional", 0, np.float32, 6, 3, 4, 5, initializers=True, rng=rng
    )
    m1 = onnx.ModelProto()
    m1.CopyFrom(m0)
    node = m1.graph.node[0]
    keep = [a for a in node.attribute if a.name != "layout"]
    del node.attribute[:]
    node.attribute.extend(keep + [helper.make_attribute("layout", 1)])
    for vi in m1.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in ("X", "initial_h", "initial_c"):
            a, b = dims[0].dim_value, dims[1].dim_value
            dims[0].dim_value, dims[1].dim_value = b, a
    f0["sequence_lens"] = np.array([6, 2, 4], np.int32)
    f1 = {
        k: (v.transpose(1, 0, 2) if k in ("X", "initial_h", "initial_c") else v)
        for k, v in f0.items()
    }
    want = ort.InferenceSession(m0.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, f0
    )
    got = InferenceSession(m1).run(None, f1)
    assert rel(got[0], want[0].transpose(2, 0, 1, 3)) < 1e-5  # Y [N, T, D, H]
    for g, w in zip(got[1:], want[1:]):
        assert rel(g, w.transpose(1, 0, 2)) < 1e-5  # Y_h, Y_c [N, D, H]
