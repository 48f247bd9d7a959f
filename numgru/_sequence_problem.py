"""The sequence estimators' training problem: what :func:`numgru._training.train` runs for
``GRURegressor`` / ``GRUClassifier``.

Shape legend: n sequences, T timesteps (the longest), F features per timestep, b sequences of
a minibatch, T_b its longest length.
"""

import numpy as np

from . import _data, _training


class SequenceProblem(_training.Problem):
    """Minibatches of sequences grouped by length (:func:`numgru._data.batches`), one forward,
    loss and backward per step.

    Parameters
    ----------
    X : ndarray of shape (n, T, F)
        The training sequences, padded; ``lengths`` (n,) their valid lengths.
    Y, sample_weight : ndarray
        Their rows of the encoded targets and of the weights.
    val : tuple or None
        ``(X, lengths, Y, sample_weight)`` of the held-out sequences (early stopping), or None.
    params, is_weight : list
        The parameter arrays the optimiser updates in place, and which of them are weights
        (L2-penalised).
    batch_size : int
        Sequences per minibatch.
    rng : numpy.random.Generator
        Draws the batches' order (and their jitter) every epoch.
    shuffle : bool
        Shuffle the sequences every epoch.
    loss_and_grads : callable
        ``loss_and_grads(X_b (b, T_b, F), lengths_b, Y_b, w_b) -> (loss, grads, total weight)``.
    score : callable
        ``score(X, lengths, Y, w) -> float``, the validation score of held-out sequences.
    """

    def __init__(self, X, lengths, Y, sample_weight, val, *, params, is_weight, batch_size, rng,
                 shuffle, loss_and_grads, score):
        self.X, self.lengths, self.Y, self.w = X, lengths, Y, sample_weight
        self.params = params
        self.is_weight = is_weight
        self.n_samples = X.shape[0]
        self.batch_size = batch_size
        self.rng = rng
        self.shuffle = shuffle
        self.loss_and_grads = loss_and_grads
        self.score = score
        self.val = val
        self.has_validation = val is not None

    def epoch(self):
        return _data.batches(self.lengths, self.batch_size, self.rng, self.shuffle)

    def step(self, idx):
        Lb = self.lengths[idx]
        Xb = np.ascontiguousarray(self.X[idx, :int(Lb.max())])
        loss, grads, wsum = self.loss_and_grads(Xb, Lb, self.Y[idx], self.w[idx])
        return loss, grads, len(idx), wsum

    def validation_score(self):
        return self.score(*self.val)
