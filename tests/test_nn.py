"""rnnkit.nn: modules and losses against central finite differences (float64),
optimizers and clipping against values computed by hand, and bad input."""

import math

import numpy as np
import pytest
from rnnkit import nn


def numgrad(f, x, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of x (in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_close(name, got, want, rtol=1e-6, atol=1e-7):
    err = np.max(np.abs(got - want)) if got.size else 0.0
    assert np.allclose(got, want, rtol=rtol, atol=atol), f"{name}: max abs diff {err:.3g}"


# ---------------------------------------------------------------------------
# Linear and Embedding
# ---------------------------------------------------------------------------


def test_linear_forward_is_affine_and_matches_pytorch_init_bounds():
    lin = nn.Linear(5, 3, dtype=np.float64, seed=0)
    W, b = lin.parameters["weight"], lin.parameters["bias"]
    assert W.shape == (3, 5) and b.shape == (3,)
    assert np.all(np.abs(W) <= 1 / math.sqrt(5)) and np.all(np.abs(b) <= 1 / math.sqrt(5))
    x = np.random.default_rng(1).standard_normal((4, 2, 5))
    assert_close("y", lin(x), np.einsum("tnc,oc->tno", x, W) + b)
    y, _ = lin.forward(x)
    assert_close("forward y", y, lin(x), rtol=0, atol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward_matches_finite_differences(bias):
    rng = np.random.default_rng(2)
    lin = nn.Linear(4, 3, bias=bias, dtype=np.float64, seed=3)
    x = rng.standard_normal((2, 5, 4))
    r = rng.standard_normal((2, 5, 3))  # loss = sum(r * y)
    y, tape = lin.forward(x)
    dx = lin.backward(tape, r.copy())
    f = lambda: float(np.sum(r * lin(x)))
    assert_close("dx", dx, numgrad(f, x))
    assert_close("dweight", lin.grads["weight"], numgrad(f, lin._params["weight"]))
    if bias:
        assert_close("dbias", lin.grads["bias"], numgrad(f, lin._params["bias"]))
    else:
        assert "bias" not in lin.parameters


def test_linear_backward_accumulates_and_zero_grad_clears():
    lin = nn.Linear(3, 2, dtype=np.float64, seed=0)
    x = np.ones((4, 3))
    dy = np.ones((4, 2))
    _, tape = lin.forward(x)
    lin.backward(tape, dy)
    once = lin.grads["weight"].copy()
    lin.backward(tape, dy)
    assert_close("twice", lin.grads["weight"], 2 * once, rtol=0, atol=0)
    lin.zero_grad()
    assert not np.any(lin.grads["weight"]) and not np.any(lin.grads["bias"])


def test_linear_tape_keeps_its_inputs():
    """Changing x or the weight after forward does not change the gradients."""
    lin = nn.Linear(3, 2, dtype=np.float64, seed=0)
    x = np.arange(6.0).reshape(2, 3)
    _, tape = lin.forward(x)
    want_dx = np.ones((2, 2)) @ lin.parameters["weight"]
    want_dw = np.ones((2, 2)).T @ x
    x += 100
    lin._params["weight"] += 100
    dx = lin.backward(tape, np.ones((2, 2)))
    assert_close("dx", dx, want_dx)
    assert_close("dweight", lin.grads["weight"], want_dw)


def test_linear_bad_input():
    lin = nn.Linear(3, 2, seed=0)  # float32
    with pytest.raises(TypeError, match="dtype float64 but the Linear's dtype is float32"):
        lin(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[..., 3\], got \(2, 4\)"):
        lin(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        lin([[0.0, 0.0, 0.0]])
    _, tape = nn.Linear(3, 2, seed=1).forward(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="another module"):
        lin.backward(tape, np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="positive integer"):
        nn.Linear(0, 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)


def test_embedding_lookup_and_backward_with_repeated_ids():
    rng = np.random.default_rng(0)
    emb = nn.Embedding(6, 4, dtype=np.float64, seed=0)
    ids = np.array([[0, 3, 3], [5, 3, 0]])
    r = rng.standard_normal((2, 3, 4))
    y, tape = emb.forward(ids)
    assert_close("y", y, emb.parameters["weight"][ids], rtol=0, atol=0)
    assert emb.backward(tape, r.copy()) is None
    f = lambda: float(np.sum(r * emb(ids)))
    assert_close("dweight", emb.grads["weight"], numgrad(f, emb._params["weight"]))
    # By hand: row 3 gets the three dy rows that looked it up.
    assert_close("row 3", emb.grads["weight"][3], r[0, 1] + r[0, 2] + r[1, 1], rtol=0, atol=1e-15)
    assert not np.any(emb.grads["weight"][[1, 2, 4]])


def test_embedding_bad_ids():
    emb = nn.Embedding(4, 2, seed=0)
    with pytest.raises(ValueError, match=r"ids must lie in 0..3, got values from 0 to 4"):
        emb(np.array([0, 4]))
    with pytest.raises(ValueError, match="from -1"):
        emb(np.array([-1, 2]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


def test_state_dict_round_trip_and_strictness():
    a, b = nn.Linear(3, 2, seed=0), nn.Linear(3, 2, seed=1)
    b.load_state_dict(a.state_dict())
    for k in a.parameters:
        np.testing.assert_array_equal(a.parameters[k], b.parameters[k])
    with pytest.raises(ValueError, match="missing keys \\['bias'\\]"):
        b.load_state_dict({"weight": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="shape \\(2, 3\\)"):
        b.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_cross_entropy_hand_value():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = np.array([[0.0, math.log(3)], [0.0, math.log(3)]])
    loss, d = nn.softmax_cross_entropy(logits, np.array([1, 0]))
    assert loss == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2, rel=1e-14)
    np.testing.assert_allclose(d, np.array([[0.25, -0.25], [-0.75, 0.75]]) / 2, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_gradient_matches_finite_differences(reduction, masked):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((3, 4, 5)) * 3
    targets = rng.integers(0, 5, (3, 4))
    mask = None
    if masked:
        mask = rng.uniform(0, 2, (3, 4))
        mask[0, 1] = 0.0
        targets[0, 1] = -7  # ignored: its weight is 0
    loss, d = nn.softmax_cross_entropy(logits, targets, mask, reduction=reduction)
    f = lambda: nn.softmax_cross_entropy(logits, targets, mask, reduction=reduction)[0]
    assert_close("dlogits", d, numgrad(f, logits))
    if masked:
        assert not np.any(d[0, 1])


def test_cross_entropy_mask_equals_dropping_positions():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 3))
    t = rng.integers(0, 3, 6)
    keep = np.array([1, 0, 1, 1, 0, 1], bool)
    loss_m, d_m = nn.softmax_cross_entropy(logits, t, keep)
    loss_k, d_k = nn.softmax_cross_entropy(logits[keep], t[keep])
    assert loss_m == pytest.approx(loss_k, rel=1e-14)
    np.testing.assert_allclose(d_m[keep], d_k, rtol=1e-13)
    assert not np.any(d_m[~keep])


def test_cross_entropy_is_stable_for_huge_logits_and_float32():
    logits = np.array([[1000.0, 0.0], [-1000.0, 1000.0]], np.float32)
    loss, d = nn.softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == 0.0 and d.dtype == np.float32 and np.all(np.isfinite(d))
    loss, _ = nn.softmax_cross_entropy(logits, np.array([1, 0]))
    assert loss == pytest.approx(1500.0)


def test_cross_entropy_empty_mask_and_bad_input():
    loss, d = nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), np.zeros(2))
    assert loss == 0.0 and not np.any(d)
    with pytest.raises(ValueError, match=r"targets must lie in 0..2"):
        nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="targets must have shape"):
        nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="logits must be a float32 or float64"):
        nn.softmax_cross_entropy(np.ones((2, 3), int), np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="none")
    with pytest.raises(ValueError, match="finite and >= 0"):
        nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), np.array([1.0, -1.0]))


