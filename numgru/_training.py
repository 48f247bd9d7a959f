"""The training loop every numgru estimator runs: epochs of minibatch steps, one stopping rule.

:class:`GRURegressor`, :class:`GRUClassifier` and :class:`GRULanguageModel` differ in what a
minibatch is (sequences grouped by length; windows of parallel text streams with the state
carried) and in how a step computes its loss and gradients. Everything else is here, once:

- the optimizer factory (:func:`make_optimizer`) and the learning-rate schedule
  ("constant", "invscaling", "adaptive" = reduce on plateau), for every solver;
- per step: finiteness checks, the L2 penalty (:func:`numgru._optim.l2_penalty`), gradient
  clipping, the update, divergence detection;
- per epoch: the loss curve, the validation score, the stopping rule (:class:`Plateau`), a
  snapshot of the best weights and a progress line;
- on the way out: the best weights restored (early stopping, divergence, a non-finite loss, an
  interrupt), a ``ConvergenceWarning`` when ``max_iter`` ran out, and a ``KeyboardInterrupt``
  passed on to the caller after the estimator has been left usable.

A model plugs in through :class:`Problem`: its parameters, its batches and its step. The loop
writes the fitted attributes of the training history on the estimator itself: ``n_iter_``,
``t_``, ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
``best_validation_score_`` (and the private ``_optimizer``, ``_no_improvement_count`` that a
``partial_fit`` continues from).
"""

import math
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._optim import (Adaptive, AdamOptimizer, InvScaling, RMSpropOptimizer, SGDOptimizer,
                     clip_grad_norm, fused_step, l2_penalty)

# A minibatch loss above DIVERGENCE_FACTOR times the reference loss (the fit's first minibatch
# loss, then its best epoch's) is divergence: a network that learns stays well below its
# starting loss, while the example (SGD at learning_rate_init=10, unscaled targets)
# climbs by orders of magnitude per epoch (4e10 to 2e194); the test suite's diverging fits pass
# the factor in their first epoch (tests/test_training.py, tests/test_estimators.py)
DIVERGENCE_FACTOR = 1e3
# ... and above DIVERGENCE_FACTOR * DIVERGENCE_FLOOR (a loss that started near 0 may wobble)
DIVERGENCE_FLOOR = 1e-2
# "adaptive" (numgru._optim.Adaptive, for every solver): the learning rate is divided by
# ADAPTIVE_FACTOR when the loss (or validation score) stalls for n_iter_no_change epochs
# (scikit-learn's factor), and training stops when a stall finds it already at or below
# learning_rate_init * ADAPTIVE_MIN_RATIO (three reductions; scikit-learn stops at 1e-6
# absolute, five for Adam's 1e-3 at n_iter_no_change epochs each)
ADAPTIVE_FACTOR = 5.0
ADAPTIVE_MIN_RATIO = 1e-2
# A fit that ends on the training-loss rule (or max_iter) with its last epoch's loss more than
# SPIKE_FACTOR times its best epoch's stopped inside a spike of the loss (Adam at the small
# default batches makes them: GunPoint's loss goes 0.30 -> 1.05 -> 0.19 within 30 epochs), so
# the best epoch's weights are restored; otherwise the last weights are kept, as scikit-learn's
# MLP keeps them. Replayed on the per-epoch traces of the quality benchmark (6 seeds per set,
# docs/training.md, 2026-12-03): GunPoint's worst fit 0.70 -> 0.93 and BasicMotions' median
# 0.988 -> 1.0, no set's median lower; factors 3-5 did the same, 1.5-2 left the worst fit at 0.88
# or lower, and restoring always (factor 1) lowered ItalyPowerDemand's and GunPoint's medians.
SPIKE_FACTOR = 5.0
# progress is shown on a terminal once a fit has run this long (verbose="auto")
PROGRESS_AFTER_S = 3.0


