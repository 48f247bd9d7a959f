"""Turning user input into padded batches: 3-D arrays, ragged lists and 2-D univariate arrays.

Shape legend: n sequences, T timesteps (the longest), F features per timestep.
"""

import functools
import numbers
import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_array, column_or_1d

from ._validation import check_lengths as _check_lengths


def is_ragged_list(X):
    """A list/tuple whose elements are sequences of timesteps of unequal length, or 2-D arrays."""
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    first = X[0]
    if isinstance(first, numbers.Number) or isinstance(first, (str, bytes)):
        return False
    arrays = [np.asarray(x) for x in X]
    if any(a.ndim == 2 for a in arrays):
        return True
    return len({a.shape[0] if a.ndim else -1 for a in arrays}) > 1


def as_sequences(X, dtype, name="X"):
    """Validate ``X`` and return ``(Xpad, lengths, kind)``.

    Xpad (n, T, F) C-contiguous of ``dtype``, zero past each length; lengths (n,) int64;
    kind "3d", "2d" (univariate: each row is a sequence of T scalars, F = 1) or "ragged".
    Raises ValueError for NaN/inf, empty input, zero-length sequences or mixed feature counts.
    """
    if is_ragged_list(X):
        seqs = []
        for i, x in enumerate(X):
            a = np.asarray(x)
            if a.dtype.kind not in "fiub":
                raise ValueError(f"{name}[{i}] has non-numeric dtype {a.dtype}")
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2:
                raise ValueError(f"{name}[{i}] must be a 2-D array (n_timesteps, n_features) or a "
                                 f"1-D univariate sequence, got shape {a.shape}")
            if a.shape[0] == 0:
                raise ValueError(f"{name}[{i}] is a zero-length sequence; every sequence needs at "
                                 "least one timestep")
            seqs.append(a)
        F = {a.shape[1] for a in seqs}
        if len(F) != 1:
            raise ValueError(f"all sequences in {name} must have the same number of features, "
                             f"got {sorted(F)}")
        F = F.pop()
        lengths = np.array([a.shape[0] for a in seqs], dtype=np.int64)
        Xpad = np.zeros((len(seqs), int(lengths.max()), F), dtype=dtype)
        for i, a in enumerate(seqs):
            Xpad[i, : a.shape[0]] = a
        if not np.isfinite(Xpad).all():
            raise ValueError(f"Input {name} contains NaN or infinity.")
        return Xpad, lengths, "ragged"
    if getattr(getattr(X, "dtype", None), "kind", None) in ("m", "M"):  # dates pass as numbers
        raise ValueError(f"{name} has non-numeric dtype {X.dtype}")
    _check_holds_sequences(X, name)
    arr = check_array(X, allow_nd=True, dtype=[np.float64, np.float32], ensure_all_finite=True,
                      input_name=name)
    if arr.ndim == 2:
        kind = "2d"
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        kind = "3d"
    else:
        raise ValueError(f"{name} must be 2-D (n_samples, n_timesteps), 3-D (n_samples, "
                         f"n_timesteps, n_features) or a list of 2-D arrays; got {arr.ndim}-D "
                         f"with shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero timesteps (shape {arr.shape}); every sequence needs at "
                         "least one timestep")
    if arr.shape[2] == 0:
        raise ValueError(f"{name} has zero features per timestep (shape {arr.shape})")
    lengths = np.full(arr.shape[0], arr.shape[1], dtype=np.int64)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype != arr.dtype and not np.isfinite(out).all():  # float64 -> float32 overflow
        raise ValueError(f"Input {name} has values too large for {out.dtype}; they must be "
                         f"finite in the model's dtype.")
    return out, lengths, kind


_FORMS = ("a 2-D array (n_samples, n_timesteps) of univariate sequences, a 3-D array "
          "(n_samples, n_timesteps, n_features) or a list of 2-D (n_timesteps, n_features) "
          "arrays")


