"""Input checks shared by the engine and the estimators: every error names the problem.

Host arrays are converted (C-contiguous, the model's dtype); arrays that already live on a
backend's device are checked there (:meth:`check_native`), never copied to the host.
"""

import numpy as np


def as_dtype(dtype):
    """``np.dtype`` of float32 or float64; TypeError for anything else."""
    if dtype is None:  # np.dtype(None) would silently be float64
        raise TypeError("dtype must be 'float32' or 'float64', got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def to_numpy(a):
    """A torch tensor (detached, on the host) or any array-like as a NumPy array."""
    if callable(getattr(a, "detach", None)):  # a torch tensor
        return a.detach().cpu().numpy()
    return np.asarray(a)


def check_float_array(a, name, dtype):
    """Convert an array-like to a C-contiguous array of ``dtype``; reject non-real-number data."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists, objects numpy cannot read
        raise ValueError(f"{name} could not be read as an array of numbers: {exc}") from exc
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype; expected real floating-point numbers")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; expected real floating-point numbers")
    if kind not in "fiu":
        raise TypeError(f"{name} has non-numeric dtype {arr.dtype}; expected real floating-point numbers")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if kind == "f" and out.dtype != arr.dtype and not np.isfinite(out).all() \
            and np.isfinite(arr).all():
        raise ValueError(f"{name} has values too large for {out.dtype}; all values must be "
                         "finite in the model's dtype")
    if arr.ndim == 0:  # ascontiguousarray makes a 0-d array 1-d: keep the shape for the checks
        out = out.reshape(())
    if not out.flags.writeable:  # a read-only array would make Numba compile another variant
        out = out.copy()
    return out


def check_finite(arr, name):
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(f"{name} contains {bad} values; all values must be finite")


def check_lengths(lengths, n, T, be=None):
    """Valid lengths of n right-padded sequences of T steps: int64 (n,), values in [1, T].

    Accepts integer array-likes, integral floats, torch tensors and (with the backend ``be``)
    device arrays; None means every sequence is T long. Always returns a fresh, writable,
    C-contiguous host array.
    """
    if lengths is None:
        return np.full(n, T, dtype=np.int64)
    if be is not None and be.is_native(lengths):
        lengths = be.to_host(be.as_native(lengths))
    try:
        arr = to_numpy(lengths)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"lengths could not be read as an array of integers: {exc}") from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"lengths must have one entry per sequence: expected shape ({n},), "
                         f"got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("lengths must be integers")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, got dtype {arr.dtype}")
    # the range is checked before the cast, which would wrap huge unsigned values
    if n and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths must lie in [1, {T}] (the number of timesteps), "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return np.array(arr, dtype=np.int64)


def check_native(be, a, name, shape, dtype):
    """Validate an array already on ``be``'s device (no host copy): dtype, shape, contiguity,
    finiteness. ``shape`` None skips the shape check."""
    a = be.as_native(a)
    if a.dtype != dtype:
        raise TypeError(f"{name} is a device array of dtype {a.dtype}, but this model computes "
                        f"in {dtype}; convert it on the device first")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {shape}, got {tuple(a.shape)}")
    if not be.is_contiguous(a):
        raise ValueError(f"{name} must be a C-contiguous device array")
    if be.has_nonfinite(a):
        raise ValueError(f"{name} contains NaN or inf values; all values must be finite")
    return a


def check_sequences(be, x, input_size, dtype, what="GRU"):
    """A (B, T, input_size) batch as a native array of ``dtype``; ``(x, on_device)``.
    ``what`` names the model in the error messages."""
    on_device = be.is_native(x)
    if on_device:
        a = be.as_native(x)
        shape = tuple(a.shape)
    else:
        a = check_float_array(x, "x", dtype)
        shape = a.shape
    if len(shape) != 3:
        raise ValueError(f"x must be 3-D (batch, time, input_size), got {len(shape)}-D with "
                         f"shape {shape}")
    B, T, I = shape
    if I != input_size:
        raise ValueError(f"x has {I} features per timestep but this {what} has "
                         f"input_size={input_size}")
    if B == 0 or T == 0:
        raise ValueError(f"x must have at least one sequence and one timestep, got shape {shape}")
    if on_device:
        return check_native(be, a, "x", None, dtype), True
    check_finite(a, "x")
    return be.upload(a), False


def check_state(be, h, name, shape, dtype):
    """An initial state or state gradient of ``shape`` as a native array."""
    if be.is_native(h):
        return check_native(be, h, name, shape, dtype)
    h = check_float_array(h, name, dtype)
    if h.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (num_layers*num_directions, batch, "
                         f"hidden_size), got {h.shape}")
    check_finite(h, name)
    return be.upload(h)
