"""pytest-benchmark suite for the lstm cell: forward (training), backward, inference."""

from _suite import make_suite

test_lstm_forward, test_lstm_backward, test_lstm_inference = make_suite("lstm")