def _check_holds_sequences(X, name):
    """ValueError, in terms of sequences, for an ``X`` that holds none or is not an array of
    them: an empty list or array, a 1-D array, a scalar or None (scikit-learn's own messages
    would say "Expected 2D array" and suggest ``reshape(-1, 1)``: n sequences of one step)."""
    if isinstance(X, (list, tuple)) and len(X) == 0:
        raise ValueError(f"{name} holds no sequences (an empty {type(X).__name__}); numgru needs "
                         f"at least one: {_FORMS}")
    try:
        shape = np.shape(X)
    except (ValueError, TypeError):
        return                                   # check_array says what is wrong
    if len(shape) == 0:
        raise ValueError(f"{name} must hold sequences ({_FORMS}), got "
                         f"{'None' if X is None else 'a scalar ' + type(X).__name__}")
    if shape[0] == 0:
        raise ValueError(f"{name} holds no sequences: found array with 0 sample(s) (shape "
                         f"{shape}); numgru needs at least one")
    if len(shape) == 1:
        raise ValueError(f"{name} is 1-D (shape {shape}), but numgru needs sequences: "
                         f"{_FORMS}. Reshape your data: {name}.reshape(1, -1) if it is one "
                         f"univariate sequence of {shape[0]} steps, {name}.reshape(-1, 1) if it "
                         f"is {shape[0]} sequences of one step each")


def warn_if_one_sequence(X, arr, name="X"):
    """Warn (``DataConversionWarning``) when a 2-D ``X`` that numgru reads as univariate
    sequences, one per row, looks like one multivariate sequence, rows being its timesteps:
    a DataFrame indexed by time, or rows that change smoothly from one to the next.

    ``arr`` is ``X`` as the (n, T) float array. Smooth rows: the mean squared difference of
    consecutive rows is under a tenth of what independent rows give (twice the mean variance
    of the columns), while no row is the one before it shifted by a few steps (sliding
    windows over one series, the usual univariate data set, are smooth too).
    """
    n, T = arr.shape
    index = getattr(X, "index", None)
    time_index = type(index).__name__ in ("DatetimeIndex", "TimedeltaIndex", "PeriodIndex")
    smooth = False
    if not time_index and n >= 8 and T >= 2:
        with np.errstate(all="ignore"):
            step = np.mean(np.diff(arr, axis=0) ** 2)
            spread = 2.0 * np.mean(arr.var(axis=0))
        smooth = bool(spread > 0 and step < 0.1 * spread) and not _sliding_windows(arr)
    if time_index or smooth:
        why = ("its rows are indexed by time" if time_index else
               "its consecutive rows are much closer to each other than independent sequences "
               "are, as consecutive timesteps of one sequence would be")
        warnings.warn(f"{name} is 2-D of shape {arr.shape}: numgru reads it as {n} univariate "
                      f"sequences of {T} timesteps each (one per row), but {why}. If {name} is "
                      f"one sequence of {n} timesteps with {T} features, pass it as "
                      f"{name}[None] (shape (1, {n}, {T})) or in a list of such 2-D arrays "
                      "(sklearn.exceptions.DataConversionWarning: filter it to silence this)",
                      DataConversionWarning, stacklevel=6)   # the user's fit call


