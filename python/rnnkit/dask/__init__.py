"""rnnkit.dask: rnnkit beyond one machine, on Dask (an optional extra:
``pip install "rnnkit[dask]"``).

``predict`` runs any rnnkit layer, module chain or fitted estimator over a
dask array chunked along N; ``fit`` trains one by synchronous data-parallel
SGD on a ``distributed`` cluster; ``fit_text`` does it for a CharModel with
truncated BPTT. Dask schedules, moves the data and recovers lost workers;
rnnkit supplies the kernels and a correct, deterministic step. This package
imports dask and distributed; ``import rnnkit`` never imports it.
See docs/distributed.md.
"""

from __future__ import annotations

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"rnnkit.dask needs dask[array] and distributed ({err}); "
        'install them with: pip install "rnnkit[dask]"'
    ) from err

from ._checks import connect
from ._models import Chain
from ._predict import predict
from ._text import fit_text
from ._train import FitResult, fit

__all__ = ["predict", "fit", "fit_text", "connect", "Chain", "FitResult"]
