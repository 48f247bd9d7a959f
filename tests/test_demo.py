"""``numgru demo``: the GRU beats the seasonal-naive forecast and the majority class, and the
language model beats the unigram model."""

import importlib.util
import io
import re

from numgru import cli

NUM = r"([0-9]+(?:\.[0-9]+)?)"


def test_demo_beats_baselines(tmp_path):
    buf = io.StringIO()
    plot_path = tmp_path / "loss.png"
    assert cli.demo(out=buf, plot_path=str(plot_path)) == 0
    text = buf.getvalue()

    m = re.search(rf"MAPE\s+numgru GRU\s+{NUM} %\s+seasonal naive\s+{NUM} %\s+last value\s+{NUM} %",
                  text)
    assert m, text
    mape_gru, mape_naive, mape_last = map(float, m.groups())
    assert mape_gru < mape_naive, text
    assert mape_gru < mape_last, text

    m = re.search(rf"test accuracy\s+numgru GRU\s+{NUM}\s+majority class\s+{NUM}", text)
    assert m, text
    acc, majority = map(float, m.groups())
    assert 0.0 <= majority <= 1.0 and 0.0 <= acc <= 1.0
    assert acc > majority, text

    m = re.search(rf"held-out perplexity.*numgru GRU\s+{NUM}\s+unigram\s+{NUM}", text)
    assert m, text
    ppl, unigram = map(float, m.groups())
    assert 1.0 < ppl < unigram, text
    assert "sample: Shall I " in text

    assert "numgru beat every baseline." in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert plot_path.is_file() and plot_path.stat().st_size > 0
        assert f"loss curves saved to {plot_path}" in text
    else:
        assert "matplotlib is not installed" in text
        assert not plot_path.exists()
