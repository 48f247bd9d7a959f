"""``compare_torch.py --lm``: numgru.GRULanguageModel against PyTorch's word_language_model
``RNNModel`` (GRU) on the CPU, side by side in one process.

Seed configuration (``--lm-config seed``): vocabulary V=10,000, embedding 300, two GRU layers of
512, batch 20, bptt 35, float32; ``--lm-config small`` is V=2,000, embedding 64, 2 x 128 (quick).

1. Both models hold the same weights (torch's ``state_dict()`` loaded into numgru with
   ``level="tokens"``); one training window is checked first: loss, every gradient and the final
   hidden state must agree within a scaled max error of 1e-4, else exit status 1.
2. ``train step``: one window of truncated BPTT as word_language_model's ``train()`` runs it:
   forward from the carried hidden state, cross-entropy (mean over the B*bptt tokens), backward,
   ``clip_grad_norm_(0.25)``, plain SGD update ``p -= lr * grad`` (torch: ``p.add_(grad,
   alpha=-lr)``). numgru: the estimator's own window step (``_window_step``), then what its fit
   does with the gradients: ``numgru._optim.fused_step`` (the norm, clipping, the ``SGDOptimizer``
   update with momentum 0 and the fit's finiteness checks, in two passes per array; torch's
   step checks nothing).
   Interleaved repetitions (numgru, torch, ...), medians.
3. ``generate``: batch 1, one token at a time, as word_language_model's ``generate.py``: torch
   ``model(input, hidden)`` under ``no_grad``, ``exp(log_probs / temperature)``,
   ``torch.multinomial``; numgru ``GRULanguageModel.generate(n, prefix=[token])``. Tokens per
   second, medians over repetitions of ``--lm-tokens`` tokens each (default 200).

Between a torch call and the next numgru call (and back) the script sleeps ``PAUSE`` seconds,
outside the timed regions: torch's OpenMP workers keep spinning for a while after each call and
would otherwise take the cores from whatever runs next.
"""

import statistics
import sys
import time

import numpy as np

CONFIGS = {"seed": dict(V=10000, E=300, H=512, L=2, B=20, T=35),
           "small": dict(V=2000, E=64, H=128, L=2, B=20, T=35)}
TOLERANCE = 1e-4
LR, CLIP = 20.0 / 1000, 0.25
PAUSE = 0.2


def torch_model(torch, V, E, H, L):
    """word_language_model's RNNModel (GRU, no dropout), log-softmax output."""
    nn = torch.nn

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(V, E)
            self.rnn = nn.GRU(E, H, L)
            self.decoder = nn.Linear(H, V)
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

        def forward(self, inp, hidden):
            output, hidden = self.rnn(self.encoder(inp), hidden)
            decoded = self.decoder(output).view(-1, V)
            return torch.nn.functional.log_softmax(decoded, dim=1), hidden

    return RNNModel()


