"""`deepad report`, `deepad explain`, `deepad score --explain` and the threshold/tracking options of `deepad train`."""

from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import deepad
from deepad.cli import app
from deepad.detectors import IsolationForest
from deepad.report import build_report

from data_fraud import make_fraud_frame

PARAMS = json.dumps({"epochs": 8, "hidden_dims": [16, 8], "latent_dim": 4, "batch_size": 64})
EVIL = '<script>alert("x")</script>'  # a column name that must come out escaped in the HTML
HEADINGS = [
    "Summary",
    "Score distribution",
    "ROC and precision-recall curves",
    "Training history",
    "Top anomalies",
    "2-D view",
    "Model and data fingerprint",
]


def run(*args, quiet=True):
    result = CliRunner().invoke(app, [*(["--quiet"] if quiet else []), *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def _write(path, n, seed, start_index=0):
    df = make_fraud_frame(n, seed=seed, start_index=start_index, anomaly_rate=0.02)
    df[EVIL] = np.random.default_rng(seed).normal(size=n).round(3)
    df["card_present"] = np.where(df["card_present"], "true", "false")
    df.to_csv(path, index=False)
    return path


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".part")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    train, new = _write(d / "train.csv", 1500, seed=1), _write(d / "new.csv", 600, seed=2, start_index=10_000)
    model = d / "model"
    result = run(
        "train",
        train,
        "-o",
        model,
        "-d",
        "AutoEncoder",
        "-l",
        "is_fraud",
        "--threshold",
        "pot",
        "--calibration-fraction",
        "0.2",
        "--params",
        PARAMS,
    )
    assert result.exit_code == 0, result.output
    return {"dir": d, "train": train, "new": new, "model": model, "train_output": result.output}


# --------------------------------------------------------------------------- deepad train: threshold rules
def test_pot_threshold_with_calibration_is_stored_with_its_reason(work):
    model = deepad.load(work["model"])
    info = model.threshold_method_
    assert info["method"] == "pot_risk" and info["pot_risk"] == 0.001
    assert info["reference"] == "calibration" and info["reference_rows"] == 300 == len(model.calibration_scores_)
    assert "peaks over threshold" in info["reason"] and "no contamination guess" in info["reason"]
    assert len(model.decision_scores_) == 1200  # fitted on the rest
    # POT on the calibration scores, reproduced from the saved scores:
    from deepad.thresholds import pot_threshold

    assert model.threshold_ == pytest.approx(pot_threshold(model.calibration_scores_, risk=0.001))
    out = run("info", work["model"]).output
    assert "Rule:       extreme-value tail fit" in out and "Calibrated: p-values against 300 held-out rows" in out
    assert re.search(r"Trained at: \d{4}-\d\d-\d\dT", out)


def test_fpr_rule_and_contamination_default(work, tmp_path):
    small = json.dumps({"epochs": 2, "hidden_dims": [8], "latent_dim": 2})
    result = run(
        "train",
        work["train"],
        "-o",
        tmp_path / "f",
        "-d",
        "AutoEncoder",
        "-x",
        "is_fraud",
        "--threshold",
        "fpr",
        "--calibration-fraction",
        "0.3",
        "--params",
        small,
    )
    assert result.exit_code == 0, result.output
    model = deepad.load(tmp_path / "f")
    assert model.threshold_method_["fpr"] == 0.01 and model.threshold_method_["reference"] == "calibration"
    assert "conformal guarantee" in model.threshold_method_["reason"]
    # At most 1 % of the held-out calibration scores lie above an fpr=0.01 threshold.
    assert (model.calibration_scores_ > model.threshold_).mean() <= 0.01
    result = run("train", work["train"], "-o", tmp_path / "c", "-d", "AutoEncoder", "-x", "is_fraud", "--params", small)
    model = deepad.load(tmp_path / "c")
    assert model.threshold_method_["method"] == "contamination"
    assert model.threshold_method_["reason"].startswith("the default")


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--threshold", "median"], "--threshold must be contamination, fpr or pot"),
        (["--threshold", "pot", "--contamination", "0.1"], "without a contamination guess"),
        (["--threshold", "pot", "--fpr", "0.1"], "--fpr goes with --threshold fpr"),
        (["--pot-risk", "0.01"], "--pot-risk goes with --threshold pot"),
        (["--threshold", "pot", "--pot-risk", "2"], "--pot-risk must be in (0, 1)"),
        (["--calibration-fraction", "1.5"], "--calibration-fraction must be in [0, 1)"),
        (["--calibration-fraction", "0.001"], "at least 20 are needed"),
        (["--detector", "KNN", "--tensorboard", "tb"], "KNN is not one"),
    ],
)
def test_bad_threshold_options_exit_2(work, tmp_path, extra, expected):
    result = run("train", work["train"], "-o", tmp_path / "m", "-x", "is_fraud", *extra)
    assert result.exit_code == 2, result.output
    assert expected in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "m").exists()


