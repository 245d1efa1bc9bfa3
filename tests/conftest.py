"""Suite-wide settings. RNNKIT_TUNE=0: the kernels keep their cpuid
parameters, so that no test runs the first-use autotune (seconds, and timing
dependent) or reads or writes the user's cache directory; set in os.environ
so that the tests' subprocesses inherit it. tests/test_tune.py turns it on
where it tests the tuner, with a temporary cache directory."""

import os

os.environ["RNNKIT_TUNE"] = "0"
