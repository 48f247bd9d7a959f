"""The sequence estimators' targets as their loss sees them: real values (the regressor) and
one-hot class labels (the classifier), one row per sequence or, with
``output="each_step"``, per timestep.

Shape legend: n sequences, T timesteps (the longest), K outputs (targets or classes).
"""

import numpy as np
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import type_of_target

from ._data import ravel_column_vector, step_targets, valid_mask


def valid_rows(Y, lengths, each_step):
    """The rows of ``Y`` the loss sees: its valid timesteps (``each_step``), or ``Y``."""
    return Y[valid_mask(lengths, Y.shape[1])] if each_step else Y


def regression_targets(y, lengths, each_step):
    """``(Y, single)``: ``y`` as float64 (n, K), or (n, T, K) per timestep with ``each_step``,
    checked (real, finite at the valid steps, one row per sequence); ``single`` is True when
    ``y`` had one output and no output axis (the predictions then have none either)."""
    if each_step:
        Y = step_targets(y, lengths)
        if Y.dtype.kind == "c":
            raise ValueError("Complex data not supported in y; targets must be real numbers")
        if Y.ndim > 3 or (Y.ndim == 3 and Y.shape[2] == 0):
            raise ValueError(f"with output='each_step', y must have shape (n_samples, "
                             f"n_timesteps[, n_outputs]) with n_outputs >= 1; got shape "
                             f"{Y.shape}")
        try:
            Y = Y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must hold real numbers: {exc}") from exc
        if Y.ndim == 2:
            Y = Y[:, :, None]
            single = True
        else:
            single = False
        if not np.isfinite(Y[valid_mask(lengths, Y.shape[1])]).all():
            raise ValueError("Input y contains NaN or infinity.")
    else:
        y = ravel_column_vector(np.asarray(y))
        Y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite=True,
                        input_name="y")
        if Y.shape[0] != len(lengths):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(lengths)} "
                             f"and {Y.shape[0]}")
        single = Y.ndim == 1
        if single:
            Y = Y[:, None]
    return Y, single


def scaled_targets(Y, mean, scale, dtype, lengths, each_step):
    """``(Y - mean) / scale`` (float64 ``Y`` of :func:`regression_targets`; ``mean`` None: ``Y``
    as it is) in the compute ``dtype``; ValueError when a valid target is not finite there
    (finite in float64, too large for float32)."""
    if mean is not None:
        Y = (Y - mean) / scale
    with np.errstate(over="ignore"):
        Yc = Y.astype(dtype)
    if not np.isfinite(valid_rows(Yc, lengths, each_step)).all():
        raise ValueError(f"Input y has values too large for {dtype}; they must be "
                         "finite in the model's dtype.")
    return Yc


def class_labels(y, lengths, each_step):
    """``(labels, valid)``: the labels of ``y`` as given, (n,) or (n, T) with ``each_step``,
    and those of the valid rows; ValueError unless they are binary or multiclass labels, one
    per sequence (or per timestep)."""
    if each_step:
        labels = step_targets(y, lengths)
        if labels.ndim != 2:
            raise ValueError(f"with output='each_step', y must hold one label per timestep, "
                             f"shape (n_samples, n_timesteps); got {labels.shape}")
        valid = labels[valid_mask(lengths, labels.shape[1])]
    else:
        y = np.asarray(y) if not hasattr(y, "iloc") else y.to_numpy()
        labels = column_or_1d(ravel_column_vector(y))
        if labels.shape[0] != len(lengths):
            raise ValueError(f"X and y have inconsistent numbers of samples: {len(lengths)} "
                             f"and {labels.shape[0]}")
        valid = labels
    kind = type_of_target(valid, input_name="y")
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"Unknown label type: {kind}. GRUClassifier supports binary and "
                         "multiclass targets.")
    return labels, valid


def one_hot(labels, valid, encoder, classes, lengths, each_step, dtype):
    """One-hot targets (n, K) or (n, T, K) in ``dtype`` of :func:`class_labels`' ``labels``
    (zero rows past each length), by ``encoder`` (a fitted ``LabelEncoder`` of ``classes``);
    ValueError for a label not among ``classes``."""
    unseen = np.setdiff1d(np.unique(valid), classes)
    if unseen.size:
        raise ValueError(f"y contains labels not seen in the classes of this model: "
                         f"{unseen.tolist()}; expected a subset of {classes.tolist()}")
    K = max(len(classes), 1)
    codes = np.zeros(labels.shape, dtype=np.int64)
    if each_step:
        m = valid_mask(lengths, labels.shape[1])
        codes[m] = encoder.transform(valid)
    else:
        codes = encoder.transform(labels)
    Y = np.zeros(codes.shape + (K,), dtype=dtype)
    np.put_along_axis(Y, codes[..., None], 1, axis=-1)
    return Y
