"""pytest-benchmark suite for the rnn cell: forward (training), backward, inference."""

from _suite import make_suite

test_rnn_forward, test_rnn_backward, test_rnn_inference = make_suite("rnn")
