"""``python -m deepad`` runs the same command as the ``deepad`` script and ``python -m deepad.cli``."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_python_m_deepad_lists_the_same_commands_as_deepad_cli():
    top = _run("-m", "deepad", "--help")
    cli = _run("-m", "deepad.cli", "--help")
    assert top.returncode == 0, top.stderr
    assert "Usage: deepad " in top.stdout
    for command in ("train", "score", "serve", "monitor", "stream"):
        assert command in top.stdout
    assert top.stdout.replace("Usage: deepad ", "") == cli.stdout.replace("Usage: python -m deepad.cli ", "")


def test_python_m_deepad_bad_input_exits_2(tmp_path):
    out = _run("-m", "deepad", "score", str(tmp_path / "no-such-model"), str(tmp_path / "no.csv"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
