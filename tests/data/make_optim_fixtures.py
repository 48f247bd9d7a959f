"""Make tests/data/optim_fixtures.npz with torch.optim (run by hand; torch is never a runtime
dependency): ``python tests/data/make_optim_fixtures.py`` with torch 2.13.0 (CPU).

Everything is float64 unless a key ends in ``@f32`` (the same case run in float32). Keys:

- ``configs``: a JSON string describing every case below with numgru's argument names, so the
  test builds the same cases from the fixture itself;
Lists of arrays are stored raveled and concatenated (shapes ``SHAPES`` = (6, 4), (6,), (3, 6));
few keys keep the file small.

- ``param`` the parameters, ``grad.<k>`` their gradients at the five steps ``k``;
- ``opt.<name>.step<k>``: the parameters after ``k`` = 1 and 5 steps of
  ``torch.optim.<Adam|RMSprop|SGD>`` fed ``grad.<k>`` (``foreach=False``; the single-tensor and
  foreach paths do the same arithmetic), ``opt.<name>.lr``: the rate used at each step, where a
  scheduler changes it between steps (``LambdaLR`` for invscaling, ``ReduceLROnPlateau`` on
  ``metric``);
- ``sched.<name>.lr``: the rate after each ``ReduceLROnPlateau.step(metric)`` on a scripted
  metric sequence (``sched.<name>.metric``), or each ``LambdaLR.step()`` for invscaling;
- ``clip.<name>.grad`` the gradients before (``grad.0`` with an inf, a NaN or huge entries),
  ``clip.<name>.max_norm``, and ``clip.<name>.norm`` and ``clip.<name>.clipped``: what
  ``torch.nn.utils.clip_grad_norm_`` returned and left in the gradients;
- ``l2.value`` and ``l2.grad``: ``0.5 * alpha * sum ||w||^2 / n`` over the weight arrays
  and its autograd gradient added to ``grad.0``.
"""

import json
import math
import os

import numpy as np
import torch

SHAPES = [(6, 4), (6,), (3, 6)]
N_STEPS = 5
SAMPLES_PER_EPOCH = 7          # t at step k is k * 7 for the invscaling runs

# numgru argument names; "schedule" changes the rate after every step
OPTIMIZERS = {
    "adam": ("adam", dict(learning_rate_init=1e-3)),
    "adam_eps": ("adam", dict(learning_rate_init=0.05, beta_1=0.8, beta_2=0.99, epsilon=0.3)),
    "rmsprop": ("rmsprop", dict(learning_rate_init=1e-2, rho=0.9, epsilon=1e-8)),
    "rmsprop_eps": ("rmsprop", dict(learning_rate_init=1e-2, rho=0.999, epsilon=0.3)),
    "rmsprop_momentum": ("rmsprop", dict(learning_rate_init=1e-2, rho=0.99, epsilon=1e-8,
                                         momentum=0.9)),
    "sgd": ("sgd", dict(learning_rate_init=0.1, momentum=0.0, nesterov=False)),
    "sgd_momentum": ("sgd", dict(learning_rate_init=0.1, momentum=0.9, nesterov=False)),
    "sgd_nesterov": ("sgd", dict(learning_rate_init=0.1, momentum=0.9, nesterov=True)),
    "sgd_nesterov_invscaling": ("sgd", dict(learning_rate_init=0.1, momentum=0.9, nesterov=True,
                                            lr_schedule="invscaling", power_t=0.5)),
    "sgd_momentum_invscaling": ("sgd", dict(learning_rate_init=0.2, momentum=0.8, nesterov=False,
                                            lr_schedule="invscaling", power_t=0.25)),
    "adam_plateau": ("adam", dict(learning_rate_init=0.01)),
    "rmsprop_plateau": ("rmsprop", dict(learning_rate_init=0.01, rho=0.9, momentum=0.5)),
}
# the plateau runs: ReduceLROnPlateau(mode="min", factor=0.5, patience=0) on this metric after
# every step, so the rate halves after the steps whose metric does not improve
PLATEAU_STEP = dict(mode="min", factor=0.5, patience=0, threshold=1e-4, threshold_mode="rel",
                    cooldown=0, min_lr=0.0)
PLATEAU_STEP_METRIC = [1.0, 1.2, 0.5, 0.5]

METRIC = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.8, 0.8, 0.79999, 0.85, 0.86, 0.87, 0.88, 0.7,
          float("nan"), 0.71, 0.72, 0.73, 0.74, 0.69, 0.75, 0.76, 0.77, 0.78, 0.79, 0.8, 0.81,
          0.82, 0.83, 0.84]
SCHEDULES = {
    "min_rel": dict(mode="min", factor=0.1, patience=2, threshold=1e-4, threshold_mode="rel",
                    cooldown=0, min_lr=0.0),
    "min_abs": dict(mode="min", factor=0.5, patience=1, threshold=0.05, threshold_mode="abs",
                    cooldown=2, min_lr=0.0),
    "max_rel": dict(mode="max", factor=0.3, patience=1, threshold=0.01, threshold_mode="rel",
                    cooldown=1, min_lr=1e-3),
    "max_abs": dict(mode="max", factor=0.5, patience=0, threshold=0.0, threshold_mode="abs",
                    cooldown=0, min_lr=0.02),
    "min_rel_floor": dict(mode="min", factor=0.5, patience=0, threshold=0.0,
                          threshold_mode="rel", cooldown=0, min_lr=0.0999),
}
SCHEDULE_LR0 = 0.1
INVSCALING = {"invscaling_05": 0.5, "invscaling_025": 0.25, "invscaling_1": 1.0}

