"""Weights of the sequence estimators' loss: sample weights (one per sequence), class
weights, and per-step weights for ``output="each_step"`` scoring.

Shape legend: n sequences, N valid timesteps of all of them.
"""

import math
from numbers import Real

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from ._data import valid_mask


def check_class_weight(class_weight):
    """ValueError unless every weight of a ``class_weight`` dict is a finite number > 0
    ("balanced" and None pass): a negative weight would reverse a class's loss, a zero one
    drop the class from training, NaN or inf make the loss NaN."""
    if not isinstance(class_weight, dict):
        return
    for label, weight in class_weight.items():
        if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, Real) \
                or not (0 < weight < math.inf):
            raise ValueError(f"class_weight must map each class to a finite number > 0, got "
                             f"{weight!r} for class {label!r} (to leave a class out of "
                             "training, leave its samples out, or give them sample_weight 0)")


def check_sample_weight(sample_weight, n):
    """``sample_weight`` as float64 (n,) checked as ``fit`` checks it: real, finite, >= 0,
    summing to a finite number > 0 (a scalar weighs every sequence alike); None: ones."""
    if sample_weight is None:
        return np.ones(n)
    try:
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "biufO":   # strings, complex numbers, dates: not weights
            raise TypeError(f"dtype {w.dtype}")
        w = w.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must hold real numbers: {exc}") from exc
    if w.ndim == 0:           # a scalar weighs every sequence alike, and is checked alike
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    with np.errstate(over="ignore"):
        total = w.sum()
    if total <= 0:
        raise ValueError("sample_weight must not sum to zero")
    if not np.isfinite(total):
        raise ValueError("sample_weight sums to infinity; scale the weights down")
    return w


def step_weights(sample_weight, lengths):
    """Per-step weights for the valid steps of each sequence (in the order of the model's
    per-step outputs): each sequence's ``sample_weight`` repeated over its steps; None stays
    None."""
    if sample_weight is None:
        return None
    return np.repeat(check_sample_weight(sample_weight, len(lengths)), lengths)


def class_weighted(w, class_weight, labels, valid, lengths, each_step):
    """Sample weights ``w`` (n,) times ``class_weight`` (a checked dict or "balanced") of each
    label: (n,), or (n, T) per timestep with ``each_step`` (0 past each length); ``labels``
    and ``valid`` as :func:`numgru._targets.class_labels` returns them."""
    if each_step:
        cw = compute_sample_weight(class_weight, valid)
        wfull = np.zeros(labels.shape)
        wfull[valid_mask(lengths, labels.shape[1])] = cw
        return wfull * w[:, None]
    return w * compute_sample_weight(class_weight, labels)
