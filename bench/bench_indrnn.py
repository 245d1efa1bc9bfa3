"""pytest-benchmark suite for the indrnn cell: forward (training), backward, inference."""

from _suite import make_suite

test_indrnn_forward, test_indrnn_backward, test_indrnn_inference = make_suite("indrnn")
