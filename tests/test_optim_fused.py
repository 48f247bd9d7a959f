"""The training loop's fused step (numgru._optim.fused_step, numgru._optim_kernels): pinned to the
torch.optim fixtures of tests/data/optim_fixtures.npz (made by make_optim_fixtures.py), and bit for
bit equal to the NumPy optimizers given the same clipped gradients; its finiteness checks, its
fallback for arrays it does not take, and its cached views across pickling and state loads."""

import math
import pickle

import numpy as np
import pytest

from numgru import _optim_kernels
from numgru._optim import (AdamOptimizer, ReduceLROnPlateau, RMSpropOptimizer, SGDOptimizer,
                           fused_step, l2_penalty)
from test_optim import CFG, FX, KINDS, SUFFIX, assert_params, grads_at, split

SETUPS = {
    "adam": (AdamOptimizer, dict(learning_rate_init=0.01, beta_1=0.8, beta_2=0.99,
                                 epsilon=1e-6)),
    "rmsprop": (RMSpropOptimizer, dict(learning_rate_init=0.01, rho=0.9, epsilon=1e-6)),
    "rmsprop_momentum": (RMSpropOptimizer, dict(learning_rate_init=0.01, momentum=0.7)),
    "sgd": (SGDOptimizer, dict(learning_rate_init=0.1, momentum=0.0)),
    "sgd_momentum": (SGDOptimizer, dict(learning_rate_init=0.1, momentum=0.9, nesterov=False)),
    "sgd_nesterov": (SGDOptimizer, dict(learning_rate_init=0.1, momentum=0.9, nesterov=True)),
}
SHAPES = [(5, 7), (7,), (2, 3, 4), (1,)]


def _problem(dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES] for _ in range(4)]
    return params, grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CFG["optimizers"]))
def test_fused_steps_match_torch(name, dtype):
    """The fixtures' optimizer runs (each torch.optim algorithm, schedules between steps)
    replayed through the fused kernels: no L2, no clipping."""
    kind, kw = CFG["optimizers"][name]
    params = split(FX["param"], dtype)
    opt = KINDS[kind](params, **kw)
    plateau = (ReduceLROnPlateau(**CFG["plateau_step"]).attach(opt)
               if name.endswith("_plateau") else None)
    for k in range(CFG["n_steps"]):
        assert fused_step(opt, params, grads_at(k, dtype), [True] * 3, 0.0, 1.0, None) == 0.0
        opt.iteration_ends((k + 1) * CFG["samples_per_epoch"])
        if plateau is not None and k < len(CFG["plateau_step_metric"]):
            plateau.step(CFG["plateau_step_metric"][k])
        if k == 0:
            assert_params(params, FX[f"opt.{name}.step1{SUFFIX[dtype]}"], dtype)
    assert_params(params, FX[f"opt.{name}.step5{SUFFIX[dtype]}"], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["clip", "boundary"])
def test_fused_clipping_matches_torch(name, dtype):
    """Plain SGD at rate 1 from zero weights moves them by exactly minus the clipped
    gradients: torch's clip_grad_norm_ output."""
    sfx = SUFFIX[dtype]
    grads = split(FX[f"clip.{name}.grad{sfx}"], dtype)
    params = [np.zeros_like(g) for g in grads]
    opt = SGDOptimizer(params, 1.0, momentum=0.0)
    fused_step(opt, params, grads, [False] * 3, 0.0, 1.0, float(FX[f"clip.{name}.max_norm{sfx}"]))
    assert_params([-p for p in params], FX[f"clip.{name}.clipped{sfx}"], dtype)


def test_fused_l2_matches_torch_autograd():
    """The L2 value, and its gradient added to the gradients in place (biases untouched)."""
    l2 = CFG["l2"]
    params, grads = split(FX["param"]), grads_at(0)
    frozen = [p.copy() for p in params]
    opt = SGDOptimizer(params, 0.0, momentum=0.0)                  # rate 0: weights stay
    value = fused_step(opt, params, grads, l2["is_weight"], l2["alpha"], l2["n"], None)
    assert value == pytest.approx(float(FX["l2.value"]), rel=1e-12)
    assert_params(grads, FX["l2.grad"], "float64")
    np.testing.assert_array_equal(grads[1], grads_at(0)[1])
    for p, f in zip(params, frozen):
        np.testing.assert_array_equal(p, f)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(SETUPS))
