"""The shared training loop (numgru._training) against values computed here in NumPy.

Small synthetic problems whose losses and gradients are known in closed form drive
``_training.train`` directly, so the stopping rule, the schedules, the L2 term, clipping,
divergence, early-stopping restore and interrupts are each pinned to an oracle; then the
estimators and the language model are checked to use that loop (KeyboardInterrupt through
GridSearchCV, the language model's solvers, dropout, NaN and interrupt recovery).
"""

import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from numgru import GRUClassifier, GRULanguageModel, GRURegressor, _training
from numgru import lm as lm_mod


class Est:
    """A bare object the loop writes its history on."""


class Quadratic(_training.Problem):
    """Loss 0.5 * a * ||w||^2 per batch (``batches`` per epoch); scripted losses optional."""

    def __init__(self, w0, a=1.0, batches=1, losses=None, scores=None, grad=None):
        self.w = np.array(w0, dtype=np.float64)
        self.params = [self.w]
        self.is_weight = [True]
        self.a = a
        self.batches = batches
        self.losses = list(losses) if losses is not None else None
        self.scores = list(scores) if scores is not None else None
        self.has_validation = scores is not None
        self.grad = grad
        self.n_samples = 10
        self.seen = []

    def epoch(self):
        return range(self.batches)

    def step(self, batch):
        w = self.w
        if self.losses is not None:
            loss = self.losses.pop(0)
        else:
            loss = 0.5 * self.a * float(w @ w)
        g = self.a * w.copy() if self.grad is None else np.array(self.grad, float)
        self.seen.append(w.copy())
        return loss, [g], 1, 1.0

    def validation_score(self):
        return self.scores.pop(0)


def settings(**kw):
    base = dict(max_iter=50, tol=1e-4, n_iter_no_change=3, solver="sgd", learning_rate_init=0.1,
                learning_rate="constant", momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                verbose=0)
    base.update(kw)
    return _training.Settings(**base)


