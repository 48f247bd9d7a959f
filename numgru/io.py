"""Saving and loading fitted estimators without pickle.

A model file is one ``.npz`` archive: every array under a plain name, plus a JSON document
(``__meta__``) holding the format name and version, the estimator's class, its parameters and
its fitted scalars. It is read with ``allow_pickle=False``, so opening a model file never runs
code.

This module only knows the file format. What an estimator stores is its own business: its
``_get_fitted_state()`` returns ``(fitted, arrays)`` (a JSON-able dict and a dict of arrays),
which :func:`save` writes, and :func:`load` hands them back to ``_set_fitted_state(fitted,
arrays, device)`` of a new estimator built from the stored parameters. The estimator classes
register themselves by name with :func:`_register_estimator` (so that this module needs no
import of ``numgru.estimators``). An array of strings held as ``object`` (class labels) is
stored as a string array and flagged ``"<name>_object": true`` in the metadata.
"""

import json
import warnings
import zipfile

import numpy as np

FORMAT = "numgru-estimator"
VERSION = 1

_ESTIMATOR_CLASSES = {}


def _register_estimator(cls):
    """Class decorator: model files whose metadata names ``cls.__name__`` load as ``cls``.

    ``cls`` provides ``get_params``, a constructor taking those parameters, and
    ``_get_fitted_state`` / ``_set_fitted_state``.
    """
    _ESTIMATOR_CLASSES[cls.__name__] = cls
    return cls


def _jsonable(value):
    """``value`` with numpy scalars turned into Python numbers, or TypeError if JSON cannot
    hold it."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a numgru model file")


def save(estimator, path):
    """Write a fitted ``GRURegressor``/``GRUClassifier`` to ``path`` (a single .npz file).

    Parameters
    ----------
    estimator : GRURegressor or GRUClassifier
        A fitted estimator.
    path : str or path-like
        Destination; written exactly there (no extension is added).

    Returns
    -------
    None

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    TypeError
        If a parameter or a class label cannot be stored without pickle.

    See Also
    --------
    load : Read the file back.

    Notes
    -----
    ``est.save(path)`` is the same as ``numgru.io.save(est, path)``. A ``random_state`` that is
    a ``RandomState`` or ``Generator`` object is stored as None.

    Examples
    --------
    >>> import os, tempfile, zipfile
    >>> import numpy as np
    >>> from numgru import GRUClassifier
    >>> from numgru.io import save
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 5, 2))
    >>> y = np.array(["a", "b"] * 10)
    >>> clf = GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "clf.npz")
    ...     save(clf, path)
    ...     names = sorted(zipfile.ZipFile(path).namelist())
    >>> names
    ['__meta__.npy', 'classes.npy', 'gru0.bias_hh_l0.npy', 'gru0.bias_ih_l0.npy', 'gru0.weight_hh_l0.npy', 'gru0.weight_ih_l0.npy', 'head_coef.npy', 'head_intercept.npy']
    """
    fitted, arrays = estimator._get_fitted_state()
    params = estimator.get_params(deep=False)
    if not (params.get("random_state") is None or isinstance(params["random_state"], (int, np.integer))):
        params["random_state"] = None  # a RandomState/Generator object is not stored
    meta = {"format": FORMAT, "version": VERSION, "class": type(estimator).__name__,
            "params": _jsonable(params), "fitted": _jsonable(fitted)}
    arrays = dict(arrays)
    if "__meta__" in arrays:
        raise ValueError("'__meta__' is reserved for the metadata of a numgru model file")
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind == "O":  # strings held as objects (class labels): stored as str
            if not all(isinstance(v, str) for v in value.ravel()):
                raise TypeError(f"array {name!r} holds objects other than strings, which cannot "
                                "be saved without pickle")
            value = value.astype(str)
            meta[f"{name}_object"] = True
        arrays[name] = value
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _loadable_device(device):
    """The device a loaded model runs on: its own, or the CPU (with a warning) when a model
    saved with device='cuda' is loaded where CUDA cannot be used."""
    if device == "cuda":
        from . import _cuda

        reason = _cuda.unavailable_reason()
        if reason is not None:
            warnings.warn(f"this model was saved with device='cuda', which cannot be used here "
                          f"({reason}); it runs on the CPU instead", RuntimeWarning, stacklevel=3)
            return "cpu"
    return device


def load(path):
    """Load an estimator saved by ``est.save(path)``; never unpickles anything.

    The file is opened with ``numpy.load(path, allow_pickle=False)``, so loading a model file,
    even one from an untrusted source, never runs code.

    Parameters
    ----------
    path : str, path-like or file-like
        A file written by :meth:`GRURegressor.save <numgru.GRURegressor.save>`,
        :meth:`GRUClassifier.save <numgru.GRUClassifier.save>` or :func:`numgru.io.save`.

    Returns
    -------
    estimator : GRURegressor or GRUClassifier
        The fitted estimator; its predictions are bit-identical to the saved one's.

    Raises
    ------
    ValueError
        If the file is not a numgru model file, is corrupt, or has an unsupported version.

    See Also
    --------
    save : Write a fitted estimator to a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import numgru
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 5, 2))
    >>> y = X[:, :, 0].sum(axis=1) > 0
    >>> clf = numgru.GRUClassifier(hidden_layer_sizes=(4,), max_iter=2,
    ...                            random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "clf.npz")
    ...     clf.save(path)
    ...     loaded = numgru.load(path)
    >>> loaded
    GRUClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    >>> np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    True

    A file that is not a numgru model is refused:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "other.npz")
    ...     np.savez(path, a=np.zeros(3))
    ...     numgru.load(path)
    Traceback (most recent call last):
    ...
    ValueError: ... is not a numgru model file (no metadata)
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            meta_text = str(f["__meta__"]) if "__meta__" in files else None
            arrays = {k: f[k] for k in files if k != "__meta__"}
        meta = json.loads(meta_text) if meta_text is not None else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        # ValueError: numpy refuses a file that would need pickle, or bad JSON
        raise ValueError(f"{path!s} is not a readable numgru model file: {exc}") from exc
    if meta is None:
        raise ValueError(f"{path!s} is not a numgru model file (no metadata)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path!s} is not a numgru model file (format {fmt!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path!s} has model format version {meta.get('version')!r}; this numgru "
                         f"reads version {VERSION}")
    cls = _ESTIMATOR_CLASSES.get(meta.get("class"))
    if cls is None:
        raise ValueError(f"{path!s} holds an unknown estimator class {meta.get('class')!r}")
    try:
        for name in arrays:
            if meta.get(f"{name}_object"):
                arrays[name] = arrays[name].astype(object)
        params = dict(meta["params"])
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est._set_fitted_state(meta["fitted"], arrays, device=_loadable_device(est.device))
    except (KeyError, TypeError, ValueError) as exc:
        # missing names, wrong types, arrays of the wrong shapes
        raise ValueError(f"{path!s} is a corrupt numgru model file: {exc}") from exc
    return est
