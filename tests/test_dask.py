"""rnnkit.dask on a real distributed.LocalCluster (2 worker processes, 1
thread each, started once for this module): predict equals one process bit
for bit; data-parallel training equals one-process training on the same
batches to rounding, is bitwise reproducible whatever the finishing order,
survives a killed worker, and resumes exactly from a checkpoint; bad input
gets clear errors. Not here: speed (bench/dask_scaling.py, docs/distributed.md).
"""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import rnnkit  # noqa: E402
import rnnkit.dask as rd  # noqa: E402
from rnnkit import nn  # noqa: E402
from rnnkit.sklearn import RNNClassifier, RNNRegressor  # noqa: E402

CELLS = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.IndRNN]
TIMEOUT = 60


@pytest.fixture(scope="module")
def client():
    # distributed's nannies set OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_) in this
    # process's environment to spawn their workers; later tests' children would
    # inherit it, so the environment is put back when the cluster closes.
    environ = dict(os.environ)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    c = distributed.Client(cluster, timeout=TIMEOUT)
    c.wait_for_workers(2, timeout=TIMEOUT)
    yield c
    c.close(timeout=TIMEOUT)
    cluster.close(timeout=TIMEOUT)
    os.environ.clear()
    os.environ.update(environ)


def _relerr(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-300)) for k in a)


def test_import_rnnkit_does_not_import_dask():
    code = (
        "import sys, rnnkit, rnnkit.sklearn; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.__name__)
def test_predict_bitwise_every_cell(client, cell):
    rng = np.random.default_rng(1)
    T, C, H = 7, 5, 6
    lazy, wanted = [], []
    for N, chunk, layers, bidir, dt in (
        (37, 10, 2, True, np.float64),  # chunks of >= 16 rows
        (12, 5, 1, False, np.float32),  # one process runs N < 16: chunks match its call
        (3, 1, 2, True, np.float32),  # T*N > 4 but T*chunk <= 4
        (40, 7, 1, True, np.float64),  # N >= 16 in chunks of 7 (padded)
    ):
        x = rng.standard_normal((N, T, C)).astype(dt)
        lengths = rng.integers(0, T + 1, N)
        layer = cell(C, H, layers, bidirectional=bidir, batch_first=True, dtype=dt, seed=3)
        X = da.from_array(x, chunks=(chunk, T, C))
        for lg in (None, lengths, da.from_array(lengths, chunks=4)):
            y = rd.predict(layer, X, lg)
            assert y.chunks == (X.chunks[0], (T,), (H * (2 if bidir else 1),))
            assert y.dtype == dt
            lazy.append(y)
            wanted.append((N, chunk, layer(x, None, None if lg is None else lengths)[0]))
    for got, (N, chunk, want) in zip(client.compute(lazy, sync=True), wanted):
        assert got.dtype == want.dtype and np.array_equal(got, want), (
            f"{cell.__name__} N={N} chunk={chunk}: max diff {np.abs(got - want).max()}"
        )


def test_predict_time_major_layer_and_chain(client):
    rng = np.random.default_rng(2)
    N, T, V = 40, 11, 13
    ids = rng.integers(0, V, (N, T))
    lengths = rng.integers(1, T + 1, N)
    emb = nn.Embedding(V, 4, dtype=np.float64, seed=0)
    lstm = rnnkit.LSTM(4, 5, 2, bidirectional=True, dtype=np.float64, seed=1)  # time-major
    head = nn.Linear(10, 3, dtype=np.float64, seed=2)
    model = {"emb": emb, "rnn": lstm, "head": head}
    got = rd.predict(model, da.from_array(ids, chunks=(7, T)), lengths).compute()
    h = lstm(emb(ids).transpose(1, 0, 2).copy(), None, lengths)[0].transpose(1, 0, 2)
    want = head(np.ascontiguousarray(h))
    assert np.array_equal(got, want), np.abs(got - want).max()


def test_predict_ships_the_model_once(client):
    layer = rnnkit.GRU(5, 64, 2, batch_first=True, seed=0)
    X = da.zeros((64, 3, 5), chunks=(4, 3, 5), dtype=np.float32)
    y = rd.predict(layer, X)
    graph = dict(y.__dask_graph__())
    holders = [
        k
        for k, t in graph.items()
        if "DataNode" in type(t).__name__
        and t.value is not None
        and type(getattr(t, "value", None)).__name__ == "Chain"
    ]
    assert len(holders) == 1, holders
    blocks = [
        t for k, t in graph.items() if isinstance(k, tuple) and k[0].startswith("rnnkit-predict")
    ]
    assert len(blocks) == 16
    assert all(holders[0] in t.dependencies for t in blocks)
    import pickle

    model_bytes = len(pickle.dumps(layer))
    assert all(len(pickle.dumps(t)) < model_bytes / 4 for t in blocks)


def test_estimator_predict_bitwise(client):
    rng = np.random.default_rng(3)
    N, T, F = 530, 6, 3  # 512 + 18 rows: one process predicts in batches of 512
    x = rng.standard_normal((N, T, F))
    lengths = rng.integers(1, T + 1, N)
    yc = rng.integers(0, 3, N)
    clf = RNNClassifier("lstm", 8, epochs=1, random_state=0).fit(x, yc, lengths)
    X = da.from_array(x, chunks=(100, T, F))
    for method in ("predict", "predict_proba", "decision_function"):
        a = getattr(clf, method)(X, lengths)
        assert isinstance(a, da.Array) and a.chunks[0] == X.chunks[0]
        b = getattr(clf, method)(x, lengths)
        a = a.compute()
        assert a.dtype == b.dtype and np.array_equal(a, b), method
    yr = rng.standard_normal((N, T))
    reg = RNNRegressor("gru", 5, output="sequence", epochs=1, random_state=0).fit(x, yr, lengths)
    a = reg.predict(X, lengths).compute()
    assert np.array_equal(a, reg.predict(x, lengths))


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------


def _model(seed=0, dropout=0.0):
    return {
        "rnn": rnnkit.LSTM(
            4,
            6,
            2,
            bidirectional=True,
            batch_first=True,
            dropout=dropout,
            dtype=np.float64,
            seed=seed,
        ),
        "head": nn.Linear(12, 3, dtype=np.float64, seed=seed + 1),
    }


def _data(N=48, T=8):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, T, 4))
    y = rng.standard_normal((N, T, 3))
    lengths = rng.integers(1, T + 1, N)
    return x, y, lengths


