"""Small datasets shipped with numgru (a few KB each)."""

from importlib import resources as _resources

import numpy as _np

__all__ = ["load_airline_passengers", "load_sonnets", "make_adding_problem",
           "make_sequence_classification"]


def load_airline_passengers():
    """Monthly international airline passengers (thousands), January 1949 - December 1960.

    The Box-Jenkins "Series G" classic (public domain), 144 values.

    The file ships with the package (``numgru/datasets/airline_passengers.csv``); nothing is
    downloaded.

    Returns
    -------
    months : ndarray of str, shape (144,)
        "YYYY-MM" labels.
    passengers : ndarray of float64, shape (144,)
        Passengers per month, in thousands.

    See Also
    --------
    make_sequence_classification : A synthetic sequence-classification task.

    Examples
    --------
    >>> from numgru.datasets import load_airline_passengers
    >>> months, y = load_airline_passengers()
    >>> str(months[0]), float(y[0]), y.shape
    ('1949-01', 112.0, (144,))
    >>> print(months[-1], y[-1])
    1960-12 432.0
    """
    text = _resources.files(__package__).joinpath("airline_passengers.csv").read_text()
    rows = [line.split(",") for line in text.splitlines()
            if line and not line.startswith("#") and not line.startswith("month")]
    months = _np.array([r[0] for r in rows])
    return months, _np.array([float(r[1]) for r in rows])


def load_sonnets():
    """Twenty of Shakespeare's sonnets (1609, public domain), one string per sonnet.

    The text language model of ``numgru demo`` learns from: about 12,000 characters in
    modern spelling (sonnets 1, 2, 12, 18, 29, 30, 55, 60, 64, 65, 71, 73, 94, 104, 106, 116,
    130, 138, 146 and 147). The file ships with the package (``numgru/datasets/sonnets.txt``);
    nothing is downloaded.

    Returns
    -------
    sonnets : list of str
        Each sonnet's fourteen lines, newline-terminated, without its number.

    See Also
    --------
    numgru.GRULanguageModel : A language model to train on them.

    Examples
    --------
    >>> from numgru.datasets import load_sonnets
    >>> sonnets = load_sonnets()
    >>> len(sonnets), sonnets[3].splitlines()[0]
    (20, "Shall I compare thee to a summer's day?")
    >>> all(len(s.splitlines()) == 14 for s in sonnets)
    True
    """
    text = _resources.files(__package__).joinpath("sonnets.txt").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.strip() and not b.lstrip().startswith("#")]
    sonnets = []
    for block in blocks:
        lines = block.strip("\n").splitlines()
        if len(lines) == 1 and lines[0].strip().isalpha() and lines[0].isupper():
            continue                     # a sonnet's Roman number
        sonnets.append("\n".join(lines) + "\n")
    return sonnets


def make_sequence_classification(n_samples=400, min_length=20, max_length=80, n_features=3,
                                 random_state=None):
    """Variable-length multivariate sequences in three classes (a synthetic task).

    Class 0: noisy slow sine in feature 0; class 1: noisy fast sine; class 2: a noisy random
    walk. Lengths are uniform in [min_length, max_length]; other features are noise.

    Parameters
    ----------
    n_samples : int, default=400
        Number of sequences.
    min_length : int, default=20
        Shortest sequence length.
    max_length : int, default=80
        Longest sequence length.
    n_features : int, default=3
        Features per timestep (feature 0 carries the class, the others are noise).
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the generator; the same seed gives the same data.

    Returns
    -------
    X : list of ndarray of shape (length_i, n_features)
        The sequences (float64), a ragged list as the estimators accept it.
    y : ndarray of int, shape (n_samples,)
        Class labels 0, 1, 2.

    Raises
    ------
    ValueError
        If ``min_length > max_length`` (from ``numpy.random.Generator.integers``).

    See Also
    --------
    load_airline_passengers : A real univariate time series.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru.datasets import make_sequence_classification
    >>> X, y = make_sequence_classification(n_samples=5, min_length=10, max_length=15,
    ...                                     random_state=0)
    >>> [x.shape for x in X]
    [(13, 3), (12, 3), (12, 3), (10, 3), (13, 3)]
    >>> y
    array([2, 2, 1, 2, 1])
    """
    rng = _np.random.default_rng(random_state)
    X, y = [], []
    for _ in range(n_samples):
        c = int(rng.integers(3))
        T = int(rng.integers(min_length, max_length + 1))
        t = _np.arange(T)
        x = 0.5 * rng.standard_normal((T, n_features))
        phase = rng.uniform(0, 2 * _np.pi)
        if c == 0:
            x[:, 0] += _np.sin(2 * _np.pi * t / rng.uniform(18, 26) + phase)
        elif c == 1:
            x[:, 0] += _np.sin(2 * _np.pi * t / rng.uniform(5, 8) + phase)
        else:
            x[:, 0] += 0.3 * _np.cumsum(rng.standard_normal(T))
        X.append(x)
        y.append(c)
    return X, _np.array(y)


def make_adding_problem(n_samples=1000, n_timesteps=100, random_state=None):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): sum two marked values.

    Each sequence has two features per timestep: a value uniform in [0, 1), and a marker that
    is 1 at exactly two steps, one drawn uniformly in the first half of the sequence and one
    in the second half, and 0 elsewhere. The target is the sum of the two marked values. A
    model must carry the first marked value over about ``n_timesteps / 2`` steps; predicting
    the constant 1 gives a mean squared error of about 1/6.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=100
        Length of every sequence (at least 2).
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the generator; the same seed gives the same data.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_timesteps, 2)
        ``X[:, :, 0]`` the values, ``X[:, :, 1]`` the markers.
    y : ndarray of float64, shape (n_samples,)
        The sum of the two marked values of each sequence.

    Raises
    ------
    ValueError
        If ``n_samples < 1`` or ``n_timesteps < 2``.

    See Also
    --------
    make_sequence_classification : A synthetic sequence-classification task.

    Examples
    --------
    >>> import numpy as np
    >>> from numgru.datasets import make_adding_problem
    >>> X, y = make_adding_problem(n_samples=4, n_timesteps=10, random_state=0)
    >>> X.shape, y.shape
    ((4, 10, 2), (4,))
    >>> X[:, :, 1].sum(axis=1)
    array([2., 2., 2., 2.])
    >>> bool(np.allclose(y, (X[:, :, 0] * X[:, :, 1]).sum(axis=1)))
    True
    """
    for name, value, least in (("n_samples", n_samples, 1), ("n_timesteps", n_timesteps, 2)):
        if isinstance(value, (bool, _np.bool_)) or not isinstance(value, (int, _np.integer)) \
                or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    rng = _np.random.default_rng(random_state)
    n, T = int(n_samples), int(n_timesteps)
    half = T // 2
    X = _np.zeros((n, T, 2))
    X[:, :, 0] = rng.random((n, T))
    rows = _np.arange(n)
    X[rows, rng.integers(0, half, n), 1] = 1.0
    X[rows, rng.integers(half, T, n), 1] = 1.0
    y = (X[:, :, 0] * X[:, :, 1]).sum(axis=1)
    return X, y
