"""The README's Python snippets run as written, without a ConvergenceWarning or a
RuntimeWarning (a new user's first five minutes: issue "Train as well as PyTorch does")."""

import re
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

README = Path(__file__).resolve().parent.parent / "README.md"


def _snippets():
    if not README.exists():
        return []
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if "import" in b and "onnxruntime" not in b]


@pytest.mark.skipif(not README.exists(), reason="no README.md next to the tests")
@pytest.mark.parametrize("code", _snippets(), ids=lambda c: c.split("\n")[0][:40])
def test_readme_snippet_runs_without_training_warnings(code, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", RuntimeWarning)
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
