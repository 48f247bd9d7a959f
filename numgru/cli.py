"""Command line: ``numgru demo`` and ``numgru info``."""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


def _cuda_status():
    """(available, description) without ever raising: CUDA is optional."""
    try:
        from . import _cuda, _cuda_launch

        reason = _cuda.unavailable_reason()
        if reason is not None:
            return False, reason
        if _cuda.simulator_enabled():
            return True, "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1), no GPU"
        name = _cuda_launch.load().get_current_device().name
        return True, name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # the CUDA target fails to load
        return False, f"CUDA target unavailable ({type(exc).__name__}: {exc})"


def _cache_dir():
    from . import _cpu, _numba_internals

    try:
        path = _cpu.compile_cache_dir()
    except _numba_internals.InternalsChanged as exc:
        return f"unknown ({exc})"
    return path if path is not None else "off (NUMGRU_NO_CACHE or the reference product)"


def _runtime_status():
    """The task runtime in use and why, without ever raising."""
    from . import _threading

    try:
        info = _threading.get_threading()
    except Exception as exc:  # noqa: BLE001 -- info reports, it does not fail
        return f"unavailable ({type(exc).__name__}: {exc})"
    return f"{info['runtime']} ({info['reason']})"


def _kernels_cached():
    """Whether Numba's on-disk cache holds the float32 GRU forward and backward kernels that
    ``numgru demo`` runs (then it starts warm, without the ~10 s of compiling). False when
    unsure: caching off, or Numba's cache internals not as expected."""
    try:
        from . import _cpu

        return _cpu.gru_kernels_cached("float32")
    except Exception:
        return False


def _compile_ahead_status():
    """Whether a cold first fit may compile its backward kernel in a helper process."""
    import numba

    from . import _compile_ahead

    if _compile_ahead.enabled(numba.get_num_threads()):
        return "on (a helper process at cold first fits, when a CPU is idle)"
    return "off (needs the cache, 2 threads and CPUs, NUMGRU_COMPILE_AHEAD not 0)"


def info(out=None):
    """Print versions, the task runtime, Numba's threading layer and thread count, CUDA and the
    compile cache.

    This is ``numgru info``. It runs one tiny forward pass first, so that Numba has loaded (and
    can report) its threading layer. "task runtime" is the runtime that runs numgru's CPU
    kernels' tasks ("native" or "numba", see :func:`numgru.set_threading`) and why it is the one
    in use.

    Parameters
    ----------
    out : file-like, default=None (sys.stdout at call time)
        Where to write the table (one "name  value" row per line).

    Returns
    -------
    None

    Examples
    --------
    >>> import io
    >>> from numgru.cli import info
    >>> buf = io.StringIO()
    >>> info(out=buf)
    >>> print(buf.getvalue())
    numgru                 ...
    python                 ...
    numba threading layer  ...
    numba threads          ...
    cuda available         ...
    compile cache          ...
    compile ahead          ...
    """
    import numba
    import scipy
    import sklearn

    import numgru

    out = sys.stdout if out is None else out
    # a tiny parallel call so that Numba loads (and reports) its threading layer
    numgru.GRU(1, 1).forward(np.zeros((1, 1, 1), dtype=np.float32))
    cuda_ok, cuda_msg = _cuda_status()
    rows = [
        ("numgru", numgru.__version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("numba", numba.__version__),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("task runtime", _runtime_status()),
        ("numba threading layer", numba.threading_layer()),
        ("numba threads", str(numba.get_num_threads())),
        ("cpu count", str(os.cpu_count())),
        ("cuda available", f"{'yes' if cuda_ok else 'no'} ({cuda_msg})"),
        ("compile cache", _cache_dir()),
        ("compile ahead", _compile_ahead_status()),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", file=out)


def _forecast_airline(out, verbose):
    """Forecast 1960 of the airline series from 1949-1959; compare with naive forecasts."""
    from numgru import GRURegressor
    from numgru.datasets import load_airline_passengers

    months, y = load_airline_passengers()
    logy = np.log(y)
    s = logy[12:] - logy[:-12]                    # seasonal log-difference: yearly growth rate
    horizon, window = 12, 24
    train = s[: len(s) - horizon]
    mu, sd = train.mean(), train.std()
    z = (train - mu) / sd
    X = np.stack([z[i:i + window] for i in range(len(z) - window)])
    target = z[window:]
    reg = GRURegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=150,
                       batch_size=32, random_state=0, verbose=verbose, n_iter_no_change=1000,
                       dtype="float32")
    t0 = time.perf_counter()
    reg.fit(X, target)
    fit_time = time.perf_counter() - t0
    hist = list(z)
    for _ in range(horizon):                      # recursive multi-step forecast
        hist.append(float(reg.predict(np.array([hist[-window:]]))[0]))
    s_hat = np.array(hist[-horizon:]) * sd + mu
    n_train = len(y) - horizon
    pred = np.exp(logy[n_train - 12:n_train] + s_hat)
    actual = y[n_train:]
    seasonal_naive = y[n_train - 12:n_train]
    last_value = np.full(horizon, y[n_train - 1])

    def mape(p):
        return 100 * np.mean(np.abs(p - actual) / actual)

    print(f"\nForecasting {months[n_train]}..{months[-1]} (airline passengers, Box-Jenkins series G)"
          f" from 1949-1959: GRU fit in {fit_time:.1f} s, {reg.n_iter_} epochs", file=out)
    print(f"  MAPE  numgru GRU {mape(pred):5.1f} %   seasonal naive {mape(seasonal_naive):5.1f} %"
          f"   last value {mape(last_value):5.1f} %", file=out)
    return reg, mape(pred), mape(seasonal_naive)


def _classify_sequences(out, verbose):
    """Variable-length multivariate sequence classification against the majority class."""
    from numgru import GRUClassifier
    from numgru.datasets import make_sequence_classification

    X, y = make_sequence_classification(n_samples=500, random_state=0)
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    clf = GRUClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=25,
                        batch_size=32, random_state=0, verbose=verbose, dtype="float32")
    t0 = time.perf_counter()
    clf.fit(Xtr, ytr)
    fit_time = time.perf_counter() - t0
    acc = clf.score(Xte, yte)
    majority = np.mean(yte == np.bincount(ytr).argmax())
    print(f"\nClassifying 500 sequences of length 20-80 with 3 features into 3 classes: "
          f"fit in {fit_time:.1f} s, {clf.n_iter_} epochs", file=out)
    print(f"  test accuracy  numgru GRU {acc:.3f}   majority class {majority:.3f}", file=out)
    return clf, acc, majority