def _one_process(model, x, y, lengths, *, B, epochs, seed, lr, clip):
    """The plain loop: the same batches, the mean loss, clip, one Adam step."""
    ch = rd.Chain(model)
    opt = nn.Adam(ch.parameters, lr=lr)
    rng = np.random.default_rng(seed)
    T = x.shape[1]
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), B):
            idx = order[i : i + B]
            ch.zero_grad()
            out, tapes = ch.forward(x[idx], lengths[idx])
            mask = np.arange(T)[None, :] < lengths[idx][:, None]
            _, dout = nn.mse_loss(out, y[idx], mask)
            ch.backward(tapes, dout)
            nn.clip_grad_norm(ch.grads, clip)
            opt.step(ch.grads)
    return {k: v.copy() for k, v in ch.parameters.items()}


def _fit(client, model, x, y, lengths, chunks=12, epochs=3, **kw):
    X = da.from_array(x, chunks=(chunks, x.shape[1], x.shape[2]))
    Y = da.from_array(y, chunks=(chunks,) + y.shape[1:])
    res = rd.fit(
        model,
        X,
        Y,
        client=client,
        optimizer=lambda p: nn.Adam(p, lr=0.02),
        loss="mse",
        batch_size=12,
        epochs=epochs,
        lengths=lengths,
        clip=0.5,
        seed=11,
        timeout=TIMEOUT,
        **kw,
    )
    return res, {k: v.copy() for k, v in rd.Chain(model).parameters.items()}


_PLAIN = {}


def _plain_fit(client, x, y, lengths):
    """The undisturbed 2-worker run (8 steps) that several tests compare with."""
    if "w" not in _PLAIN:
        _PLAIN["w"] = _fit(client, _model(), x, y, lengths, epochs=2)[1]
    return _PLAIN["w"]


def test_fit_equals_one_process_to_rounding_and_moves_no_data(client):
    x, y, lengths = _data()
    ref = _one_process(_model(), x, y, lengths, B=12, epochs=5, seed=11, lr=0.02, clip=0.5)
    client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
    res, got = _fit(client, _model(), x, y, lengths, epochs=5)
    assert res.steps == 20 and len(res.losses) == 20 and len(res.epoch_losses) == 5
    assert _relerr(got, ref) < 1e-10
    start = rd.Chain(_model()).parameters
    assert _relerr(got, start) > 1e-3  # it trained
    # Between workers only partial gradient sums travel: no shard ever moves.
    logs = client.run(lambda dask_worker: list(dask_worker.transfer_incoming_log))
    moved = [k for log in logs.values() for entry in log for k in entry["keys"]]
    names = {str(k[0] if isinstance(k, tuple) else k).rsplit("-", 1)[0] for k in moved}
    assert not any(n.startswith("make_shard") for n in names), names