def _sliding_windows(arr):
    """Whether every row of the (n, T) ``arr`` (n >= 3) is the row before it shifted by the
    same k steps (windows of one series with stride k < T). Shifts are tried on three row
    pairs first, so that only a candidate k costs a pass over the whole array."""
    n, T = arr.shape
    pairs = (0, n // 2 - 1, n - 2)
    for k in range(1, T):
        if all(np.array_equal(arr[i + 1, :T - k], arr[i, k:]) for i in pairs) \
                and np.array_equal(arr[1:, :T - k], arr[:-1, k:]):
            return True
    return False


def check_lengths(lengths, Xpad, kind):
    """Validate user lengths for a padded (3-D or 2-D) X: integers in [1, n_timesteps]
    (:func:`numgru._validation.check_lengths`, the one length validator)."""
    if kind == "ragged":
        raise ValueError("lengths= is for padded arrays; a ragged list already carries its lengths")
    return _check_lengths(lengths, Xpad.shape[0], Xpad.shape[1])


def step_targets(y, lengths, name="y"):
    """Per-timestep targets: an (n, T[, k]) array or a ragged list aligned with the sequences.

    Returns (Ypad (n, T, k) float64 or object labels (n, T) for classes, as given) and checks
    that every sequence has a target for each of its timesteps.
    """
    n = len(lengths)
    if isinstance(y, (list, tuple)) and len(y) and not isinstance(y[0], numbers.Number):
        try:
            ys = [np.asarray(v) for v in y]
        except (ValueError, TypeError) as exc:  # a ragged nested list inside one sequence
            raise ValueError(f"{name} could not be read as per-sequence target arrays: "
                             f"{exc}") from exc
        if len(ys) != n:
            raise ValueError(f"{name} has {len(ys)} target sequences for {n} input sequences")
        T = int(lengths.max())
        tail = ys[0].shape[1:]
        # the padded copy holds every sequence's values: one dtype for all of them (the first
        # sequence's alone would truncate floats after ints, or fail on strings after numbers)
        kinds = {"str" if v.dtype.kind in "US" else "num" if v.dtype.kind in "biuf" else "obj"
                 for v in ys}
        if len(kinds) > 1:
            raise ValueError(f"the target sequences in {name} mix dtypes "
                             f"{sorted({str(v.dtype) for v in ys})}; give every sequence "
                             "targets of one kind")
        dtype = functools.reduce(np.promote_types, [v.dtype for v in ys])
        out = np.zeros((n, T) + tail, dtype=dtype)
        for i, v in enumerate(ys):
            if v.ndim == 0 or v.shape[0] != lengths[i] or v.shape[1:] != tail:
                raise ValueError(f"{name}[{i}] has shape {v.shape}; expected "
                                 f"{(int(lengths[i]),) + tail} to match sequence {i}")
            out[i, : v.shape[0]] = v
        return out
    arr = np.asarray(y)
    if arr.ndim < 2 or arr.shape[0] != n or arr.shape[1] < lengths.max():
        raise ValueError(f"with output='each_step', {name} must have shape (n_samples, n_timesteps"
                         f"[, n_outputs]) = ({n}, {lengths.max()}, ...) or be a list of per-"
                         f"sequence target arrays; got shape {arr.shape}")
    return arr


def step_values(y, lengths):
    """Per-step targets (an (n, T[, k]) array or a ragged list of per-sequence arrays) at the
    valid steps of each sequence, in the order of the model's per-step outputs."""
    Y = step_targets(y, lengths)   # checks the shapes against lengths
    if isinstance(y, (list, tuple)):
        # a list of per-sequence arrays (step_targets refuses any other list): join the
        # sequences themselves rather than the padded copy
        return np.concatenate([np.asarray(v) for v in y])
    return Y[valid_mask(lengths, Y.shape[1])]


def ravel_column_vector(y):
    """(n, 1) -> (n,) with sklearn's DataConversionWarning, as its own estimators do."""
    if y.ndim == 2 and y.shape[1] == 1:
        return column_or_1d(y, warn=True)
    return y


def valid_mask(lengths, T):
    """(n, T) boolean mask of the timesteps inside each sequence."""
    return np.arange(T)[None, :] < lengths[:, None]


def batches(lengths, batch_size, rng, shuffle):
    """Index batches grouped by similar length so that padding costs little.

    Shuffled indices are cut into pools of 20 batches; each pool is sorted by length (with a
    random +-10% jitter on the sort key, so that a small training set does not get the same
    batches every epoch) and cut into batches; the batch order is then shuffled. Without
    ``shuffle`` the order is fixed.
    """
    n = len(lengths)
    order = rng.permutation(n) if shuffle else np.arange(n)
    # 20 batches per pool: chosen, not measured. Sorting within pools rather than the whole set
    # keeps each batch's sequences drawn from one random part of the set (a batch of the whole
    # sorted set would hold only the shortest or longest sequences) while still grouping
    # similar lengths
    pool = 20 * batch_size
    out = []
    for p0 in range(0, n, pool):
        idx = order[p0:p0 + pool]
        key = lengths[idx].astype(np.float64)
        if shuffle:  # +-10% jitter: similar lengths stay together, batch contents still vary
            key = key * rng.uniform(0.9, 1.1, len(idx))
        idx = idx[np.argsort(key, kind="stable")]
        out.extend(idx[b0:b0 + batch_size] for b0 in range(0, len(idx), batch_size))
    if shuffle:
        out = [out[i] for i in rng.permutation(len(out))]
    return out