def test_mse_hand_value_and_gradient():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    target = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss, d = nn.mse_loss(pred, target)
    assert loss == pytest.approx((0 + 4 + 9 + 16) / 4, rel=1e-15)
    np.testing.assert_allclose(d, 2 * (pred - target) / 4, rtol=1e-15)
    loss, d = nn.mse_loss(pred, target, reduction="sum")
    assert loss == 29.0
    # a mask over the first axis: only row 1 counts, averaged over its 2 entries
    loss, d = nn.mse_loss(pred, target, np.array([0, 1]))
    assert loss == pytest.approx((9 + 16) / 2, rel=1e-15)
    np.testing.assert_allclose(d, [[0, 0], [3, 4]], rtol=1e-15)


@pytest.mark.parametrize("mask_ndim", [0, 1, 2, 3])
def test_mse_gradient_matches_finite_differences(mask_ndim):
    rng = np.random.default_rng(6)
    pred = rng.standard_normal((3, 4, 2))
    target = rng.standard_normal((3, 4, 2))
    mask = None if mask_ndim == 0 else rng.uniform(0, 1, pred.shape[:mask_ndim]) > 0.3
    _, d = nn.mse_loss(pred, target, mask)
    assert_close("dpred", d, numgrad(lambda: nn.mse_loss(pred, target, mask)[0], pred))