@pytest.mark.parametrize("alpha, max_norm", [(0.0, None), (0.3, None), (0.3, 0.5), (0.0, 1e6)])
def test_fused_step_is_the_numpy_step_bit_for_bit(name, dtype, alpha, max_norm):
    """Four steps of each optimizer: the fused path against l2_penalty + scaling by the same
    factor + update_params (the factor from the float64 norm, which a NumPy sum pins)."""
    kind, kw = SETUPS[name]
    params, steps = _problem(dtype, scale=3.0)
    ref = [p.copy() for p in params]
    is_weight = [True, False, True, False]
    opt, opt_ref = kind(params, **kw), kind(ref, **kw)
    n = 4.0
    for grads in steps:
        g_ref = [g.copy() for g in grads]
        value = fused_step(opt, params, [g.copy() for g in grads], is_weight, alpha, n, max_norm)
        want_value = l2_penalty(ref, g_ref, is_weight, alpha, n)
        assert value == pytest.approx(want_value, rel=1e-6 if dtype == "float32" else 1e-12)
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in g_ref))
        # the fused sum's own rounding (its partial sums are in another order than np.sum's,
        # which moves a float64 factor by an ulp): the same factor on both sides
        sq = sum(_optim_kernels.grad_stats(g.reshape(-1).copy(), g.reshape(-1).copy(), False,
                                           g.dtype.type(0))[1] for g in g_ref)
        assert math.sqrt(sq) == pytest.approx(norm, rel=1e-14)
        norm = math.sqrt(sq)
        if max_norm is not None and max_norm / (norm + 1e-6) < 1:
            for g in g_ref:
                g *= g.dtype.type(max_norm / (norm + 1e-6))
        opt_ref.update_params(ref, g_ref)
        for p, r in zip(params, ref):
            assert p.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(p, r)
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(value, opt_ref.state_dict()[key])


def test_clipping_is_active_in_the_bitwise_test():
    """The (0.3, 0.5) case above really scales (its norm is far above 0.5), and a factor
    computed differently (float32 sums) would not pass it bit for bit."""
    params, steps = _problem("float32", scale=3.0)
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in steps[0]))
    assert norm > 5


@pytest.mark.parametrize("where", ["grad", "param"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_gradients_and_weights_raise(where, bad):
    params, steps = _problem("float32")
    grads = steps[0]
    opt = AdamOptimizer(params, 0.01)
    if where == "grad":
        grads[2].flat[5] = bad
        before = [p.copy() for p in params]
        with pytest.raises(FloatingPointError):
            fused_step(opt, params, grads, [True] * 4, 1e-4, 4.0, 1.0)
        for p, b in zip(params, before):
            np.testing.assert_array_equal(p, b)                    # nothing was updated
    else:
        params[3][0] = bad                       # a weight already broken: the update keeps it
        with pytest.raises(FloatingPointError):
            fused_step(opt, params, grads, [False] * 4, 0.0, 4.0, None)


def test_overflowing_update_raises():
    """A finite gradient that drives a float32 weight past the largest float32."""
    params = [np.array([3e38], np.float32)]
    opt = SGDOptimizer(params, 1.0, momentum=0.0)
    with pytest.raises(FloatingPointError):
        fused_step(opt, params, [np.array([-3e38], np.float32)], [False], 0.0, 1.0, None)


def test_arrays_without_flat_views_take_the_numpy_path():
    """A Fortran-ordered parameter (a reshape would copy, and the update would be lost): the
    fused path declines and the NumPy path does the same step."""
    params, steps = _problem("float64")
    params[0] = np.asfortranarray(params[0])
    ref = [p.copy() for p in params]
    opt, opt_ref = AdamOptimizer(params, 0.01), AdamOptimizer(ref, 0.01)
    assert fused_step(opt, params, steps[0], [False] * 4, 0.0, 1.0, None) is None
    from numgru import _training
    problem = _training.Problem()
    problem.params, problem.is_weight = params, [False] * 4
    problem.step = lambda batch: (1.0, [g.copy() for g in steps[0]], 1, 1.0)
    settings = _training.Settings(max_iter=1, tol=0.0, n_iter_no_change=1, solver="adam",
                                  learning_rate_init=0.01)
    _training._step(problem, opt, settings, None, params)
    opt_ref.update_params(ref, [g.copy() for g in steps[0]])
    for p, r in zip(params, ref):
        np.testing.assert_array_equal(p, r)
    assert opt.t == 1


def test_views_follow_pickles_and_state_loads():
    """The optimizer keeps flat views of its buffers between steps: after a pickle round trip
    (views are not pickled) and a load_state_dict, steps still update the real buffers."""
    params, steps = _problem("float32")
    opt = AdamOptimizer(params, 0.01)
    fused_step(opt, params, steps[0], [False] * 4, 0.0, 1.0, None)
    assert "_view_cache" not in pickle.loads(pickle.dumps(opt)).__dict__
    twin_params = [p.copy() for p in params]
    twin = pickle.loads(pickle.dumps(opt))
    ref_params = [p.copy() for p in params]
    ref = AdamOptimizer(ref_params, 0.01)
    ref.load_state_dict(opt.state_dict())
    for grads in steps[1:]:
        fused_step(twin, twin_params, [g.copy() for g in grads], [False] * 4, 0.0, 1.0, None)
        ref.update_params(ref_params, [g.copy() for g in grads])
    for a, b in zip(twin_params, ref_params):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(twin.exp_avg_sq[0], ref.exp_avg_sq[0])
    assert np.any(twin.exp_avg[0])


def test_bad_l2_input_is_named():
    params, steps = _problem("float64")
    opt = AdamOptimizer(params)
    with pytest.raises(ValueError, match="summed sample weight"):
        fused_step(opt, params, steps[0], [True] * 4, 0.1, 0.0, None)
    with pytest.raises(ValueError, match="pair up"):
        fused_step(opt, params, steps[0], [True] * 3, 0.1, 1.0, None)
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            fused_step(opt, params, steps[0], [True] * 4, bad, 1.0, None)
