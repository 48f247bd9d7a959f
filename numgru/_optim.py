"""Stochastic optimizers that know nothing about the model.

Each optimizer updates a list of parameter arrays in place from a list of gradient arrays of
the same shapes (``update_params``), is told when an epoch ends (``iteration_ends``), and
decides whether a stall in the loss should stop training (``trigger_stopping``) — the same
protocol as scikit-learn's ``neural_network._stochastic_optimizers``.
"""

import numpy as np


class BaseOptimizer:
    """Shared learning-rate bookkeeping.

    Parameters
    ----------
    learning_rate_init : float
        The initial step size.
    """

    def __init__(self, learning_rate_init=1e-3):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)

    def update_params(self, params, grads):
        """Apply one update in place: ``params[i] += step_i``."""
        for p, step in zip(params, self._get_updates(grads)):
            p += step

    def iteration_ends(self, time_step):
        """Called at the end of every epoch with the number of samples seen so far."""

    def trigger_stopping(self, msg, verbose):
        """Return True to stop training after ``n_iter_no_change`` epochs without progress."""
        if verbose:
            print(msg + " Stopping.")
        return True


class SGDOptimizer(BaseOptimizer):
    """Stochastic gradient descent with (Nesterov) momentum and a learning-rate schedule.

    ``lr_schedule`` is "constant", "invscaling" (``lr = lr0 / t**power_t``) or "adaptive"
    (divide by 5 when the loss stalls, stop below 1e-6), as in ``MLPRegressor``.
    """

    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant", momentum=0.9,
                 nesterov=True, power_t=0.5):
        super().__init__(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False

    def _get_updates(self, grads):
        updates = []
        for i, (v, g) in enumerate(zip(self.velocities, grads)):
            v *= self.momentum
            v -= self.learning_rate * g
            if self.nesterov:
                updates.append(self.momentum * v - self.learning_rate * g)
            else:
                updates.append(v.copy())
        return updates


class AdamOptimizer(BaseOptimizer):
    """Adam (Kingma & Ba 2014) with bias-corrected moment estimates."""

    def __init__(self, params, learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def _get_updates(self, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        # the current base step size (a schedule may have changed it), bias-corrected
        lr = self.learning_rate * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        updates = []
        for m, v, g in zip(self.ms, self.vs, grads):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            updates.append(-lr * m / (np.sqrt(v) + self.epsilon))
        return updates


class RMSpropOptimizer(BaseOptimizer):
    """RMSprop: divide the step by a running root-mean-square of the gradients.

    ``rho`` is the decay of the squared-gradient average (the estimators pass ``beta_2``);
    ``momentum`` > 0 adds classical momentum on top, as PyTorch's ``RMSprop`` does.
    """

    def __init__(self, params, learning_rate_init=1e-3, rho=0.9, epsilon=1e-8, momentum=0.0):
        super().__init__(learning_rate_init)
        self.rho = rho
        self.epsilon = epsilon
        self.momentum = momentum
        self.sq = [np.zeros_like(p) for p in params]
        self.buf = [np.zeros_like(p) for p in params]

    def _get_updates(self, grads):
        updates = []
        for s, b, g in zip(self.sq, self.buf, grads):
            s *= self.rho
            s += (1 - self.rho) * (g * g)
            step = g / (np.sqrt(s) + self.epsilon)
            if self.momentum > 0:
                b *= self.momentum
                b += step
                step = b
            updates.append(-self.learning_rate * step)
        return updates


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (as ``torch.nn.utils.clip_grad_norm_`` does).
    """
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    if max_norm is not None and np.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total