def test_fit_check_catches_a_sabotaged_reduction(client, monkeypatch):
    # The equality above is not vacuous: a tree that drops one partial sum
    # (and counts another twice) trains a visibly different model.
    import rnnkit.dask._train as train

    x, y, lengths = _data()
    ref = _one_process(_model(), x, y, lengths, B=12, epochs=1, seed=11, lr=0.02, clip=0.5)
    good = _fit(client, _model(), x, y, lengths, epochs=1)[1]
    assert _relerr(good, ref) < 1e-10
    honest = train.add
    monkeypatch.setattr(train, "add", lambda a, b: honest(a, a))
    bad = _fit(client, _model(), x, y, lengths, epochs=1)[1]
    assert _relerr(bad, ref) > 1e-6


def test_fit_bitwise_whatever_the_scheduling(client):
    x, y, lengths = _data()
    workers = rd._checks.worker_addresses(client)
    runs = []
    for slow in (None, workers[0], workers[1]):

        def delay(info, slow=slow):
            # Keep one worker busy when the next step's tasks arrive, so the
            # shards finish in another order than in the plain run.
            if slow is not None:
                client.submit(time.sleep, 0.05, workers=[slow], pure=False)

        _, w = _fit(client, _model(), x, y, lengths, chunks=6, epochs=1, callback=delay)
        runs.append(w)
    for w in runs[1:]:
        for k in w:
            assert np.array_equal(w[k], runs[0][k]), k


def test_fit_with_dropout_is_reproducible(client):
    x, y, lengths = _data(N=24)
    _, a = _fit(client, _model(dropout=0.3), x, y, lengths, epochs=2)
    _, b = _fit(client, _model(dropout=0.3), x, y, lengths, epochs=2)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_estimators_fit_on_dask_equal_numpy(client):
    rng = np.random.default_rng(5)
    N, T, F = 40, 6, 3
    x = rng.standard_normal((N, T, F)) * 3 + 1
    lengths = rng.integers(1, T + 1, N)
    X = da.from_array(x, chunks=(10, T, F))
    kw = dict(hidden_size=5, epochs=2, batch_size=8, dtype="float64", random_state=3, lr=0.02)
    yc = rng.integers(0, 3, N)
    a = RNNClassifier("gru", bidirectional=True, **kw).fit(x, yc, lengths)
    b = RNNClassifier("gru", bidirectional=True, **kw).fit(X, da.from_array(yc, chunks=10), lengths)
    assert np.array_equal(a.classes_, b.classes_)
    pa, pb = nn.named_parameters(a._modules), nn.named_parameters(b._modules)
    assert _relerr(pb, pa) < 1e-10
    assert np.allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10, atol=0)
    ys = rng.standard_normal((N, T, 2))
    a = RNNRegressor("lstm", output="sequence", num_layers=2, **kw).fit(x, ys, lengths)
    b = RNNRegressor("lstm", output="sequence", num_layers=2, **kw).fit(
        X, da.from_array(ys, chunks=(10, T, 2)), da.from_array(lengths, chunks=10)
    )
    assert _relerr(nn.named_parameters(b._modules), nn.named_parameters(a._modules)) < 1e-10
    assert np.allclose(a.y_mean_, b.y_mean_, rtol=1e-12)
    pred = b.predict(X, lengths)
    assert isinstance(pred, da.Array)
    np.testing.assert_array_equal(pred.compute(), b.predict(x, lengths))


def test_checkpoint_resume_is_exact(client, tmp_path):
    x, y, lengths = _data()
    path = tmp_path / "run.npz"
    full = _plain_fit(client, x, y, lengths)
    # A driver that dies after step 5: the last checkpoint is from step 3.
    m = _model()
    with pytest.raises(KeyboardInterrupt):

        def die(info):
            if info["step"] == 5:
                raise KeyboardInterrupt

        _fit(
            client,
            m,
            x,
            y,
            lengths,
            epochs=2,
            checkpoint_every=3,
            checkpoint_path=path,
            callback=die,
        )
    m = _model(seed=99)  # whatever the weights: they come from the checkpoint
    res, resumed = _fit(client, m, x, y, lengths, epochs=2, resume_from=path)
    assert res.steps == 8 and len(res.losses) == 8 and len(res.epoch_losses) == 2
    for k in full:
        assert np.array_equal(resumed[k], full[k]), k


