"""`deepad train --label-column` with partial labels: what the labels bought, on held-out labelled rows (issue 22)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import deepad
from deepad.cli import app

from data_fraud import write_fraud_csv

FAST = json.dumps({"iterations": 50, "n_neighbors_global": 50})


def run(*args):
    old = os.environ.get("DEEPAD_QUIET")
    try:
        result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    finally:
        if old is None:
            os.environ.pop("DEEPAD_QUIET", None)
        else:
            os.environ["DEEPAD_QUIET"] = old
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """1,500 transactions, 15 frauds: 8 labelled 1, 150 labelled 0, the rest blank; and a copy with anomalies only."""
    d = tmp_path_factory.mktemp("weak")
    df = pd.read_csv(write_fraud_csv(d / "all.csv", 1500, seed=3))
    rng = np.random.default_rng(0)
    frauds, normal = np.flatnonzero(df.is_fraud == 1), np.flatnonzero(df.is_fraud == 0)
    label = np.full(len(df), np.nan)
    label[rng.choice(frauds, 8, replace=False)] = 1
    label[rng.choice(normal, 150, replace=False)] = 0
    partial = df.drop(columns="is_fraud").assign(label=label)
    partial.to_csv(d / "partial.csv", index=False)
    partial.assign(label=np.where(label == 1, 1, np.nan)).to_csv(d / "anomalies_only.csv", index=False)
    partial.assign(label=np.where(label == 1, 0, label)).to_csv(d / "no_anomalies.csv", index=False)
    partial.assign(label=np.nan).to_csv(d / "blank.csv", index=False)
    partial.assign(label=np.where(label == 1, 2, label)).to_csv(d / "non_binary.csv", index=False)
    one = label.copy()
    one[np.flatnonzero(label == 1)[1:]] = np.nan
    partial.assign(label=one).to_csv(d / "one_anomaly.csv", index=False)
    return d, label


def _train(path, out, *extra):
    return run("train", path, "-o", out, "-d", "BoostedDetector", "-l", "label", "-p", FAST, "-c", "0.02", *extra)


def test_partial_labels_report_precision_on_held_out_labelled_rows_then_refit(tables, tmp_path):
    d, label = tables
    r = _train(d / "partial.csv", tmp_path / "m")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("What the labels bought:"))
    # 20 % of each group, stratified: 2 of the 8 labelled anomalies, 30 of the 150 labelled normal rows
    assert "on 32 rows (2 anomalies, 30 labelled normal)" in line
    assert re.search(r"precision (\d+\.\d)% \((\d) of (\d+) alerts real\)|no alerts raised", line)
    assert "recall" in line and "AUC-PR" in line and "alerting at random: precision 6.2%" in line
    assert "Trained BoostedDetector (refitted on all rows) on 1,500 rows" in r.output
    model = deepad.load(tmp_path / "m")
    fig = model.label_holdout_
    assert fig["rows"] == 32 and fig["anomalies"] == 2 and fig["normal"] == 30 and not fig["blank_as_normal"]
    assert 0 <= fig["true_alerts"] <= min(fig["alerts"], 2) and fig["refit_on_all_rows"]
    if fig["alerts"]:
        assert fig["precision"] == pytest.approx(fig["true_alerts"] / fig["alerts"])
    assert fig["recall"] == pytest.approx(fig["true_alerts"] / 2)
    assert 0 < fig["auc_pr"] <= 1
    assert len(model.decision_scores_) == 1500  # the saved model is the refit on every row
    info = run("info", tmp_path / "m")
    assert info.exit_code == 0 and "Labels:     held out 20% of the labelled rows" in info.output


def test_labels_of_anomalies_only_count_the_held_out_blank_rows_as_normal(tables, tmp_path):
    d, _ = tables
    r = _train(d / "anomalies_only.csv", tmp_path / "m", "--label-holdout", "0.25")
    assert r.exit_code == 0, r.output
    assert "held out 25% of the labelled rows" in r.output
    assert "(2 anomalies, 373 unlabelled rows counted as normal)" in r.output
    assert "a lower bound: some unlabelled rows may be anomalies" in r.output
    assert deepad.load(tmp_path / "m").label_holdout_["blank_as_normal"] is True


def test_label_holdout_zero_skips_it_and_one_anomaly_cannot_be_held_out(tables, tmp_path):
    d, _ = tables
    r = _train(d / "partial.csv", tmp_path / "m0", "--label-holdout", "0")
    assert r.exit_code == 0 and "What the labels bought" not in r.output
    assert not hasattr(deepad.load(tmp_path / "m0"), "label_holdout_")
    r = _train(d / "one_anomaly.csv", tmp_path / "m1")
    assert r.exit_code == 0, r.output
    assert "only 1 labelled anomaly: none can be held out" in r.output and "What the labels bought" not in r.output


@pytest.mark.parametrize(
    "name, expected",
    [
        ("no_anomalies", "label column 'label' has no anomalies (158 rows labelled 0, none 1)"),
        ("blank", "label column 'label' is blank on every row"),
        (
            "non_binary",
            "column 'label': 8 value(s) cannot be read as labels (numbers must be 1 = anomaly or 0 = normal",
        ),
    ],
)
def test_bad_label_columns_are_clear_errors(tables, tmp_path, name, expected):
    d, _ = tables
    r = _train(d / f"{name}.csv", tmp_path / "m")
    assert r.exit_code == 2 and expected in r.output, r.output
    assert not (tmp_path / "m").exists()


def test_missing_label_column_and_holdout_without_weak_labels_are_errors(tables, tmp_path):
    d, _ = tables
    r = run("train", d / "partial.csv", "-o", tmp_path / "m", "-d", "BoostedDetector", "-l", "fraud")
    assert r.exit_code == 2 and "has no label column 'fraud'" in r.output
    r = run("train", d / "partial.csv", "-o", tmp_path / "m", "-d", "HBOS", "-l", "label", "--label-holdout", "0.2")
    assert r.exit_code == 2 and "--label-holdout measures what weak labels bought" in r.output
    assert "HBOS" in r.output and not (tmp_path / "m").exists()
