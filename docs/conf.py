"""Sphinx configuration for the numgru documentation.

Build (warnings are errors)::

    pip install ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

The example pages run their code during the build (matplotlib's ``plot`` directive), so the
build needs numgru itself importable; it uses whatever ``import numgru`` finds (the installed
package, or the checkout when run from an editable install).
"""

import os

import matplotlib

matplotlib.use("Agg")

HERE = os.path.dirname(os.path.abspath(__file__))

import numgru  # noqa: E402

project = "numgru"
author = "the numgru developers"
copyright = "2026, the numgru developers"
version = release = numgru.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# performance.md is included by speed.md (which adds the chart), not a page of its own.
exclude_patterns = ["_build", "performance.md"]

# ---- autodoc / autosummary / numpydoc
autosummary_generate = False          # the API page lists its names explicitly (no stub files)
autodoc_member_order = "bysource"
autodoc_typehints = "none"            # numpydoc's Parameters sections are the documentation
numpydoc_show_class_members = False   # members are listed explicitly in api.rst
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ---- MyST (for the Markdown pages docs/engine.md, docs/performance.md, benchmarks/README.md)
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# The included Markdown files are written for GitHub and edited by other people: their links to
# repository files (e.g. ``bench_gru.py``) are not documents of this site, and their heading
# levels need not be consecutive. Neither should fail the build.
suppress_warnings = ["myst.xref_missing", "myst.header"]

# ---- matplotlib plot directive: the examples run during the build
plot_include_source = False          # the example pages ask for it with :include-source:
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_rcparams = {"figure.figsize": (7.0, 3.6), "figure.autolayout": True}
plot_working_directory = HERE          # examples read small data files relative to docs/

# ---- HTML
html_theme = "alabaster"
html_title = f"numgru {release}"
html_static_path = []
html_theme_options = {
    "description": "Multi-layer GRU networks with Numba kernels, exact BPTT and "
                   "scikit-learn estimators",
    "fixed_sidebar": False,
}
