"""Forecasting a univariate series: an LSTM reads the last 48 values and
predicts the next one. The series is synthetic (two seasonal cycles, a slow
trend and noise), so nothing is downloaded. Prints the RNN's error beside two
baselines (the last value; the value one season ago) on a held-out tail, and a
12-step recursive forecast.

    python examples/forecast.py
"""

import time

import numpy as np
from rnnkit.sklearn import RNNRegressor

WINDOW, SEASON = 48, 24


def make_series(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (
        np.sin(2 * np.pi * t / SEASON)
        + 0.5 * np.sin(2 * np.pi * t / (7 * SEASON) + 1.0)
        + 0.0005 * t
        + 0.15 * rng.standard_normal(n)
    )


def windows(series):
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)  # n-WINDOW, WINDOW
    y = series[WINDOW:]
    return X[:, :, None].copy(), y  # [n, T, 1]: one feature per step


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main():
    series = make_series()
    X, y = windows(series)
    cut = int(0.8 * len(y))  # train on the first 80% of time, test on the rest
    Xtr, ytr, Xte, yte = X[:cut], y[:cut], X[cut:], y[cut:]
    print(
        f"series of {len(series)} points; {len(ytr)} training windows, {len(yte)} test windows "
        f"of {WINDOW} steps"
    )

    reg = RNNRegressor(hidden_size=32, epochs=15, random_state=0)
    t0 = time.perf_counter()
    reg.fit(Xtr, ytr)
    print(f"{reg!r}: fit in {time.perf_counter() - t0:.1f}s")
    pred = reg.predict(Xte)
    print(
        f"test RMSE, one step ahead:  RNN {rmse(pred, yte):.4f}   "
        f"last value {rmse(Xte[:, -1, 0], yte):.4f}   "
        f"one season ago {rmse(Xte[:, -SEASON, 0], yte):.4f}   (noise std 0.15)"
    )
    print(f"test R^2: {reg.score(Xte, yte):.4f}")

    # A recursive forecast: feed each prediction back as the newest value.
    history = list(series[cut : cut + WINDOW])
    truth = series[cut + WINDOW : cut + WINDOW + 12]
    for _ in range(12):
        history.append(float(reg.predict(np.array(history[-WINDOW:])[None, :, None])[0]))
    fc = np.array(history[WINDOW:])
    print(f"12-step recursive forecast RMSE: {rmse(fc, truth):.4f}")
    print("forecast:", np.round(fc, 2))
    print("truth:   ", np.round(truth, 2))


if __name__ == "__main__":
    main()
