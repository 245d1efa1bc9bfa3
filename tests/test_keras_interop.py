"""rnnkit.keras with Keras 3 on the JAX backend: from_keras (every recurrent
layer kind, return_sequences, go_backwards, return_state, Bidirectional merge
modes, Sequential stacks with Masking/Embedding/Dense, masks), to_keras, the
round trips (weights bitwise, outputs float32 1e-5) and the refusals. Skips
only where keras is not installed."""

import importlib
import importlib.util
import os

import numpy as np
import pytest

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)
os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402  (a broken keras fails here, loudly: no importorskip)

import rnnkit  # noqa: E402
from rnnkit.keras import KerasConversionError, KerasStack, from_keras, to_keras  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 6, 4)).astype(np.float32)
MASK = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def as_list(o):
    return [np.asarray(v) for v in (o if isinstance(o, (list, tuple)) else [o])]


def check_same(kmodel, stack, x=X, mask=MASK):
    want = as_list(kmodel(x, mask=mask) if mask is not None else kmodel(x))
    got = as_list(stack(x, mask=mask))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and rel(g, w) < 1e-5, rel(g, w)


# MASK has a full row, so each call also covers the unmasked case.
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences,go_backwards", [(True, False), (False, True)])
def test_single_layers_with_masks(kind, return_sequences, go_backwards):
    extra = {"activation": "relu"} if kind == "SimpleRNN" and go_backwards else {}
    layer = getattr(keras.layers, kind)(
        5, return_sequences=return_sequences, go_backwards=go_backwards, unroll=True, **extra
    )
    layer(X)
    stack = from_keras(layer)
    assert isinstance(stack, KerasStack) and len(stack.layers) == 1
    assert stack.layers[0].batch_first
    check_same(layer, stack)
    if kind == "GRU":  # and once with no mask at all
        check_same(layer, stack, mask=None)


def test_go_backwards_sequences_come_in_keras_order():
    # Keras's default execution (a compiled scan, not unrolled), once
    layer = keras.layers.LSTM(5, return_sequences=True, go_backwards=True)
    layer(X[:1])
    check_same(layer, from_keras(layer))


def test_return_state_and_no_bias():
    layer = keras.layers.LSTM(
        5, return_sequences=True, return_state=True, use_bias=False, unroll=True
    )
    layer(X)
    stack = from_keras(layer)
    assert not stack.layers[0].bias
    check_same(layer, stack)


@pytest.mark.parametrize("merge", ["concat", "sum", "ave", "mul"])
def test_bidirectional_merge_modes(merge):
    layer = keras.layers.Bidirectional(
        keras.layers.LSTM(5, return_sequences=True, unroll=True), merge_mode=merge
    )
    layer(X)
    stack = from_keras(layer)
    assert stack.layers[0].bidirectional
    check_same(layer, stack)


def sequential():
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True, unroll=True)),
            keras.layers.Dropout(0.3),
            keras.layers.LSTM(6, unroll=True),
            keras.layers.Dense(2),
        ]
    )
    return model


