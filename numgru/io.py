"""Saving and loading fitted estimators without pickle.

A model file is one ``.npz`` archive: every array under a plain name, plus a JSON document
(``__meta__``) holding the format name and version, the estimator's class, its parameters and
its fitted scalars. It is read with ``allow_pickle=False``, so opening a model file never runs
code.

This module only knows the file format. What an estimator stores is its fitted state
(:mod:`numgru._fitted_state`): its ``_get_fitted_state()`` returns ``(fitted, arrays)`` (a
JSON-able dict and a dict of arrays), which :func:`save` writes, and :func:`load` hands them
back to ``_set_fitted_state(fitted, arrays, device)`` of a new estimator built from the stored
parameters. The estimator classes register themselves by name with
:func:`register_estimator` (so that this module needs no import of ``numgru.estimators``;
it imports nothing of numgru at all). An array of strings held as ``object`` (class labels) is
stored as a string array and flagged ``"<name>_object": true`` in the metadata.
"""

import json
import math
import os
import secrets
import stat
import warnings
import zipfile

import numpy as np

# the public names; register_estimator and jsonable are for numgru's own estimators
__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "numgru-estimator"
VERSION = 1

_ESTIMATOR_CLASSES = {}


def register_estimator(cls):
    """Class decorator: model files whose metadata names ``cls.__name__`` load as ``cls``.

    ``cls`` provides ``get_params``, a constructor taking those parameters, and
    ``_get_fitted_state`` / ``_set_fitted_state``.
    """
    _ESTIMATOR_CLASSES[cls.__name__] = cls
    return cls


_DICT_ITEMS = "__dict_items__"


def _dict_from_items(name, value):
    """A parameter as :func:`save` stored it: a dict with non-string keys comes back from its
    ``{"__dict_items__": [[key, value], ...]}`` form; anything else as it is."""
    if not (isinstance(value, dict) and set(value) == {_DICT_ITEMS}):
        return value
    items = value[_DICT_ITEMS]
    if not (isinstance(items, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (bool, int, float, str))
            for p in items)):
        raise ValueError(f"parameter {name!r} must be stored as a list of [key, value] pairs "
                         f"with number or string keys, got {items!r}"[:300])
    return {k: v for k, v in items}


def jsonable(value):
    """``value`` with numpy scalars turned into Python numbers, or TypeError if JSON cannot
    hold it."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        # hidden_layer_sizes=np.array([4, 3]), feature names: stored as JSON lists (objects
        # other than numbers and strings are still refused, element by element)
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
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

    The write is atomic: the archive goes to a new hidden temporary file in the same directory
    (``.<name>.<random>.tmp``), is flushed to disk (``os.fsync``) and then renamed onto
    ``path`` with ``os.replace``. A failure or an interruption while writing leaves a file that
    was at ``path`` as it was (and removes the temporary file; only a process killed outright,
    e.g. by SIGKILL, can leave one behind). When ``path`` is a symlink, the file it points to
    is replaced; an existing file's permission bits are kept.

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
    ['__meta__.npy', 'classes.npy', 'gru0.bias_hh_l0.npy', 'gru0.bias_ih_l0.npy',
     'gru0.weight_hh_l0.npy', 'gru0.weight_ih_l0.npy', 'head_coef.npy', 'head_intercept.npy',
     'input_mean.npy', 'input_scale.npy']
    """
    fitted, arrays = estimator._get_fitted_state()
    params = estimator.get_params(deep=False)
    if not (params.get("random_state") is None or isinstance(params["random_state"], (int, np.integer))):
        params["random_state"] = None  # a RandomState/Generator object is not stored
    for name, value in params.items():
        if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
            # JSON object keys are strings: a dict keyed by numbers (class_weight={0: 1, 1: 3})
            # is stored as its (key, value) pairs so that the keys come back as they were
            params[name] = {_DICT_ITEMS: [[jsonable(k), jsonable(v)] for k, v in value.items()]}
    meta = {"format": FORMAT, "version": VERSION, "class": type(estimator).__name__,
            "params": jsonable(params), "fitted": jsonable(fitted)}
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
    _write_atomically(path, lambda fh: np.savez(fh, **arrays))


