"""Argument checks shared by rnnkit.dask.predict and fit: dask arrays chunked
along N only, matching chunks, reachable clients. Messages name the argument
and give the expected and the actual value.
"""

from __future__ import annotations

import numbers

import dask.array as da
import numpy as np


def check_X(X, name):
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array (for NumPy arrays call the model directly), "
            f"got {type(X).__name__}"
        )
    if X.ndim < 2:
        raise ValueError(f"{name} must be [N, T, C] (or [N, T] ids), got shape {X.shape}")
    return X


def check_N_chunks(a, name, ref=None, ref_name="X"):
    """``a`` is chunked along axis 0 only (and like ``ref`` there)."""
    if any(np.isnan(c) for c in a.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes along N ({a.chunks[0]}); call "
            f"{name}.compute_chunk_sizes() first"
        )
    for ax in range(1, a.ndim):
        if len(a.chunks[ax]) > 1:
            what = {1: "T (axis 1)", 2: "C (axis 2)"}.get(ax, f"axis {ax}")
            raise ValueError(
                f"{name} is chunked along {what} into {a.chunks[ax]}, but rnnkit.dask needs "
                f"whole sequences in each chunk: chunk along N only, e.g. "
                f"{name}.rechunk({{0: 'auto', {', '.join(f'{i}: -1' for i in range(1, a.ndim))}}})"
            )
    if ref is not None and a.chunks[0] != ref.chunks[0]:
        raise ValueError(
            f"{name} is chunked along N as {a.chunks[0]} but {ref_name} as {ref.chunks[0]}: "
            f"give them the same chunks, e.g. {name}.rechunk({{0: {ref_name}.chunks[0]}})"
        )


def lengths_like(lengths, X):
    """None, or lengths as a dask array ``[N]`` chunked like X."""
    if lengths is None:
        return None
    N = X.shape[0]
    if isinstance(lengths, da.Array):
        if lengths.shape != (N,):
            raise ValueError(f"lengths must have shape (N,) = ({N},), got {lengths.shape}")
        if lengths.chunks[0] != X.chunks[0]:
            lengths = lengths.rechunk({0: X.chunks[0]})
    else:
        arr = np.asarray(lengths)
        if arr.shape != (N,):
            raise ValueError(f"lengths must have shape (N,) = ({N},), got {arr.shape}")
        lengths = da.from_array(arr, chunks=(X.chunks[0],))
    if lengths.dtype == np.bool_ or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    return lengths


def positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def get_client(client, timeout):
    """A running distributed.Client from ``client`` (a Client, a scheduler
    address, or None for the current default client); never waits longer
    than ``timeout`` seconds."""
    import distributed

    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "training on dask arrays needs a distributed Client: pass client=, or "
                "create one first (distributed.Client(LocalCluster()) or Client('tcp://host:8786'))"
            ) from None
    elif isinstance(client, str):
        client = connect(client, timeout)
    elif not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a distributed.Client, a scheduler address or None, got "
            f"{type(client).__name__}"
        )
    if client.status != "running":
        raise ConnectionError(
            f"client is not connected to a scheduler (status {client.status!r}); "
            "create a new Client"
        )
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as err:
        raise ConnectionError(
            f"the Dask cluster at {client.scheduler.address} has no worker after {timeout:g} s "
            f"({type(err).__name__}); start one with `dask worker {client.scheduler.address}`"
        ) from None
    return client


def connect(address, timeout=10.0):
    """``distributed.Client(address)``, or ConnectionError after ``timeout``
    seconds, naming the address (never a hang)."""
    import distributed

    if not isinstance(address, str) or not address:
        raise TypeError(f"address must be a scheduler address string, got {address!r}")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s: "
            f"{type(err).__name__}: {err}"
        ) from None


def worker_addresses(client):
    """The addresses of all the cluster's workers, sorted."""
    try:
        info = client.scheduler_info(n_workers=-1)  # newer distributed lists only some by default
    except TypeError:
        info = client.scheduler_info()
    return sorted(info["workers"])
