"""Dask helpers: predict over a dask array of sequences, thread settings for dask workers.

numgru itself never imports dask: this module imports it inside its functions, and only
:func:`predict` needs it (``pip install "numgru[dask]"``). Grid searches need nothing from here:
the estimators pickle and clone, so scikit-learn's ``GridSearchCV`` runs them on a
``dask.distributed`` cluster through joblib's ``"dask"`` backend (see the *Scaling out with
Dask* page of the documentation).

Every numgru call runs its kernels on Numba's thread pool, which uses every core of the machine
by default. Several worker processes on one machine, each with that pool, would oversubscribe
the cores; :func:`worker_env` gives the environment that sizes each worker's pool to its share.
It has to be an environment variable set before the worker process imports Numba:
``numba.set_num_threads`` only affects the thread that calls it, and ``client.run`` calls
functions in a worker's event-loop thread, not in the threads that run its tasks.
"""

import os
import uuid

import numpy as np

_METHODS = ("predict", "predict_proba", "predict_log_proba")


def _import_dask_array():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        raise ImportError(
            "numgru.dask needs dask: pip install \"numgru[dask]\" (dask[array] and "
            "distributed)") from exc
    return dask, da


def worker_env(n_workers=1, threads_per_worker=1, n_cores=None):
    """Environment variables that keep dask workers on one machine from oversubscribing it.

    Each worker process gets ``max(1, n_cores // (n_workers * threads_per_worker))`` Numba
    threads (``NUMBA_NUM_THREADS``, read when Numba is imported, so it must be in the worker's
    environment before its first numgru call), and BLAS/OpenMP libraries one thread each
    (numgru holds BLAS to one thread inside its own calls anyway). Pass the result as
    ``env=`` to ``dask.distributed.LocalCluster`` (or ``Nanny``), or export it in the shell
    that starts ``dask worker``.

    Parameters
    ----------
    n_workers : int, default=1
        Worker processes on this machine.
    threads_per_worker : int, default=1
        Threads of each worker (``--nthreads`` of ``dask worker``); each may run a numgru call
        at the same time, each with the worker's Numba threads.
    n_cores : int, default=None
        Cores to share out; ``None`` counts the cores this process may run on.

    Returns
    -------
    env : dict of str to str
        ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
        ``OPENBLAS_NUM_THREADS``.

    Raises
    ------
    ValueError
        If ``n_workers``, ``threads_per_worker`` or ``n_cores`` is not a positive integer.

    Examples
    --------
    Four single-threaded workers on a 16-core machine get four Numba threads each:

    >>> from numgru.dask import worker_env
    >>> env = worker_env(n_workers=4, threads_per_worker=1, n_cores=16)
    >>> env["NUMBA_NUM_THREADS"], env["OMP_NUM_THREADS"]
    ('4', '1')
    >>> worker_env(n_workers=4, threads_per_worker=2, n_cores=4)["NUMBA_NUM_THREADS"]
    '1'

    With a local cluster (not run here)::

        from dask.distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=4, threads_per_worker=1, processes=True,
                               env=worker_env(n_workers=4, threads_per_worker=1))
        client = Client(cluster)
    """
    if n_cores is None:
        try:
            n_cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            n_cores = os.cpu_count() or 1
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker),
                        ("n_cores", n_cores)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    numba_threads = max(1, int(n_cores) // (int(n_workers) * int(threads_per_worker)))
    return {"NUMBA_NUM_THREADS": str(numba_threads), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _predict_block(X, estimator, *rest, method, has_lengths, trailing, out_dtype):
    """One block of samples: the estimator's ``method`` (each-step outputs have the input's
    timesteps, zeros past each length, as the local method gives them)."""
    if X.shape[0] == 0:  # an empty chunk
        return np.zeros((0,) + trailing, dtype=out_dtype)
    lengths = rest[0] if has_lengths else None
    return getattr(estimator, method)(X, lengths=lengths)


def predict(estimator, X, *, method="predict", lengths=None):
    """Predict with a fitted numgru estimator over a dask array of sequences, block by block.

    ``X`` is split along samples only (whole sequences per block; other axes are rechunked to
    one chunk). The estimator enters the task graph once, as one key, so a distributed cluster
    ships it to each worker once, not with every block. Nothing is computed until the result
    is: it is a dask array with the samples chunked as ``X``, equal to what
    ``getattr(estimator, method)(X.compute(), lengths=lengths)`` returns up to rounding.
    Rounding can differ because a block's rows are split over Numba's threads differently from
    the whole array's, which may pick the other kernel for the recurrent matrix product (see
    ``numgru._gemm``): in float64, measured differences were 0 for blocks of 64 sequences and
    about 1e-16 for blocks of 5, so labels agree unless two classes tie to within rounding.

    Parameters
    ----------
    estimator : GRURegressor or GRUClassifier
        A fitted estimator (it must pickle, as numgru's do, to run on a distributed cluster).
    X : dask array of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps)
        Sequences, chunked along samples (a NumPy array is taken as one chunk). Ragged
        sequences are right-padded, with their ``lengths``.
    method : {"predict", "predict_proba", "predict_log_proba"}, default="predict"
        The estimator's method to apply to each block.
    lengths : array-like or dask array of int of shape (n_samples,), default=None
        Valid lengths of right-padded sequences, as for the estimator's own methods. A dask
        array is rechunked to ``X``'s samples.

    Returns
    -------
    y : dask array
        Shaped as the local method's result for a 3-D or 2-D ``X``: ``(n_samples,)`` or
        ``(n_samples, n_outputs)``; with ``output="each_step"``, ``(n_samples, T[, ...])``
        with ``T`` the input's number of timesteps (zeros past each sequence's length).

    Raises
    ------
    ImportError
        If dask is not installed.
    ValueError
        If ``method`` is unknown, ``X`` is not 2-D or 3-D, or ``lengths`` does not have one
        entry per sample.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from numgru import GRUClassifier
    >>> from numgru.dask import predict
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 8, 2))
    >>> y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    >>> dX = da.from_array(X, chunks=(25, 8, 2))      # three blocks of sequences
    >>> proba = predict(clf, dX, method="predict_proba")
    >>> proba.shape, proba.chunks[0]
    ((60, 2), (25, 25, 10))
    >>> np.allclose(proba.compute(), clf.predict_proba(X), rtol=0, atol=1e-12)
    True
    >>> bool((predict(clf, dX).compute() == clf.predict(X)).all())
    True
    """
    from sklearn.utils.validation import check_is_fitted

    dask, da = _import_dask_array()
    if method not in _METHODS or not hasattr(estimator, method):
        raise ValueError(f"method must be one of {_METHODS} that {type(estimator).__name__} "
                         f"has, got {method!r}")
    check_is_fitted(estimator, "stack_")
    if not isinstance(X, da.Array):
        X = da.asarray(X)
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be a 2-D or 3-D array of sequences, got shape {X.shape}")
    if any(np.isnan(s) for s in X.shape):
        raise ValueError("X must have known chunk sizes (call X.compute_chunk_sizes())")
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    n = X.shape[0]

    # the output's trailing shape and dtype: the method on one all-zero sequence, here
    probe = getattr(estimator, method)(np.zeros((1,) + X.shape[1:], dtype=X.dtype))
    trailing = probe.shape[1:]

    args = [X, "ijk"[: X.ndim]]
    if lengths is not None:
        if isinstance(lengths, da.Array):
            if lengths.shape != (n,):
                raise ValueError(f"lengths must have shape ({n},), got {lengths.shape}")
            L = lengths.rechunk((X.chunks[0],))
        else:
            L = np.asarray(lengths)
            if L.shape != (n,):
                raise ValueError(f"lengths must have shape ({n},), got {L.shape}")
            L = da.from_array(L, chunks=(X.chunks[0],))
        args += [L, "i"]

    est = dask.delayed(estimator, name=f"numgru-estimator-{uuid.uuid4().hex}", traverse=False)
    out_ind = "i" + "abc"[: len(trailing)]
    new_axes = dict(zip(out_ind[1:], trailing))
    meta = np.empty((0,) * len(out_ind), dtype=probe.dtype)
    return da.blockwise(_predict_block, out_ind, *args[:2], est, None, *args[2:],
                        new_axes=new_axes, concatenate=True, dtype=probe.dtype, meta=meta,
                        method=method, has_lengths=lengths is not None,
                        trailing=tuple(trailing), out_dtype=probe.dtype)