def test_killed_worker_does_not_change_the_result(client):
    x, y, lengths = _data()
    ref = _plain_fit(client, x, y, lengths)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed = []

    def kill(info):
        if info["step"] == 3 and not killed:
            os.kill(pids[victim], signal.SIGKILL)  # mid-epoch, shards and all
            killed.append(victim)

    _, got = _fit(client, _model(), x, y, lengths, epochs=2, callback=kill)
    assert killed
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k
    client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny restarts it


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def test_errors_chunked_along_T_or_C(client):
    layer = rnnkit.LSTM(4, 3, batch_first=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"X is chunked along T \(axis 1\) into \(4, 4\).*rechunk"):
        rd.predict(layer, da.zeros((8, 8, 4), chunks=(4, 4, 4)))
    with pytest.raises(ValueError, match=r"X is chunked along C \(axis 2\) into \(2, 2\)"):
        rd.predict(layer, da.zeros((8, 8, 4), chunks=(4, 8, 2)))
    x, y, lengths = _data(N=8)
    with pytest.raises(ValueError, match=r"chunked along T"):
        rd.fit(
            _model(),
            da.from_array(x, chunks=(4, 4, 4)),
            y,
            client=client,
            optimizer=nn.SGD,
            loss="mse",
            batch_size=4,
            epochs=1,
        )
    with pytest.raises(TypeError, match=r"X must be a dask.array.Array"):
        rd.predict(layer, np.zeros((8, 8, 4)))


def test_errors_mismatched_chunks(client):
    x, y, lengths = _data(N=8)
    X = da.from_array(x, chunks=(4, 8, 4))
    with pytest.raises(ValueError, match=r"y is chunked along N as \(3, 3, 2\) but X as \(4, 4\)"):
        rd.fit(
            _model(),
            X,
            da.from_array(y, chunks=(3, 8, 3)),
            client=client,
            optimizer=nn.SGD,
            loss="mse",
            batch_size=4,
            epochs=1,
        )
    with pytest.raises(ValueError, match=r"y is chunked along N"):
        RNNClassifier(hidden_size=3).fit(X, da.zeros(8, chunks=5))
    with pytest.raises(ValueError, match=r"lengths must have shape \(N,\) = \(8,\), got \(7,\)"):
        rd.predict(_model()["rnn"], X, np.ones(7, int))


def test_errors_unreachable_scheduler():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    with pytest.raises(
        ConnectionError,
        match=rf"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within 1 s",
    ):
        rd.connect(f"tcp://127.0.0.1:{port}", timeout=1)
    x, y, _ = _data(N=8)
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler"):
        rd.fit(
            _model(),
            da.from_array(x, chunks=(4, 8, 4)),
            da.from_array(y, chunks=(4, 8, 3)),
            client=f"tcp://127.0.0.1:{port}",
            optimizer=nn.SGD,
            loss="mse",
            batch_size=4,
            epochs=1,
            timeout=1,
        )
    assert time.perf_counter() - t < 20


def test_errors_closed_client_and_bad_arguments(client):
    x, y, _ = _data(N=8)
    X, Y = da.from_array(x, chunks=(4, 8, 4)), da.from_array(y, chunks=(4, 8, 3))
    c = distributed.Client(client.scheduler.address, timeout=TIMEOUT, set_as_default=False)
    c.close()
    kw = dict(optimizer=nn.SGD, loss="mse", batch_size=4, epochs=1)
    with pytest.raises(ConnectionError, match=r"client is not connected"):
        rd.fit(_model(), X, Y, client=c, **kw)
    with pytest.raises(ValueError, match=r"optimizer is required"):
        rd.fit(_model(), X, Y, client=client, loss="mse", batch_size=4, epochs=1)
    with pytest.raises(ValueError, match=r"optimizer does not update the model's parameter"):
        rd.fit(
            _model(),
            X,
            Y,
            client=client,
            optimizer=nn.SGD(_model()["head"].parameters),
            loss="mse",
            batch_size=4,
            epochs=1,
        )
    with pytest.raises(ValueError, match=r"loss must be 'mse', 'cross_entropy'"):
        rd.fit(_model(), X, Y, client=client, **{**kw, "loss": "l1"})
    with pytest.raises(
        TypeError, match=r"x has dtype float32 but the layer's dtype is float64|float64"
    ):
        rd.predict(_model()["rnn"], X.astype(np.float32))
    with pytest.raises(ValueError, match=r"brings its own optimizer"):
        rd.fit(RNNClassifier(), X, da.zeros(8, chunks=4), client=client, epochs=3)