def test_mse_ignores_nan_targets_where_masked():
    pred = np.zeros((2, 3))
    target = np.array([[1.0, 1.0, 1.0], [np.nan, np.nan, np.nan]])
    loss, d = nn.mse_loss(pred, target, np.array([True, False]))
    assert loss == 1.0 and np.all(np.isfinite(d))
    with pytest.raises(ValueError, match="leading part"):
        nn.mse_loss(pred, target, np.ones(3))


# ---------------------------------------------------------------------------
# Optimizers against hand-computed updates
# ---------------------------------------------------------------------------


def run_opt(opt_cls, grads_seq, p0=1.0, **kw):
    p = {"w": np.array([p0])}
    opt = opt_cls(p, **kw)
    out = []
    for g in grads_seq:
        opt.step({"w": np.array([g])})
        out.append(p["w"][0])
    return out


def test_sgd_plain_and_momentum_and_nesterov_by_hand():
    assert run_opt(nn.SGD, [2.0, -1.0], lr=0.1) == pytest.approx([0.8, 0.9], rel=1e-15)
    # momentum 0.5: buf1 = 2; buf2 = 0.5*2 + 4 = 5 -> p = 1 - .2 - .5
    assert run_opt(nn.SGD, [2.0, 4.0], lr=0.1, momentum=0.5) == pytest.approx([0.8, 0.3], rel=1e-14)
    # dampening 0.5: buf2 = 0.5*2 + 0.5*4 = 3
    assert run_opt(nn.SGD, [2.0, 4.0], lr=0.1, momentum=0.5, dampening=0.5) == pytest.approx(
        [0.8, 0.5]
    )
    # nesterov: step1 g + m*buf = 2 + 1 = 3; step2 buf=5, g + m*buf = 4 + 2.5 = 6.5
    assert run_opt(nn.SGD, [2.0, 4.0], lr=0.1, momentum=0.5, nesterov=True) == pytest.approx(
        [0.7, 0.05]
    )
    # weight decay adds wd * p to the gradient: g = 0 + 0.5 * 1
    assert run_opt(nn.SGD, [0.0], lr=0.1, weight_decay=0.5) == pytest.approx([0.95])


def test_adagrad_by_hand():
    # sum = 4 -> p = 1 - 0.1 * 2 / 2; sum = 4 + 1 -> p -= 0.1 * 1 / sqrt(5)
    got = run_opt(nn.Adagrad, [2.0, 1.0], lr=0.1, eps=0.0)
    assert got == pytest.approx([0.9, 0.9 - 0.1 / math.sqrt(5)], rel=1e-15)


def test_adam_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    gs = [0.5, -2.0, 3.0]
    p, m, v, want = 1.0, 0.0, 0.0, []
    for t, g in enumerate(gs, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        want.append(p)
    assert run_opt(nn.Adam, gs, lr=lr) == pytest.approx(want, rel=1e-13)
    # the first step moves by lr in the gradient's direction, whatever its size
    assert run_opt(nn.Adam, [1e-3], lr=0.1)[0] == pytest.approx(
        0.9 + 0.1 * 1e-8 / (1e-3 + 1e-8), rel=1e-14
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda p: nn.SGD(p, lr=0.1, momentum=0.9),
        lambda p: nn.Adagrad(p, lr=0.5),
        lambda p: nn.Adam(p, lr=0.1),
    ],
)
def test_optimizers_minimise_a_quadratic_in_float32(make):
    rng = np.random.default_rng(7)
    target = rng.standard_normal((3, 4)).astype(np.float32)
    p = {"w": np.zeros((3, 4), np.float32), "b": np.ones(2, np.float32)}
    opt = make(p)
    for _ in range(300):
        opt.step({"w": p["w"] - target, "b": p["b"].copy()})
    assert p["w"].dtype == np.float32
    assert np.max(np.abs(p["w"] - target)) < 1e-2 and np.max(np.abs(p["b"])) < 1e-2


