"""numgru._optim against torch.optim: every optimizer step, schedule, clipping case and the L2 term
pinned to tests/data/optim_fixtures.npz (made by tests/data/make_optim_fixtures.py with torch
2.13; torch is not needed here), NumPy oracles for the formulas, state snapshots, bad input."""

import json
import math
import os

import numpy as np
import pytest

from numgru._optim import (Adaptive, AdamOptimizer, BaseOptimizer, InvScaling, ReduceLROnPlateau,
                           RMSpropOptimizer, SGDOptimizer, clip_grad_norm, l2_penalty)

FX = np.load(os.path.join(os.path.dirname(__file__), "data", "optim_fixtures.npz"))
CFG = json.loads(str(FX["configs"]))
SHAPES = [(6, 4), (6,), (3, 6)]
TOL = {"float64": dict(rtol=1e-12, atol=1e-15), "float32": dict(rtol=1e-6, atol=1e-7)}
SUFFIX = {"float64": "", "float32": "@f32"}
KINDS = {"adam": AdamOptimizer, "rmsprop": RMSpropOptimizer, "sgd": SGDOptimizer}


def split(flat, dtype="float64"):
    """The concatenated fixture arrays back into arrays of SHAPES."""
    out, start = [], 0
    for s in SHAPES:
        n = int(np.prod(s))
        out.append(np.array(flat[start:start + n], dtype=dtype).reshape(s))
        start += n
    return out


def assert_params(got, flat, dtype):
    for g, want in zip(got, split(flat, dtype)):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, want, **TOL[dtype])


def grads_at(k, dtype="float64"):
    return split(FX[f"grad.{k}"], dtype)


def run_numgru(name, dtype, n_steps=None):
    """Replay a fixture optimizer run with numgru: (params after 1 step, after n, lrs used)."""
    kind, kw = CFG["optimizers"][name]
    params = split(FX["param"], dtype)
    opt = KINDS[kind](params, **kw)
    plateau = None
    if name.endswith("_plateau"):
        plateau = ReduceLROnPlateau(**CFG["plateau_step"]).attach(opt)
    after_one, lrs = None, []
    for k in range(n_steps or CFG["n_steps"]):
        lrs.append(opt.learning_rate)
        opt.update_params(params, grads_at(k, dtype))
        opt.iteration_ends((k + 1) * CFG["samples_per_epoch"])
        if plateau is not None and k < len(CFG["plateau_step_metric"]):
            plateau.step(CFG["plateau_step_metric"][k])
        if k == 0:
            after_one = [p.copy() for p in params]
    return after_one, params, lrs


# ------------------------------------------------------------------ optimizers vs torch.optim
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CFG["optimizers"]))
def test_optimizer_steps_match_torch(name, dtype):
    after_one, after_five, lrs = run_numgru(name, dtype)
    sfx = SUFFIX[dtype]
    assert_params(after_one, FX[f"opt.{name}.step1{sfx}"], dtype)
    assert_params(after_five, FX[f"opt.{name}.step5{sfx}"], dtype)
    np.testing.assert_allclose(lrs, FX[f"opt.{name}.lr{sfx}"], rtol=1e-12)


def test_fixtures_tell_each_mechanism_apart():
    """Each mechanism the tests pin changes the fixture numbers far beyond the tolerance, so
    breaking it (nesterov, the schedule, epsilon placement) cannot pass."""
    def far(a, b):
        return np.max(np.abs(FX[a] - FX[b])) > 1e-4
    assert far("opt.sgd_nesterov.step5", "opt.sgd_momentum.step5")
    assert far("opt.sgd_momentum.step5", "opt.sgd.step5")
    assert far("opt.sgd_nesterov_invscaling.step5", "opt.sgd_nesterov.step5")
    np.testing.assert_array_equal(FX["opt.sgd_nesterov_invscaling.step1"],
                                  FX["opt.sgd_nesterov.step1"])
    assert far("opt.adam_plateau.step5", "opt.adam.step5")


# ------------------------------------------------------------------------- NumPy oracles
def adam_oracle(params, grads_seq, lr, b1, b2, eps, bias_correction=True, sklearn=False):
    """Adam from its formulas (never imports numgru); ``sklearn=True`` folds the correction
    into the step size as scikit-learn does, ``bias_correction=False`` drops it."""
    p = [x.copy() for x in params]
    m = [np.zeros_like(x) for x in params]
    v = [np.zeros_like(x) for x in params]
    for t, grads in enumerate(grads_seq, start=1):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            if sklearn:
                step = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p[i] = p[i] - step * m[i] / (np.sqrt(v[i]) + eps)
            elif bias_correction:
                mhat, vhat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
                p[i] = p[i] - lr * mhat / (np.sqrt(vhat) + eps)
            else:
                p[i] = p[i] - lr * m[i] / (np.sqrt(v[i]) + eps)
    return p