# ---------------------------------------------------------------------------
# the character model: truncated BPTT on the cluster, and train-text --dask
# ---------------------------------------------------------------------------

_TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\n" * 12


def test_fit_text_equals_one_process(client):
    from rnnkit.text import CharModel

    kw = dict(
        cell="lstm",
        hidden_size=8,
        num_layers=2,
        embedding_dim=5,
        seq_len=10,
        batch_size=6,
        dtype="float64",
        seed=3,
        lr=0.01,
    )
    a = CharModel(**kw).fit(_TEXT, steps=20)  # 14 windows a pass: crosses a reset
    seen = []
    b = rd.fit_text(
        CharModel(**kw),
        _TEXT,
        client=client,
        steps=20,
        timeout=TIMEOUT,
        callback=lambda m, info: seen.append(info["step"]),
    )
    assert seen == list(range(1, 21)) and b.steps_trained == 20
    assert _relerr(b.parameters, a.parameters) < 1e-10
    assert abs(b.history[-1]["val_loss"] - a.history[-1]["val_loss"]) < 1e-10


def test_cli_train_text_dask(client, tmp_path, capsys):
    from rnnkit.__main__ import main
    from rnnkit.text import CharModel

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_TEXT, encoding="utf-8")
    out = tmp_path / "m.npz"
    rc = main(
        [
            "train-text",
            str(corpus),
            "--dask",
            client.scheduler.address,
            "--steps",
            "3",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--embedding",
            "4",
            "--seq-len",
            "8",
            "--batch",
            "4",
            "--no-progress",
            "--sample-length",
            "0",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "2 worker(s)" in text and "step 3/3" in text and "saved" in text
    m = CharModel.load(out)
    assert m.steps_trained == 3
    # The cluster kept Adam's state: the checkpoint holds the weights, no
    # training state that --resume could wrongly continue from.
    assert m.optimizer is None


def test_cli_train_text_dask_refuses_resume(tmp_path, capsys):
    from rnnkit.__main__ import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_TEXT, encoding="utf-8")
    for extra in (["--resume", str(tmp_path / "m.npz")], ["--checkpoint-every", "2"]):
        with pytest.raises(SystemExit) as exc:
            main(["train-text", str(corpus), "--dask", "tcp://127.0.0.1:1", "--steps", "2", *extra])
        assert exc.value.code == 1
        assert "--resume and --checkpoint-every are for one-process runs" in capsys.readouterr().err


def test_cli_train_text_dask_unreachable(tmp_path, capsys):
    from rnnkit.__main__ import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_TEXT, encoding="utf-8")
    t = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train-text",
                str(corpus),
                "--dask",
                f"tcp://127.0.0.1:{port}",
                "--dask-timeout",
                "1",
                "--steps",
                "2",
                "--batch",
                "2",
                "--seq-len",
                "8",
            ]
        )
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within 1 s" in err
    assert time.perf_counter() - t < 20


def test_fit_text_checkpoint_resume_is_exact(client, tmp_path):
    from rnnkit.text import CharModel

    kw = dict(
        cell="gru",
        hidden_size=6,
        num_layers=2,
        embedding_dim=4,
        seq_len=10,
        batch_size=6,
        dtype="float64",
        seed=4,
        lr=0.01,
        dropout=0.2,
    )
    full = rd.fit_text(CharModel(**kw), _TEXT, client=client, steps=18, timeout=TIMEOUT)
    path = tmp_path / "text.npz"

    def die(m, info):
        if info["step"] == 11:  # the driver dies; the last checkpoint is from step 10
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rd.fit_text(
            CharModel(**kw),
            _TEXT,
            client=client,
            steps=18,
            timeout=TIMEOUT,
            checkpoint_every=5,
            checkpoint_path=path,
            callback=die,
        )
    resumed = rd.fit_text(
        CharModel(**kw), _TEXT, client=client, steps=8, timeout=TIMEOUT, resume_from=path
    )  # 10 + 8 = 18, across the reset at 15
    assert resumed.steps_trained == 18
    for k, v in full.parameters.items():
        assert np.array_equal(resumed.parameters[k], v), k
