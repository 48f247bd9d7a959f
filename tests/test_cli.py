"""The command line: ``numgru info`` and ``numgru demo`` run and print what they promise."""

import io

from numgru import cli


def test_info_prints_versions_threading_cuda_and_cache():
    buf = io.StringIO()
    cli.info(out=buf)
    text = buf.getvalue()
    for key in ("numgru", "numba", "numba threading layer", "numba threads", "cuda available",
                "compile cache", "compile ahead"):
        assert key in text, key


def test_info_says_when_compile_ahead_is_off(monkeypatch):
    monkeypatch.setenv("NUMGRU_COMPILE_AHEAD", "0")
    buf = io.StringIO()
    cli.info(out=buf)
    line, = [ln for ln in buf.getvalue().splitlines() if ln.startswith("compile ahead")]
    assert "off" in line


def test_main_rejects_unknown_command(capsys):
    import pytest

    with pytest.raises(SystemExit):
        cli.main(["nonsense"])
