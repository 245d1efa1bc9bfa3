"""Exact resume: a train-text run stopped (at its budget, or by SIGINT) and
continued with --resume ends bitwise equal to one that ran through; the
checkpoint carries Adam's moments and step, the dropout generator, the data
position and the carried state, and is replaced atomically. Not here: the
checkpoint format's refusals of corrupt files (test_text.py, tests/fuzz).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.text import CharModel

# Children import the rnnkit this process imported.
PKG = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(120))
SMALL = [
    "--hidden", "8", "--layers", "2", "--embedding", "4", "--seq-len", "8", "--batch", "3",
    "--dropout", "0.3", "--sample-length", "0", "--no-progress", "--seed", "5",
]  # fmt: skip


def cli(*args, timeout=120, **kw):
    env = dict(os.environ, PYTHONPATH=PKG)
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", "train-text", *args],
        capture_output=True, text=True, timeout=timeout, env=env, **kw,
    )  # fmt: skip


def arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def assert_same_run(a, b):
    za, zb = arrays(a), arrays(b)
    assert sorted(za) == sorted(zb)
    assert any(k.startswith("optim.") for k in za) and any(k.startswith("train.state.") for k in za)
    for k in za:
        if k == "header":
            continue
        np.testing.assert_array_equal(za[k], zb[k], err_msg=k)
    ma, mb = CharModel.load(a), CharModel.load(b)
    assert ma.steps_trained == mb.steps_trained
    assert ma.optimizer.steps == mb.optimizer.steps == ma.steps_trained
    assert ma.rnn.generator.bit_generator.state == mb.rnn.generator.bit_generator.state
    assert ma._resume["batcher"] == mb._resume["batcher"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT[:500])  # about 18 windows a pass: runs cross passes
    return str(p)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_stopped_and_resumed_run_equals_uninterrupted(tmp_path, corpus, backend):
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    # 20 steps: more than one pass over the 3 lanes of the training text
    # (so the next pass's random offset is restored too).
    r = cli(corpus, "--steps", "20", "--out", a, "--backend", backend, *SMALL)
    assert r.returncode == 0, r.stderr
    r = cli(corpus, "--steps", "7", "--out", b, "--backend", backend, *SMALL)
    assert r.returncode == 0, r.stderr
    r = cli(corpus, "--resume", b, "--steps", "13", "--out", b, "--backend", backend, *SMALL)
    assert r.returncode == 0, r.stderr
    r = cli(corpus, "--resume", b, "--steps", "20", "--out", b, "--backend", backend, *SMALL)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    assert_same_run(a, b)
    assert CharModel.load(a)._resume["batcher"]["epoch"] >= 1  # the run crossed a pass


def test_resume_after_sigint(tmp_path, corpus):
    """Ctrl-C stops at the end of a step and saves a checkpoint that resumes exactly."""
    b = str(tmp_path / "b.npz")
    env = dict(os.environ, PYTHONPATH=PKG)
    p = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "train-text", corpus, "--steps", "100000",
         "--checkpoint-every", "5", "--out", b, *SMALL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not os.path.exists(b) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    done = CharModel.load(b).steps_trained
    assert 5 <= done < 100000
    total = str(done + 6)
    r = cli(corpus, "--resume", b, "--steps", total, "--out", b, *SMALL)
    assert r.returncode == 0, r.stderr
    a = str(tmp_path / "a.npz")
    r = cli(corpus, "--steps", total, "--out", a, *SMALL)
    assert r.returncode == 0, r.stderr
    assert_same_run(a, b)


def test_resume_refuses_other_text_and_untrained_checkpoints(tmp_path, corpus):
    b = str(tmp_path / "b.npz")
    assert cli(corpus, "--steps", "2", "--out", b, *SMALL).returncode == 0
    other = tmp_path / "other.txt"
    other.write_text(TEXT[:500][::-1])
    r = cli(str(other), "--resume", b, "--steps", "4", "--out", b, *SMALL)
    assert r.returncode != 0 and "not the text" in r.stderr, r.stderr
    fresh = CharModel("gru", 4, 1, embedding_dim=2, seq_len=4, batch_size=2, vocab=sorted(set(TEXT)) and "".join(sorted(set(TEXT))))
    untrained = str(tmp_path / "u.npz")
    fresh.save(untrained)
    r = cli(corpus, "--resume", untrained, "--steps", "4", "--out", b, *SMALL)
    assert r.returncode != 0 and "no training state" in r.stderr, r.stderr


def test_library_fit_after_load_continues_exactly(tmp_path):
    """The same in the library: save mid-run, load, fit on the same text."""
    kw = dict(embedding_dim=4, seq_len=6, batch_size=2, seed=3, dropout=0.25, validation_fraction=0)
    a = CharModel("lstm", 6, 2, **kw).fit(TEXT, steps=9)
    b = CharModel("lstm", 6, 2, **kw).fit(TEXT, steps=4)
    path = tmp_path / "m.npz"
    b.save(path)
    c = CharModel.load(path)
    assert c.resumable
    c.fit(TEXT, steps=5)
    for k, v in a.parameters.items():
        np.testing.assert_array_equal(v, c.parameters[k], err_msg=k)
    # The check can fail: without the data position the run is another one.
    e = CharModel.load(path)
    e.reset_data_position()
    e.fit(TEXT, steps=5)
    assert any(not np.array_equal(v, e.parameters[k]) for k, v in a.parameters.items())
    # On another text the position does not apply: a warning, and a fresh pass.
    d = CharModel.load(path)
    with pytest.warns(RuntimeWarning, match="other training data"):
        d.fit(TEXT[:-50], steps=1)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A crash mid-save (here: np.savez raising) leaves the previous file whole."""
    m = CharModel("gru", 4, 1, embedding_dim=2, seq_len=4, batch_size=2, seed=0, validation_fraction=0)
    m.fit(TEXT, steps=2)
    path = tmp_path / "m.npz"
    m.save(path)
    before = path.read_bytes()

    def boom(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary left behind


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_estimator_resume_from_pickle_equals_one_fit(kind):
    """An estimator's checkpoint is its pickle: it carries Adam's state, the
    epochs done and the shuffling generator, and fit(..., resume=True) on the
    same data continues exactly."""
    import pickle

    from rnnkit.sklearn import RNNClassifier, RNNRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((13, 5, 3))
    lengths = rng.integers(1, 6, 13)
    y = (X[:, 0, 0] > 0).astype(int) if kind == "classifier" else X.sum(axis=(1, 2))
    cls = RNNClassifier if kind == "classifier" else RNNRegressor
    kw = dict(cell="gru", hidden_size=4, num_layers=2, dropout=0.2, batch_size=4, random_state=7)
    full = cls(epochs=5, **kw).fit(X, y, lengths=lengths)
    part = cls(epochs=2, **kw).fit(X, y, lengths=lengths)
    again = pickle.loads(pickle.dumps(part))
    again.set_params(epochs=3)
    again.fit(X, y, lengths=lengths, resume=True)
    assert again.n_iter_ == full.n_iter_ == 5
    assert again.loss_curve_ == full.loss_curve_
    for k, v in full.rnn_.parameters.items():
        np.testing.assert_array_equal(v, again.rnn_.parameters[k], err_msg=k)
    np.testing.assert_array_equal(full.predict(X, lengths=lengths), again.predict(X, lengths=lengths))
    # The check can fail: a plain refit from the partial model's state is another run.
    other = pickle.loads(pickle.dumps(part)).set_params(epochs=3).fit(X, y, lengths=lengths)
    assert any(
        not np.array_equal(v, other.rnn_.parameters[k]) for k, v in full.rnn_.parameters.items()
    )
    with pytest.raises(ValueError, match="resume=True needs a fitted"):
        cls(**kw).fit(X, y, resume=True)
    with pytest.raises(TypeError, match="resume must be True or False"):
        part.fit(X, y, resume="yes")
