"""The documentation builds without warnings (``sphinx-build -W``), examples included.

The build runs the example pages (matplotlib's plot directive) and renders every docstring
through numpydoc, so a change that breaks an example, a docstring's markup or a cross-reference
fails here. Skipped when Sphinx and its extensions are not installed (``pip install ".[test]"``
installs them) or when the checkout's ``docs/`` is not next to the tests.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.skipif(not (DOCS / "conf.py").exists(), reason="no docs/ next to the tests")
def test_sphinx_build_without_warnings(tmp_path):
    for module in ("sphinx", "numpydoc", "myst_parser", "matplotlib"):
        pytest.importorskip(module, reason=f"{module} is needed to build the docs")
    env = dict(os.environ, MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    # cwd: not the checkout, so that ``python -m`` does not put the source tree on sys.path and
    # the build documents (and runs) the numgru that the tests import
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                          cwd=tmp_path)
    assert proc.returncode == 0, (
        f"sphinx-build failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    html = tmp_path / "html"
    for page in ("index", "getting_started", "user_guide", "math", "api", "speed",
                 "benchmarking", "changelog", "engine", "architecture", "scaling",
                 "language_models", "training", "onnx", "aeon",
                 "examples/forecasting",
                 "examples/classification",
                 "examples/pytorch_import"):
        assert (html / f"{page}.html").exists(), page
    # the examples ran and drew their figures
    images = {p.name for p in (html / "_images").glob("*.png")}
    for name in ("forecast_airline.png", "classify_sequences.png", "pytorch_import.png",
                 "architecture_diagram.png"):
        assert name in images, sorted(images)