def _write_atomically(path, write):
    """Call ``write(fh)`` on a new temporary file next to ``path``, flush it to disk, then
    rename it onto ``path`` (``os.replace``, atomic): ``path`` holds the old file or the new
    one, never a part. On any exception the temporary file is removed. A symlink at ``path``
    is followed (its target is replaced) and the mode of an existing file is kept."""
    target = os.path.realpath(os.fsdecode(os.fspath(path)))
    directory, base = os.path.split(target)
    while True:   # O_EXCL: a name of our own; mode 0o666 less the umask, as open() gives
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):   # make the rename itself durable (POSIX)
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass


def _loadable_device(device):
    """The device a loaded model runs on: its own, or the CPU (with a warning) when a model
    saved with device='cuda' is loaded where CUDA cannot be used."""
    if device == "cuda":
        from . import _cuda

        reason = _cuda.unavailable_reason()
        if reason is not None:
            warnings.warn(f"this model was saved with device='cuda', which cannot be used here "
                          f"({reason}); it runs on the CPU instead (its device parameter becomes "
                          "'cpu')", RuntimeWarning, stacklevel=3)
            return "cpu"
    return device


def load(path):
    """Load an estimator saved by ``est.save(path)``; never unpickles anything.

    Every array is read with ``numpy.lib.format.read_array(..., allow_pickle=False)`` after
    its header has been checked (no object dtype; no shape larger than the data in the file),
    so loading a model file, even one from an untrusted source, never runs code nor allocates
    more than the file holds.

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
        If the file is not a numgru model file, is corrupt, truncated or not a zip archive of
        ``.npy`` arrays, inflates to more than its budget (a zip bomb: see Notes), has an
        unsupported version, holds parameters that the estimator refuses, fitted values of the
        wrong types or outside the values a fit gives them, non-finite or misshapen weights,
        or arrays that the estimator does not use.
    FileNotFoundError
        If there is no file at ``path`` (and the other ``OSError`` subclasses that ``open``
        raises: ``IsADirectoryError``, ``PermissionError``, ...).
    TypeError
        If ``path`` is neither a path nor a file object.

    See Also
    --------
    save : Write a fitted estimator to a file.

    Notes
    -----
    A compressed archive (``numpy.savez_compressed``) loads too, within a budget: its members
    may inflate to at most ``max(64 MiB, 32 x the archive's size on disk)`` bytes in all. The
    budget counts the bytes actually inflated and is checked against each member's stated size
    before anything of it is read, so a small file that inflates to gigabytes (a zip bomb) is
    refused at once, without allocating them. Files that ``save`` writes are not compressed
    (they inflate to their own size).

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
    if not hasattr(path, "read"):
        path = os.fspath(path)     # TypeError for anything that is neither a path nor a file
        # opened here, outside the ValueError net below: a missing file, a directory or a
        # file without read permission raise what open() raises (FileNotFoundError, ...)
        with open(path, "rb") as fh:
            return _load(fh, path)
    return _load(path, path)


def _load(fh, path):
    """:func:`load` of the binary file ``fh``; ``path`` names it in messages."""
    try:
        arrays = _read_arrays(fh)
        meta_text = arrays.pop("__meta__", None)
        if meta_text is not None:
            if meta_text.shape != () or meta_text.dtype.kind != "U":
                raise ValueError(f"its metadata is a {meta_text.dtype} array of shape "
                                 f"{meta_text.shape}, not a JSON string")
            meta = json.loads(str(meta_text))
    except MemoryError:
        raise
    except Exception as exc:
        # whatever a damaged or hostile file makes zipfile, numpy's .npy reader or json raise
        # (BadZipFile, EOFError, NotImplementedError for unknown compression, RuntimeError for
        # encryption, tokenize errors from a mangled .npy header, RecursionError, ...)
        raise ValueError(f"{path!s} is not a readable numgru model file: {exc}") from exc
    if meta_text is None:
        raise ValueError(f"{path!s} is not a numgru model file (no metadata)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path!s} is not a numgru model file (format {fmt!r})")
    version = meta.get("version")
    if type(version) is not int or version != VERSION:
        raise ValueError(f"{path!s} has model format version {version!r}; this numgru "
                         f"reads version {VERSION}")
    name = meta.get("class")
    cls = _ESTIMATOR_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{path!s} holds an unknown estimator class {name!r}")
    try:
        for name in arrays:
            if meta.get(f"{name}_object"):
                if arrays[name].dtype.kind != "U":
                    raise ValueError(f"array {name!r} is flagged as strings but holds "
                                     f"{arrays[name].dtype}")
                arrays[name] = arrays[name].astype(object)
        params, fitted = meta["params"], meta["fitted"]
        if not isinstance(params, dict) or not isinstance(fitted, dict):
            raise ValueError(f"'params' and 'fitted' must be JSON objects, got "
                             f"{type(params).__name__} and {type(fitted).__name__}")
        params = {name: _dict_from_items(name, value) for name, value in params.items()}
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        device = _loadable_device(est.device)
        if device != est.device:       # a CUDA model on a machine without CUDA: CPU from now on,
            est.device = device        # so that a refit or partial_fit runs too
        est._set_fitted_state(fitted, arrays, device=device)
        # every array must be one that saving this estimator writes: a leftover (say, the
        # weights of a layer that the parameters no longer have) means the file was altered
        unused = sorted(set(arrays) - set(est._get_fitted_state()[1]))
        if unused:
            raise ValueError(f"arrays {unused} are not part of this {cls.__name__}")
    except (KeyError, TypeError, ValueError) as exc:
        # missing names, wrong types, arrays of the wrong shapes, refused parameters
        raise ValueError(f"{path!s} is a corrupt numgru model file: {exc}") from exc
    return est


#: A model file's members may inflate to at most ``max(_INFLATE_FLOOR, _INFLATE_RATIO * the
#: archive's size)`` bytes in all. Weights do not compress: numgru writes its files
#: uncompressed (ratio 1) and ``savez_compressed`` gets ~1.1 on trained float weights, so 32
#: leaves a wide margin while a zip bomb (deflate reaches ~1000) is refused.
_INFLATE_FLOOR = 64 << 20
_INFLATE_RATIO = 32


class _InflateBudget:
    """The bytes the members of one archive may still inflate to (see ``_INFLATE_RATIO``)."""

    def __init__(self, archive_size):
        self.archive_size = archive_size
        self.limit = max(_INFLATE_FLOOR, _INFLATE_RATIO * archive_size)
        self.left = self.limit

    def refuse(self, key, size):
        raise ValueError(f"array {key!r} inflates to {size} bytes, beyond the "
                         f"{self.limit}-byte budget of a {self.archive_size}-byte archive "
                         f"(max({_INFLATE_FLOOR}, {_INFLATE_RATIO} x its size)): a zip bomb?")

    def reserve(self, key, stated):
        """Refuse a member whose stated size alone is beyond what is left (before reading)."""
        if stated > self.left:
            self.refuse(key, stated)


class _CountingReader:
    """A member's file object that charges every byte it hands out to the budget."""

    def __init__(self, fh, budget, key):
        self._fh, self._budget, self._key, self._read = fh, budget, key, 0

    def read(self, n=-1):
        data = self._fh.read(n)
        self._read += len(data)
        self._budget.left -= len(data)
        if self._budget.left < 0:
            self._budget.refuse(self._key, self._read)
        return data


