"""rnnkit.seq: every Cython loop of rnnkit._seq against a NumPy twin written
here, over random inputs, plus the wrappers' checks on bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rnnkit import _seq
from rnnkit.seq import decode_ids, encode_text, pack_sequences, pad_ids, unpack_sequences, windows

# ---------------------------------------------------------------------------
# NumPy twins
# ---------------------------------------------------------------------------


def encode_twin(text, vocab):
    index = {ch: i for i, ch in enumerate(vocab)}
    return np.array([index[ch] for ch in text], dtype=np.int32)


def windows_twin(ids, starts, T):
    return np.asarray(ids)[np.asarray(starts)[None, :] + np.arange(T)[:, None]].astype(np.int32)


def pad_twin(seqs, pad_value, batch_first, total_length=None):
    T = max([len(s) for s in seqs] + [total_length or 0])
    out = np.full((len(seqs), T), pad_value, np.int32)
    for n, s in enumerate(seqs):
        out[n, : len(s)] = s
    return out if batch_first else out.T.copy()


def pack_twin(seqs, dtype, batch_first, total_length=None):
    T = max([len(s) for s in seqs] + [total_length or 0])
    out = np.zeros((len(seqs), T, seqs[0].shape[1]), dtype)
    for n, s in enumerate(seqs):
        out[n, : len(s)] = s
    return out if batch_first else out.transpose(1, 0, 2).copy()


# A vocabulary with ASCII, Latin-1, BMP and astral (non-BMP) characters.
VOCAB = "\n ()_abcdefxyz:=é–€中😀𝄞"


# ---------------------------------------------------------------------------
# encode / decode
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=VOCAB, max_size=300))
def test_encode_matches_twin_and_decodes_back(text):
    ids = encode_text(text, VOCAB)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    np.testing.assert_array_equal(ids, encode_twin(text, VOCAB))
    assert decode_ids(ids, VOCAB) == text


def test_encode_long_text_matches_twin():
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list(VOCAB), 20_000))
    np.testing.assert_array_equal(encode_text(text, VOCAB), encode_twin(text, VOCAB))


def test_encode_names_the_first_unknown_character():
    with pytest.raises(ValueError, match=r"first 'Q' at position 3; all of them: 'QR'"):
        encode_text("abcQxR", VOCAB)
    # a code point past the end of the lookup table
    with pytest.raises(ValueError, match="position 1"):
        encode_text("a\U0010ffff", "ab")


def test_encode_encode_into_loop_directly():
    """The Cython loop: stops at the first unknown code point and reports it."""
    table = np.array([-1, 0, -1, 1], np.int32)
    out = np.full(4, 9, np.int32)
    bad = _seq.encode_into(np.array([1, 3, 2, 1], np.uint32), table, out)
    assert bad == 2 and list(out[:2]) == [0, 1]
    assert _seq.encode_into(np.array([3, 3], np.uint32), table, out[:2]) == -1


def test_vocab_and_type_errors():
    with pytest.raises(ValueError, match=r"distinct characters; repeated: \['a'\]"):
        encode_text("a", "aba")
    with pytest.raises(ValueError, match="at least one character"):
        encode_text("a", "")
    with pytest.raises(TypeError, match="text must be a str"):
        encode_text(b"abc", "abc")
    assert encode_text("", "ab").shape == (0,)
    with pytest.raises(ValueError, match=r"ids must lie in 0..1"):
        decode_ids(np.array([0, 2]), "ab")
    with pytest.raises(TypeError, match="integers"):
        decode_ids(np.array([0.0]), "ab")
    assert decode_ids(np.array([], np.int64), "ab") == ""


# ---------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(0, 12), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_windows_match_twin(size, T, N, seed):
    rng = np.random.default_rng(seed)
    T = min(T, size)
    ids = rng.integers(-5, 1000, size)
    starts = rng.integers(0, size - T + 1, N)
    out = windows(ids, starts, T)
    assert out.shape == (T, N) and out.dtype == np.int32
    np.testing.assert_array_equal(out, windows_twin(ids, starts, T))


def test_windows_bounds_are_checked():
    ids = np.arange(10)
    with pytest.raises(ValueError, match=r"starts must lie in 0..6 for length=4"):
        windows(ids, [0, 7], 4)
    with pytest.raises(ValueError, match="from -1"):
        windows(ids, [-1], 2)
    with pytest.raises(ValueError, match="non-negative integer"):
        windows(ids, [0], -1)
    with pytest.raises(ValueError, match="ids must be 1-D"):
        windows(np.zeros((2, 2), int), [0], 1)
    with pytest.raises(ValueError, match="fit in int32"):
        windows(np.array([2**40]), [0], 1)
    assert windows(ids, [], 3).shape == (3, 0)


# ---------------------------------------------------------------------------
# pad_ids
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=9), min_size=1, max_size=6),
    st.integers(-3, 3),
    st.booleans(),
    st.integers(0, 3),
)
def test_pad_ids_match_twin(seqs, pad_value, batch_first, extra):
    total = max(len(s) for s in seqs) + extra
    out, lengths = pad_ids(seqs, pad_value=pad_value, batch_first=batch_first, total_length=total)
    np.testing.assert_array_equal(out, pad_twin(seqs, pad_value, batch_first, total))
    np.testing.assert_array_equal(lengths, [len(s) for s in seqs])
    assert lengths.dtype == np.int64


def test_pad_ids_errors():
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_ids([])
    with pytest.raises(ValueError, match=r"sequences\[1\] must be 1-D"):
        pad_ids([[1], [[1, 2]]])
    with pytest.raises(ValueError, match="total_length"):
        pad_ids([[1, 2, 3]], total_length=2)
    with pytest.raises(TypeError, match=r"sequences\[0\] must hold integers"):
        pad_ids([np.array([0.5])])


# ---------------------------------------------------------------------------
# pack_sequences / unpack_sequences (the float loops)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_unpack_match_twin(dtype, batch_first):
    rng = np.random.default_rng(1)
    for trial in range(20):
        C = int(rng.integers(1, 5))
        lens = rng.integers(0, 8, int(rng.integers(1, 6)))
        lens[0] = max(lens[0], 1) if trial % 2 else lens[0]
        seqs = [rng.standard_normal((int(n), C)).astype(dtype) for n in lens]
        extra = int(rng.integers(0, 3))
        total = int(lens.max()) + extra
        x, lengths = pack_sequences(seqs, batch_first=batch_first, total_length=total)
        assert x.dtype == dtype
        np.testing.assert_array_equal(x, pack_twin(seqs, dtype, batch_first, total))
        np.testing.assert_array_equal(lengths, lens)
        back = unpack_sequences(x, lengths, batch_first=batch_first)
        for a, b in zip(back, seqs):
            np.testing.assert_array_equal(a, b)


def test_pack_casts_and_unpack_checks():
    x, lengths = pack_sequences([np.ones((2, 1), int), np.ones((1, 1), int)])
    assert x.dtype == np.float64 and list(lengths) == [2, 1]
    with pytest.raises(ValueError, match=r"lengths must lie in 0..2"):
        unpack_sequences(x, [3, 1])
    with pytest.raises(ValueError, match=r"sequences\[1\] has 2 features"):
        pack_sequences([np.ones((2, 1)), np.ones((2, 2))])


# ---------------------------------------------------------------------------
# Adversarial input found in review: each once slipped past the checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "starts",
    [np.array([2**64 - 1], np.uint64), np.array([2**63 - 2], np.int64)],
    ids=["uint64-wraps", "int64-wraps"],
)
def test_windows_refuses_starts_whose_end_overflows(starts):
    # starts.max() + length wrapped around in NumPy integers, passed the range
    # check and made the Cython loop read before the stream's buffer.
    with pytest.raises(ValueError, match="starts must lie in"):
        windows(np.arange(100, 110), starts, 5)


@pytest.mark.parametrize("length", [float("nan"), float("inf"), 2.5, "3", True, 2**80])
def test_windows_bad_length_names_it(length):
    with pytest.raises(ValueError, match="length"):
        windows(np.arange(10), [0], length)


@pytest.mark.parametrize("total_length", [float("nan"), float("inf"), 2.5, "9"])
def test_total_length_non_integer_names_it(total_length):
    with pytest.raises(ValueError, match="total_length"):
        pack_sequences([np.ones((2, 1))], total_length=total_length)
    with pytest.raises(ValueError, match="total_length"):
        pad_ids([[1, 2]], total_length=total_length)


def test_pack_sequences_refuses_complex_and_masked():
    with pytest.raises(TypeError, match=r"sequences\[1\] must be real"):
        pack_sequences([np.ones((2, 2)), np.ones((2, 2)) + 1j])
    masked = np.ma.masked_array(np.ones((2, 2)), mask=[[0, 1], [0, 0]])
    with pytest.raises(TypeError, match=r"sequences\[0\] is a masked array"):
        pack_sequences([masked])
    # a masked array with nothing masked is just its data
    x, _ = pack_sequences([np.ma.masked_array(np.ones((2, 2)))])
    assert x.sum() == 4


@pytest.mark.parametrize("pad_value", [2**40, -(2**31) - 1, 1.7, "x", float("nan")])
def test_pad_ids_bad_pad_value_names_it(pad_value):
    with pytest.raises(ValueError, match="pad_value"):
        pad_ids([[1, 2]], pad_value=pad_value)
