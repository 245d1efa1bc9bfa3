"""rnnkit.rtrl: real-time recurrent learning on top of the ``*_rtrl``
functions (docs/rtrl.md): the carried stream state and the online learner.

It may import rnnkit's layers, nn and functional modules; OnlineLearner is
loaded on first use, so that rnnkit.reference can import the state class
from here without a cycle.
"""

from __future__ import annotations

from ._state import MODES, RTRLState

__all__ = ["RTRLState", "MODES", "OnlineLearner"]


def __getattr__(name):
    if name == "OnlineLearner":
        from .learner import OnlineLearner

        return OnlineLearner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
