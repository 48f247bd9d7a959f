"""Run the ``Examples`` sections of numgru's public docstrings as doctests.

The modules are imported by name, so the doctests test whatever ``import numgru`` finds: the
installed package in CI (``.ci/run``), the checkout in an editable install. Each docstring is
one test (named like ``numgru.estimators.GRURegressor.fit``). Options: ELLIPSIS and
NORMALIZE_WHITESPACE; examples print shapes, rounded values or comparisons, never raw floats.
Examples that write files use temporary directories; the working directory is a temporary one
anyway, so a stray file never lands in the repository.
"""

import doctest
import importlib
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

MODULES = [
    "numgru",
    "numgru.gru",
    "numgru.rnn",
    "numgru.estimators",
    "numgru.lm",
    "numgru.io",
    "numgru.plotting",
    "numgru.datasets",
    "numgru.cli",
    "numgru.dask",
    "numgru.preprocessing",
    "numgru._threading",          # numgru.set_threading / get_threading
]

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _collect():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in MODULES:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                tests.append(test)
    return sorted(tests, key=lambda t: t.name)


TESTS = _collect()


def test_public_names_have_examples():
    """Every public name (numgru.__all__ and the public submodules) has an Examples section."""
    import numgru

    names = {t.name for t in TESTS}
    public = [f"{obj.__module__}.{obj.__qualname__}"
              for obj in (getattr(numgru, n) for n in numgru.__all__ if n != "__version__")]
    public += ["numgru.io.save", "numgru.plotting.LossCurveDisplay",
               "numgru.datasets.load_airline_passengers",
               "numgru.datasets.make_sequence_classification",
               "numgru.datasets.load_sonnets",
               "numgru.cli.main", "numgru.cli.info", "numgru.cli.demo",
               "numgru.dask.predict", "numgru.dask.worker_env"]
    missing = [name for name in public if name not in names]
    assert not missing, f"public names without an Examples section: {missing}"


@pytest.mark.parametrize("test", TESTS, ids=[t.name for t in TESTS])
def test_docstring_examples(test, tmp_path, monkeypatch):
    if "matplotlib" in test.docstring:
        pytest.importorskip("matplotlib").use("Agg")
    if "import dask" in test.docstring:
        pytest.importorskip("dask.array", reason='needs dask: pip install "numgru[dask]"')
    monkeypatch.chdir(tmp_path)
    test.globs = dict(test.globs)          # a fresh namespace per run
    output = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with warnings.catch_warnings():
        # fixed small epoch budgets: convergence warnings are expected in examples
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = runner.run(test, out=output.append)
    if "matplotlib" in test.docstring:
        import matplotlib.pyplot as plt

        plt.close("all")
    assert result.failed == 0, "".join(output)
