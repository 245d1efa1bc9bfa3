"""rnnkit's fuzz suite: random calls to every public entry point, each checked
against the contract (only documented exception types, no crash, no hang,
finite outputs for finite inputs, inputs never modified, native == reference).

``python -m tests.fuzz --calls 100000`` runs the full campaign in isolated
child processes (tests/fuzz/runner.py); pytest runs a bounded slice
(test_fuzz_slice.py) and the reduced regressions of what it found
(test_contract.py). The cases themselves live in cases.py.
"""
