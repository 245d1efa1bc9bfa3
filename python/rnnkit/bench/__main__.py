"""``python -m rnnkit.bench``: the same as ``rnnkit bench``."""

import sys

from . import main

sys.exit(main())
