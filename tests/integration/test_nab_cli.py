"""`deepad bench --nab` on a tiny corpus."""

from __future__ import annotations

from nab_data import _tiny_corpus


def test_cli_bench_nab(tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app

    root = _tiny_corpus(tmp_path / "nab")
    r = CliRunner().invoke(
        app,
        [
            "bench",
            "--nab",
            str(root),
            "-d",
            'RollingZScore:{"window":32,"diff":false}',
            "-o",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Causal protocol" in r.output and "NAB protocol" in r.output
    bad = CliRunner().invoke(app, ["bench", "--nab", str(root), "-d", "NoSuchDetector", "-o", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown detector" in bad.output
    none = CliRunner().invoke(app, ["bench", "-o", str(tmp_path / "x")])
    assert none.exit_code != 0 and "--nab" in none.output
