"""The layers against PyTorch's nn.RNN / nn.LSTM / nn.GRU: the same weights
(loaded from torch's state_dict) give the same outputs, final states and
gradients of x, the initial state and every parameter.

With lengths, torch runs a packed sequence (pack_padded_sequence with
enforce_sorted=False, padded back to T), which has our lengths semantics.
IndRNN has no PyTorch counterpart.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import rnnkit

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

KINDS = {
    "rnn_tanh": (torch.nn.RNN, rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, rnnkit.LSTM, {}),
    "gru": (torch.nn.GRU, rnnkit.GRU, {}),
}
T, N, C, H = 5, 4, 3, 6
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny)


def assert_rel(name, actual, expected, tol):
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    err = rel_err(actual.astype(np.float64), expected.astype(np.float64))
    assert err <= tol, (
        f"{name}: relative error {err:.3e} > {tol:g}, "
        f"max abs diff {np.abs(actual - expected).max():.3e}"
    )


def run_pair(kind, num_layers, bidirectional, batch_first, with_lengths, dtype, seed):
    """Run torch and rnnkit on the same weights and data; return both results
    as dicts name -> ndarray (y, h_n[, c_n], dx, dh0[, dc0], grad of every parameter)."""
    torch_cls, our_cls, kw = KINDS[kind]
    is_lstm = kind == "lstm"
    torch.manual_seed(seed)
    module = torch_cls(
        C,
        H,
        num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        dtype=TORCH_DTYPE[dtype],
        **kw,
    )
    with torch.no_grad():  # wider than torch's default init, to reach the nonlinear regime
        for p in module.parameters():
            p.uniform_(-0.7, 0.7)
    layer = our_cls(
        C, H, num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, **kw
    )
    assert list(layer.state_dict()) == list(module.state_dict())
    layer.load_state_dict(module.state_dict())  # torch tensors, as they come

    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((N, T, C) if batch_first else (T, N, C)).astype(dtype)
    h0 = rng.standard_normal((num_layers * D, N, H)).astype(dtype)
    c0 = rng.standard_normal((num_layers * D, N, H)).astype(dtype)
    # Every length in 1..T (torch refuses 0), unsorted, T included.
    lengths = rng.permutation(np.array([T, 1, 3, 2])) if with_lengths else None
    R = rng.standard_normal((N, T, D * H) if batch_first else (T, N, D * H)).astype(dtype)
    Rh = rng.standard_normal(h0.shape).astype(dtype)
    Rc = rng.standard_normal(c0.shape).astype(dtype)

    # torch
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    inp = xt
    if with_lengths:
        inp = pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
    out, hn = module(inp, (h0t, c0t) if is_lstm else h0t)
    if with_lengths:
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    loss = (out * torch.tensor(R)).sum()
    if is_lstm:
        loss = loss + (hn[0] * torch.tensor(Rh)).sum() + (hn[1] * torch.tensor(Rc)).sum()
    else:
        loss = loss + (hn * torch.tensor(Rh)).sum()
    loss.backward()
    ref = {"y": out.detach().numpy(), "dx": xt.grad.numpy(), "dh0": h0t.grad.numpy()}
    if is_lstm:
        ref.update(h_n=hn[0].detach().numpy(), c_n=hn[1].detach().numpy(), dc0=c0t.grad.numpy())
    else:
        ref["h_n"] = hn.detach().numpy()
    for name, p in module.named_parameters():
        ref[f"grads[{name}]"] = p.grad.numpy()

    # rnnkit
    y, state, tape = layer.forward(x, (h0, c0) if is_lstm else h0, lengths)
    dx, dstate = layer.backward(tape, R, (Rh, Rc) if is_lstm else Rh)
    ours = {"y": y, "dx": dx}
    if is_lstm:
        ours.update(h_n=state[0], c_n=state[1], dh0=dstate[0], dc0=dstate[1])
    else:
        ours.update(h_n=state, dh0=dstate)
    for name, g in layer.grads.items():
        ours[f"grads[{name}]"] = g
    assert ours.keys() == ref.keys()
    return ours, ref


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_float64_parity(kind, num_layers, bidirectional, batch_first, with_lengths):
    seed = zlib.crc32(repr((kind, num_layers, bidirectional, batch_first, with_lengths)).encode())
    ours, ref = run_pair(
        kind, num_layers, bidirectional, batch_first, with_lengths, np.float64, seed
    )
    for name in ref:
        assert_rel(name, ours[name], ref[name], 1e-10)
    assert np.abs(ref["dx"]).max() > 0 and np.abs(ref["grads[weight_hh_l0]"]).max() > 0


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_float32_parity(kind, with_lengths):
    ours, ref = run_pair(kind, 2, True, False, with_lengths, np.float32, seed=7)
    for name in ref:
        assert_rel(name, ours[name], ref[name], 1e-5)


def test_padded_outputs_are_exactly_zero_in_both():
    """Norm-wise parity allows tiny values where torch pads with exact zeros;
    the layer writes exact zeros there too."""
    ours, ref = run_pair("gru", 1, True, False, True, np.float64, seed=3)
    np.testing.assert_array_equal(ours["y"] == 0, ref["y"] == 0)
    assert (ref["y"] == 0).any()