def test_tensorboard_logs_the_losses(work, tmp_path):
    pytest.importorskip("tensorboard")
    result = run(
        "train",
        work["train"],
        "-o",
        tmp_path / "m",
        "-d",
        "AutoEncoder",
        "-x",
        "is_fraud",
        "--tensorboard",
        tmp_path / "tb",
        "--params",
        json.dumps({"epochs": 3, "hidden_dims": [8], "latent_dim": 2}),
    )
    assert result.exit_code == 0, result.output
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "train_loss" in acc.Tags()["scalars"]
    assert len(acc.Scalars("train_loss")) == deepad.load(tmp_path / "m").detector_.n_epochs_


def test_quiet_is_per_invocation(work, tmp_path):
    before = os.environ.get("DEEPAD_QUIET")
    small = json.dumps({"epochs": 2, "hidden_dims": [8], "latent_dim": 2})
    quiet = run("train", work["train"], "-o", tmp_path / "m", "-d", "AutoEncoder", "-x", "is_fraud", "--params", small)
    loud = run(
        "train",
        work["train"],
        "-o",
        tmp_path / "m",
        "-d",
        "AutoEncoder",
        "-x",
        "is_fraud",
        "--params",
        small,
        quiet=False,
    )
    assert quiet.exit_code == loud.exit_code == 0
    assert "Columns:" not in quiet.output and "Columns:" in loud.output
    assert os.environ.get("DEEPAD_QUIET") == before


# --------------------------------------------------------------------------- deepad explain / score --explain
def test_explain_rows(work):
    truth = pd.read_csv(work["new"])
    model = deepad.load(work["model"])
    fraud = int(np.argmax(model.decision_function(truth.drop(columns=["is_fraud"]))))  # the top anomaly
    result = run("explain", work["model"], work["new"], "--rows", f"0,{fraud},17", "--top", "4")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Attributions: shapley")
    assert lines[1].split()[:4] == ["row", "transaction_id", "score", "p_value"]
    cut = next(i for i, line in enumerate(lines) if line.startswith("Counterfactual:"))
    body, repairs = lines[2:cut], lines[cut + 1 :]
    assert 3 <= len(body) <= 3 * 4  # three rows, up to four columns each (negligible ones are not listed)
    starts = [line.split()[0] for line in body if re.match(r"\s*\d+\s+T\d{10}\s", line)]
    assert starts == ["0", str(fraud), "17"]
    assert not re.search(r"[+-]\d(\.\d+)?e-1\d|\s[+-]0\s*$", result.output, re.M)  # no +1.11e-16, no +0
    assert truth["transaction_id"][fraud] in result.output
    fraud_line = next(line for line in body if line.split()[0] == str(fraud))
    score = float(fraud_line.split()[2])
    assert score == pytest.approx(model.decision_function(truth.iloc[[fraud]])[0], rel=1e-3)
    # the counterfactual: one line per row, in the asked order; the flagged fraud gets "typical would be ..."
    assert [line.split()[1].rstrip(":") for line in repairs] == ["0", str(fraud), "17"]
    assert score > model.threshold_
    fraud_repair = repairs[1]
    assert "typical would be" in fraud_repair and "->" in fraud_repair, fraud_repair
    after = float(fraud_repair.rsplit("-> ", 1)[1].rstrip(").").strip())
    assert after <= model.threshold_
    listed = fraud_repair.split("typical would be ", 1)[1].rsplit(" (score", 1)[0].split("; ")
    assert all(re.match(r"^\S+ (<=|>=|=) \S+$|^\S+ (typical|present)$", c) for c in listed), listed


