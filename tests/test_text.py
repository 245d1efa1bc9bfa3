"""rnnkit.data and rnnkit.text: the truncated-BPTT batcher, the character
model's gradients, training, evaluation, generation and checkpoints."""

import json
import math
import zipfile

import numpy as np
import pytest
from rnnkit import data, nn
from rnnkit.text import CharModel, CheckpointError

PATTERN = "the cat sat on the mat. " * 40  # 960 chars, 13 distinct


def tiny(**kw):
    cfg = dict(
        cell="lstm",
        hidden_size=12,
        num_layers=2,
        embedding_dim=5,
        seq_len=8,
        batch_size=4,
        lr=1e-2,
        seed=0,
    )
    cfg.update(kw)
    return CharModel(**cfg)


# ---------------------------------------------------------------------------
# Corpus helpers and the batcher
# ---------------------------------------------------------------------------


def test_default_corpus_is_python_source_from_this_interpreter():
    text = data.default_corpus()
    assert len(text) > 200_000
    assert "# ---- argparse ----" in text and "def " in text and "class " in text
    assert data.unigram_entropy(text) > 2.5


def test_unigram_entropy_and_vocab_by_hand():
    assert data.unigram_entropy("abab") == pytest.approx(math.log(2), rel=1e-15)
    assert data.unigram_entropy("aaab") == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    assert data.build_vocab("banana") == "abn"
    assert data.split_validation("abcdefghij", 0.2) == ("abcdefgh", "ij")


def test_read_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.read_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        data.read_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"not UTF-8 text: byte 0xe9 at offset 3"):
        data.read_text(tmp_path / "latin1.txt")
    with pytest.raises(IsADirectoryError):
        data.read_text(tmp_path)
    (tmp_path / "bom.txt").write_bytes("\ufeffhi".encode("utf-8"))
    assert data.read_text(tmp_path / "bom.txt") == "hi"


def test_batcher_lanes_continue_from_window_to_window():
    ids = np.arange(1000) % 251
    T, N = 7, 5
    b = data.TokenBatcher(ids, T, N, seed=0)
    lane = 1000 // N
    batches = [next(b) for _ in range(b.windows_per_pass)]
    assert batches[0].reset and not any(x.reset for x in batches[1:])
    for k, (x, y, _) in enumerate(batches):
        assert x.shape == y.shape == (T, N) and x.dtype == np.int32
        starts = np.arange(N) * lane + k * T
        np.testing.assert_array_equal(x, ids[starts[None, :] + np.arange(T)[:, None]])
        np.testing.assert_array_equal(y, ids[starts[None, :] + np.arange(1, T + 1)[:, None]])
    for (x0, y0, _), (x1, _, _) in zip(batches, batches[1:]):
        np.testing.assert_array_equal(x1[0], y0[-1])  # lane n goes on where it stopped
    # the next pass resets, at an offset in 0..T-1, and still never crosses a lane
    x, y, reset = next(b)
    assert reset and b.epoch == 1
    offset = x[0, 0] - ids[0]
    assert 0 <= offset < T
    np.testing.assert_array_equal(x[0], ids[np.arange(N) * lane + offset])


def test_batcher_too_short():
    with pytest.raises(ValueError, match=r"needs at least batch_size \* \(seq_len \+ 1\) = 44"):
        data.TokenBatcher(np.zeros(43, int), 10, 4)
    data.TokenBatcher(np.zeros(44, int), 10, 4)


# ---------------------------------------------------------------------------
# The model's gradient, end to end
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_char_model_gradient_matches_finite_differences(cell, backend):
    """Embedding -> 2 layers -> Linear -> cross-entropy, with a carried-in state."""
    m = tiny(
        cell=cell, dtype="float64", hidden_size=4, embedding_dim=3, vocab="abcde", backend=backend
    )
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, (4, 2))
    y = rng.integers(0, 5, (4, 2))
    h0 = rng.standard_normal((2, 2, 4)) * 0.5
    state = (h0, rng.standard_normal((2, 2, 4)) * 0.5) if cell == "lstm" else h0
    m._loss_and_grads(x, y, state)
    grads = {k: g.copy() for k, g in m._grads.items()}

    def loss():
        out, _ = m.rnn(m.embedding(x), state)
        return nn.softmax_cross_entropy(m.head(out), y)[0]

    eps = 1e-6
    for name, p in m._params.items():
        flat = p.reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, 6), replace=False):
            old = flat[i]
            flat[i] = old + eps
            fp = loss()
            flat[i] = old - eps
            fm = loss()
            flat[i] = old
            num = (fp - fm) / (2 * eps)
            got = grads[name].reshape(-1)[i]
            assert abs(got - num) <= 1e-6 + 1e-5 * abs(num), f"{name}[{i}]: {got} vs {num}"


