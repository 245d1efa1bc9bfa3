"""A cell of your own on a real task: a peephole LSTM (ONNX's peepholes, one
of rnnkit.cells, written in Python on the rnnkit.Cell protocol) classifies
scikit-learn's 8x8 digits, each image read row by row (8 steps of 8 pixels),
from its final hidden state. The step math runs in Python; every GEMM runs
natively. Prints the test accuracy. Needs scikit-learn.

    python examples/custom_cell.py
"""

import time

import numpy as np
import rnnkit
from rnnkit import nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main(epochs=30, hidden=64, batch=64, seed=0):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)  # n, 8 steps (rows), 8 pixels
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    cell = rnnkit.cells.PeepholeLSTMCell()
    rnnkit.check_cell(cell)  # its backward agrees with finite differences (float64)
    rnn = rnnkit.Recurrent(cell, 8, hidden, batch_first=True, seed=seed)
    head = nn.Linear(hidden, 10, seed=seed)
    params = {**{f"rnn.{k}": v for k, v in rnn.parameters.items()},
              **{f"head.{k}": v for k, v in head.parameters.items()}}
    opt = nn.Adam(params, lr=1e-2)
    rng = np.random.default_rng(seed)

    def predict(xb):
        _, (h, _) = rnn(xb)
        return head(h[-1])  # logits from the last hidden state

    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(Xtr))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            rnn.zero_grad()
            head.zero_grad()
            _, (h, c), tape = rnn.forward(Xtr[idx])
            logits, head_tape = head.forward(h[-1])
            loss, dlogits = nn.softmax_cross_entropy(logits, ytr[idx])
            dh_last = head.backward(head_tape, dlogits)
            dh = np.zeros_like(h)
            dh[-1] = dh_last
            rnn.backward(tape, None, (dh, None))  # the loss reads only the final state
            grads = {**{f"rnn.{k}": v for k, v in rnn.grads.items()},
                     **{f"head.{k}": v for k, v in head.grads.items()}}
            opt.step(grads)
            total += loss * len(idx)
        if epoch % 10 == 9 or epoch == epochs - 1:
            acc = (predict(Xte).argmax(1) == yte).mean()
            print(f"epoch {epoch + 1:3d}: train loss {total / len(Xtr):.4f}, test accuracy {acc:.4f}")
    print(f"trained in {time.perf_counter() - t0:.1f}s: {rnn!r}")
    acc = (predict(Xte).argmax(1) == yte).mean()
    print(f"test accuracy {acc:.4f} on {len(yte)} digits (peephole LSTM, Python step, native GEMMs)")


if __name__ == "__main__":
    main()