def test_sequential_with_masking_round_trip_bitwise():
    model = sequential()
    x = X * MASK[:, :, None]  # zeros where masked: Masking makes the mask
    stack = from_keras(model)
    assert [type(l).__name__ for l in stack.layers] == ["GRU", "LSTM"]
    check_same(model, stack, x=x, mask=None)
    back = to_keras(stack)
    for a, b in zip(model.get_weights(), back.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert rel(back(x), model(x)) < 1e-6


def test_embedding_mask_zero_stack():
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int64"),
            keras.layers.Embedding(7, 4, mask_zero=True),
            keras.layers.SimpleRNN(5, return_sequences=True, unroll=True),
        ]
    )
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 2]], np.int64)
    stack = from_keras(model)
    check_same(model, stack, x=ids, mask=None)
    back = to_keras(stack)
    for a, b in zip(model.get_weights(), back.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_rnnkit_to_keras_and_back(cls):
    layer = cls(4, 5, 2, bidirectional=True, seed=3)
    km = to_keras(layer, unroll=True)
    y, _ = rnnkit_layer_batch_first(layer)(X)
    assert rel(km(X), y) < 1e-5
    back = from_keras(km).layers
    assert len(back) == 2
    for k, b in enumerate(back):
        for d in ("", "_reverse"):
            for w in ("weight_ih", "weight_hh"):
                np.testing.assert_array_equal(
                    b.parameters[f"{w}_l0{d}"], layer.parameters[f"{w}_l{k}{d}"]
                )
            if cls is rnnkit.GRU:  # GRU keeps both biases: bitwise
                for w in ("bias_ih", "bias_hh"):
                    np.testing.assert_array_equal(
                        b.parameters[f"{w}_l0{d}"], layer.parameters[f"{w}_l{k}{d}"]
                    )
            else:  # one Keras bias: the sum, once rounded
                s = layer.parameters[f"bias_ih_l{k}{d}"] + layer.parameters[f"bias_hh_l{k}{d}"]
                np.testing.assert_array_equal(b.parameters[f"bias_ih_l0{d}"], s)


def rnnkit_layer_batch_first(layer):
    twin = type(layer)(
        layer.input_size,
        layer.hidden_size,
        layer.num_layers,
        bidirectional=layer.bidirectional,
        batch_first=True,
    )
    twin.load_state_dict(layer.state_dict())
    return twin


def test_refusals_name_the_option():
    Z = dict(kernel_initializer="zeros", recurrent_initializer="zeros")  # no QR to compile

    def conv(layer):
        layer.build((None, None, 4))  # weights, without running (compiling) it
        return from_keras(layer)

    with pytest.raises(KerasConversionError, match="activation='relu' is refused"):
        conv(keras.layers.LSTM(3, activation="relu", **Z))
    with pytest.raises(
        KerasConversionError, match="recurrent_activation='hard_sigmoid' is refused"
    ):
        conv(keras.layers.GRU(3, recurrent_activation="hard_sigmoid", **Z))
    with pytest.raises(KerasConversionError, match="activation='sigmoid' is refused"):
        conv(keras.layers.SimpleRNN(3, activation="sigmoid", **Z))
    with pytest.raises(KerasConversionError, match="stateful=True without its state is refused"):
        from_keras(keras.layers.LSTM(3, stateful=True, **Z))
    with pytest.raises(KerasConversionError, match="a stateful Bidirectional is refused"):
        bi = keras.layers.Bidirectional(keras.layers.GRU(3, stateful=True, **Z))
        bi.build((3, None, 4))
        from_keras(bi)
    with pytest.raises(KerasConversionError, match="not built"):
        from_keras(keras.layers.Bidirectional(keras.layers.LSTM(3, **Z)))
    with pytest.raises(KerasConversionError, match=r"merge_mode=None\) is refused"):
        conv(keras.layers.Bidirectional(keras.layers.LSTM(3, **Z), merge_mode=None))
    with pytest.raises(KerasConversionError, match="not built"):
        from_keras(keras.layers.LSTM(3))
    with pytest.raises(KerasConversionError, match="Conv1D is not supported"):
        from_keras(
            keras.Sequential(
                [
                    keras.Input((None, 4)),
                    keras.layers.Conv1D(2, 3, kernel_initializer="zeros"),
                    keras.layers.LSTM(2, **Z),
                ]
            )
        )
    with pytest.raises(KerasConversionError, match=r"Dense\(activation='softmax'\) is refused"):
        from_keras(
            keras.Sequential(
                [
                    keras.Input((None, 4)),
                    keras.layers.LSTM(2, **Z),
                    keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros"),
                ]
            )
        )
    with pytest.raises(KerasConversionError, match="dtype policy 'mixed_float16' is refused"):
        conv(keras.layers.GRU(3, dtype="mixed_float16", **Z))
    with pytest.raises(KerasConversionError, match="an Embedding must come first"):
        from_keras(
            keras.Sequential(
                [
                    keras.Input((None, 4)),
                    keras.layers.LSTM(2, return_sequences=True, **Z),
                    keras.layers.Embedding(3, 2),
                ]
            )
        )
    with pytest.raises(TypeError, match="from_keras takes a Keras layer"):
        from_keras("lstm")
    with pytest.raises(TypeError, match="to_keras takes a KerasStack"):
        to_keras(rnnkit.IndRNN(3, 4))
    stack = conv(keras.layers.LSTM(3, return_sequences=True, **Z))
    with pytest.raises(ValueError, match="mask row 1 is not right padding"):
        stack(X, mask=np.array([[1] * 6, [1, 0, 1, 0, 0, 0], [1] * 6], bool))


def test_gru_reset_before_through_the_user_cell():
    for bidi in (False, True):
        inner = keras.layers.GRU(5, reset_after=False, return_sequences=True, unroll=True)
        layer = keras.layers.Bidirectional(inner) if bidi else inner
        layer(X)
        stack = from_keras(layer)
        check_same(layer, stack)
        back = to_keras(stack)
        for a, b in zip(layer.get_weights(), back.get_weights()):
            assert np.array_equal(a, b)


def test_stateful_layer_carries_its_state_like_keras():
    layer = keras.layers.GRU(5, stateful=True, return_sequences=True, unroll=True)
    first, second = X, RNG.standard_normal(X.shape).astype(np.float32)
    layer(first)  # Keras's state is now that of `first`
    stack = from_keras(layer)  # brings it along
    back = to_keras(stack)  # and back: the state too, bitwise
    for a, b in zip(layer.states, back.layers[-1].states):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    want = np.asarray(layer(second, mask=MASK))
    assert rel(stack(second, mask=MASK), want) < 1e-5
    assert rel(stack(first), np.asarray(layer(first))) < 1e-5  # and keeps being carried
    stack.reset_states()
    layer.reset_state() if hasattr(layer, "reset_state") else layer.reset_states()
    assert rel(stack(first), np.asarray(layer(first))) < 1e-5
    with pytest.raises(ValueError, match="batch size 2, but the stateful layer's state is for 3"):
        stack(first[:2])
