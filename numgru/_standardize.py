"""Standardisation of the sequence estimators' inputs and targets: per-feature mean and scale
as scikit-learn's ``StandardScaler`` computes them, fitted on the valid timesteps.

Shape legend: N rows (valid timesteps, or sequences), F features.
"""

import numpy as np


def standardizer(values, on):
    """Per-feature (mean, scale) of ``values`` (rows, F) as StandardScaler computes them (a
    constant feature gets scale 1), or (0, 1) when standardisation is off."""
    F = values.shape[-1]
    if not on or values.shape[0] == 0:
        return np.zeros(F), np.ones(F)
    v = values.astype(np.float64)
    big = np.abs(v).max(axis=0)
    big[~(big > 0)] = 1.0
    v = v / big                  # std of values near the float64 limit without overflow
    mean = v.mean(axis=0) * big
    scale = v.std(axis=0) * big
    scale[~(scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0))] = 1.0
    return mean, scale