def _archive_size(fh):
    """Size in bytes of the binary file ``fh`` (its position is kept)."""
    pos = fh.tell()
    try:
        return fh.seek(0, os.SEEK_END)
    finally:
        fh.seek(pos)


def _read_arrays(fh):
    """Every array of the ``.npz`` archive in the binary file ``fh`` by name.

    Read with ``numpy.lib.format.read_array(..., allow_pickle=False)``, member by member, after
    checking each ``.npy`` header: an object dtype (pickle) is refused before anything is read,
    and so is a shape whose data would be larger than the member, so that a few hostile bytes
    cannot make this allocate terabytes. The members inflate within one budget
    (:class:`_InflateBudget`): a member whose stated size is beyond it is refused before it is
    read, and the bytes actually inflated are counted against it as they are read. Every
    member must be a ``.npy`` array.
    """
    fmt = np.lib.format
    arrays = {}
    budget = _InflateBudget(_archive_size(fh))
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not a .npy array")
            key = info.filename[:-4]
            budget.reserve(key, info.file_size)
            with zf.open(info) as member:
                version = fmt.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(member)
                else:
                    raise ValueError(f"array {key!r} has .npy format version {version}, which "
                                     "numgru does not read")
            if dtype.hasobject:
                raise ValueError(f"array {key!r} holds Python objects, which would need pickle; "
                                 "numgru never unpickles")
            if any(n < 0 for n in shape) or math.prod(shape) * dtype.itemsize > info.file_size:
                raise ValueError(f"array {key!r} declares shape {shape} of {dtype}, more data "
                                 f"than its {info.file_size} bytes hold")
            with zf.open(info) as member:
                arrays[key] = fmt.read_array(_CountingReader(member, budget, key),
                                             allow_pickle=False)
    return arrays
