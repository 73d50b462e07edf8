"""Time series through the CLI: `deepad stream` in a subprocess, `deepad report`, `train` and `score` on a series."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import deepad.detectors as D

import series_data
from series_data import _knn, sine

fitted = series_data.fitted  # the module-scoped fixture: the fitted series detectors


# --------------------------------------------------------------------------- streaming
def test_cli_stream_jsonl_and_csv(fitted, tmp_path):
    det = fitted["RollingZScore"]
    det.save(tmp_path / "m")
    X = sine()[:80]
    lines = "\n".join(json.dumps({"timestamp": f"t{i}", "x0": float(a), "x1": float(b)}) for i, (a, b) in enumerate(X))
    cmd = [sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m"), "--save-state", str(tmp_path / "st")]
    out = subprocess.run(cmd, input=lines + "\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(rows) == 80 and rows[0]["timestamp"] == "t0"
    assert rows[0]["score"] is None and rows[-1]["score"] is not None
    np.testing.assert_allclose(rows[-1]["score"], det.decision_function(X)[-1])
    assert (tmp_path / "st" / "stream.json").exists()
    csv = "timestamp,x0,x1\n" + "\n".join(f"u{i},{a},{b}" for i, (a, b) in enumerate(X[:20]))
    out = subprocess.run(
        [sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "st")],
        input=csv,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(rows) == 20 and all(r["score"] is not None for r in rows)  # resumed with a full buffer


# --------------------------------------------------------------------------- time-series report
def _series_csv(path, n=900):
    X = sine(n=n, d=1, seed=4)
    X[700, 0] += 5.0
    t = pd.date_range("2022-03-01", periods=n, freq="1min")
    lab = np.zeros(n, dtype=int)
    lab[700] = 1
    pd.DataFrame({"timestamp": t.astype(str), "x0": X[:, 0], "label": lab}).to_csv(path, index=False)
    return X


def test_series_report_html_png_and_cli(tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app
    from deepad.report.series import build_series_report, is_series_detector, series_scores

    X = _series_csv(tmp_path / "s.csv")
    det = D.RollingZScore(window=32).fit(pd.DataFrame({"x0": X[:500, 0]}))
    assert is_series_detector(det) and not is_series_detector(D.HBOS())
    res = series_scores(det, X, refractory=50)
    assert len(res) == len(X) and res["alert"].iloc[700] and res["alert"].sum() <= res["alarm"].sum()
    out = build_series_report(
        det, tmp_path / "s.csv", tmp_path / "r.html", label_column="label", refractory=50, png=str(tmp_path / "r.png")
    )
    html = out.read_text()
    assert "data:image/png;base64," in html and "2022-03-01 11:40:00" in html  # the alert at row 700 is listed
    assert "1 labelled anomalous rows; 1 alerts on them" in html
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no label column"):
        build_series_report(det, tmp_path / "s.csv", tmp_path / "r2.html", label_column="nope")
    det.save(tmp_path / "m")
    r = CliRunner().invoke(
        app,
        [
            "report",
            str(tmp_path / "m"),
            str(tmp_path / "s.csv"),
            "-o",
            str(tmp_path / "c.html"),
            "-l",
            "label",
            "--refractory",
            "50",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "alerts" in (tmp_path / "c.html").read_text()


# --------------------------------------------------------------------------- ConformalKNN (continual kNN conformal)
def test_cli_stream_and_report_use_conformal_knn_threshold(tmp_path):
    from deepad.report.series import series_scores

    X = sine(n=900, d=2, seed=6)
    X[800, 0] += 3.0
    det = _knn().fit(X[:500])
    det.save(tmp_path / "m")
    res = series_scores(det, X[500:], refractory=50)
    assert (res["threshold"] == det.threshold_).all() and res["alert"].iloc[300]
    lines = "\n".join(json.dumps({"x0": float(a), "x1": float(b)}) for a, b in X[500:])
    out = subprocess.run(
        [sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m")],
        input=lines + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert rows[300]["alert"] and all(r["threshold"] == pytest.approx(det.threshold_) for r in rows)
    np.testing.assert_allclose([r["score"] for r in rows], res["score"])


# --------------------------------------------------------------------------- deepad train on a series (CSV in, stream-ready model out)
def _irregular_series_csv(path, *, n=1500, spike=1300, shuffle=True):
    """A 5-minute series with two value columns, a text column, labels, a short and a long gap, a duplicate."""
    rng = np.random.default_rng(3)
    t = pd.date_range("2024-01-01", periods=n, freq="5min")
    cpu = np.sin(np.arange(n) * 2 * np.pi / 144) + 0.05 * rng.normal(size=n)
    cpu[spike : spike + 5] += 3.0
    df = pd.DataFrame(
        {
            "time": t,
            "cpu": cpu,
            "mem": np.cos(np.arange(n) / 40),
            "host": "a",
            "is_anomaly": (np.arange(n) >= spike) & (np.arange(n) < spike + 5),
        }
    )
    keep = np.ones(n, dtype=bool)
    keep[400:402] = False  # 2 missing steps: filled
    keep[700:720] = False  # 20 missing steps: left out
    df = pd.concat([df[keep], df[keep].iloc[[5]]])  # one timestamp twice
    df = df.sample(frac=1.0, random_state=0) if shuffle else df.sort_values("time", kind="stable")
    df.to_csv(path, index=False)
    return df


def _cli(*args):
    from typer.testing import CliRunner

    from deepad.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_train_series_regularises_keeps_conformal_threshold_and_streams(tmp_path):
    import deepad

    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli(
        "train",
        tmp_path / "s.csv",
        "-d",
        "ConformalKNN",
        "-o",
        tmp_path / "m",
        "-x",
        "host",
        "-l",
        "is_anomaly",
        "--params",
        '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}',
    )
    assert res.exit_code == 0, res.output
    assert "on a 5 min grid" in res.output and "2 missing steps filled" in res.output
    assert "20 steps in longer gaps left out" in res.output and "1 rows sharing a timestamp averaged" in res.output
    model = deepad.load(tmp_path / "m")
    assert type(model).__name__ == "ConformalKNN" and list(model.feature_names_in_) == ["cpu", "mem"]
    assert model.threshold_ == pytest.approx(0.2)  # the conformal threshold, not a quantile of training scores
    info = model.series_input_
    assert info["points"] == 1500 - 20 and info["filled"] == 2 and info["dropped"] == 20 and info["step"]
    assert "Training ROC-AUC against 'is_anomaly'" in res.output
    assert "5 min grid" in _cli("info", tmp_path / "m").output
    # the model streams rows with the same columns (extra fields ignored) and the report uses the same grid
    live = _irregular_series_csv(tmp_path / "live.csv", n=600, spike=450, shuffle=False)
    out = subprocess.run(
        [sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m"), "--rearm", "64"],
        input=(tmp_path / "live.csv").read_text(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(live)
    hits = [pd.Timestamp(r["timestamp"]) for r in rows if r["alert"]]  # the model's timestamp column, passed through
    spike = pd.Timestamp("2024-01-01") + 450 * pd.Timedelta("5min")
    assert hits and any(spike <= t <= spike + pd.Timedelta("50min") for t in hits)
    assert "2 missing step(s) are not filled" in out.stderr  # steps 400-401 are missing from the live file too
    rep = _cli(
        "report", tmp_path / "m", tmp_path / "live.csv", "-o", tmp_path / "r.html", "-l", "is_anomaly", "--rearm", "64"
    )
    assert rep.exit_code == 0, rep.output
    html = (tmp_path / "r.html").read_text()
    assert "until the score has been below the threshold for 64 points" in html and "conformal" in html


def test_cli_train_series_threshold_rules(tmp_path):
    import deepad

    _irregular_series_csv(tmp_path / "s.csv")
    base = ["train", tmp_path / "s.csv", "-x", "host,is_anomaly"]
    assert _cli(*base, "-d", "ConformalKNN", "-o", tmp_path / "a", "--fpr", "0.001").exit_code == 0
    assert deepad.load(tmp_path / "a").threshold_ == pytest.approx(0.3)  # fpr = the conformal level
    res = _cli(*base, "-d", "RollingZScore", "-o", tmp_path / "b", "--threshold", "pot", "--resample", "10min")
    assert res.exit_code == 0, res.output
    b = deepad.load(tmp_path / "b")
    assert b.threshold_method_["method"] == "pot_risk" and b.series_input_["points"] == 750 - 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "ConformalKNN"], "value column(s) ['host'] are not numeric (row 0: 'a')"),
        (["-d", "ConformalKNN", "-x", "host", "--threshold", "pot"], "--threshold pot does not apply"),
        (["-d", "ConformalKNN", "-x", "host", "--type", "cpu=numeric"], "--type applies to tables"),
        (["-d", "ConformalKNN", "-x", "host", "--resample", "banana"], "--resample expects a positive fixed step"),
        (["-d", "ConformalKNN", "-x", "host", "--timestamp-column", "when"], "no timestamp column 'when'"),
        (["-d", "ConformalKNN", "-x", "host,nope"], "--exclude names columns it does not have: ['nope']"),
        (["-d", "KNN", "--resample", "5min"], "--resample applies to time-series detectors"),
    ],
)
def test_cli_train_series_bad_input_is_one_clear_line(tmp_path, args, message):
    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli("train", tmp_path / "s.csv", "-o", tmp_path / "m", *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "m").exists()


def test_cli_stream_checks_the_trained_grid_clock(tmp_path):
    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli(
        "train",
        tmp_path / "s.csv",
        "-d",
        "ConformalKNN",
        "-o",
        tmp_path / "m",
        "-x",
        "host,is_anomaly",
        "--params",
        '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}',
    )
    assert res.exit_code == 0, res.output
    rows = ["time,cpu,mem"] + [f"2024-02-01 00:{5 * i:02d}:00,0.1,0.2" for i in range(6)]
    gap = rows + ["2024-02-01 01:00:00,0.1,0.2"]  # 30 min after 00:25: 5 missing steps
    cmd = [sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m")]
    out = subprocess.run(cmd, input="\n".join(gap) + "\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 7
    assert "line 8: 0 days 00:35:00 since the previous row, about 7 steps" in out.stderr
    back = rows + ["2024-02-01 00:10:00,0.1,0.2"]
    out = subprocess.run(cmd, input="\n".join(back) + "\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stdout.splitlines()) == 6  # the rows before it were scored
    assert "line 8: timestamp 2024-02-01 00:10:00 is before the previous row's" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_score_reads_a_series_on_the_models_grid(tmp_path):
    _irregular_series_csv(tmp_path / "s.csv")
    assert (
        _cli(
            "train",
            tmp_path / "s.csv",
            "-d",
            "ConformalKNN",
            "-o",
            tmp_path / "m",
            "-x",
            "host,is_anomaly",
            "--params",
            '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}',
        ).exit_code
        == 0
    )
    _irregular_series_csv(tmp_path / "live.csv", n=600, spike=450)  # shuffled, with gaps and a repeated row
    res = _cli("score", tmp_path / "m", tmp_path / "live.csv", "-o", tmp_path / "out.csv", "--rearm", "64")
    assert res.exit_code == 0, res.output
    out = pd.read_csv(tmp_path / "out.csv", parse_dates=["time"])
    assert list(out.columns) == ["time", "score", "p_value", "threshold", "is_anomaly", "alert"]
    assert len(out) == 600 and out["time"].is_monotonic_increasing  # sorted, the repeat averaged, 2 steps filled
    assert (out["alert"] <= out["is_anomaly"]).all() and out["alert"].sum() < out["is_anomaly"].sum()
    first = out.loc[out["alert"] == 1, "time"]
    spike = pd.Timestamp("2024-01-01") + 450 * pd.Timedelta("5min")
    assert ((first >= spike) & (first <= spike + pd.Timedelta("50min"))).any()
    assert (
        "--explain is for tables"
        in _cli("score", tmp_path / "m", tmp_path / "live.csv", "-o", tmp_path / "o2.csv", "--explain").output
    )
    assert not (tmp_path / "o2.csv").exists()


def test_cli_train_series_says_which_threshold_alerts(tmp_path):
    """A SPOT-alerting series model: train states the fixed threshold *and* what the alert rule marks (issue 19)."""
    import re

    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli("train", tmp_path / "s.csv", "-d", "RollingZScore", "-o", tmp_path / "m", "-x", "host,is_anomaly")
    assert res.exit_code == 0, res.output
    n = re.search(r"flags [\d,]+ of ([\d,]+) training points", res.output)
    said = re.search(r"adaptive SPOT threshold .* marks ([\d,]+) of ([\d,]+) points", res.output)
    assert n and said and said.group(2) == n.group(1), res.output
    assert _cli("score", tmp_path / "m", tmp_path / "s.csv", "-o", tmp_path / "out.csv").exit_code == 0
    assert int(pd.read_csv(tmp_path / "out.csv")["is_anomaly"].sum()) == int(said.group(1).replace(",", ""))
    conformal = _cli("train", tmp_path / "s.csv", "-d", "ConformalKNN", "-o", tmp_path / "c", "-x", "host,is_anomaly")
    assert conformal.exit_code == 0 and "adaptive SPOT" not in conformal.output  # its own threshold alerts
