"""Renamed options (CHANGELOG.md): the new spelling works, and the old one still does, hidden, for one release.

--output/-o is a file, --output-dir a folder, --timestamp-column names the
timestamp column everywhere.  `deepad explain --output-dir` (old: -o) is
tested with the image commands in test_images_cli.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from deepad.cli import app


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(4.0, 1.0, size=(15, 3))]
    y = np.r_[np.zeros(150), np.ones(15)].astype(int)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, X=X, y=y)
    return path


@pytest.mark.parametrize("option", ["--output-dir", "--out", "-o"])
def test_bench_output_dir_and_its_old_names(tiny_npz, tmp_path, option):
    out = tmp_path / "bench"
    # not --quiet: it is the global one now (issue 19), which also silences the note on the old name
    r = CliRunner().invoke(app, ["bench", str(tiny_npz), "-d", "KNN", "--seeds", "1", option, str(out)])
    assert r.exit_code == 0, r.output
    assert "1 runs: 1 ok" in r.output and (out / "results.csv").exists()
    assert ("is now --output-dir" in r.output) == (option != "--output-dir")
    assert not re.search(r"--out(?![-\w])", CliRunner().invoke(app, ["bench", "--help"]).output)  # hidden


def test_bench_needs_an_output_dir_and_one_value(tiny_npz, tmp_path):
    missing = CliRunner().invoke(app, ["bench", str(tiny_npz)])
    assert missing.exit_code == 2 and "missing option --output-dir" in missing.output
    both = CliRunner().invoke(
        app, ["bench", str(tiny_npz), "--output-dir", str(tmp_path / "a"), "--out", str(tmp_path / "b")]
    )
    assert both.exit_code == 2 and "give --output-dir only" in both.output
    same = CliRunner().invoke(
        app,
        [
            "--quiet",
            "bench",
            str(tiny_npz),
            "-d",
            "KNN",
            "--seeds",
            "1",
            "--output-dir",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert same.exit_code == 0, same.output
    assert "is now" not in same.output  # --quiet: no note


@pytest.mark.parametrize("option", ["--timestamp-column", "--timestamp"])
def test_stream_timestamp_column_and_its_old_name(tmp_path, option):
    import deepad.detectors as D

    rng = np.random.default_rng(0)
    D.RollingZScore(window=8).fit(rng.normal(size=(200, 1))).save(tmp_path / "m")  # no column names
    lines = "".join(
        json.dumps({"t": f"2024-01-01 00:{i:02d}", "v": float(v)}) + "\n" for i, v in enumerate(rng.normal(size=20))
    )
    r = CliRunner().invoke(app, ["stream", str(tmp_path / "m"), option, "t"], input=lines)
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [rec["timestamp"] for rec in records] == [f"2024-01-01 00:{i:02d}" for i in range(20)]
    assert ("--timestamp is now --timestamp-column" in r.output) == (option == "--timestamp")
    # without it, t would be read as a value: the model needs one
    bad = CliRunner().invoke(app, ["stream", str(tmp_path / "m")], input=lines)
    assert bad.exit_code == 2 and "non-numeric" in bad.output
