"""The cache that forward hands to backward: a small object of named arrays.

Both backends (NumPy reference and native) fill the same names with the same
shapes; docs/cells.md is the table. This is a plain container, not a tape of
operations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Cache"]


class Cache:
    """Named arrays saved by a ``*_forward`` call for its ``*_backward``.

    ``cell`` names the cell (``"rnn"``, ``"lstm"``, ``"gru"``, ``"indrnn"``) and
    ``backend`` the implementation that filled it. ``arrays`` lists the names
    produced by forward (compared across backends); the inputs kept for
    backward (``x``, weights, ``lengths``...) are attributes too.
    """

    def __init__(self, cell: str, backend: str, arrays: tuple[str, ...], **fields):
        self.cell = cell
        self.backend = backend
        self.arrays = tuple(arrays)
        for name, value in fields.items():
            setattr(self, name, value)
        missing = [a for a in self.arrays if not hasattr(self, a)]
        if missing:
            raise ValueError(f"Cache for {cell}: missing arrays {missing}")

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays produced by forward, by name (the ones tests compare)."""
        return {name: getattr(self, name) for name in self.arrays}

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, a).nbytes for a in self.arrays))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a}={tuple(getattr(self, a).shape)}" for a in self.arrays)
        return f"Cache({self.cell}, {self.backend}: {shapes})"