def _scaled_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def run_lm(args, numgru, numba, torch, threads):
    cfg = CONFIGS[args.lm_config]
    V, E, H, L, B, T = (cfg[k] for k in "VEHLBT")
    torch.manual_seed(0)
    tm = torch_model(torch, V, E, H, L).float()
    sd = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    lm = numgru.GRULanguageModel(embedding_dim=E, hidden_layer_sizes=(H,) * L, level="tokens",
                                 dtype="float32").load_state_dict(sd)
    rng = np.random.default_rng(0)
    ids = rng.integers(V, size=(B, T))
    targets = rng.integers(V, size=(B, T))
    lengths = np.full(B, T, np.int64)
    h0 = rng.standard_normal((L, B, H)).astype(np.float32) * 0.1
    params = lm._params()
    crit = torch.nn.CrossEntropyLoss()
    t_ids = torch.from_numpy(ids.T.copy())
    t_tg = torch.from_numpy(targets.T.reshape(-1).copy())

    opt = numgru._optim.SGDOptimizer(params, learning_rate_init=LR, momentum=0.0)

    def numgru_step(h):
        loss, n, sg, hg, h_n = lm._window_step(ids, targets, lengths, h)
        grads = lm._grads(sg, hg)
        numgru._optim.fused_step(opt, params, grads, [False] * len(params), 0.0, 1.0, CLIP)
        return loss, sg, hg, h_n

    def torch_step(h):
        tm.zero_grad(set_to_none=True)
        out, h_n = tm(t_ids, h)
        loss = crit(out, t_tg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), CLIP)
        with torch.no_grad():
            for p in tm.parameters():
                p.add_(p.grad, alpha=-LR)
        return loss, h_n.detach()

    # correctness first (no update: compare raw gradients)
    with numgru._config.compute_threads:
        loss, n, sg, hg, h_n = lm._window_step(ids, targets, lengths, [h[None] for h in h0])
    named = lm._named_grads(sg, hg)
    tm.zero_grad(set_to_none=True)
    out, th_n = tm(t_ids, torch.from_numpy(h0))
    tloss = crit(out, t_tg)
    tloss.backward()
    errs = {"loss": _scaled_err(loss, tloss.item()),
            "h_n": _scaled_err(np.concatenate([np.asarray(x) for x in h_n]), th_n.detach().numpy())}
    for name, p in tm.named_parameters():
        errs["grad " + name] = _scaled_err(named[name], p.grad.numpy())
    worst = max(errs, key=errs.get)
    if not errs[worst] <= TOLERANCE:
        print(f"ERROR: numgru and torch disagree on {worst}: scaled error {errs[worst]:.2e}",
              file=sys.stderr)
        return 1

    repeat = args.repeat or 15
    ng_h = [h[None].copy() for h in h0]
    t_h = torch.from_numpy(h0.copy())
    n_times, t_times = [], []
    with numgru._config.compute_threads:
        numgru_step(ng_h)                               # warm-up (already compiled above)
    torch_step(t_h)
    for _ in range(repeat):
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        with numgru._config.compute_threads:
            _, _, _, h_n = numgru_step(ng_h)
        n_times.append(time.perf_counter() - t0)
        ng_h = [np.asarray(x) for x in h_n]
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        _, t_h = torch_step(t_h)
        t_times.append(time.perf_counter() - t0)

    ntok = args.lm_tokens
    g_n, g_t = [], []

    def torch_generate(n, seed):
        gen = torch.Generator().manual_seed(seed)
        hidden = torch.zeros(L, 1, H)
        inp = torch.randint(V, (1, 1), generator=gen)
        with torch.no_grad():
            for _ in range(n):
                output, hidden = tm(inp, hidden)
                weights = output.squeeze().div(1.0).exp()
                idx = torch.multinomial(weights, 1, generator=gen)[0]
                inp.fill_(idx)

    lm.generate(5, prefix=[1], random_state=0)
    torch_generate(5, 0)
    for r in range(max(3, repeat // 3)):
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        lm.generate(ntok, prefix=[int(r % V)], random_state=r)
        g_n.append(ntok / (time.perf_counter() - t0))
        time.sleep(PAUSE)
        t0 = time.perf_counter()
        torch_generate(ntok, r)
        g_t.append(ntok / (time.perf_counter() - t0))

    n_ms, t_ms = 1e3 * statistics.median(n_times), 1e3 * statistics.median(t_times)
    n_tps, t_tps = statistics.median(g_n), statistics.median(g_t)
    print(f"GRU language model, {args.lm_config} configuration: V={V}, embedding {E}, {L} x {H}, "
          f"batch {B}, bptt {T}, float32, {threads} threads (numba {numba.__version__}, "
          f"torch {torch.__version__})")
    print(f"checked first: worst scaled error vs torch {errs[worst]:.1e} ({worst})")
    rows = [("train step (ms)", f"{n_ms:.1f}", f"{t_ms:.1f}", f"{t_ms / n_ms:.2f}x", repeat),
            ("generate (tokens/s)", f"{n_tps:.0f}", f"{t_tps:.0f}", f"{n_tps / t_tps:.2f}x",
             len(g_n))]
    if args.markdown:
        print("\n| | numgru | torch | speed-up | reps |\n|---|---:|---:|---:|---:|")
        for r in rows:
            print("| " + " | ".join(str(c) for c in r) + " |")
    else:
        print(f"{'':22}{'numgru':>10}{'torch':>10}{'speed-up':>10}{'reps':>6}")
        for r in rows:
            print(f"{r[0]:22}{r[1]:>10}{r[2]:>10}{r[3]:>10}{r[4]:>6}")
    print("speed-up > 1: numgru faster (torch time / numgru time; numgru tokens/s / torch's). "
          "Medians of interleaved repetitions.")
    return 0
