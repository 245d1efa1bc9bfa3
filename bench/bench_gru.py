"""pytest-benchmark suite for the gru cell: forward (training), backward, inference."""

from _suite import make_suite

test_gru_forward, test_gru_backward, test_gru_inference = make_suite("gru")
