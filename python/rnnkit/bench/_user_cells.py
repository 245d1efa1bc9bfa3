"""The ``rnnkit-step`` rows of ``rnnkit bench --user-cells``: the built-in
cells run as user cells (rnnkit.Recurrent(rnnkit.cells.LSTMCell(), ...,
fused=False): the pointwise step in Python, the GEMMs native), timed beside
the fused rnnkit row in the same process, so that the table's ratio is what a
cell written in Python costs over the fused kernel.

Not a peer library: it is rnnkit's own Python-step path.
"""

from __future__ import annotations

import numpy as np

from ._peers import Impl, Runner

__all__ = ["StepCellImpl"]


def _cell(cell: str):
    from rnnkit import cells

    return {
        "lstm": cells.LSTMCell,
        "gru": cells.GRUCell,
        "rnn": lambda: cells.RNNCell("tanh"),
        "indrnn": lambda: cells.IndRNNCell("relu"),
    }[cell]()


class StepCellImpl(Impl):
    """A built-in cell through the Python-step path of rnnkit.Recurrent."""

    name = "rnnkit-step"

    def version(self):
        return "rnnkit.Recurrent(fused=False)"

    def prepare(self, cell, inputs, mode):
        from rnnkit import Recurrent

        x = inputs["x"]
        C = x.shape[2]
        H = inputs["h0"].shape[1]
        layer = Recurrent(_cell(cell), C, H, dtype=np.float32, fused=False)
        layer.load_state_dict(
            {
                "weight_ih_l0": inputs["w_ih"],
                "weight_hh_l0": inputs["w_hh"],
                "bias_ih_l0": inputs["b_ih"],
                "bias_hh_l0": inputs["b_hh"],
            }
        )
        h0 = inputs["h0"][None]
        state = (h0, inputs["c0"][None]) if cell == "lstm" else h0
        dy = inputs["dy"]
        if mode == "inference":
            return Runner(forward=lambda: layer(x, state), backward=None,
                          outputs=lambda f, b: {"y": f[0]}, keep=[layer])
        return Runner(
            forward=lambda: layer.forward(x, state),
            backward=lambda out: layer.backward(out[2], dy),
            outputs=lambda f, b: {"y": f[0], "dx": b[0]},
            reset=layer.zero_grad,
            keep=[layer],
        )
