"""`deepad monitor MODEL_DIR DATA [-o drift.json|drift.html]` (issue 20): the drift report on the command line."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from deepad.cli import app

from data_fraud import make_fraud_frame


def run(*args):
    result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("monitor")
    make_fraud_frame(2500, seed=1).to_csv(d / "train.csv", index=False)
    make_fraud_frame(1200, seed=2, start_index=10_000).to_csv(d / "same.csv", index=False)
    moved = make_fraud_frame(1200, seed=3, start_index=20_000)
    moved.loc[600:, "amount"] = moved.loc[600:, "amount"] * 3.0  # the second half moved
    moved.loc[600:, "channel"] = "online"
    moved.to_csv(d / "moved.csv", index=False)
    result = run(
        "train",
        d / "train.csv",
        "-o",
        d / "model",
        "--detector",
        "IsolationForest",
        "--exclude",
        "is_fraud",
        "--params",
        '{"n_estimators": 50}',
        "--calibration-fraction",
        "0.3",
        "--fpr",
        "0.05",
    )
    assert result.exit_code == 0, result.output
    return d


def test_json_report_on_stdout_and_to_a_file(work):
    result = run("monitor", work / "model", work / "same.csv")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout is the JSON alone
    assert doc["drift"] is False and 0.05 < doc["p_value"] <= 1.0
    assert doc["score"]["reference"].startswith("calibration") and "features" in doc and "multivariate" in doc
    out = work / "moved.json"
    result = run("monitor", work / "model", work / "moved.csv", "-o", out, "--window", "300")
    assert result.exit_code == 0, result.output  # exit 0 on drift too
    doc = json.loads(out.read_text())
    assert doc["drift"] is True and doc["p_value"] < 1e-6
    assert {"amount", "channel"} <= set(doc["moved"])
    assert [w["label"] for w in doc["windows"]] == ["rows 0-299", "rows 300-599", "rows 600-899", "rows 900-1,199"]
    assert [w["drift"] for w in doc["windows"]] == [False, False, True, True]
    assert "drift" in result.output and "Wrote" in result.output


def test_classifier_test_and_weighted_rule_from_the_command_line(work):
    out = work / "c2st.html"
    result = run("monitor", work / "model", work / "moved.csv", "--multivariate", "c2st", "--weights", "0.5,0.2,0.3")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["multivariate"]["test"] == "c2st" and doc["multivariate"]["p_value"] < 0.05
    assert "weighted Bonferroni" in doc["rule"] and doc["drift"] is True
    s = doc["sections"]
    assert doc["p_value"] == pytest.approx(min(1.0, s["features"] / 0.5, s["multivariate"] / 0.2, s["score"] / 0.3))
    result = run("monitor", work / "model", work / "moved.csv", "--multivariate", "both", "-o", out)
    assert result.exit_code == 0, result.output
    assert "Multivariate (MMD+C2ST)" in out.read_text() and "held-out AUC" in out.read_text()
    none = json.loads(run("monitor", work / "model", work / "same.csv", "--multivariate", "none").stdout)
    assert none["multivariate"] is None and "multivariate" in none["unavailable"]
    for bad in (["--weights", "1,2"], ["--weights", "a,b,c"], ["--multivariate", "energy"]):
        result = run("monitor", work / "model", work / "same.csv", *bad)
        assert result.exit_code == 2 and result.output.startswith("error:"), result.output


def test_numeric_test_from_the_command_line_is_recorded_per_feature(work):
    args = ("monitor", work / "model", work / "moved.csv", "--multivariate", "none")
    result = run(*args, "--numeric-test", "LePage")  # case-insensitive, as the library
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    numeric = {t["name"]: t for t in doc["features"]["tests"] if t["kind"] == "numeric"}
    assert set(numeric) == {"amount", "customer_age", "distance_km", "n_tx_24h"}
    for t in numeric.values():
        assert t["test"] == "lepage" and t["p_value"] == t["p_lepage"] and t["p_value"] != t["p_ks"]
    assert {t["test"] for t in doc["features"]["tests"] if t["kind"] == "datetime"} == {"ks"}  # hour, weekday, month
    amount = numeric["amount"]
    assert amount["p_lepage"] < 1e-20 and amount["drift"] is True and "amount" in doc["moved"]
    assert doc["score"]["tails"] == []  # no tail tests unless asked
    default = json.loads(run(*args).stdout)
    (both,) = [t for t in default["features"]["tests"] if t["name"] == "amount"]  # the default: KS and Lepage
    assert both["test"] == "ks+lepage" and both["p_ks"] == pytest.approx(amount["p_ks"])
    assert both["p_value"] == pytest.approx(min(1.0, 2 * min(both["p_ks"], both["p_lepage"])))
    ks = json.loads(run(*args, "--numeric-test", "ks").stdout)
    (ks,) = [t for t in ks["features"]["tests"] if t["name"] == "amount"]
    assert ks["test"] == "ks" and ks["p_value"] == ks["p_ks"] == pytest.approx(amount["p_ks"])


def test_tail_quantiles_from_the_command_line_reach_the_score_section_and_the_windows(work):
    args = ("monitor", work / "model", work / "same.csv", "--multivariate", "none", "--window", "1200")
    result = run(*args, "--tail-quantiles", "0.99, 0.9")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    score = doc["score"]
    tails = score["tails"]
    assert [t["quantile"] for t in tails] == [0.99, 0.9]  # in the order given
    n = score["reference_rows"]
    for t in tails:
        assert t["test"] == "exceedances (one-sided, exact)" and 0.0 < t["p_value"] <= 1.0
        assert t["expected_count"] == pytest.approx(1200 * (t["reference_above"] + 1) / (n + 1))
    ps = [score["distribution"]["p_value"], score["flag_rate"]["p_value"]] + [t["p_value"] for t in tails]
    assert score["p_value"] == pytest.approx(min(1.0, 4 * min(ps)))  # Bonferroni over KS, the rate and two tails
    assert all(t["test"] == "ks+lepage" for t in doc["features"]["tests"] if t["kind"] == "numeric")
    # one window of all the rows: the same tests ran there, tails included
    (w,) = doc["windows"]
    assert w["rows"] == 1200 and w["sections"]["score"] == pytest.approx(score["p_value"])
    assert w["p_value"] == pytest.approx(doc["p_value"])


def test_bad_numeric_test_or_tail_quantiles_exit_2_naming_the_option(work):
    out = work / "never.json"
    cases = [
        (["--numeric-test", "bogus"], "--numeric-test must be one of ks, lepage, ks+lepage, ks+mood, got 'bogus'."),
        (["--tail-quantiles", "1.5"], "--tail-quantiles must be numbers strictly between 0 and 1, got '1.5'."),
        (["--tail-quantiles", "0.9,x"], "--tail-quantiles must be numbers strictly between 0 and 1, got 'x'."),
        (["--tail-quantiles", "0.9,0.9"], "--tail-quantiles lists '0.9' twice."),
    ]
    for extra, message in cases:
        result = run("monitor", work / "model", work / "same.csv", "-o", out, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr == f"error: {message}\n" and result.stdout == "", (extra, result.output)
    assert not out.exists()


def test_html_page_with_drift_over_time(work):
    out = work / "drift.html"
    result = run(
        "monitor", work / "model", work / "moved.csv", "-o", out, "--time-column", "timestamp", "--every", "7D"
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for heading in ("Verdict", "Drift over time", "Scores and flag rate", "Multivariate (C2ST)", "Per-feature tests"):
        assert heading in html
    # each numeric row shows its distribution effects whichever test gave its p-value (ks+lepage by default)
    amount = re.search(r"<tr><td>amount</td><td>numeric</td><td>ks\+lepage</td><td>([^<]*)</td>", html)
    assert (
        amount and amount.group(1).startswith("KS ") and "Wasserstein" in amount.group(1) and "std x" in amount.group(1)
    )
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 2 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "This section is not in the verdict" not in html  # a calibrated model: the score section votes
    assert "timestamp is left out" in html and "<script" not in html and "http" not in html.split("<body>")[1]


def test_uncalibrated_model_reports_its_score_section_outside_the_verdict(work):
    params = '{"n_estimators": 50}'
    args = ("train", work / "train.csv", "-o", work / "raw", "-d", "IsolationForest", "--exclude", "is_fraud")
    trained = CliRunner().invoke(app, [*map(str, args), "--params", params])  # no --calibration-fraction
    assert trained.exit_code == 0 and "Not calibrated: `deepad monitor`" in trained.stdout, trained.output
    result = CliRunner().invoke(app, ["monitor", str(work / "raw"), str(work / "same.csv")])
    assert result.exit_code == 0, result.output
    assert "Score section: reported, not in the verdict" in result.stderr and "not held out" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["score"]["in_verdict"] is False and doc["score"]["held_out"] is False and "score" not in doc["sections"]
    assert "calibration-fraction" in doc["unavailable"]["score"]
    forced = json.loads(run("monitor", work / "raw", work / "same.csv", "--score-in-verdict").stdout)
    assert "score" in forced["sections"] and forced["score"]["in_verdict"] is True
    out = work / "raw.html"
    assert run("monitor", work / "raw", work / "same.csv", "-o", out).exit_code == 0
    html = out.read_text()
    assert "reported, not in the verdict" in html and "not run: reported" not in html
    assert "This section is not in the verdict above" in html
    kept = json.loads(run("monitor", work / "model", work / "same.csv", "--no-score-in-verdict").stdout)
    assert "score" not in kept["sections"] and "score_in_verdict=False" in kept["unavailable"]["score"]


def test_bad_input_exits_2_with_one_line(work):
    df = make_fraud_frame(100, seed=4)
    df.drop(columns=["amount"]).to_csv(work / "no_amount.csv", index=False)
    df2 = df.astype({"amount": object})
    df2.loc[7, "amount"] = "lots"
    df2.to_csv(work / "bad_amount.csv", index=False)
    cases = [
        (("monitor", work / "model", work / "no_amount.csv"), "missing column(s) ['amount']"),
        (("monitor", work / "model", work / "bad_amount.csv"), "column 'amount'"),
        (("monitor", work / "model", work / "nope.csv"), "nope.csv"),
        (("monitor", work / "no_model", work / "same.csv"), "no model at"),
        (("monitor", work / "model", work / "same.csv", "-o", work / "x.txt"), "must end in .json or .html"),
        (("monitor", work / "model", work / "same.csv", "--time-column", "when"), "no time column 'when'"),
        (("monitor", work / "model", work / "same.csv", "--window", "5", "--time-column", "timestamp"), "not both"),
        (("monitor", work / "model", work / "same.csv", "--every", "1D"), "--every applies to --time-column"),
        (("monitor", work / "model", work / "same.csv", "--time-column", "amount"), "amount"),
        (("monitor", work / "model", work / "same.csv", "--alpha", "1.5"), "--alpha must be in (0, 1)"),
        (("monitor", work / "model", work / "same.csv", "-o", work / "nodir" / "d.json"), "does not exist"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (work / "x.txt").exists()
    np.testing.assert_equal(sorted(p.name for p in work.iterdir() if p.suffix == ".part"), [])


def test_stream_drift_events_on_the_command_line(tmp_path):
    from deepad.detectors import KNN

    rng = np.random.default_rng(0)
    det = KNN(n_neighbors=5, contamination=0.05).fit(rng.normal(size=(600, 2)))
    det.calibrate(rng.normal(size=(600, 2)))
    det.save(tmp_path / "knn")
    points = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(150, 2)) + 1.5])
    lines = ["timestamp,a,b"] + [f"{i},{a:.4f},{b:.4f}" for i, (a, b) in enumerate(points)]
    result = CliRunner().invoke(
        app,
        ["stream", str(tmp_path / "knn"), "--fixed-threshold", "--drift", "--save-state", str(tmp_path / "s")],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    events = [o for o in out if o.get("event") == "drift"]
    assert len(out) - len(events) == 450  # one line per point, plus the events
    assert events and events[0]["direction"] == "up" and 300 < int(events[0]["timestamp"]) < 360
    state = json.loads((tmp_path / "s" / "stream.json").read_text())
    assert state["drift"]["n"] == 450 and state["drift"]["n_events"] == len(events)
    again = CliRunner().invoke(app, ["stream", str(tmp_path / "s"), "--drift"], input="timestamp,a,b\n1,0,0\n")
    assert again.exit_code == 2 and "--drift" in again.output  # a saved state keeps its own settings
