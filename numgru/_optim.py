"""Stochastic optimizers, learning-rate schedules, L2 and gradient clipping, model-agnostic.

Each optimizer updates a list of parameter arrays in place from a list of gradient arrays of
the same shapes (``update_params``), is told when an epoch ends (``iteration_ends``) and decides
whether a stall in the loss should stop training (``trigger_stopping``): scikit-learn's
``neural_network._stochastic_optimizers`` protocol. The arithmetic of every step is
``torch.optim``'s (``Adam``, ``RMSprop`` with ``centered=False``, ``SGD`` with dampening 0), so
a numgru fit and a PyTorch loop fed the same gradients take the same steps; the tests pin this
to float64 rounding against fixtures made by ``torch.optim`` (``tests/data/optim_fixtures.npz``
and the script beside it).

``learning_rate`` is always the current base step size (``lr`` of a PyTorch param group);
schedules (:class:`InvScaling`, :class:`ReduceLROnPlateau`, :class:`Adaptive`) change it
between steps. ``state_dict`` / ``load_state_dict`` snapshot and restore an optimizer's state as
a flat dict of scalars and arrays (``np.savez(path, **opt.state_dict())`` works).
"""

import math
import numbers

import numpy as np

from . import _optim_kernels
from ._math import sub_scaled


