"""Sequence classification: scikit-learn's 8x8 digits, each image read row by
row as a sequence of 8 steps with 8 features, classified by an LSTM's final
state. Needs scikit-learn.

    python examples/digits_classifier.py
"""

import time

import numpy as np
from rnnkit.sklearn import RNNClassifier
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split


def main():
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 8, 8)  # n_samples, 8 steps (rows), 8 features (pixels)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    print(f"train {len(Xtr)}, test {len(Xte)} images, as sequences of shape {X.shape[1:]}")

    clf = RNNClassifier(random_state=0)  # default settings
    t0 = time.perf_counter()
    clf.fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    acc = clf.score(Xte, yte)
    print(
        f"{clf!r}: fit in {fit_s:.1f}s, {clf.n_iter_} epochs, final training loss "
        f"{clf.loss_curve_[-1]:.4f}"
    )
    print(f"train accuracy {clf.score(Xtr, ytr):.4f}")
    print(f"test accuracy  {acc:.4f}")
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(confusion_matrix(yte, clf.predict(Xte)))
    proba = clf.predict_proba(Xte)
    print(f"mean probability of the true class: {proba[np.arange(len(yte)), yte].mean():.4f}")


if __name__ == "__main__":
    main()
