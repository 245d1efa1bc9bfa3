"""rnnkit.sklearn: the estimator protocol (with and without scikit-learn), the
digits benchmark, lengths and ragged input, regression, and bad input."""

import time

import numpy as np
import pytest
from rnnkit.sklearn import NotFittedError, RNNClassifier, RNNRegressor


def sum_sign_data(n=240, T=6, seed=0):
    """Label: whether the first feature sums to a positive number."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 2))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


# ---------------------------------------------------------------------------
# Parameters, without scikit-learn
# ---------------------------------------------------------------------------


def test_get_params_set_params_and_repr():
    clf = RNNClassifier(hidden_size=8, epochs=2)
    params = clf.get_params()
    assert params["hidden_size"] == 8 and params["epochs"] == 2 and params["cell"] == "lstm"
    assert set(params) == {
        "cell",
        "hidden_size",
        "num_layers",
        "bidirectional",
        "dropout",
        "epochs",
        "batch_size",
        "lr",
        "clip",
        "weight_decay",
        "standardize",
        "dtype",
        "random_state",
        "backend",
        "verbose",
    }
    assert clf.set_params(cell="gru", lr=0.1) is clf and clf.cell == "gru" and clf.lr == 0.1
    with pytest.raises(ValueError, match="invalid parameter 'hiden_size'"):
        clf.set_params(hiden_size=3)
    assert repr(clf) == "RNNClassifier(cell='gru', hidden_size=8, epochs=2, lr=0.1)"
    assert "output" in RNNRegressor().get_params()
    # a clone by hand: the same parameters give the same model
    X, y = sum_sign_data(40)
    a = RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, y)
    b = type(a)(**a.get_params()).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_constructor_stores_without_validating_and_fit_validates():
    clf = RNNClassifier(cell="nope", hidden_size=-1)  # scikit-learn convention
    X, y = sum_sign_data(10)
    with pytest.raises(ValueError, match="cell must be one of"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got -1"):
        clf.set_params(cell="gru").fit(X, y)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        RNNClassifier(dtype="int8").fit(X, y)


# ---------------------------------------------------------------------------
# With scikit-learn
# ---------------------------------------------------------------------------


def test_digits_row_by_row_at_least_95_percent_in_under_a_minute():
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import train_test_split

    X, y = datasets.load_digits(return_X_y=True)
    X = X.reshape(-1, 8, 8)  # each image read as 8 steps of one 8-pixel row
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    t0 = time.perf_counter()
    clf = RNNClassifier(random_state=0).fit(Xtr, ytr)  # default settings
    elapsed = time.perf_counter() - t0
    acc = clf.score(Xte, yte)
    assert acc >= 0.95, f"test accuracy {acc:.4f}"
    assert elapsed < 60, f"fit took {elapsed:.1f}s"
    assert clf.n_iter_ == len(clf.loss_curve_) == 30 and clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_clone_pipeline_and_cross_val_score():
    pytest.importorskip("sklearn")
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    clf = RNNClassifier(hidden_size=8, epochs=20, random_state=0)
    c2 = clone(clf)
    assert c2 is not clf and c2.get_params() == clf.get_params()
    assert is_classifier(clf) and is_regressor(RNNRegressor()) and not is_classifier(RNNRegressor())
    X, y = sum_sign_data(120, T=4)
    flat = X.reshape(len(X), -1)  # the pipeline starts from 2-D rows
    pipe = make_pipeline(FunctionTransformer(lambda Z: Z.reshape(len(Z), 4, 2)), clf)
    scores = cross_val_score(pipe, flat, y, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    assert np.mean(scores) > 0.8
    # a sample-wise fit parameter is split with the folds
    lengths = np.full(len(X), 4)
    scores = cross_val_score(clone(clf), X, y, cv=3, params={"lengths": lengths})
    assert scores.shape == (3,)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clone(clf).predict(X)


def test_regressor_score_is_sklearn_r2():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 5, 1))
    y = np.stack([X[:, :, 0].sum(1), X[:, -1, 0]], axis=1)
    reg = RNNRegressor(hidden_size=8, epochs=3, random_state=0).fit(X, y)
    w = rng.uniform(0.5, 2, 80)
    assert reg.score(X, y) == pytest.approx(metrics.r2_score(y, reg.predict(X)), rel=1e-12)
    assert reg.score(X, y, sample_weight=w) == pytest.approx(
        metrics.r2_score(y, reg.predict(X), sample_weight=w), rel=1e-12
    )


# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------


def test_predict_proba_and_string_labels():
    X, y = sum_sign_data(200)
    labels = np.array(["neg", "pos"])[y]
    clf = RNNClassifier(hidden_size=8, epochs=15, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["neg", "pos"]
    p = clf.predict_proba(X)
    assert p.shape == (200, 2) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[p.argmax(1)])
    assert clf.score(X, labels) > 0.9


def test_lengths_ignore_padding_and_match_ragged_lists():
    rng = np.random.default_rng(1)
    lens = rng.integers(1, 7, 150)
    seqs = [rng.standard_normal((n, 3)) for n in lens]
    y = np.array([int(s[-1, 0] > 0) for s in seqs])  # depends on each sequence's own last step
    X = np.full((150, 6, 3), np.nan)  # padding may be anything, even nan
    for i, s in enumerate(seqs):
        X[i, : len(s)] = s
    a = RNNClassifier(hidden_size=8, epochs=20, random_state=0, bidirectional=True).fit(
        X, y, lengths=lens
    )
    b = RNNClassifier(hidden_size=8, epochs=20, random_state=0, bidirectional=True).fit(seqs, y)
    np.testing.assert_allclose(
        a.predict_proba(X, lengths=lens), b.predict_proba(seqs), rtol=1e-5, atol=1e-6
    )
    X2 = np.where(np.isnan(X), 1e3, X)  # other padding: the same predictions
    np.testing.assert_array_equal(
        a.predict_proba(X2, lengths=lens), a.predict_proba(X, lengths=lens)
    )
    assert a.score(X, y, lengths=lens) > 0.9
    with pytest.raises(ValueError, match="holds nan or inf"):
        a.predict(X)  # without lengths the nan padding is data


def test_regressor_many_to_one_and_many_to_many():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 8, 1))
    reg = RNNRegressor(hidden_size=16, epochs=25, random_state=0).fit(X, X[:, :, 0].sum(axis=1))
    assert reg.predict(X).shape == (300,)
    assert reg.score(X, X[:, :, 0].sum(axis=1)) > 0.9
    # many-to-many: the running sum, with lengths; steps past the end predict 0
    lens = rng.integers(3, 9, 300)
    Y = np.cumsum(X[:, :, 0], axis=1)
    seq = RNNRegressor(hidden_size=16, epochs=25, output="sequence", random_state=0).fit(
        X, Y, lengths=lens
    )
    pred = seq.predict(X, lengths=lens)
    assert pred.shape == (300, 8) and np.all(pred[np.arange(8)[None] >= lens[:, None]] == 0)
    assert seq.score(X, Y, lengths=lens) > 0.9
    multi = np.stack([Y, -Y], axis=2)  # two outputs per step
    m2 = RNNRegressor(hidden_size=8, epochs=2, output="sequence", random_state=0).fit(X, multi)
    assert m2.predict(X).shape == (300, 8, 2)


def test_float64_and_gru_indrnn_cells_train():
    X, y = sum_sign_data(200)
    for cell in ("gru", "rnn", "indrnn"):
        clf = RNNClassifier(
            cell=cell, hidden_size=8, epochs=15, dtype="float64", random_state=0
        ).fit(X, y)
        assert clf.rnn_.dtype == np.float64
        assert clf.score(X, y) > 0.85, cell


# ---------------------------------------------------------------------------
# Bad input: clear errors from the estimator, not from deep inside
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, message",
    [
        (
            np.zeros((10, 4)),
            r"X must be 3-D \[n_samples, n_timesteps, n_features\], got 2-D shape \(10, 4\); "
            r"for a univariate series use X\[:, :, None\]",
        ),
        (np.zeros((10, 4, 2, 1)), "got 4-D shape"),
        (np.zeros(10), "got 1-D"),
        (np.zeros((10, 0, 2)), "at least one sample, step and feature"),
        ([["a", "b"]] * 10, "numeric array"),
        (np.full((10, 4, 2), np.inf), "nan or inf"),
    ],
)
def test_bad_X(X, message):
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match=message):
        RNNClassifier(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=message):
        RNNRegressor(epochs=1).fit(X, y.astype(float))


def test_bad_y_lengths_and_predict_input():
    X, y = sum_sign_data(20, T=4)
    with pytest.raises(
        ValueError, match=r"y must be 1-D with one label per sample \(20\), got shape \(19,\)"
    ):
        RNNClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        RNNClassifier().fit(X, np.zeros(20))
    with pytest.raises(
        ValueError, match=r"lengths must lie in 1..n_timesteps = 1..4, got values from 0"
    ):
        RNNClassifier().fit(X, y, lengths=np.arange(20) % 5)
    with pytest.raises(ValueError, match=r"lengths must have shape \(n_samples,\) = \(20,\)"):
        RNNClassifier().fit(X, y, lengths=[4, 4])
    with pytest.raises(ValueError, match="with output='sequence', y must be"):
        RNNRegressor(output="sequence").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="output must be 'last' or 'sequence'"):
        RNNRegressor(output="all").fit(X, y.astype(float))
    clf = RNNClassifier(hidden_size=4, epochs=1).fit(X, y)
    with pytest.raises(
        ValueError, match="X has 3 features per step, but the estimator was fitted with 2"
    ):
        clf.predict(np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match="got 2-D"):
        clf.predict(np.zeros((5, 8)))
    with pytest.raises(NotFittedError, match="RNNRegressor is not fitted yet"):
        RNNRegressor().predict(X)


def test_regressor_many_to_many_on_ragged_lists():
    rng = np.random.default_rng(3)
    seqs = [rng.standard_normal((int(n), 1)) for n in rng.integers(2, 7, 120)]
    ys = [np.cumsum(s[:, 0]) for s in seqs]
    reg = RNNRegressor(hidden_size=16, epochs=30, output="sequence", random_state=0).fit(seqs, ys)
    pred = reg.predict(seqs)
    assert isinstance(pred, list) and [p.shape for p in pred] == [y.shape for y in ys]
    assert reg.score(seqs, ys) > 0.9
    # the same data padded, with lengths, gives the same score
    lens = np.array([len(s) for s in seqs])
    X = np.zeros((120, 6, 1))
    Y = np.zeros((120, 6))
    for i, (s, y) in enumerate(zip(seqs, ys)):
        X[i, : len(s)] = s
        Y[i, : len(y)] = y
    assert reg.score(X, Y, lengths=lens) == pytest.approx(reg.score(seqs, ys), rel=1e-12)
    with pytest.raises(ValueError, match="lengths must be None when X is a list"):
        reg.predict(seqs, lengths=lens)
    with pytest.raises(ValueError, match=r"y\[0\] has 1 steps but X\[0\] has \d"):
        RNNRegressor(output="sequence").fit(seqs, [y[:1] for y in ys])


# ---------------------------------------------------------------------------
# Found in review: input that was silently changed or failed without naming itself
# ---------------------------------------------------------------------------


def _tiny(cls, **kw):
    return cls(hidden_size=3, epochs=1, random_state=0, **kw)


def test_lossy_inputs_are_refused_not_converted():
    X, y = sum_sign_data(n=8, T=4)
    masked = np.ma.masked_array(X, mask=np.zeros(X.shape, bool))
    masked.mask[0, 3] = True
    cases = [
        (lambda: _tiny(RNNClassifier).fit(X + 1j, y), "X must be real"),  # imaginary part dropped
        (lambda: _tiny(RNNClassifier).fit(masked, y), "X is a masked array"),  # mask dropped
        (lambda: _tiny(RNNRegressor).fit(X, y + 0.5j), "y must be real"),
        (
            lambda: _tiny(RNNClassifier).fit(
                X, y, lengths=np.ma.masked_array([4] * 8, mask=[1] + [0] * 7)
            ),
            "lengths is a masked array",
        ),
        (
            lambda: _tiny(RNNClassifier).fit(X, ["a", 1] * 4),
            "mixes strings and numbers",
        ),  # became '1'
        (lambda: _tiny(RNNClassifier).fit(X, [None, 1] * 4), "y's labels must be sortable"),
        (
            lambda: _tiny(RNNRegressor).fit(X * 1e200, y),
            "too large for float32",
        ),  # inf, then "diverged"
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_score_checks_y_and_sample_weight():
    X, y = sum_sign_data(n=8, T=4)
    clf = _tiny(RNNClassifier).fit(X, y)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(n_samples,\) = \(8,\)"):
        clf.score(X, y, sample_weight=[1, 2])
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        clf.score(X, y, sample_weight=[np.nan] * 8)
    reg = _tiny(RNNRegressor).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="n_samples = 8, got shape"):
        reg.score(X, y[:3])  # was a reshape error that did not name y
    with pytest.raises(ValueError, match=r"1 output\(s\) per sample"):
        reg.score(X, np.stack([y, y], 1))  # was broadcast into a wrong R²
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        reg.score(X, y, sample_weight=[1, 2])
    assert np.isfinite(reg.score(X, y, sample_weight=np.ones(8)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"standardize": "no"}, "standardize must be True or False"),  # 'no' meant True
        ({"bidirectional": "yes"}, "bidirectional must be True or False"),
        ({"verbose": "x"}, "verbose must be an integer"),
        ({"random_state": -1}, "random_state must be"),
        ({"random_state": 1.5}, "random_state must be"),
    ],
)
def test_bad_parameters_name_themselves(params, message):
    X, y = sum_sign_data(n=8, T=4)
    with pytest.raises(ValueError, match=message):
        RNNRegressor(hidden_size=3, epochs=1, **params).fit(X, y.astype(float))