CLIP = {  # name: (max_norm, gradient modifier)
    "clip": (1.0, None),
    "noclip": (100.0, None),
    "boundary": ("norm", None),          # max_norm = the norm itself: torch scales by ~1-1e-6
    "inf_max_norm": (math.inf, None),
    "inf_grad": (1.0, "inf"),
    "nan_grad": (1.0, "nan"),
    "overflow": (1.0, "huge"),           # finite gradients whose squares overflow
}
L2 = dict(alpha=0.03, n=7.5, is_weight=[True, False, True])


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def torch_optimizer(kind, kw, params):
    lr = kw["learning_rate_init"]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(kw.get("beta_1", 0.9),
                                                      kw.get("beta_2", 0.999)),
                                eps=kw.get("epsilon", 1e-8), foreach=False)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=kw.get("rho", 0.9),
                                   eps=kw.get("epsilon", 1e-8), momentum=kw.get("momentum", 0.0),
                                   centered=False, foreach=False)
    return torch.optim.SGD(params, lr=lr, momentum=kw["momentum"], dampening=0,
                           nesterov=kw["nesterov"], foreach=False)


def run_optimizer(name, kind, kw, p0, grads, dtype, out, suffix):
    params = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in p0]
    opt = torch_optimizer(kind, kw, params)
    sched = None
    if kw.get("lr_schedule") == "invscaling":
        power_t = kw["power_t"]
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 1.0 / (k * SAMPLES_PER_EPOCH + 1) ** power_t)
    elif name.endswith("_plateau"):
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU_STEP)
    lrs = []
    for k in range(N_STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        for p, g in zip(params, grads[k]):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
            sched.step()
        elif sched is not None and k < len(PLATEAU_STEP_METRIC):
            sched.step(PLATEAU_STEP_METRIC[k])
        if k + 1 in (1, N_STEPS):
            out[f"opt.{name}.step{k + 1}{suffix}"] = flat(p.detach().numpy() for p in params)
    out[f"opt.{name}.lr{suffix}"] = np.array(lrs)


def run_plateau(kw):
    opt = torch.optim.SGD([torch.zeros(1, dtype=torch.float64)], lr=SCHEDULE_LR0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    lrs = []
    for m in METRIC:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    return np.array(lrs)


def run_invscaling(power_t):
    opt = torch.optim.SGD([torch.zeros(1, dtype=torch.float64)], lr=SCHEDULE_LR0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 1.0 / (k * SAMPLES_PER_EPOCH + 1) ** power_t)
    lrs = []
    for _ in range(10):
        opt.step()             # no gradients: a no-op that keeps LambdaLR from warning
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return np.array(lrs)


def clip_grads(name, max_norm, modifier, base, dtype, out, suffix):
    grads = [g.copy() for g in base]
    if modifier == "inf":
        grads[2][1, 3] = np.inf
    elif modifier == "nan":
        grads[0][2, 1] = np.nan
    elif modifier == "huge":
        grads[1][:] = 1e200 if dtype == torch.float64 else 1e30
    params = [torch.zeros(g.shape, dtype=dtype, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g, dtype=dtype)
    if max_norm == "norm":
        max_norm = float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
    out[f"clip.{name}.grad{suffix}"] = flat(grads).astype(params[0].grad.numpy().dtype)
    out[f"clip.{name}.clipped{suffix}"] = flat(p.grad.numpy() for p in params)
    out[f"clip.{name}.norm{suffix}"] = np.array(float(norm))
    out[f"clip.{name}.max_norm{suffix}"] = np.array(float(max_norm))


def main():
    rng = np.random.default_rng(20261203)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    # gradients of mixed scales so that epsilon and the clipping threshold both matter
    grads = [[rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 0.5, size=s) for s in SHAPES]
             for _ in range(N_STEPS)]
    out = {}
    out["param"] = flat(p0)
    for k, gk in enumerate(grads):
        out[f"grad.{k}"] = flat(gk)
    for dtype, suffix in ((torch.float64, ""), (torch.float32, "@f32")):
        for name, (kind, kw) in OPTIMIZERS.items():
            run_optimizer(name, kind, kw, p0, grads, dtype, out, suffix)
        for name, (max_norm, modifier) in CLIP.items():
            clip_grads(name, max_norm, modifier, grads[0], dtype, out, suffix)
    for name, kw in SCHEDULES.items():
        out[f"sched.{name}.lr"] = run_plateau(kw)
    out["sched.metric"] = np.array(METRIC)
    for name, power_t in INVSCALING.items():
        out[f"sched.{name}.lr"] = run_invscaling(power_t)

    params = [torch.tensor(p, requires_grad=True) for p in p0]
    value = 0.5 * L2["alpha"] * sum((p * p).sum() for p, w in zip(params, L2["is_weight"])
                                    if w) / L2["n"]
    value.backward()
    out["l2.value"] = np.array(value.item())
    out["l2.grad"] = flat(g + (p.grad.numpy() if p.grad is not None else 0.0)
                          for p, g in zip(params, grads[0]))

    out["configs"] = np.array(json.dumps({
        "optimizers": OPTIMIZERS, "plateau_step": PLATEAU_STEP,
        "plateau_step_metric": PLATEAU_STEP_METRIC, "schedules": SCHEDULES,
        "schedule_lr0": SCHEDULE_LR0, "invscaling": INVSCALING,
        "samples_per_epoch": SAMPLES_PER_EPOCH, "n_steps": N_STEPS, "clip": list(CLIP),
        "l2": L2, "torch": torch.__version__}))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_fixtures.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path}: {len(out)} arrays, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