def run(problem, incremental=False, **kw):
    est = Est()
    _training.start_history(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reason = _training.train(est, problem, settings(**kw), incremental=incremental)
    return est, reason


# ------------------------------------------------------------------ stopping rule, schedules
def _oracle_stop(losses, patience, tol):
    """The epoch the training-loss rule stops at: the running mean of the last ``patience``
    losses must drop below its lowest value by more than tol (NumPy, from the rule's words)."""
    best, count = np.inf, 0
    for k in range(1, len(losses) + 1):
        mean = np.mean(losses[max(0, k - patience):k])
        count = 0 if mean < best - tol else count + 1
        best = min(best, mean)
        if count >= patience:
            return k
    return None


def test_stops_after_n_iter_no_change_epochs_without_a_running_mean_improvement():
    losses = [1.0, 0.8, 0.79995, 0.9, 0.7999, 0.8, 0.81, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 9.0]
    k = _oracle_stop(losses, 3, 1e-4)
    est, reason = run(Quadratic([0.0], losses=losses), n_iter_no_change=3, tol=1e-4)
    assert reason == "converged" and est.n_iter_ == k == 13
    assert est.loss_curve_ == losses[:k] and est.best_loss_ == 0.7999


def test_tol_is_absolute_so_a_loss_falling_geometrically_towards_zero_stops():
    # a classifier that fits its training set: the loss keeps halving (1e-3, 5e-4, ...), each
    # epoch's gain far below tol. A tol relative to the loss never fired here (the fit ran all
    # its epochs at its final accuracy); scikit-learn's absolute tol stops it
    losses = [1e-3 * 0.5 ** k for k in range(60)]
    k = _oracle_stop(losses, 3, 1e-4)
    est, reason = run(Quadratic([0.0], losses=losses), n_iter_no_change=3, tol=1e-4,
                      max_iter=60)
    assert reason == "converged" and est.n_iter_ == k == 8


def test_a_noisy_falling_loss_does_not_stop_the_fit():
    # a falling loss with one lucky low epoch that the next 3 do not beat: scikit-learn's rule
    # (each epoch against the best epoch) stops at epoch 8; the running mean keeps falling
    rng = np.random.default_rng(0)
    losses = list(np.linspace(1.0, 0.5, 40) + 0.03 * rng.standard_normal(40)) + [0.5] * 30
    best, count, sklearn_stop = np.inf, 0, None
    for k, loss in enumerate(losses, 1):
        count = 0 if loss < best - 1e-4 else count + 1
        best = min(best, loss)
        if count >= 3:
            sklearn_stop = k
            break
    est, reason = run(Quadratic([0.0], losses=losses), n_iter_no_change=3, tol=1e-4)
    assert sklearn_stop == 8
    assert est.n_iter_ == _oracle_stop(losses, 3, 1e-4) == 46


def test_adaptive_divides_by_5_on_each_stall_and_stops_at_a_hundredth():
    flat = [1.0] * 40
    est, reason = run(Quadratic([0.0], losses=flat, grad=[0.0]), learning_rate="adaptive",
                      n_iter_no_change=2, learning_rate_init=1e-3)
    # epoch 1 improves on inf; stalls at epochs 3, 5, 7 lower the rate to 2e-4, 4e-5, 8e-6;
    # the fourth (epoch 9) finds 8e-6 <= 1e-5 and stops
    assert reason == "converged" and est.n_iter_ == 9
    assert math.isclose(est._optimizer.learning_rate, 1e-3 / 125)


def test_invscaling_sets_lr0_over_samples_seen_to_the_power_t():
    p = Quadratic([1.0], a=1.0)
    est, _ = run(p, max_iter=4, learning_rate="invscaling", power_t=0.5, n_iter_no_change=99)
    w, lrs = 1.0, []
    for epoch in range(4):                 # NumPy oracle: plain SGD, lr set after each epoch
        lr = 0.1 if epoch == 0 else 0.1 / (10 * epoch + 1) ** 0.5
        lrs.append(lr)
        w -= lr * w
    np.testing.assert_allclose(p.w, [w], rtol=1e-14)


# ------------------------------------------------------------------ L2, clipping
def test_l2_term_value_and_gradient_in_the_update():
    p = Quadratic([2.0, -1.0], grad=[0.0, 0.0], losses=[0.25])
    est, _ = run(p, max_iter=1, alpha=0.3)
    # loss + 0.5 * alpha * ||w||^2 / n (n = 1); the step is -lr * alpha * w / n
    assert math.isclose(est.loss_curve_[0], 0.25 + 0.5 * 0.3 * 5.0, rel_tol=1e-15)
    np.testing.assert_allclose(p.w, np.array([2.0, -1.0]) * (1 - 0.1 * 0.3), rtol=1e-15)


def test_gradients_are_clipped_to_the_global_norm_before_the_update():
    p = Quadratic([0.0, 0.0], grad=[3.0, 4.0], losses=[1.0])
    run(p, max_iter=1, clip_grad_norm=1.0)
    # torch's clip_grad_norm_: scale max_norm / (norm + 1e-6) = 1 / 5.000001
    np.testing.assert_allclose(p.w, -0.1 * np.array([3.0, 4.0]) / (5.0 + 1e-6), rtol=1e-14)


# ------------------------------------------------------------------ divergence, NaN, interrupt
def test_divergence_stops_warns_and_restores_the_best_epoch():
    # SGD on 0.5 * a * w^2 with lr * a = 3: w -> -2 w, the loss x4 per epoch. Epoch k's loss is
    # 4**(k-1) * L0; epoch 6's passes 1e3 * L0: stop there and restore epoch 1's weights (its
    # loss, L0, is the best), i.e. w after one step: -2 * w0.
    p = Quadratic([1.0], a=30.0)
    with pytest.warns(RuntimeWarning, match=r"diverged.*Lower learning_rate_init \(now 0.1\)"):
        est, reason = run(p, n_iter_no_change=99)
    assert reason == "diverged" and est.n_iter_ == 5
    np.testing.assert_array_equal(p.w, [-2.0])
    assert len(p.seen) == 6 and p.seen[5][0] == (-2.0) ** 5


def test_a_non_finite_loss_restores_the_best_epoch_and_says_what_to_change():
    p = Quadratic([1.0], a=1.0, losses=[3.0, 2.0, 2.5, float("nan")])
    with pytest.warns(RuntimeWarning, match="NaN or infinite.*epoch 2.*learning_rate_init"):
        est, reason = run(p, n_iter_no_change=99)
    assert reason == "non-finite" and est.n_iter_ == 3
    np.testing.assert_allclose(p.w, [0.9 ** 2])          # after epoch 2 (the best loss)


def test_keyboard_interrupt_restores_the_best_epoch_and_is_passed_on():
    p = Quadratic([1.0], a=1.0, losses=[3.0, 1.0, 2.0, 2.0])

    class Interrupting(Quadratic):
        pass

    calls = {"n": 0}
    step = p.step

    def interrupting(batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return step(batch)

    p.step = interrupting
    est = Est()
    _training.start_history(est)
    with pytest.raises(KeyboardInterrupt):
        _training.train(est, p, settings(n_iter_no_change=99))
    assert est.n_iter_ == 3
    np.testing.assert_allclose(p.w, [0.9 ** 2])          # epoch 2 had the best loss


def test_early_stopping_restores_the_best_validation_epoch():
    p = Quadratic([1.0], a=1.0, scores=[0.1, 0.5, 0.4, 0.45, 0.3, 0.2])
    est, reason = run(p, n_iter_no_change=3)
    assert reason == "converged" and est.n_iter_ == 5
    assert est.validation_scores_ == [0.1, 0.5, 0.4, 0.45, 0.3]
    assert est.best_validation_score_ == 0.5
    np.testing.assert_allclose(p.w, [0.9 ** 2])


def test_the_training_loss_rule_keeps_the_last_weights():
    # SGD at 0.1 on 0.5 * w**2 from 1: the weights after epoch k are 0.9**k. The scripted
    # losses are lowest at epoch 2; the rule (patience 3) stops at the oracle's epoch and, as
    # scikit-learn's MLP, keeps that epoch's weights
    losses = [1.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.0]
    k = _oracle_stop(losses, 3, 1e-4)
    p = Quadratic([1.0], a=1.0, losses=losses)
    est, reason = run(p, n_iter_no_change=3)
    assert reason == "converged" and est.n_iter_ == k == 7
    np.testing.assert_allclose(p.w, [0.9 ** 7])
    assert est.best_loss_ == 0.5


def test_a_fit_that_stops_inside_a_loss_spike_restores_its_best_epoch():
    # the last epoch's loss is more than SPIKE_FACTOR (5) times the best (epoch 2's): the rule
    # stops inside a spike, so epoch 2's weights (0.9**2) come back; n_iter_ and the curve
    # still tell the whole history
    losses = [1.0, 0.1, 0.6, 0.7, 0.8, 0.9, 0.95, 0.95]
    assert losses[-1] > _training.SPIKE_FACTOR * min(losses)
    k = _oracle_stop(losses, 3, 1e-4)
    p = Quadratic([1.0], a=1.0, losses=losses)
    est, reason = run(p, n_iter_no_change=3)
    assert reason == "converged" and est.n_iter_ == k == 7
    np.testing.assert_allclose(p.w, [0.9 ** 2])
    assert est.loss_curve_ == losses[:7] and est.best_loss_ == 0.1
    # and at max_iter
    p = Quadratic([1.0], a=1.0, losses=[1.0, 0.1, 0.2, 0.9])
    est, reason = run(p, n_iter_no_change=10, max_iter=4)     # (its warning is silenced)
    assert reason == "max_iter"
    np.testing.assert_allclose(p.w, [0.9 ** 2])


def test_a_warm_started_fit_that_diverges_restores_its_own_best_epoch_not_its_start():
    # the second call's losses are all above the first call's best (other data): when it
    # diverges, the weights restored are those of its own best epoch (its epoch 2), not the
    # ones it started from
    p = Quadratic([1.0], a=1.0, losses=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    est, reason = run(p, n_iter_no_change=3)
    w_start = p.w.copy()
    p.losses = [5.0, 4.0, 4.5, 1e5]
    with pytest.warns(RuntimeWarning, match="diverged"):
        reason = _training.train(est, p, settings(n_iter_no_change=3))
    assert reason == "diverged"
    np.testing.assert_allclose(p.w, w_start * 0.9 ** 2)
    assert est.best_loss_ == 0.1


def test_incremental_epochs_continue_the_optimizer_and_never_stop():
    p = Quadratic([1.0], a=1.0)
    est = Est()
    _training.start_history(est)
    for _ in range(3):
        _training.train(est, p, settings(momentum=0.5), incremental=True)
    # heavy-ball SGD (torch's form) over three steps, continued across calls
    w, buf = 1.0, 0.0
    for _ in range(3):
        buf = 0.5 * buf + w
        w -= 0.1 * buf
    np.testing.assert_allclose(p.w, [w], rtol=1e-14)
    assert est.n_iter_ == 3


# ------------------------------------------------------------------ the estimators use it
def test_keyboard_interrupt_stops_a_grid_search(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    from numgru import _optim
    calls = {"n": 0}
    original = _optim.AdamOptimizer._fused         # the loop's update (numgru._optim.fused_step)

    def interrupting(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(_optim.AdamOptimizer, "_fused", interrupting)
    search = GridSearchCV(GRUClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0),
                          {"alpha": [1e-4, 1e-3]}, cv=2, n_jobs=1)
    with pytest.raises(KeyboardInterrupt):
        search.fit(X, y)
    assert calls["n"] == 3          # the search did not go on to the next candidate


def test_regressor_divergence_keeps_the_weights_of_the_best_epoch():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6, 1))
    y = X[:, :, 0].sum(axis=1)
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=3.0, momentum=0.9,
              clip_grad_norm=None,
              random_state=0, batch_size=8, verbose=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        reg = GRURegressor(max_iter=30, **kw).fit(X, y)
    k = int(np.argmin(reg.loss_curve_)) + 1 if reg.loss_curve_ else 0
    if k:        # a fit of exactly the best epoch's count gives the restored weights
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = GRURegressor(max_iter=k, n_iter_no_change=99, **kw).fit(X, y)
        np.testing.assert_array_equal(reg.predict(X), ref.predict(X))


def test_rmsprop_decay_is_beta_2_for_every_estimator():
    reg = GRURegressor(solver="rmsprop", beta_2=0.97)
    lm = GRULanguageModel(solver="rmsprop")
    for est in (reg, lm):
        opt = _training.Settings.from_estimator(est).optimizer([np.zeros(2)])
        assert opt.rho == getattr(est, "beta_2", 0.999)


# ------------------------------------------------------------------ the language model
TEXT = "the cat sat on the mat. " * 6


def _lm(**kw):
    base = dict(embedding_dim=4, hidden_layer_sizes=(6,), batch_size=1, bptt=200, max_iter=1,
                random_state=0, dtype="float64", clip_grad_norm=None, verbose=0)
    base.update(kw)
    return GRULanguageModel(**base)


def _one_window_grads(lm_fitted_zero):
    """Gradients of the single window of TEXT at the initial weights (batch 1, bptt 200)."""
    lm = lm_fitted_zero
    problem = lm_mod._TextProblem(lm, [lm._ids(list(TEXT), "X")], [])
    (batch,) = list(problem.epoch())
    loss, grads, n, _ = problem.step(batch)
    return loss, grads


@pytest.mark.parametrize("solver", ["sgd", "rmsprop", "adam"])
def test_language_model_solvers_take_the_torch_step(solver, monkeypatch):
    # weights at initialisation: a fit whose optimizer never moves them
    from numgru import _optim
    lr = 0.05
    frozen = _lm(solver=solver, learning_rate_init=lr)
    monkeypatch.setattr(_optim.BaseOptimizer, "update_params", lambda self, p, g: None)
    for kind in (_optim.AdamOptimizer, _optim.RMSpropOptimizer, _optim.SGDOptimizer):
        monkeypatch.setattr(kind, "_fused", lambda self, *args: True)    # the loop's update
    frozen.fit(TEXT)
    p0 = [p.copy() for p in frozen._params()]
    _, g = _one_window_grads(frozen)
    monkeypatch.undo()
    lm = _lm(solver=solver, learning_rate_init=lr).fit(TEXT)
    for p, w, gi in zip(lm._params(), p0, g):
        if solver == "sgd":
            want = w - lr * gi
        elif solver == "rmsprop":              # rho = 0.999, eps outside the root
            want = w - lr * gi / (np.sqrt(0.001 * gi * gi) + 1e-8)
        else:                                  # Adam's first step: bias-corrected moments
            want = w - lr * gi / (np.abs(gi) + 1e-8)
        np.testing.assert_allclose(p, want, rtol=1e-9, atol=1e-12)


def test_language_model_dropout_is_training_only_and_seeded():
    a = _lm(dropout=0.5, max_iter=2, batch_size=2, bptt=10).fit(TEXT)
    b = _lm(dropout=0.5, max_iter=2, batch_size=2, bptt=10).fit(TEXT)
    assert a.loss_curve_ == b.loss_curve_            # the masks come from random_state
    c = _lm(dropout=0.0, max_iter=2, batch_size=2, bptt=10)
    c.fit(TEXT)
    c.load_state_dict(a.state_dict())                # the same weights without dropout layers
    assert a.score(TEXT) == c.score(TEXT)            # scoring runs without dropout
    assert a.loss_curve_[0] != c.loss_curve_[0]


def test_language_model_recovers_from_a_nan_window_with_the_best_epoch(monkeypatch):
    ref = _lm(max_iter=2, batch_size=2, bptt=10).fit(TEXT)
    calls = {"n": 0}
    original = GRULanguageModel._window_step
    n_windows = len(list(lm_mod._windows(*lm_mod._streams(
        [ref._ids(list(TEXT), "X")], 2), 10)))

    def nan_in_epoch_3(self, *args):
        calls["n"] += 1
        out = original(self, *args)
        if calls["n"] == 2 * n_windows + 1:
            return (float("nan"),) + out[1:]
        return out

    monkeypatch.setattr(GRULanguageModel, "_window_step", nan_in_epoch_3)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        lm = _lm(max_iter=5, batch_size=2, bptt=10).fit(TEXT)
    assert lm.n_iter_ == 2
    best = int(np.argmin(lm.loss_curve_)) + 1
    assert best == 2
    for p, q in zip(lm._params(), ref._params()):
        np.testing.assert_array_equal(p, q)


def test_language_model_interrupt_keeps_the_best_epoch_and_is_passed_on(monkeypatch):
    ref = _lm(max_iter=1, batch_size=2, bptt=10).fit(TEXT)
    calls = {"n": 0}
    original = GRULanguageModel._window_step
    n_windows = len(list(lm_mod._windows(*lm_mod._streams(
        [ref._ids(list(TEXT), "X")], 2), 10)))

    def interrupt_in_epoch_2(self, *args):
        calls["n"] += 1
        if calls["n"] == n_windows + 2:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(GRULanguageModel, "_window_step", interrupt_in_epoch_2)
    lm = _lm(max_iter=5, batch_size=2, bptt=10)
    with pytest.raises(KeyboardInterrupt):
        lm.fit(TEXT)
    assert lm.n_iter_ == 1
    for p, q in zip(lm._params(), ref._params()):
        np.testing.assert_array_equal(p, q)
    assert lm.score(TEXT) == ref.score(TEXT)         # usable, device copies refreshed


# ------------------------------------------------------------------ progress (verbose)
class _Terminal:
    def __init__(self, tty):
        self.tty = tty
        self.text = ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_auto_progress_shows_an_eta_on_a_terminal_only(monkeypatch, tty):
    term = _Terminal(tty)
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setattr(_training, "PROGRESS_AFTER_S", 0.0)
    run(Quadratic([1.0]), max_iter=4, n_iter_no_change=99, verbose="auto")
    if tty:
        lines = [ln for ln in term.text.split("\r") if ln]
        assert len(lines) == 4 and "epoch 4/4" in lines[-1] and "left" in lines[-1]
        assert term.text.endswith("\n")
    else:
        assert term.text == ""


def test_auto_progress_waits_until_the_fit_has_run_a_while(monkeypatch):
    term = _Terminal(True)
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setattr(_training, "PROGRESS_AFTER_S", 3600.0)
    run(Quadratic([1.0]), max_iter=4, n_iter_no_change=99, verbose="auto")
    assert term.text == ""          # a short fit prints nothing


def test_verbose_0_is_silent_and_1_prints_a_line_per_epoch(monkeypatch, capsys):
    term = _Terminal(True)
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setattr(_training, "PROGRESS_AFTER_S", 0.0)
    run(Quadratic([1.0]), max_iter=3, n_iter_no_change=99, verbose=0)
    assert term.text == "" and capsys.readouterr().out == ""
    run(Quadratic([1.0]), max_iter=3, n_iter_no_change=99, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert [ln.split(",")[0] for ln in out] == ["Iteration 1", "Iteration 2", "Iteration 3"]


@pytest.mark.parametrize("n, batch", [(1, 1), (3, 3), (4, 4), (36, 4), (50, 4), (67, 4),
                                      (270, 16), (511, 31), (512, 32), (5000, 32)])
def test_auto_batch_size_is_n_over_16_within_4_and_32(n, batch):
    # docs: "auto" is n_samples // 16 within [4, 32], at most n_samples; counted here as the
    # optimizer steps of one epoch (ceil(n / batch) minibatches)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3, 1))
    y = np.arange(n) % 2 if n > 1 else np.array([0.5])
    est = GRURegressor(hidden_layer_sizes=(2,), max_iter=1, verbose=0, early_stopping=False,
                       linear_skip=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est._batch_size(n) == batch
    assert est._optimizer.t == math.ceil(n / batch)