def make_optimizer(solver, params, learning_rate_init, *, momentum=0.9, nesterov=True,
                   beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """The optimizer of ``solver`` ("adam", "rmsprop", "sgd") over ``params``.

    One rule for every estimator: RMSprop's squared-gradient decay ``rho`` is ``beta_2``;
    SGD has (Nesterov) ``momentum``. The learning-rate schedule is the loop's, not the
    optimizer's (SGD is built with a constant schedule).
    """
    if solver == "adam":
        return AdamOptimizer(params, learning_rate_init, beta_1, beta_2, epsilon)
    if solver == "rmsprop":
        return RMSpropOptimizer(params, learning_rate_init, rho=beta_2, epsilon=epsilon)
    if solver == "sgd":
        return SGDOptimizer(params, learning_rate_init, "constant", momentum, nesterov)
    raise ValueError(f"solver must be 'adam', 'rmsprop' or 'sgd', got {solver!r}")


class Settings:
    """What the loop needs of an estimator's parameters (one place that reads them).

    Parameters
    ----------
    max_iter, tol, n_iter_no_change, solver, learning_rate_init, learning_rate, power_t,
    momentum, nesterovs_momentum, beta_1, beta_2, epsilon, alpha, clip_grad_norm, verbose
        As documented on the estimators.
    """

    def __init__(self, *, max_iter, tol, n_iter_no_change, solver, learning_rate_init,
                 learning_rate="constant", power_t=0.5, momentum=0.9, nesterovs_momentum=True,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=0.0, clip_grad_norm=None,
                 verbose="auto"):
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.n_iter_no_change = int(n_iter_no_change)
        self.solver = solver
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = learning_rate
        self.power_t = float(power_t)
        self.momentum = float(momentum)
        self.nesterovs_momentum = bool(nesterovs_momentum)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.alpha = float(alpha)
        self.clip_grad_norm = clip_grad_norm
        self.verbose = verbose

    @classmethod
    def from_estimator(cls, est, **overrides):
        """Read every setting the estimator has (missing ones keep their defaults)."""
        names = ("max_iter", "tol", "n_iter_no_change", "solver", "learning_rate_init",
                 "learning_rate", "power_t", "momentum", "nesterovs_momentum", "beta_1",
                 "beta_2", "epsilon", "alpha", "clip_grad_norm", "verbose")
        kw = {n: getattr(est, n) for n in names if hasattr(est, n)}
        kw.update(overrides)
        return cls(**kw)

    def optimizer(self, params):
        return make_optimizer(self.solver, params, self.learning_rate_init,
                              momentum=self.momentum, nesterov=self.nesterovs_momentum,
                              beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def schedule(self, optimizer):
        """The learning-rate schedule bound to ``optimizer`` (None for "constant")."""
        if self.learning_rate == "invscaling":
            return InvScaling(self.power_t).attach(optimizer)
        if self.learning_rate == "adaptive":
            return Adaptive(ADAPTIVE_FACTOR,
                            self.learning_rate_init * ADAPTIVE_MIN_RATIO).attach(optimizer)
        return None


class Problem:
    """A model as the loop sees it (subclassed by each estimator's adapter).

    ``params`` (list of arrays updated in place) and ``is_weight`` (which get the L2 penalty);
    :meth:`epoch` yields the minibatches of one epoch; :meth:`step` returns
    ``(loss, grads, count, weight)`` of one minibatch: its mean data loss, the gradients in the
    order of ``params``, its weight in the epoch's mean loss and its total sample weight (the
    L2 term's denominator). ``n_samples`` is what an epoch adds to ``t_``.
    """

    params = ()
    is_weight = ()
    n_samples = 0
    has_validation = False

    def epoch(self):
        raise NotImplementedError

    def step(self, batch):
        raise NotImplementedError

    def validation_score(self):
        """Higher is better (accuracy, R^2, mean log-likelihood)."""
        raise NotImplementedError

    def params_changed(self):
        """Called after the loop wrote into ``params`` outside an optimizer step."""


class Plateau:
    """The one stopping rule: after ``patience`` epochs in a row without an improvement of more
    than ``tol``, the rule fires (stop, or with the "adaptive" schedule lower the learning rate
    first).

    A validation score improves when it beats the best score so far (scikit-learn's rule). The
    training loss is judged by its mean over the last ``patience`` epochs: an epoch improves
    when that running mean drops below its lowest value so far by more than ``tol``. A
    minibatch loss is noisy; a single lucky epoch made scikit-learn's rule (each epoch against
    the best epoch) stop while the loss was still falling: on the quality benchmark
    (docs/training.md) it stopped GunPoint's fits at epoch ~134, 15 points below the accuracy
    of 200 epochs, in the middle of the drop that starts after ~100 epochs of a flat loss.
    ``tol`` is absolute, as scikit-learn's: a tol relative to a small loss (as it was until
    2026-12-03) kept a classifier whose loss falls geometrically towards 0 (JapaneseVowels:
    1e-3, 1e-4, ...) training all 200 epochs at its final accuracy.
    """

    def __init__(self, tol, patience, count=0):
        self.tol = tol
        self.patience = patience
        self.count = count
        self._recent = []
        self._best_mean = np.inf

    def update(self, value, best, higher_is_better):
        """Record a validation score (``best``: the best one so far); True when the rule fires."""
        improved = value > best + self.tol
        self.count = 0 if improved else self.count + 1
        return self.count >= self.patience

    def update_loss(self, loss):
        """Record an epoch's training loss; True when the rule fires."""
        self._recent = (self._recent + [loss])[-self.patience:]
        mean = sum(self._recent) / len(self._recent)
        improved = mean < self._best_mean - self.tol
        self._best_mean = min(self._best_mean, mean)
        self.count = 0 if improved else self.count + 1
        return self.count >= self.patience


class _Diverged(Exception):
    def __init__(self, loss, reference):
        super().__init__(loss)
        self.loss = loss
        self.reference = reference


class _Progress:
    """Progress with an ETA: verbose=1 one line per epoch (stdout), verbose="auto" a line
    redrawn in place on a terminal (stderr) once the fit has run ``PROGRESS_AFTER_S``,
    verbose=2 that line from the start; nothing otherwise."""

    def __init__(self, verbose, n_epochs, name):
        self.n_epochs = n_epochs
        self.name = name
        self.t0 = time.perf_counter()
        stream = sys.stderr
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.lines = verbose not in ("auto", None) and int(verbose) == 1
        self.bar = (verbose == "auto" and tty) or (verbose not in ("auto", None)
                                                   and int(verbose) >= 2)
        self.wait = PROGRESS_AFTER_S if verbose == "auto" else 0.0
        self.stream = stream if verbose == "auto" else sys.stdout
        self.drawn = False

    def epoch(self, done, loss, score, epoch_seconds, lr):
        if self.lines:
            msg = f"Iteration {done}, loss = {loss:.8f}"
            if score is not None:
                msg += f", validation score = {score:.6f}"
            print(msg + f", time = {epoch_seconds:.2f}s", flush=True)
        self._draw(done, loss, score, lr)

    def _draw(self, done, loss, score, lr):
        if not self.bar:
            return
        elapsed = time.perf_counter() - self.t0
        if elapsed < self.wait:
            return
        left = elapsed / max(done, 1) * (self.n_epochs - done)
        width = 20                 # characters of the progress bar: fits one terminal line
        k = int(width * done / max(self.n_epochs, 1))
        msg = (f"\r{self.name} [{'#' * k}{'.' * (width - k)}] epoch {done}/{self.n_epochs} "
               f"loss {loss:.4g}")
        if score is not None:
            msg += f" val {score:.4g}"
        msg += f" lr {lr:.2g} {_clock(elapsed)} elapsed, at most {_clock(left)} left "
        self.stream.write(msg)
        self.stream.flush()
        self.drawn = True

    def close(self, message=None):
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        if message and (self.lines or self.bar):
            print(message, flush=True)


def _clock(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _snapshot(params):
    return [p.copy() for p in params]


def _restore(problem, snapshot):
    for p, saved in zip(problem.params, snapshot):
        p[...] = saved
    problem.params_changed()


def start_history(est):
    """A new estimator's empty training history (the first pass of a fit)."""
    est.n_iter_ = 0
    est.t_ = 0
    est.loss_curve_ = []
    est.best_loss_ = np.inf
    est.validation_scores_ = None
    est.best_validation_score_ = None
    est._no_improvement_count = 0
    est._optimizer = None
    est._schedule = None


def train(est, problem, settings, *, incremental=False, name=None):
    """Run the epochs of ``problem`` on ``est`` (``max_iter`` of them, or one when
    ``incremental``), continuing its history.

    Returns the reason training ended: "converged", "max_iter", "diverged", "non-finite" (or
    "epoch" for an incremental step). Warns (``ConvergenceWarning`` / ``RuntimeWarning``) as
    the estimators document; re-raises ``KeyboardInterrupt`` after restoring the best weights.
    """
    params = list(problem.params)
    if getattr(est, "_optimizer", None) is None or not incremental:
        est._optimizer = settings.optimizer(params)
        est._schedule = settings.schedule(est._optimizer)
    opt, schedule = est._optimizer, getattr(est, "_schedule", None)
    validate = problem.has_validation and not incremental
    if validate:
        if est.validation_scores_ is None:
            est.validation_scores_ = []
        if est.best_validation_score_ is None:
            est.best_validation_score_ = -np.inf
    if not incremental:
        est._no_improvement_count = 0
    rule = Plateau(settings.tol, settings.n_iter_no_change, est._no_improvement_count)
    n_epochs = 1 if incremental else settings.max_iter
    progress = _Progress(settings.verbose, n_epochs, name or type(est).__name__)
    best = _snapshot(params)              # the weights to restore: initial, then best epoch
    best_epoch = est.n_iter_
    fit_best_loss = np.inf
    reference = None                      # the divergence check's reference loss
    reason = "epoch" if incremental else "max_iter"
    try:
        for _ in range(n_epochs):
            t0 = time.perf_counter()
            total = weight = 0.0
            try:
                for batch in problem.epoch():
                    loss, count = _step(problem, opt, settings, batch, params)
                    if reference is None:
                        reference = loss
                    if loss > DIVERGENCE_FACTOR * max(reference, DIVERGENCE_FLOOR):
                        raise _Diverged(loss, reference)
                    total += loss * count
                    weight += count
            except FloatingPointError:
                _restore(problem, best)
                reason = "non-finite"
                warnings.warn(
                    "The training loss became NaN or infinite; training stopped and the best "
                    f"weights so far (epoch {best_epoch}) were restored. Lower "
                    "learning_rate_init, set clip_grad_norm, or check the input for extreme "
                    "values.", RuntimeWarning)
                break
            except _Diverged as d:
                _restore(problem, best)
                reason = "diverged"
                warnings.warn(
                    f"Training diverged: a minibatch loss of {d.loss:.3g} is more than "
                    f"{DIVERGENCE_FACTOR:g} times the {d.reference:.3g} the fit had reached; "
                    f"training stopped and the best weights (epoch {best_epoch}) were "
                    f"restored. Lower learning_rate_init (now {settings.learning_rate_init:g}), "
                    "set clip_grad_norm, or use solver='adam'.", RuntimeWarning)
                break
            est.n_iter_ += 1
            est.t_ += problem.n_samples
            # an epoch's weights can sum to 0 only when every sample weight does (refused at
            # fit) or it had no step; 1e-300, near float64's smallest normal, keeps the mean
            # defined (0) without changing any other
            est.loss_ = total / max(weight, 1e-300)
            est.loss_curve_.append(est.loss_)
            reference = min(reference, est.loss_) if reference is not None else est.loss_
            if isinstance(schedule, InvScaling):
                schedule.step(est.t_)
            score = None
            if validate:
                score = problem.validation_score()
                est.validation_scores_.append(score)
                fire = rule.update(score, est.best_validation_score_, True)
                if score > est.best_validation_score_:
                    est.best_validation_score_ = score
                    best, best_epoch = _snapshot(params), est.n_iter_
            else:
                fire = rule.update_loss(est.loss_)
            est.best_loss_ = min(est.best_loss_, est.loss_)
            if not validate and est.loss_ < fit_best_loss:
                # this call's best epoch, not the history's: a warm start on other data
                # must not restore the weights it started from
                fit_best_loss = est.loss_
                best, best_epoch = _snapshot(params), est.n_iter_
            progress.epoch(est.n_iter_, est.loss_, score, time.perf_counter() - t0,
                           opt.learning_rate)
            if fire and not incremental:
                if isinstance(schedule, Adaptive) and schedule.step():
                    rule.count = 0            # the rate was lowered: give it its patience
                    continue
                reason = "converged"
                what = "Validation score" if validate else "Training loss"
                progress.close(f"{what} did not improve more than tol={settings.tol} for "
                               f"{settings.n_iter_no_change} consecutive epochs. Stopping.")
                progress = None
                break
    except KeyboardInterrupt:
        # leave a usable estimator (the best weights so far), then let the interrupt stop the
        # caller too: a script, a loop of fits, a GridSearchCV
        _restore(problem, best)
        est._no_improvement_count = rule.count
        if not hasattr(est, "loss_"):
            est.loss_ = float("nan")
        if progress is not None:
            progress.close()
        raise
    if progress is not None:
        progress.close()
    est._no_improvement_count = rule.count
    if validate and reason in ("converged", "max_iter"):
        # early stopping keeps the best validation epoch
        _restore(problem, best)
    elif (not validate and reason in ("converged", "max_iter")
          and est.loss_ > SPIKE_FACTOR * fit_best_loss):
        # the training-loss rule keeps the last weights, as scikit-learn's MLP, unless the fit
        # ended in a spike of the loss (SPIKE_FACTOR). Restoring the lowest-loss epoch at every
        # stop (Keras's restore_best_weights on the loss) was measured on the quality benchmark
        # (docs/training.md, 2026-12-03, 3 seeds): GunPoint's worst fit 0.70 -> 0.90, but
        # BasicMotions' median 0.975 -> 0.900 and ItalyPowerDemand's 0.966 -> 0.953: among
        # epochs of equal loss near 0, the lowest is a draw
        _restore(problem, best)
    if reason == "max_iter":
        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({settings.max_iter}) reached "
                      "and the optimization hasn't converged yet.", ConvergenceWarning)
    if not hasattr(est, "loss_"):
        est.loss_ = float("nan")
    return reason


def _step(problem, opt, settings, batch, params):
    """One minibatch: loss and gradients, L2, clipping, update; FloatingPointError when the
    loss, a gradient or an updated weight is not finite. Returns (loss, count)."""
    loss, grads, count, n = problem.step(batch)
    if not math.isfinite(loss):
        raise FloatingPointError
    l2 = fused_step(opt, params, grads, problem.is_weight, settings.alpha, n,
                    settings.clip_grad_norm)
    if l2 is not None:
        loss += l2
        if not math.isfinite(loss):
            raise FloatingPointError
        return loss, count
    # the NumPy path (arrays the fused kernels do not take)
    if not all(np.isfinite(g).all() for g in grads):
        raise FloatingPointError
    loss += l2_penalty(params, grads, problem.is_weight, settings.alpha, n)
    if not math.isfinite(loss):
        raise FloatingPointError
    if settings.clip_grad_norm is not None:
        clip_grad_norm(grads, settings.clip_grad_norm)
    opt.update_params(params, grads)
    if not all(np.isfinite(p).all() for p in params):
        raise FloatingPointError
    return loss, count