def test_optimizer_state_dict_resumes_exactly():
    gs = [np.array([0.3, -1.0]), np.array([2.0, 0.1]), np.array([-0.5, 0.5])]
    p1 = {"w": np.array([1.0, 2.0])}
    o1 = nn.Adam(p1, lr=0.1)
    for g in gs:
        o1.step({"w": g})
    p2 = {"w": np.array([1.0, 2.0])}
    o2 = nn.Adam(p2, lr=0.1)
    o2.step({"w": gs[0]})
    saved = o2.state_dict()
    p3 = {"w": p2["w"].copy()}
    o3 = nn.Adam(p3, lr=0.1)
    o3.load_state_dict(saved)
    for g in gs[1:]:
        o3.step({"w": g})
    np.testing.assert_array_equal(p3["w"], p1["w"])


def test_optimizer_bad_input():
    p = {"w": np.zeros(2)}
    opt = nn.Adam(p)
    with pytest.raises(ValueError, match=r"missing \['w'\], unexpected \['v'\]"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="float64 array of shape \\(2,\\)"):
        opt.step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="lr"):
        nn.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="empty"):
        nn.SGD({}, lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.SGD({"w": np.zeros(2, int)})
    with pytest.raises(ValueError, match=r"betas\[1\] must be \[0, 1.0\), got 1.0"):
        nn.Adam(p, betas=(0.9, 1.0))


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


def test_clip_grad_norm_by_hand():
    g = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    norm = nn.clip_grad_norm(g, 1.0)
    assert norm == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    assert g["a"][0] == pytest.approx(3 * scale, rel=1e-15) and g["b"][0, 0] == pytest.approx(
        4 * scale, rel=1e-15
    )
    g = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    assert nn.clip_grad_norm(g, 10.0) == 5.0
    assert g["a"][0] == 3.0 and g["b"][0, 0] == 4.0  # below the limit: untouched


def test_clip_grad_norm_float32_list_and_nonfinite():
    gs = [np.full(100, 0.5, np.float32), np.full(44, -0.5, np.float32)]
    norm = nn.clip_grad_norm(gs, 2.0)
    assert norm == pytest.approx(6.0, rel=1e-7)
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in gs))
    assert total == pytest.approx(2.0, rel=1e-5) and gs[0].dtype == np.float32
    bad = {"a": np.array([np.inf, 1.0])}
    assert math.isinf(nn.clip_grad_norm(bad, 1.0))
    assert bad["a"][1] == 1.0  # not scaled: the caller decides


def test_clip_grad_value_by_hand():
    g = {"a": np.array([-3.0, 0.5, 2.0])}
    assert nn.clip_grad_value(g, 1.0) is None
    np.testing.assert_array_equal(g["a"], [-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="clip_value"):
        nn.clip_grad_value(g, -1.0)


def test_named_parameters_share_the_live_arrays():
    lin, emb = nn.Linear(2, 3, seed=0), nn.Embedding(4, 2, seed=0)
    params = nn.named_parameters({"head": lin, "emb": emb})
    assert list(params) == ["head.weight", "head.bias", "emb.weight"]
    assert params["head.weight"] is lin.parameters["weight"]
    grads = nn.named_grads({"head": lin, "emb": emb})
    assert grads["emb.weight"] is emb.grads["weight"]


# --- found in review -----------------------------------------------------------------


def test_load_state_dict_refuses_overflow_and_masked_values():
    from rnnkit import nn as rnn_nn

    lin = rnn_nn.Linear(3, 2, seed=0)  # float32
    before = lin.state_dict()
    sd = {k: v.astype(np.float64) for k, v in before.items()}
    sd["bias"][0] = 1e300  # cast to float32 this was inf, silently
    with pytest.raises(ValueError, match=r"state_dict\['bias'\] has values too large for float32"):
        lin.load_state_dict(sd)
    np.testing.assert_array_equal(lin.parameters["bias"], before["bias"])  # nothing written
    sd["bias"] = np.ma.masked_array(before["bias"], mask=[1, 0])
    with pytest.raises(TypeError, match=r"state_dict\['bias'\] is a masked array"):
        lin.load_state_dict(sd)