@pytest.mark.parametrize("name", ["adam", "adam_eps"])
def test_adam_oracle_and_fixture_agree_and_variants_do_not(name):
    kw = CFG["optimizers"][name][1]
    args = (kw["learning_rate_init"], kw.get("beta_1", 0.9), kw.get("beta_2", 0.999),
            kw.get("epsilon", 1e-8))
    p0 = split(FX["param"])
    seq = [grads_at(k) for k in range(5)]
    for got, want in zip(adam_oracle(p0, seq, *args), split(FX[f"opt.{name}.step5"])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    for variant in (dict(bias_correction=False), dict(sklearn=True)):
        wrong = np.concatenate([x.ravel() for x in adam_oracle(p0, seq, *args, **variant)])
        assert np.max(np.abs(wrong - FX[f"opt.{name}.step5"])) > 1e-7, variant


def test_adam_bias_correction_matters_at_step_one():
    """With bias correction the first Adam step moves every weight by lr * g / (|g| + eps) --
    about lr where |g| >> eps; without it the step would be (1 - b1) / sqrt(1 - b2) ~ 3.2x."""
    p0 = split(FX["param"])
    g = grads_at(0)
    params = [p.copy() for p in p0]
    AdamOptimizer(params, 1e-3).update_params(params, g)
    for p, q, gi in zip(params, p0, g):
        np.testing.assert_allclose(q - p, 1e-3 * gi / (np.abs(gi) + 1e-8), rtol=1e-9)
        big = np.abs(gi) > 1e-4
        np.testing.assert_allclose(np.abs(q - p)[big], 1e-3, rtol=1e-4)


def test_rmsprop_running_average_matters():
    """RMSprop's fixture after five steps matches the running average s = rho s + (1-rho) g^2 and
    not the last squared gradient alone (rho ignored)."""
    kw = CFG["optimizers"]["rmsprop"][1]
    rho, eps, lr = kw["rho"], kw["epsilon"], kw["learning_rate_init"]
    p = split(FX["param"])
    p_last = [x.copy() for x in p]
    s = [np.zeros_like(x) for x in p]
    for k in range(5):
        for i, g in enumerate(grads_at(k)):
            s[i] = rho * s[i] + (1 - rho) * g * g
            p[i] = p[i] - lr * g / (np.sqrt(s[i]) + eps)
            p_last[i] = p_last[i] - lr * g / (np.abs(g) + eps)
    want = FX["opt.rmsprop.step5"]
    np.testing.assert_allclose(np.concatenate([x.ravel() for x in p]), want, rtol=1e-12)
    assert np.max(np.abs(np.concatenate([x.ravel() for x in p_last]) - want)) > 1e-3


def test_sgd_momentum_follows_torch_when_the_rate_changes():
    """torch's buffer ``buf = m buf + g; p -= lr (g + m buf)`` and scikit-learn's velocity
    ``v = m v - lr g`` agree at a constant rate but not once invscaling changes it."""
    kw = CFG["optimizers"]["sgd_nesterov_invscaling"][1]
    mu, lr0, power_t = kw["momentum"], kw["learning_rate_init"], kw["power_t"]
    p = split(FX["param"])
    v = [np.zeros_like(x) for x in p]
    for k in range(5):
        lr = lr0 / (k * CFG["samples_per_epoch"] + 1) ** power_t
        for i, g in enumerate(grads_at(k)):
            v[i] = mu * v[i] - lr * g
            p[i] = p[i] + mu * v[i] - lr * g
    sklearn_form = np.concatenate([x.ravel() for x in p])
    assert np.max(np.abs(sklearn_form - FX["opt.sgd_nesterov_invscaling.step5"])) > 1e-4


# ----------------------------------------------------------------------------- schedules
class _Rate(BaseOptimizer):
    """An optimizer with a rate and nothing else, for the schedules."""


@pytest.mark.parametrize("name", sorted(CFG["schedules"]))
def test_reduce_lr_on_plateau_matches_torch(name):
    opt = _Rate(CFG["schedule_lr0"])
    sched = ReduceLROnPlateau(**CFG["schedules"][name]).attach(opt)
    lrs, reduced = [], []
    for metric in FX["sched.metric"]:
        before = opt.learning_rate
        reduced.append(sched.step(metric))
        lrs.append(opt.learning_rate)
        assert reduced[-1] == (opt.learning_rate < before)
    np.testing.assert_allclose(lrs, FX[f"sched.{name}.lr"], rtol=1e-12)
    assert any(reduced)


def test_reduce_lr_on_plateau_state_round_trip():
    opt = _Rate(0.1)
    sched = ReduceLROnPlateau(patience=1, cooldown=1, factor=0.5).attach(opt)
    for m in FX["sched.metric"][:7]:
        sched.step(m)
    snap, lr = sched.state_dict(), opt.learning_rate
    rest = [sched.step(m) for m in FX["sched.metric"][7:]], opt.learning_rate
    opt2 = _Rate(lr)
    sched2 = ReduceLROnPlateau(patience=1, cooldown=1, factor=0.5).attach(opt2)
    sched2.load_state_dict(snap)
    assert ([sched2.step(m) for m in FX["sched.metric"][7:]], opt2.learning_rate) == rest


@pytest.mark.parametrize("name", sorted(CFG["invscaling"]))
def test_invscaling_matches_torch_lambdalr(name):
    power_t = CFG["invscaling"][name]
    n = CFG["samples_per_epoch"]
    opt = _Rate(CFG["schedule_lr0"])
    sched = InvScaling(power_t).attach(opt)
    got = [sched.step(k * n) for k in range(1, 11)]
    np.testing.assert_allclose(got, FX[f"sched.{name}.lr"], rtol=1e-12)
    sgd = SGDOptimizer([np.zeros(2)], CFG["schedule_lr0"], "invscaling", power_t=power_t)
    for k, want in enumerate(FX[f"sched.{name}.lr"], start=1):
        sgd.iteration_ends(k * n)
        assert sgd.learning_rate == pytest.approx(want, rel=1e-12)


def test_adaptive_divides_by_five_then_stops():
    sgd = SGDOptimizer([np.zeros(2)], 0.1, "adaptive")
    lr, rates = 0.1, []
    while lr > 1e-6:
        lr /= 5.0
        rates.append(lr)
    got = []
    while not sgd.trigger_stopping("stall.", verbose=False):
        got.append(sgd.learning_rate)
    assert got == rates and len(got) == 8
    sgd.iteration_ends(1000)                 # epochs do not change an adaptive rate
    assert sgd.learning_rate == rates[-1]
    for schedule in ("constant", "invscaling"):
        assert SGDOptimizer([np.zeros(2)], 0.1, schedule).trigger_stopping("x", False)
    assert AdamOptimizer([np.zeros(2)]).trigger_stopping("x", False)


def test_adaptive_reports_and_prints(capsys):
    sgd = SGDOptimizer([np.zeros(2)], 0.1, "adaptive")
    assert sgd.trigger_stopping("Loss stalled.", verbose=True) is False
    assert "Setting learning rate to 0.020000" in capsys.readouterr().out
    sgd.learning_rate = 1e-6
    assert sgd.trigger_stopping("Loss stalled.", verbose=True) is True
    assert "Learning rate too small. Stopping." in capsys.readouterr().out


# ----------------------------------------------------------------------------- clipping
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", CFG["clip"])
def test_clip_grad_norm_matches_torch(name, dtype):
    sfx = SUFFIX[dtype]
    grads = split(FX[f"clip.{name}.grad{sfx}"], dtype)
    before = [g.copy() for g in grads]
    max_norm = float(FX[f"clip.{name}.max_norm{sfx}"])
    want_norm = float(FX[f"clip.{name}.norm{sfx}"])
    norm = clip_grad_norm(grads, max_norm)
    if math.isfinite(want_norm):
        assert norm == pytest.approx(want_norm, rel=TOL[dtype]["rtol"])
        assert_params(grads, FX[f"clip.{name}.clipped{sfx}"], dtype)
        scaled = not np.array_equal(FX[f"clip.{name}.clipped{sfx}"], FX[f"clip.{name}.grad{sfx}"])
        assert scaled == (name in ("clip", "boundary"))
    else:
        # numgru's documented choice: the non-finite norm comes back as torch's does, the
        # gradients are left as they were (torch multiplies them by 0 or NaN)
        assert (math.isnan(norm) and math.isnan(want_norm)) or norm == want_norm
        for g, b in zip(grads, before):
            np.testing.assert_array_equal(g, b)
        torch_left = FX[f"clip.{name}.clipped{sfx}"]
        assert not np.isfinite(torch_left).all() or not np.any(torch_left)
        with pytest.raises(FloatingPointError, match="norm is"):
            clip_grad_norm(grads, max_norm, error_if_nonfinite=True)


def test_clip_grad_norm_boundary_scales_like_torch():
    """At max_norm == norm torch scales by norm / (norm + 1e-6): a strictly-greater rule fails."""
    g = split(FX["clip.boundary.grad"])
    norm = float(FX["clip.boundary.norm"])
    clip_grad_norm(g, norm)
    got = np.concatenate([x.ravel() for x in g])
    np.testing.assert_allclose(got, FX["clip.boundary.grad"] * (norm / (norm + 1e-6)),
                               rtol=1e-14)
    assert np.max(np.abs(got - FX["clip.boundary.grad"])) > 1e-8


def test_clip_grad_norm_none_and_bad_max_norm():
    g = grads_at(0)
    assert clip_grad_norm(g, None) == pytest.approx(float(FX["clip.clip.norm"]), rel=1e-12)
    for x, y in zip(g, grads_at(0)):
        np.testing.assert_array_equal(x, y)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm(g, bad)


# ------------------------------------------------------------------------------------ L2
def test_l2_penalty_matches_torch_autograd():
    l2 = CFG["l2"]
    params, grads = split(FX["param"]), grads_at(0)
    value = l2_penalty(params, grads, l2["is_weight"], l2["alpha"], l2["n"])
    assert value == pytest.approx(float(FX["l2.value"]), rel=1e-12)
    assert_params(grads, FX["l2.grad"], "float64")
    np.testing.assert_array_equal(grads[1], grads_at(0)[1])          # biases untouched


def test_l2_penalty_zero_alpha_and_bad_input():
    params, grads = split(FX["param"]), grads_at(0)
    assert l2_penalty(params, grads, [True] * 3, 0.0, 5.0) == 0.0
    for g, want in zip(grads, grads_at(0)):
        np.testing.assert_array_equal(g, want)
    with pytest.raises(ValueError, match="summed sample weight"):
        l2_penalty(params, grads, [True] * 3, 0.1, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        l2_penalty(params, grads, [True] * 3, -0.1, 1.0)
    with pytest.raises(ValueError, match="pair up"):
        l2_penalty(params, grads, [True] * 2, 0.1, 1.0)


# ------------------------------------------------------------------------- state and API
@pytest.mark.parametrize("name", ["adam", "rmsprop_momentum", "sgd_nesterov_invscaling"])
def test_state_dict_snapshot_resumes_exactly(name, tmp_path):
    kind, kw = CFG["optimizers"][name]
    params = split(FX["param"])
    opt = KINDS[kind](params, **kw)
    for k in range(2):
        opt.update_params(params, grads_at(k))
        opt.iteration_ends((k + 1) * 7)
    snap, at_snap = opt.state_dict(), [p.copy() for p in params]
    np.savez(tmp_path / "state.npz", **snap)
    for k in range(2, 5):
        opt.update_params(params, grads_at(k))
        opt.iteration_ends((k + 1) * 7)
    assert any(not np.array_equal(snap[key], value) for key, value in opt.state_dict().items()
               if key != "learning_rate")                      # a copy, not a view
    resumed = [p.copy() for p in at_snap]
    opt2 = KINDS[kind](resumed, **kw)
    loaded = np.load(tmp_path / "state.npz")
    opt2.load_state_dict({key: loaded[key] for key in loaded.files})
    for k in range(2, 5):
        opt2.update_params(resumed, grads_at(k))
        opt2.iteration_ends((k + 1) * 7)
    for a, b in zip(resumed, params):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_rejects_a_foreign_state():
    params = split(FX["param"])
    adam = AdamOptimizer(params)
    with pytest.raises(ValueError, match="missing keys"):
        adam.load_state_dict(SGDOptimizer(params).state_dict())
    state = adam.state_dict()
    state["exp_avg.0"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="shape"):
        adam.load_state_dict(state)


def test_learning_rate_is_the_base_rate_and_schedules_drive_adam():
    params = split(FX["param"])
    adam = AdamOptimizer(params, 0.01)
    for k in range(3):
        adam.update_params(params, grads_at(k))
        assert adam.learning_rate == 0.01
    assert adam.state_dict()["t"] == 3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="lr_schedule"):
        SGDOptimizer([np.zeros(2)], lr_schedule="cosine")
    with pytest.raises(ValueError, match="pair up"):
        AdamOptimizer([np.zeros(2)]).update_params([np.zeros(2)], [])
    with pytest.raises(RuntimeError, match="attach"):
        ReduceLROnPlateau().step(1.0)
    for kw, word in ((dict(mode="up"), "mode"), (dict(threshold_mode="x"), "threshold_mode"),
                     (dict(factor=1.0), "factor"), (dict(patience=-1), "patience"),
                     (dict(cooldown=0.5), "cooldown"), (dict(min_lr=-1), "min_lr")):
        with pytest.raises(ValueError, match=word):
            ReduceLROnPlateau(**kw)
    with pytest.raises(ValueError, match="power_t"):
        InvScaling(float("nan"))
    with pytest.raises(ValueError, match="divisor"):
        Adaptive(divisor=1.0)
