"""The CI slice of the fuzz campaign: a few hundred calls through the
crash-isolating runner (crash, hang, sanitizer report, wrong answer and
off-contract exception all fail the test), and hypothesis driving the same
cases in-process so that a failure shrinks to a small example. The full
campaign is ``python -m tests.fuzz --calls 100000`` (not run in CI).

RNNKIT_FUZZ_SLICE sets the slice's size (default 400 calls).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .cases import DOCUMENTED, ENTRY_POINTS, EXTRA_DOCUMENTED, WrongAnswer
from .runner import campaign, format_report

SLICE = int(os.environ.get("RNNKIT_FUZZ_SLICE", "400"))


def test_campaign_slice_finds_nothing():
    # Seeds from 10**6 on: not the ones the full campaign starts with, so CI
    # and a local campaign together cover more.
    rep = campaign(SLICE, workers=2, start=10**6, timeout=60.0)
    assert rep["calls"] == SLICE
    assert not any(rep["findings"].values()), format_report(rep)
    # Every entry point was exercised, and most calls succeeded: a slice that
    # only raises checks nothing.
    entries = {e for (e, _), n in rep["counts"].items()}
    assert entries == set(ENTRY_POINTS), entries
    ok = sum(n for (e, k), n in rep["counts"].items() if k == "ok")
    assert ok > SLICE // 3, format_report(rep)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(r=st.randoms(use_true_random=False))
def test_entry_point_keeps_its_contract(entry, r):
    import warnings

    import numpy as np

    allowed = DOCUMENTED + EXTRA_DOCUMENTED.get(entry, ())
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ENTRY_POINTS[entry](r)
    except WrongAnswer:
        raise
    except allowed:
        pass
