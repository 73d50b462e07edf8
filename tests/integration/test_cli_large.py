"""Large inputs (issue 19, item 6): metadata-only ``deepad info``, --max-train-rows, progress on long steps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import deepad
from deepad.cli import app
from deepad.persistence.summary import read_summary

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FIXTURES = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
SRC = Path(deepad.__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- deepad info reads metadata only
@pytest.mark.parametrize("name", FIXTURES)
def test_info_states_what_the_loaded_model_holds(name):
    """Every model the old code saved: info's counts are those of the model deepad.load gives."""
    result = run("info", MODELS / name)
    assert result.exit_code == 0, result.output
    model = deepad.load(MODELS / name)
    n = len(model.decision_scores_)
    flagged = int(model.labels_.sum())
    assert f"flags {flagged:,} of {n:,} training rows ({flagged / n:.2%})" in result.output
    assert f"Threshold:  {model.threshold_:.6g} " in result.output
    summary = read_summary(MODELS / name)
    assert (summary.training_rows, summary.flagged) == (n, flagged)
    if hasattr(model, "schema_"):  # the column summary read from the JSON is the Schema's own
        assert "Columns:\n  " + model.schema_.summary().replace("\n", "\n  ") in result.output
    if getattr(model, "calibration_scores_", None) is not None:
        assert f"against {len(model.calibration_scores_):,} held-out rows" in result.output


def test_info_never_reads_the_weights(tmp_path):
    """The weights' bytes are overwritten (header kept): info still works, loading fails."""
    model = tmp_path / "m"
    shutil.copytree(MODELS / "TabularDetector", model)
    for file in model.rglob("tensors.safetensors"):
        data = bytearray(file.read_bytes())
        size = int.from_bytes(data[:8], "little")
        data[8 + size :] = b"\xff" * (len(data) - 8 - size)
        file.write_bytes(bytes(data))
    shutil.rmtree(model / "detector_" / "deep_")  # a member the wrapped detector needs
    result = run("info", model)
    assert result.exit_code == 0, result.output
    assert "LocalGlobalEnsemble on a table" in result.output
    with pytest.raises(deepad.persistence.ModelFormatError):
        deepad.load(model)


def test_info_imports_neither_torch_nor_scikit_learn():
    code = (
        "import sys; from typer.testing import CliRunner; from deepad.cli import app; "
        f"r = CliRunner().invoke(app, ['info', {str(MODELS / 'AutoEncoder')!r}]); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy.stats', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_info_on_a_damaged_model_is_a_one_line_error(tmp_path):
    model = tmp_path / "m"
    shutil.copytree(MODELS / "KNN", model)
    (model / "tensors.safetensors").write_bytes(b"\x00" * 4)
    result = run("info", model)
    assert result.exit_code == 2 and "tensors.safetensors is damaged" in result.output
    assert run("info", tmp_path / "nothing").exit_code == 2


def test_info_of_a_new_model_counts_from_the_stored_rule(tmp_path):
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(500, 3)), columns=list("abc"))
    X.to_csv(tmp_path / "t.csv", index=False)
    out = run("train", tmp_path / "t.csv", "-o", tmp_path / "m", "-d", "KNN", "-c", "0.05")
    assert out.exit_code == 0, out.output
    assert "threshold" in out.output and "flags 25 of 500 training rows (5.00%)" in out.output
    assert "the 95th percentile of the leave-one-out training scores" in out.output
    info = run("info", tmp_path / "m")
    assert "flags 25 of 500 training rows (5.00%)" in info.output
    assert re.search(r"Rule: .*95th percentile of the leave-one-out training scores.*it flags 25 of 500", info.output)