def _language_model(out, verbose):
    """A character-level language model of Shakespeare's sonnets against the unigram model."""
    from numgru import GRULanguageModel
    from numgru.datasets import load_sonnets

    sonnets = load_sonnets()
    train, test = sonnets[:-2], sonnets[-2:]
    lm = GRULanguageModel(embedding_dim=32, hidden_layer_sizes=(128,), level="char", bptt=40,
                          batch_size=32, learning_rate_init=0.01, clip_grad_norm=1.0,
                          max_iter=20, n_iter_no_change=20, random_state=0, verbose=verbose)
    t0 = time.perf_counter()
    lm.fit(train)
    fit_time = time.perf_counter() - t0
    ppl, unigram = lm.perplexity(test), lm.unigram_perplexity(test)
    sample = lm.generate(160, prefix="Shall I ", temperature=0.6, random_state=0)
    print(f"\nCharacter-level language model of 18 Shakespeare sonnets ({sum(map(len, train))} "
          f"characters, {len(lm.vocabulary_)} symbols): fit in {fit_time:.1f} s, {lm.n_iter_} "
          f"epochs", file=out)
    print(f"  held-out perplexity (sonnets 146-147)  numgru GRU {ppl:.2f}   unigram {unigram:.2f}",
          file=out)
    print("  sample: " + ("Shall I " + sample).replace("\n", "\n          "), file=out)
    return lm, ppl, unigram


def _plot(models, path, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib is not installed: no loss-curve plot)", file=out)
        return
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.5))
    for ax, (title, model) in zip(np.atleast_1d(axes), models):
        ax.plot(np.arange(1, len(model.loss_curve_) + 1), model.loss_curve_)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nloss curves saved to {path}", file=out)