# ------------------------------------------------------------------------------- optimizers
class BaseOptimizer:
    """Learning-rate bookkeeping and state snapshots shared by the optimizers.

    Parameters
    ----------
    learning_rate_init : float
        The initial step size; ``learning_rate`` starts there and schedules change it.
    """

    #: names of the per-parameter state buffers, in ``state_dict`` order
    _buffers = ()

    def __init__(self, learning_rate_init=1e-3):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)

    def update_params(self, params, grads):
        """Take one step in place: ``params[i]`` moves by the update computed from ``grads[i]``.

        Parameters
        ----------
        params : list of ndarray
            The parameters, updated in place.
        grads : list of ndarray
            Their gradients, same shapes; left unchanged.
        """
        if len(params) != len(grads):
            raise ValueError(f"update_params got {len(params)} parameter arrays and "
                             f"{len(grads)} gradient arrays; they must pair up.")
        self._step(params, grads)

    def iteration_ends(self, time_step):
        """Called at the end of every epoch with the number of samples seen so far."""

    def trigger_stopping(self, msg, verbose):
        """Return True to stop training after ``n_iter_no_change`` epochs without progress."""
        if verbose:
            print(msg + " Stopping.")
        return True

    def state_dict(self):
        """A copy of the optimizer's state: a flat dict of scalars and arrays.

        Returns
        -------
        dict
            ``"learning_rate"``, the step counter where the method has one, and
            ``"<buffer>.<i>"`` for each state buffer (e.g. ``"exp_avg.0"``), copied.
        """
        state = {"learning_rate": self.learning_rate, **self._scalars()}
        for name in self._buffers:
            for i, buf in enumerate(getattr(self, name)):
                state[f"{name}.{i}"] = buf.copy()
        return state

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` snapshot (arrays are copied into the existing buffers).

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned for an optimizer of the same kind and parameters.
        """
        expected = set(self.state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state does not fit this "
                             f"optimizer (missing keys {missing}, unexpected keys {extra}).")
        for name in self._buffers:
            for i, buf in enumerate(getattr(self, name)):
                value = np.asarray(state[f"{name}.{i}"])
                if value.shape != buf.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: '{name}.{i}' has "
                                     f"shape {value.shape}, the parameter has {buf.shape}.")
                buf[...] = value
        self.learning_rate = float(state["learning_rate"])
        for key in self._scalars():
            setattr(self, key, int(state[key]))

    def _scalars(self):
        return {}

    def _fusable(self, ps):
        """Whether :meth:`_fused` can step the parameters' flat views ``ps``: every state
        buffer has a flat view (kept by :meth:`_views` for ``_fused``)."""
        return type(self)._fused is not BaseOptimizer._fused and all(
            self._views(name, getattr(self, name), ps) is not None for name in self._buffers)

    def _fused(self, ps, gs, big, clip, coef):
        """The step through :mod:`numgru._optim_kernels` on flat views (``ps``, ``gs``) with
        the gradients scaled by ``coef`` when ``clip``; returns whether every updated parameter
        is finite. Called only when :meth:`_fusable`, which left the buffers' views in
        ``_view_cache``."""
        raise NotImplementedError

    def _views(self, name, arrays, like):
        """Flat views of ``arrays`` (a buffer list, or the parameters), kept between steps:
        a view is reused while it still looks into the same array (``view.base``)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        views = cache.get(name)
        if (views is None or len(views) != len(arrays)
                or not all(v.base is a for v, a in zip(views, arrays))):
            views = cache[name] = _flat_views(arrays, like)
        return views

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_view_cache", None)     # views; a pickle would store them as copies
        return state


class SGDOptimizer(BaseOptimizer):
    """Stochastic gradient descent with (Nesterov) momentum and a learning-rate schedule.

    The step is ``torch.optim.SGD``'s with dampening 0: ``buf = momentum * buf + g`` (``buf = g``
    at the first step), then ``p -= lr * (g + momentum * buf)`` with Nesterov momentum,
    ``p -= lr * buf`` without, ``p -= lr * g`` when ``momentum`` is 0.

    Parameters
    ----------
    params : list of ndarray
        The parameters (for the buffers' shapes and dtypes).
    learning_rate_init : float, default=0.1
        The initial step size.
    lr_schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        As in scikit-learn's ``MLPRegressor``: "invscaling" sets
        ``lr = learning_rate_init / (t + 1)**power_t`` at the end of every epoch, ``t`` the
        samples seen so far (:class:`InvScaling`); "adaptive" divides the rate by 5 each time the
        loss stalls and stops training once it is at or below 1e-6 (:class:`Adaptive`).
    momentum : float, default=0.9
        Momentum factor.
    nesterov : bool, default=True
        Use Nesterov momentum (ignored when ``momentum`` is 0).
    power_t : float, default=0.5
        The exponent of "invscaling".
    """

    _buffers = ("momentum_buffer",)

    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant", momentum=0.9,
                 nesterov=True, power_t=0.5):
        super().__init__(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.momentum_buffer = [np.zeros_like(p) for p in params]
        if lr_schedule == "invscaling":
            self.schedule = InvScaling(power_t).attach(self)
        elif lr_schedule == "adaptive":
            self.schedule = Adaptive().attach(self)
        elif lr_schedule == "constant":
            self.schedule = None
        else:
            raise ValueError(f"lr_schedule must be 'constant', 'invscaling' or 'adaptive', "
                             f"got {lr_schedule!r}.")

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.schedule.step(time_step)

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if not self.schedule.step():
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False

    def _step(self, params, grads):
        lr, mu = self.learning_rate, self.momentum
        for p, g, buf in zip(params, grads, self.momentum_buffer):
            if mu == 0:
                sub_scaled(p, g, lr)               # p -= lr * g, without the temporary
                continue
            buf *= mu
            buf += g
            if self.nesterov:
                d = mu * buf
                d += g
            else:
                d = buf.copy()
            d *= lr
            p -= d

    def _fused(self, ps, gs, big, clip, coef):
        bufs = self._view_cache["momentum_buffer"]
        t = big.dtype.type
        lr, mu = t(self.learning_rate), t(self.momentum)
        ok = True
        for p, g, buf in zip(ps, gs, bufs):
            if self.momentum == 0:
                ok &= _optim_kernels.sgd(p, g, big, clip, coef, lr)
            else:
                ok &= _optim_kernels.sgd_momentum(p, g, buf, big, clip, coef, lr, mu,
                                                  self.nesterov)
        return ok


class AdamOptimizer(BaseOptimizer):
    """Adam (Kingma & Ba 2014), step for step ``torch.optim.Adam`` (``amsgrad=False``).

    ``m = beta_1 m + (1 - beta_1) g``, ``v = beta_2 v + (1 - beta_2) g**2``, then
    ``p -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)``: both moments
    bias-corrected, ``epsilon`` added to the corrected root (scikit-learn instead folds the
    correction into the step size, which puts ``epsilon`` on the uncorrected root).

    Parameters
    ----------
    params : list of ndarray
        The parameters (for the buffers' shapes and dtypes).
    learning_rate_init : float, default=1e-3
        The initial step size; ``learning_rate`` stays the base rate ``lr`` of the formula.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the first and second moment estimates.
    epsilon : float, default=1e-8
        Added to the bias-corrected root of the second moment.
    """

    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.exp_avg = [np.zeros_like(p) for p in params]
        self.exp_avg_sq = [np.zeros_like(p) for p in params]

    def _scalars(self):
        return {"t": self.t}

    def _step(self, params, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        step_size = self.learning_rate / (1 - b1 ** self.t)
        bias_correction2_sqrt = math.sqrt(1 - b2 ** self.t)
        for p, g, m, v in zip(params, grads, self.exp_avg, self.exp_avg_sq):
            m += (1 - b1) * (g - m)            # torch's lerp_(g, 1 - beta_1)
            v *= b2
            v += (1 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= bias_correction2_sqrt
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom

    def _fused(self, ps, gs, big, clip, coef):
        ms = self._view_cache["exp_avg"]
        vs = self._view_cache["exp_avg_sq"]
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        t = big.dtype.type
        c1, b2_, c2 = t(1 - b1), t(b2), t(1 - b2)
        bc2 = t(math.sqrt(1 - b2 ** self.t))
        eps, step = t(self.epsilon), t(self.learning_rate / (1 - b1 ** self.t))
        ok = True
        for p, g, m, v in zip(ps, gs, ms, vs):
            ok &= _optim_kernels.adam(p, g, m, v, big, clip, coef, c1, b2_, c2, bc2, eps, step)
        return ok


class RMSpropOptimizer(BaseOptimizer):
    """RMSprop, step for step ``torch.optim.RMSprop`` with ``centered=False``.

    ``s = rho s + (1 - rho) g**2``; ``p -= lr * g / (sqrt(s) + epsilon)``, or with momentum
    ``buf = momentum * buf + g / (sqrt(s) + epsilon)``, ``p -= lr * buf``.

    Parameters
    ----------
    params : list of ndarray
        The parameters (for the buffers' shapes and dtypes).
    learning_rate_init : float, default=1e-3
        The initial step size.
    rho : float, default=0.9
        Decay of the squared-gradient average (PyTorch's ``alpha``; the estimators pass
        ``beta_2``).
    epsilon : float, default=1e-8
        Added to the root of the average, outside the square root as in PyTorch.
    momentum : float, default=0.0
        Momentum factor.
    """

    _buffers = ("square_avg", "momentum_buffer")

    def __init__(self, params, learning_rate_init=1e-3, rho=0.9, epsilon=1e-8, momentum=0.0):
        super().__init__(learning_rate_init)
        self.rho = rho
        self.epsilon = epsilon
        self.momentum = momentum
        self.square_avg = [np.zeros_like(p) for p in params]
        self.momentum_buffer = [np.zeros_like(p) for p in params]

    def _step(self, params, grads):
        lr, rho = self.learning_rate, self.rho
        for p, g, s, buf in zip(params, grads, self.square_avg, self.momentum_buffer):
            s *= rho
            s += (1 - rho) * (g * g)
            avg = np.sqrt(s)
            avg += self.epsilon
            np.divide(g, avg, out=avg)
            if self.momentum > 0:
                buf *= self.momentum
                buf += avg
                avg = buf * lr
            else:
                avg *= lr
            p -= avg

    def _fused(self, ps, gs, big, clip, coef):
        ss = self._view_cache["square_avg"]
        bufs = self._view_cache["momentum_buffer"]
        t = big.dtype.type
        rho, c, eps = t(self.rho), t(1 - self.rho), t(self.epsilon)
        lr, mu = t(self.learning_rate), t(self.momentum)
        ok = True
        for p, g, s, buf in zip(ps, gs, ss, bufs):
            ok &= _optim_kernels.rmsprop(p, g, s, buf, big, clip, coef, rho, c, eps, lr, mu)
        return ok


# -------------------------------------------------------------------------------- schedules
class _Schedule:
    """A learning-rate rule bound to one optimizer with :meth:`attach`."""

    optimizer = None

    def attach(self, optimizer):
        """Bind the schedule to ``optimizer`` (whose ``learning_rate`` it sets); returns self."""
        self.optimizer = optimizer
        self.base_lr = float(optimizer.learning_rate)
        return self

    def _bound(self):
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to an optimizer: call "
                               ".attach(optimizer) first.")
        return self.optimizer


class InvScaling(_Schedule):
    """scikit-learn's "invscaling" rule: ``lr = base_lr / (t + 1)**power_t``.

    ``base_lr`` is the optimizer's rate when attached, ``t`` what :meth:`step` is given (the
    samples seen so far, at the end of each epoch). It is
    ``torch.optim.lr_scheduler.LambdaLR`` with ``lambda k: 1 / (t_k + 1)**power_t``.

    Parameters
    ----------
    power_t : float, default=0.5
        The exponent.
    """

    def __init__(self, power_t=0.5):
        if not (isinstance(power_t, numbers.Real) and math.isfinite(power_t)):
            raise ValueError(f"power_t must be a finite real number, got {power_t!r}.")
        self.power_t = power_t

    def step(self, time_step):
        """Set the optimizer's rate for ``time_step`` samples seen; returns the new rate."""
        opt = self._bound()
        opt.learning_rate = self.base_lr / (time_step + 1) ** self.power_t
        return opt.learning_rate


class Adaptive(_Schedule):
    """scikit-learn's "adaptive" rule: divide the rate by 5 each time the loss stalls.

    The training loop decides what a stall is (``n_iter_no_change`` epochs without an
    improvement of ``tol``) and calls :meth:`step`; once the rate is at or below ``min_lr`` the
    rule gives up and the loop stops, as ``SGDOptimizer.trigger_stopping`` does in scikit-learn.

    Parameters
    ----------
    divisor : float, default=5.0
        The rate is divided by this on each stall.
    min_lr : float, default=1e-6
        At or below this rate a stall means stop.
    """

    def __init__(self, divisor=5.0, min_lr=1e-6):
        if not divisor > 1:
            raise ValueError(f"divisor must be > 1, got {divisor!r}.")
        self.divisor = divisor
        self.min_lr = min_lr

    def step(self):
        """Report a stall: returns True if the rate was divided, False if training should stop."""
        opt = self._bound()
        if opt.learning_rate <= self.min_lr:
            return False
        opt.learning_rate /= self.divisor
        return True


class ReduceLROnPlateau(_Schedule):
    """Lower the rate when a metric stops improving: ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Same arguments and semantics as PyTorch's: a metric is better than the best so far when it is
    below ``best * (1 - threshold)`` ("min", "rel"), below ``best - threshold`` ("min", "abs"),
    above ``best * (1 + threshold)`` ("max", "rel") or above ``best + threshold`` ("max",
    "abs"); a NaN is never better. After more than ``patience`` epochs that are not better the rate
    becomes ``max(lr * factor, min_lr)`` (kept if that lowers it by no more than ``eps``), then
    ``cooldown`` epochs are not counted.

    Parameters
    ----------
    mode : {"min", "max"}, default="min"
    factor : float, default=0.1
        In [0, 1).
    patience : int, default=10
    threshold : float, default=1e-4
    threshold_mode : {"rel", "abs"}, default="rel"
    cooldown : int, default=0
    min_lr : float, default=0.0
    eps : float, default=1e-8
        Smallest change of the rate that is applied.
    """

    def __init__(self, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}.")
        if not 0 <= factor < 1:
            raise ValueError(f"factor must be in [0, 1), got {factor!r}.")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if not (isinstance(value, numbers.Integral) and value >= 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
        if not min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr!r}.")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def is_better(self, a, best):
        """Whether metric ``a`` improves on ``best`` by the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metric):
        """Record an epoch's metric; returns True if the optimizer's rate was lowered."""
        opt = self._bound()
        current = float(metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        reduced = False
        if self.num_bad_epochs > self.patience:
            old = float(opt.learning_rate)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                opt.learning_rate = new
                reduced = True
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return reduced

    def state_dict(self):
        """The counters and best metric, as a dict of scalars."""
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.best = float(state["best"])
        for key in ("num_bad_epochs", "cooldown_counter", "last_epoch"):
            setattr(self, key, int(state[key]))


# ------------------------------------------------------------------------ L2 and clipping
def l2_penalty(params, grads, is_weight, alpha, n):
    """Add the L2 term of scikit-learn's MLP to the gradients; return its value.

    The term is ``0.5 * alpha * sum(||w||**2 for the weight arrays) / n``; its gradient
    ``alpha * w / n`` is added in place to the gradients of the weight arrays (biases are not
    penalised).

    Parameters
    ----------
    params, grads : list of ndarray
        The parameters and their gradients (updated in place).
    is_weight : list of bool
        Which arrays are penalised.
    alpha : float
        The L2 strength (>= 0); 0 adds nothing.
    n : float
        The batch's summed sample weight (> 0).

    Returns
    -------
    float
        The penalty's value.
    """
    if not (len(params) == len(grads) == len(is_weight)):
        raise ValueError(f"l2_penalty got {len(params)} parameters, {len(grads)} gradients and "
                         f"{len(is_weight)} is_weight flags; they must pair up.")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}.")
    if alpha == 0:
        return 0.0
    if not (n > 0 and math.isfinite(n)):
        raise ValueError(f"n, the batch's summed sample weight, must be finite and > 0, got {n!r}.")
    scale = alpha / n
    sq = 0.0
    for p, g, flag in zip(params, grads, is_weight):
        if flag:
            g += scale * p
            sq += float(np.vdot(p, p))
    return 0.5 * alpha * sq / n


def clip_grad_norm(grads, max_norm, error_if_nonfinite=False):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: every gradient is multiplied by
    ``min(max_norm / (norm + 1e-6), 1)`` (so a norm within about 1e-6 of ``max_norm`` is scaled
    too) and the norm before clipping is returned. The norm is accumulated without rescaling, as
    in PyTorch, so finite gradients whose squares overflow have an infinite norm.

    A non-finite norm (a NaN or infinite gradient, or an overflow) is returned as it is and the
    gradients are left unchanged; PyTorch instead multiplies them by 0 (infinite norm: finite
    entries become 0, infinite ones NaN) or by NaN. Check the returned norm, or pass
    ``error_if_nonfinite=True`` to raise.

    Parameters
    ----------
    grads : list of ndarray
        The gradients, scaled in place.
    max_norm : float or None
        The largest norm allowed (> 0, may be ``inf``); None only computes the norm.
    error_if_nonfinite : bool, default=False
        Raise ``FloatingPointError`` when the norm is NaN or infinite.

    Returns
    -------
    float
        The global L2 norm of ``grads`` before clipping.
    """
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be > 0 (or None), got {max_norm!r}.")
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise FloatingPointError(f"The gradients' global norm is {total}, so they cannot be "
                                     "clipped: a gradient is NaN or infinite, or too large.")
        return total
    if max_norm is not None:
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for g in grads:
                g *= coef
    return total


# ------------------------------------------------------------------- the loop's fused step
def _flat_views(arrays, like):
    """Flat views of ``arrays`` (C-contiguous, writeable, each of its partner's dtype and size
    in ``like``), or None where one has none (reshaping it would copy)."""
    out = []
    for a, b in zip(arrays, like):
        if (not isinstance(a, np.ndarray) or not a.flags.c_contiguous or not a.flags.writeable
                or a.dtype != b.dtype or a.size != b.size):
            return None
        out.append(a.reshape(-1))
    return out


_BIG = {np.dtype(np.float32): np.finfo(np.float32).max,
        np.dtype(np.float64): np.finfo(np.float64).max}


def fused_step(optimizer, params, grads, is_weight, alpha, n, max_norm):
    """L2, clipping and the update of one minibatch in two passes per array
    (:mod:`numgru._optim_kernels`), the same step as :func:`l2_penalty`,
    :func:`clip_grad_norm` (``max_norm`` None: no clipping) and ``optimizer.update_params``
    one after the other, with the loop's finiteness checks.

    Returns the L2 term's value; raises ``FloatingPointError`` when a gradient (or the
    gradients' norm) or an updated parameter is not finite. Returns None, having changed
    nothing, when an array (a parameter, a gradient or an optimizer buffer) is not a
    C-contiguous float32/float64 array of its parameter's dtype (the caller then takes the
    NumPy path). The sums (the L2 value, the norm) are accumulated in
    float64, where the NumPy path sums each array in its own dtype: the clipping factor may
    differ from it in the last bits.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}.")
    if alpha > 0 and not (n > 0 and math.isfinite(n)):
        raise ValueError(f"n, the batch's summed sample weight, must be finite and > 0, got {n!r}.")
    if not (len(params) == len(grads) == len(is_weight)):
        raise ValueError(f"fused_step got {len(params)} parameters, {len(grads)} gradients and "
                         f"{len(is_weight)} is_weight flags; they must pair up.")
    if not params:
        return None
    dtype = params[0].dtype
    if dtype not in (np.float32, np.float64) or any(p.dtype != dtype or p.size == 0
                                                    for p in params):
        return None
    ps, gs = optimizer._views("params", params, params), _flat_views(grads, params)
    if ps is None or gs is None or not optimizer._fusable(ps):
        return None
    t = dtype.type
    scale = t(alpha / n) if alpha > 0 else t(0)
    sp = sg = 0.0
    for p, g, w in zip(ps, gs, is_weight):
        a, b = _optim_kernels.grad_stats(p, g, bool(w) and alpha > 0, scale)
        sp += a
        sg += b
    if not math.isfinite(sg):
        raise FloatingPointError
    coef, clip = t(1), False
    if max_norm is not None:
        c = max_norm / (math.sqrt(sg) + 1e-6)
        if c < 1.0:
            coef, clip = t(c), True
    if not optimizer._fused(ps, gs, _BIG[dtype], clip, coef):
        raise FloatingPointError
    return 0.5 * alpha * sp / n if alpha > 0 else 0.0
