"""`deepad recalibrate MODEL_DIR CLEAN_DATA` and the version history `deepad info` lists (issue 20)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from deepad.cli import app

from data_fraud import make_fraud_frame


def run(*args):
    result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def test_recalibrate_restores_the_target_rate_and_records_the_version(tmp_path):
    import deepad

    make_fraud_frame(1200, seed=1).to_csv(tmp_path / "train.csv", index=False)
    moved = make_fraud_frame(1600, seed=2, start_index=10_000)
    moved = moved[moved["is_fraud"] == 0].reset_index(drop=True)
    moved["distance_km"] = moved["distance_km"] * 8 + 60  # normal moved: the old threshold flags too many rows
    moved["n_tx_24h"] = moved["n_tx_24h"] + 12
    moved.iloc[:700].to_csv(tmp_path / "clean.csv", index=False)
    later = moved.iloc[700:].reset_index(drop=True)
    r = run("train", tmp_path / "train.csv", "-o", tmp_path / "m", "--detector", "IsolationForest",
            "--exclude", "is_fraud", "--fpr", "0.05", "--calibration-fraction", "0.25")  # fmt: skip
    assert r.exit_code == 0, r.output
    old = deepad.load(tmp_path / "m")
    old_rate = float(np.mean(old.predict(later)))

    r = run("recalibrate", tmp_path / "m", tmp_path / "clean.csv", "-o", tmp_path / "m2", "--note", "reviewed")
    assert r.exit_code == 0, r.output
    assert "on 700 clean rows" in r.output and "false-positive rate of 0.05" in r.output and "version 2" in r.output
    new = deepad.load(tmp_path / "m2")
    new_rate = float(np.mean(new.predict(later)))
    # conformal: about 5 % on rows like the clean ones (binomial sd on ~800 rows ~0.8 %), far from the old rate
    assert old_rate > 0.1 and abs(new_rate - 0.05) < 0.03, (old_rate, new_rate)
    assert new.calibration_scores_.size == 700
    history = json.loads((tmp_path / "m2" / "model.json").read_text())
    assert '"recalibrate"' in json.dumps(history) and '"reviewed"' in json.dumps(history)
    assert deepad.load(tmp_path / "m").threshold_ == old.threshold_  # -o leaves MODEL_DIR as it was

    r = run("info", tmp_path / "m2")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    at = lines.index("History:")
    assert lines[at + 1].startswith("  v1 fit") and lines[at + 2].startswith("  v2 recalibrate")
    assert "700 rows" in lines[at + 2] and "note: reviewed" in lines[at + 2]

    # default output: MODEL_DIR itself, replaced in place; the history goes on
    r = run("recalibrate", tmp_path / "m2", tmp_path / "clean.csv", "--fpr", "0.01")
    assert r.exit_code == 0 and "version 3" in r.output, r.output
    assert deepad.load(tmp_path / "m2").threshold_ > new.threshold_


def test_recalibrate_bad_input_exits_2_and_writes_nothing(tmp_path):
    make_fraud_frame(400, seed=1).to_csv(tmp_path / "train.csv", index=False)
    r = run("train", tmp_path / "train.csv", "-o", tmp_path / "m", "--detector", "IsolationForest")
    assert r.exit_code == 0, r.output
    before = (tmp_path / "m" / "model.json").read_text()
    r = run("recalibrate", tmp_path / "m", tmp_path / "train.csv", "--fpr", "1.5", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--fpr must be in (0, 1)" in r.output
    r = run("recalibrate", tmp_path / "nothere", tmp_path / "train.csv", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "nothere" in r.output
    make_fraud_frame(200, seed=2).drop(columns=["amount"]).to_csv(tmp_path / "less.csv", index=False)
    r = run("recalibrate", tmp_path / "m", tmp_path / "less.csv", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "'amount'" in r.output
    make_fraud_frame(5, seed=3).to_csv(tmp_path / "few.csv", index=False)
    r = run("recalibrate", tmp_path / "m", tmp_path / "few.csv", "--fpr", "0.01")
    assert r.exit_code == 2 and "needs at least 99 clean rows" in r.output, r.output
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "m" / "model.json").read_text() == before