def demo(out=None, plot_path="numgru_demo_loss.png"):
    """The main job: a forecast, a classification and a language model on small data, each
    against a baseline.

    This is ``numgru demo``. It forecasts the last year of the airline-passengers series with a
    :class:`~numgru.GRURegressor` (against the seasonal-naive and last-value forecasts),
    classifies 100 held-out variable-length sequences with a :class:`~numgru.GRUClassifier`
    trained on 400 (against the majority class), trains a character-level
    :class:`~numgru.GRULanguageModel` on 18 of Shakespeare's sonnets (shipped with the package,
    public domain) and reports its perplexity on the other two against the unigram model's,
    with a generated sample, and saves the loss curves to ``plot_path`` when matplotlib is
    installed. About 5 s on two cores once the kernels are
    compiled (the first run compiles them: about 10 s more, and says so in its first line).

    Parameters
    ----------
    out : file-like, default=None (sys.stdout at call time)
        Where to write the report.
    plot_path : str or path-like, default="numgru_demo_loss.png"
        Where to save the loss curves (PNG).

    Returns
    -------
    exit_code : int
        0 when numgru beat every baseline, 1 otherwise.

    Examples
    --------
    The example is not run by the doctests: ``tests/test_demo.py`` runs exactly this call and
    checks its numbers.

    >>> import io, os, tempfile
    >>> from numgru.cli import demo
    >>> buf = io.StringIO()
    >>> with tempfile.TemporaryDirectory() as tmp:            # doctest: +SKIP
    ...     code = demo(out=buf, plot_path=os.path.join(tmp, "loss.png"))
    >>> print(buf.getvalue())                                  # doctest: +SKIP
    numgru 0.1.0 demo
    <BLANKLINE>
    Forecasting 1960-01..1960-12 (airline passengers, Box-Jenkins series G) from 1949-1959: ...
      MAPE  numgru GRU   6.4 %   seasonal naive  10.0 %   last value  14.3 %
    <BLANKLINE>
    Classifying 500 sequences of length 20-80 with 3 features into 3 classes: ...
      test accuracy  numgru GRU 0.980   majority class 0.390
    <BLANKLINE>
    Character-level language model of 18 Shakespeare sonnets (...
      held-out perplexity (sonnets 146-147)  numgru GRU ...   unigram ...
      sample: Shall I ...
    ...
    numgru beat every baseline.
    """
    import numgru

    out = sys.stdout if out is None else out
    cold = "" if _kernels_cached() else " (a first run compiles the kernels: ~10 s more)"
    print(f"numgru {numgru.__version__} demo{cold}", file=out)
    verbose = 2 if out is sys.stdout and sys.stdout.isatty() else 0
    with warnings.catch_warnings():  # fixed epoch budgets: convergence warnings are expected
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        reg, mape_gru, mape_naive = _forecast_airline(out, verbose)
        clf, acc, majority = _classify_sequences(out, verbose)
        lm, ppl, unigram = _language_model(out, verbose)
    _plot([("airline forecast (GRURegressor)", reg),
           ("sequence classification (GRUClassifier)", clf),
           ("sonnets, per character (GRULanguageModel)", lm)], plot_path, out)
    ok = mape_gru < mape_naive and acc > majority and ppl < unigram
    print("\n" + ("numgru beat every baseline." if ok else "numgru did NOT beat the baselines."),
          file=out)
    return 0 if ok else 1


# ``numgru --help``'s text: plain, not the module docstring's reStructuredText
_DESCRIPTION = ("numgru: multi-layer GRU networks with Numba kernels and scikit-learn estimators. "
                "'numgru demo' trains on a real series, a synthetic task and a text against "
                "baselines; 'numgru info' prints versions, threading, CUDA and cache "
                "information. Also runs as 'python -m numgru'.")


def main(argv=None):
    """Entry point of the ``numgru`` command: ``numgru demo`` or ``numgru info``.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        0 on success; ``numgru demo`` returns 1 when numgru did not beat its baselines.

    Raises
    ------
    SystemExit
        For ``--help`` and for an unknown or missing command (argparse's usage error, exit
        status 2).

    Examples
    --------
    >>> from numgru.cli import main
    >>> main(["--help"])
    Traceback (most recent call last):
    ...
    SystemExit: 0
    >>> main(["info"])            # prints the table of numgru.cli.info, then returns 0
    numgru ...
    0
    """
    parser = argparse.ArgumentParser(prog="numgru", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="train on a real series, a synthetic task and a text, against "
                   "baselines")
    sub.add_parser("info", help="print versions, threading, CUDA and cache information")
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
        return 0
    return demo()


if __name__ == "__main__":
    sys.exit(main())