def test_fit_carries_state_between_windows_and_resets_each_pass():
    m = tiny(validation_fraction=0)
    seen = []
    real = m._loss_and_grads

    def spy(x, y, state):
        loss, out = real(x, y, state)
        seen.append((state, out))
        return loss, out

    m.fit(PATTERN[:200], steps=1)  # builds the model
    m._loss_and_grads = spy
    per_pass = data.TokenBatcher(np.zeros(200), 8, 4).windows_per_pass  # 5
    m.fit(PATTERN[:200], steps=per_pass + 2)
    assert seen[0][0] is None and seen[per_pass][0] is None  # fresh pass: zero state
    for k in list(range(1, per_pass)) + [per_pass + 1]:
        assert seen[k][0] is seen[k - 1][1], f"window {k} did not start from window {k - 1}'s state"


# ---------------------------------------------------------------------------
# Training, evaluation, generation
# ---------------------------------------------------------------------------


def test_fit_learns_a_pattern_far_below_its_unigram_entropy():
    m = tiny(cell="gru", hidden_size=24)
    m.fit(PATTERN, steps=150)
    val = m.history[-1]["val_loss"]
    h = data.unigram_entropy(PATTERN)
    assert val == pytest.approx(m.evaluate(PATTERN[-96:]), abs=1e-9)  # the held-out tail
    assert val < 0.35 * h, (val, h)
    assert m.steps_trained == 150 and len(m.history) >= 10
    assert m.sample("the c", 3, temperature=0) == "at "