def test_explain_bad_rows_exit_2(work):
    result = run("explain", work["model"], work["new"], "--rows", "3,600")
    assert result.exit_code == 2 and "row 600 is out of range" in result.output and "600 data rows" in result.output
    result = run("explain", work["model"], work["new"], "--rows", "3,x")
    assert result.exit_code == 2 and "--rows expects" in result.output


def test_score_explain_fills_flagged_rows_only(work):
    out = work["dir"] / "scores.csv"
    result = run("score", work["model"], work["new"], "-o", out, "--explain", "--top", "2")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == ["transaction_id", "score", "p_value", "is_anomaly", "top_features"]
    flagged = scores["is_anomaly"] == 1
    assert flagged.any() and (scores.loc[~flagged, "top_features"] == "").all()
    tops = scores.loc[flagged, "top_features"].str.split("; ")
    assert tops.map(len).between(1, 2).all()
    model = deepad.load(work["model"])
    assert set(tops.explode()) <= set(model.schema_.feature_columns)
    plain = pd.read_csv(
        run("score", work["model"], work["new"], "-o", work["dir"] / "plain.csv").exit_code == 0
        and work["dir"] / "plain.csv"
    )
    assert "top_features" not in plain.columns  # --no-explain is the default
    np.testing.assert_array_equal(plain["score"], scores["score"])


# --------------------------------------------------------------------------- deepad report
def _pngs(html):
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_with_labels(work):
    out = work["dir"] / "report.html"
    result = run("report", work["model"], work["new"], "--label-column", "is_fraud", "-o", out)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for heading in HEADINGS:
        assert f">{heading}</h2>" in html, heading
    pngs = _pngs(html)
    assert len(pngs) >= 4 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)  # hist, ROC/PR, loss, 2-D
    truth = pd.read_csv(work["new"])
    model = deepad.load(work["model"])
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(truth["is_fraud"], model.decision_function(truth.drop(columns=["is_fraud"])))
    assert f"ROC-AUC <b>{auc:.4f}</b>" in html
    # Self-contained and escaped: no external assets, no script, the evil column name shown as text.
    assert "<script" not in html and "http://" not in html and "https://" not in html and "<link" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "extreme-value tail fit" in html and "held-out calibration rows" in html
    assert "typical would be (counterfactual)" in html and "score &rarr;" in html  # the top anomalies' repairs
    assert leftovers(work["dir"]) == []


def test_report_bad_input_leaves_no_file(work):
    out = work["dir"] / "bad.html"
    result = run("report", work["model"], work["new"], "--label-column", "fraud", "-o", out)
    assert result.exit_code == 2 and "has no label column 'fraud'" in result.output
    result = run("report", work["model"], work["new"], "--label-column", "merchant_category", "-o", out)
    assert result.exit_code == 2 and "merchant_category" in result.output
    result = run("report", work["model"], work["new"], "-o", work["dir"] / "r.pdf")
    assert result.exit_code == 2 and "must end in .html" in result.output
    assert not out.exists() and leftovers(work["dir"]) == []


def test_build_report_api_for_a_classical_detector(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[:8] += 6
    y = (np.arange(400) < 8).astype(float)
    y[100:110] = np.nan  # unknown labels are left out of the curves
    model = IsolationForest(random_state=0).fit(X[50:])
    path = build_report(model, X, y, path=tmp_path / "iforest.html", top_n=5)
    html = path.read_text()
    assert "IsolationForest is not a neural detector" in html
    assert len(_pngs(html)) == 3  # histogram, ROC/PR, PCA view (no loss curve)
    assert "390 labelled rows, 8 anomalies" in html
    assert html.count('<td class="num">') >= 5 * 4  # five top rows
    assert "median of the scored data" in html  # IsolationForest keeps no training centre
    with pytest.raises(ValueError, match="3 labels but X has 400 rows"):
        build_report(model, X, [0, 1, 0], path=tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists() and leftovers(tmp_path) == []
