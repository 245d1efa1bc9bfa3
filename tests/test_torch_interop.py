"""rnnkit.torch: from_torch/to_torch round trips (bitwise weights, equal
outputs), RNNFunction/RNNModule against torch.nn.RNN/LSTM/GRU (outputs and
every gradient), torch.autograd.gradcheck in float64, a training step, and
the refusals' messages. Not the layer-level parity suite (test_torch_parity.py)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import rnnkit  # noqa: E402
from rnnkit.torch import RNNFunction, RNNModule, from_torch, to_torch  # noqa: E402

MODULES = [
    ("rnn_tanh", lambda **kw: torch.nn.RNN(3, 5, 2, **kw)),
    ("rnn_relu", lambda **kw: torch.nn.RNN(3, 5, 2, nonlinearity="relu", **kw)),
    ("lstm", lambda **kw: torch.nn.LSTM(3, 5, 2, **kw)),
    ("gru", lambda **kw: torch.nn.GRU(3, 5, 2, **kw)),
]
IDS = [m[0] for m in MODULES]


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("name,make", MODULES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_from_torch_to_torch_round_trip(name, make, dtype):
    torch.manual_seed(0)
    m = make(bidirectional=True, batch_first=True, dtype=dtype)
    layer = from_torch(m)
    assert layer.batch_first and layer.bidirectional and layer.num_layers == 2
    back = to_torch(layer)
    assert type(back) is type(m)
    for k, v in m.state_dict().items():  # bitwise, every weight
        assert torch.equal(back.state_dict()[k], v), k
    x = torch.randn(4, 6, 3, dtype=dtype)
    with torch.no_grad():
        y_t, st_t = m(x)
    y, st = layer(x.numpy())
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert rel(y, y_t.numpy()) < tol
    st, st_t = (st, st_t) if name == "lstm" else ((st,), (st_t,))
    for a, b in zip(st, st_t):
        assert rel(a, b.numpy()) < tol


@pytest.mark.parametrize("name,make", MODULES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rnn_module_outputs_and_all_gradients_equal_torch(name, make, dtype):
    torch.manual_seed(1)
    ref = make(bidirectional=True, dtype=dtype)
    mine = RNNModule(ref)  # converts with from_torch
    T, N = 5, 3
    x = torch.randn(T, N, 3, dtype=dtype)
    h0 = torch.randn(4, N, 5, dtype=dtype)
    c0 = torch.randn(4, N, 5, dtype=dtype)
    state = (h0, c0) if name == "lstm" else h0
    outs = {}
    for who, mod in (("torch", ref), ("rnnkit", mine)):
        xi = x.clone().requires_grad_()
        si = tuple(s.clone().requires_grad_() for s in (state if name == "lstm" else (state,)))
        y, st = mod(xi, si if name == "lstm" else si[0])
        st = st if name == "lstm" else (st,)
        # a loss that reaches y and every final state
        loss = (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape)).sum()
        loss = loss + sum((s**2).sum() for s in st)
        loss.backward()
        grads = {"x": xi.grad, **{f"s{i}": s.grad for i, s in enumerate(si)}}
        grads.update({n: p.grad for n, p in mod.named_parameters()})
        outs[who] = (y.detach(), [s.detach() for s in st], grads)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    yt, st_t, gt = outs["torch"]
    yr, st_r, gr = outs["rnnkit"]
    assert rel(yr, yt) < tol
    for a, b in zip(st_r, st_t):
        assert rel(a, b) < tol
    assert set(gt) == set(gr)
    for k in gt:
        assert rel(gr[k], gt[k]) < tol * 10, f"grad {k}: {rel(gr[k], gt[k]):.2e}"


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.IndRNN])
def test_gradcheck_float64(cls):
    layer = cls(2, 2, 2, bidirectional=True, dtype=np.float64, seed=0)
    mod = RNNModule(layer)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    c0 = (
        torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
        if cls is rnnkit.LSTM
        else None
    )
    weights = [getattr(mod, n) for n in layer.parameters]
    lengths = np.array([3, 2])

    def f(x, h0, c0, *w):
        return RNNFunction.apply(layer, lengths, x, h0, c0, *w)

    assert torch.autograd.gradcheck(f, (x, h0, c0, *weights), eps=1e-6, atol=1e-7)


def test_gradcheck_catches_a_sabotaged_backward(monkeypatch):
    """The gradcheck above can fail: a backward that drops one gradient term
    (dh0 scaled by 0.5) is caught."""
    layer = rnnkit.GRU(2, 3, dtype=np.float64, seed=0)
    mod = RNNModule(layer)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    weights = [getattr(mod, n) for n in layer.parameters]
    real = RNNFunction.backward

    def sabotaged(ctx, *g):
        out = list(real(ctx, *g))
        out[3] = out[3] * 0.5
        return tuple(out)

    monkeypatch.setattr(RNNFunction, "backward", staticmethod(sabotaged))
    with pytest.raises(Exception, match="Jacobian mismatch"):
        torch.autograd.gradcheck(
            lambda x, h, *w: RNNFunction.apply(layer, None, x, h, None, *w), (x, h0, *weights)
        )


def test_lengths_match_torch_packed_sequences():
    torch.manual_seed(2)
    ref = torch.nn.LSTM(3, 4, bidirectional=True, dtype=torch.float64)
    mine = RNNModule(ref)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    yp, (h, c) = ref(packed)
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=6)
    y, (h2, c2) = mine(x, lengths=lengths.numpy())
    assert rel(y.detach(), y_t.detach()) < 1e-10
    assert rel(h2.detach(), h.detach()) < 1e-10 and rel(c2.detach(), c.detach()) < 1e-10


def test_a_pytorch_training_loop_trains_the_rnnkit_layer():
    torch.manual_seed(3)
    rec = RNNModule(rnnkit.GRU(2, 8, seed=0))
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam(list(rec.parameters()) + list(head.parameters()), lr=0.05)
    x = torch.randn(6, 16, 2)
    target = x.sum(dim=(0, 2)).unsqueeze(1)  # N,1
    losses = []
    for _ in range(30):
        opt.zero_grad()
        y, h = rec(x)
        loss = torch.nn.functional.mse_loss(head(y[-1]), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    layer = rec.to_layer()  # the trained weights, back in rnnkit
    for name, p in rec.named_parameters():
        np.testing.assert_array_equal(layer.parameters[name], p.detach().numpy())
    y_np, _ = layer(x.numpy())
    np.testing.assert_array_equal(y_np, rec(x)[0].detach().numpy())


def test_refusals_name_the_reason():
    with pytest.raises(ValueError, match="proj_size=2 is refused"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    from torch.nn.utils import parametrizations

    with pytest.raises(ValueError, match="a parametrized module .* is refused"):
        from_torch(parametrizations.weight_norm(torch.nn.GRU(3, 4), "weight_hh_l0"))
    hooked = torch.nn.RNN(3, 4)
    hooked.register_forward_hook(lambda m, i, o: o)
    with pytest.raises(ValueError, match="a module with forward hooks .* is refused"):
        from_torch(hooked)
    with pytest.raises(TypeError, match="must all be float32 or float64"):
        from_torch(torch.nn.GRU(3, 4).to(torch.float16))
    with pytest.raises(TypeError, match="must be a torch.nn.RNN, LSTM or GRU"):
        from_torch(torch.nn.LSTMCell(3, 4))

    class MyLSTM(torch.nn.LSTM):
        pass

    with pytest.raises(TypeError, match="not a subclass"):
        from_torch(MyLSTM(3, 4))
    with pytest.raises(TypeError, match="IndRNN \\(PyTorch has no"):
        to_torch(rnnkit.IndRNN(3, 4))
    with pytest.raises(TypeError, match="layer must be an rnnkit RNN"):
        RNNModule(object())
    mod = RNNModule(rnnkit.LSTM(3, 4))
    with pytest.raises(
        TypeError, match="tensor has dtype float64 but the rnnkit layer's dtype is float32"
    ):
        mod(torch.zeros(2, 1, 3, dtype=torch.float64))
