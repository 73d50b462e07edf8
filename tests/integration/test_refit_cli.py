"""`deepad train DATA --warm-start MODEL_DIR [--retain N]` (issue 20): a saved model trained again on recent rows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepad.cli import app

from data_fraud import make_fraud_frame


def run(*args):
    result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.mark.slow
def test_warm_start_and_retain_from_the_command_line(tmp_path):
    make_fraud_frame(1200, seed=1).to_csv(tmp_path / "train.csv", index=False)
    recent = make_fraud_frame(900, seed=2, start_index=10_000)
    recent["amount"] = recent["amount"] * 1.5  # normal moved
    recent.to_csv(tmp_path / "recent.csv", index=False)
    common = ["--exclude", "is_fraud", "--fpr", "0.05", "--calibration-fraction", "0.25"]
    r = run("train", tmp_path / "train.csv", "-o", tmp_path / "ae", "--detector", "AutoEncoder",
            "--params", '{"epochs": 2, "validation_fraction": 0}', *common)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run("train", tmp_path / "recent.csv", "--warm-start", tmp_path / "ae", "--retain", "600",
            "--params", '{"epochs": 1}', "--calibration-fraction", "0.25", "-o", tmp_path / "ae2")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Warm-started AutoEncoder on 450 rows" in r.output and "fpr rule" in r.output
    model = json.loads((tmp_path / "ae2" / "model.json").read_text())
    text = json.dumps(model)
    assert '"warm-start"' in text and '"retain": 600' in text and '"calibration_rows": 150' in text
    # a detector without weights is refitted, and says so
    r = run("train", tmp_path / "train.csv", "-o", tmp_path / "if", "--detector", "IsolationForest", *common)
    assert r.exit_code == 0, r.output
    r = run("train", tmp_path / "recent.csv", "--warm-start", tmp_path / "if", "-o", tmp_path / "if2")
    assert r.exit_code == 0 and "Refitted IsolationForest" in r.output and "no network weights" in r.output
    # --retain alone: a plain training on the last N rows
    r = run("train", tmp_path / "recent.csv", "-o", tmp_path / "tail", "--detector", "IsolationForest",
            "--retain", "300", "--exclude", "is_fraud")  # fmt: skip
    assert r.exit_code == 0 and "on 300 rows" in r.output, r.output


def test_warm_start_bad_input_exits_2(tmp_path):
    make_fraud_frame(400, seed=1).to_csv(tmp_path / "train.csv", index=False)
    r = run("train", tmp_path / "train.csv", "-o", tmp_path / "m", "--detector", "IsolationForest")
    assert r.exit_code == 0, r.output
    r = run("train", tmp_path / "train.csv", "--warm-start", tmp_path / "m", "--detector", "KNN", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--detector applies to a new model" in r.output
    r = run("train", tmp_path / "train.csv", "--warm-start", tmp_path / "nothere", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "nothere" in r.output
    make_fraud_frame(200, seed=2).drop(columns=["amount"]).to_csv(tmp_path / "less.csv", index=False)
    r = run("train", tmp_path / "less.csv", "--warm-start", tmp_path / "m", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "'amount'" in r.output
    assert not (tmp_path / "x").exists()