def test_evaluate_equals_a_direct_computation():
    m = tiny(vocab=data.build_vocab(PATTERN))
    text = PATTERN[:300]
    ids = m.encode(text)
    out, _ = m.rnn(m.embedding(ids[:-1, None]))  # one chunk (< 2000 chars), zero state
    want, _ = nn.softmax_cross_entropy(m.head(out).astype(np.float64), ids[1:, None])
    assert m.evaluate(text) == pytest.approx(want, rel=1e-6)
    # a longer text is read as independent chunks from a zero state each
    long = PATTERN * 5
    ids = m.encode(long)
    chunks = data.chunk_for_evaluation(ids.size - 1, 2000, 64)
    assert len(chunks) == 2
    total = 0.0
    for a, b in chunks:
        out, _ = m.rnn(m.embedding(ids[a:b, None]))
        total += nn.softmax_cross_entropy(
            m.head(out).astype(np.float64), ids[a + 1 : b + 1, None], reduction="sum"
        )[0]
    assert m.evaluate(long) == pytest.approx(total / (ids.size - 1), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 characters"):
        m.evaluate("a")
    with pytest.raises(ValueError, match="not in the vocabulary, first 'Z'"):
        m.evaluate("Zebra")


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_by_step_generation_matches_the_whole_sequence_forward(cell, backend):
    """Greedy generation runs the cell one character at a time; re-running the
    layers over prime + generated text in one call must pick the same characters."""
    m = tiny(cell=cell, hidden_size=16, vocab=data.build_vocab(PATTERN), seed=3, backend=backend)
    prime = "the "
    gen = m.sample(prime, 40, temperature=0)
    assert len(gen) == 40
    ids = m.encode(prime + gen)
    out, _ = m.rnn(m.embedding(ids[:-1, None]))
    logits = m.head(out)[:, 0]  # len-1, V
    np.testing.assert_array_equal(np.argmax(logits[len(prime) - 1 :], axis=1), ids[len(prime) :])
    assert m.sample(prime, 40, top_k=1, seed=5) == gen


def test_sample_is_reproducible_and_respects_top_k():
    m = tiny(vocab=data.build_vocab(PATTERN))
    a = m.sample("the", 200, temperature=1.5, seed=7)
    assert a == m.sample("the", 200, temperature=1.5, seed=7)
    assert a != m.sample("the", 200, temperature=1.5, seed=8)
    assert m.sample(None, 0) == ""
    # with top_k=2, every character is one of the two likeliest at its step
    gen = m.sample("the", 30, top_k=2, temperature=1.0, seed=1)
    ids = m.encode("the" + gen)
    out, _ = m.rnn(m.embedding(ids[:-1, None]))
    top2 = np.argsort(m.head(out)[2:, 0], axis=1)[:, -2:]
    assert all(ids[3 + i] in top2[i] for i in range(30))


def test_sample_bad_input():
    m = tiny(vocab="abc")
    with pytest.raises(ValueError, match="prime: .* first 'z'"):
        m.sample("z", 5)
    with pytest.raises(ValueError, match="length"):
        m.sample("a", -1)
    with pytest.raises(ValueError, match="temperature"):
        m.sample("a", 5, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        m.sample("a", 5, top_k=0)
    with pytest.raises(RuntimeError, match="call fit\\(\\) or load\\(\\) first"):
        CharModel().sample("a", 5)


def test_fit_budgets_callback_and_errors():
    m = tiny()
    m.fit(PATTERN, minutes=1e-6)  # stops after its first step
    assert m.steps_trained == 1
    calls = []
    m.fit(PATTERN, steps=50, callback=lambda model, info: calls.append(info) or info["step"] == 3)
    assert [c["step"] for c in calls] == [1, 2, 3] and calls[-1]["chars"] == 3 * 32
    assert m.history[-1]["val_loss"] is not None
    m.fit(PATTERN, validation_text=PATTERN[:50], steps=2)
    assert m.history[-1]["val_loss"] == pytest.approx(m.evaluate(PATTERN[:50]), rel=1e-12)
    with pytest.raises(ValueError, match="text is empty"):
        tiny().fit("")
    with pytest.raises(ValueError, match="too short"):
        tiny(batch_size=64).fit(PATTERN[:100])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        m.fit(PATTERN + "Q", steps=1)
    with pytest.raises(ValueError, match="cell must be one of"):
        CharModel(cell="transformer")


def test_fit_reports_divergence_clearly():
    m = tiny(vocab=data.build_vocab(PATTERN))
    m.parameters["head.weight"][0, 0] = np.inf
    before = {k: p.copy() for k, p in m.parameters.items()}
    with pytest.raises(FloatingPointError, match="training diverged at step 1: loss nan"):
        with np.errstate(all="ignore"):
            m.fit(PATTERN, steps=3)
    for k, p in m.parameters.items():  # no step was taken with the bad gradient
        np.testing.assert_array_equal(p, before[k])


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


def test_checkpoint_round_trip_is_exact(tmp_path):
    text = PATTERN + "é中😀\n"
    m = tiny(cell="gru", dtype="float64")
    m.fit(text, steps=5)
    path = tmp_path / "m.npz"
    m.save(path)
    m2 = CharModel.load(path)
    assert m2.vocab == m.vocab and m2.get_config() == m.get_config()
    assert m2.steps_trained == 5
    for k, p in m.parameters.items():
        q = m2.parameters[k]
        assert q.dtype == p.dtype and np.array_equal(q, p), k
    assert m2.evaluate(text) == m.evaluate(text)
    assert m2.sample("the", 50, seed=3) == m.sample("the", 50, seed=3)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only, no pickles
        assert all(z[k].dtype != object for k in z.files)
        header = json.loads(z["header"].tobytes().decode())
    assert header["format"] == "rnnkit.CharModel" and header["config"]["cell"] == "gru"


@pytest.fixture
def saved(tmp_path):
    m = tiny(vocab="abc")
    path = tmp_path / "good.npz"
    m.save(path)
    return path


def rewrite(src, dst, change):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def test_load_missing_truncated_and_garbage(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        CharModel.load(tmp_path / "nope.npz")
    raw = saved.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="unreadable, truncated or corrupt"):
        CharModel.load(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a valid rnnkit checkpoint"):
        CharModel.load(tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        CharModel.load(tmp_path / "one.npy")
    # flip bytes inside a stored array: the zip CRC catches it
    corrupt = bytearray(raw)
    i = raw.index(b"param.head.weight") + 200
    corrupt[i : i + 8] = b"\xff" * 8
    (tmp_path / "crc.npz").write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError):
        CharModel.load(tmp_path / "crc.npz")


def test_load_refuses_pickles(saved, tmp_path):
    path = rewrite(
        saved,
        tmp_path / "pickled.npz",
        lambda a: a.__setitem__("vocab", np.array([{"evil": 1}], dtype=object)),
    )
    with pytest.raises(CheckpointError, match="allow_pickle|pickled"):
        CharModel.load(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("header"), "no 'header' entry"),
        (
            lambda a: a.__setitem__("header", np.frombuffer(b"{not json", np.uint8)),
            "not UTF-8 JSON",
        ),
        (
            lambda a: a.__setitem__(
                "header", np.frombuffer(json.dumps({"format": "other"}).encode(), np.uint8)
            ),
            "format 'other'",
        ),
        (
            lambda a: a.__setitem__(
                "header",
                np.frombuffer(
                    json.dumps({"format": "rnnkit.CharModel", "version": 99}).encode(), np.uint8
                ),
            ),
            "version 99",
        ),
        (lambda a: a.pop("param.rnn.weight_hh_l1"), r"missing \['rnn.weight_hh_l1'\]"),
        (lambda a: a.__setitem__("param.extra", np.zeros(2)), r"unexpected \['extra'\]"),
        (
            lambda a: a.__setitem__("param.head.weight", np.zeros((4, 12), np.float32)),
            r"'head.weight' has shape \(4, 12\) but the config \(and vocabulary of 3\) needs \(3, 12\)",
        ),
        (lambda a: a.__setitem__("param.head.bias", np.zeros(3, np.float64)), "dtype float64"),
        (lambda a: a.__setitem__("vocab", np.array([97, 97], np.uint32)), "distinct"),
    ],
)
def test_load_mismatched_contents(saved, tmp_path, change, message):
    path = rewrite(saved, tmp_path / "bad.npz", change)
    with pytest.raises(CheckpointError, match=message):
        CharModel.load(path)


def test_save_is_atomic_and_keeps_the_name(saved, tmp_path):
    m = CharModel.load(saved)
    path = tmp_path / "model.ckpt"  # any name: no ".npz" appended
    m.save(path)
    assert path.exists() and not (tmp_path / "model.ckpt.npz").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    assert zipfile.is_zipfile(path)
