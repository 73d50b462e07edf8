"""Smaller CLI defects of issue 19 (item 5), one test each: stream, -q, --help, score -o, detector kinds, p-values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepad.cli import app


def _run(args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A numeric table with its HBOS model, and a one-minute series with spikes with its ConformalKNN model."""
    d = tmp_path_factory.mktemp("defects")
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"]).to_csv(d / "table.csv", index=False)
    assert _run(["train", d / "table.csv", "-d", "HBOS", "-o", d / "table-model"]).exit_code == 0
    n = 900
    x = np.sin(np.arange(n) / 10) + rng.normal(0, 0.1, n)
    x[[500, 650, 800]] += 4.0
    t = pd.date_range("2022-01-01", periods=n, freq="1min").astype(str)
    pd.DataFrame({"timestamp": t, "x0": x}).to_csv(d / "series.csv", index=False)
    x = np.sin(np.arange(n, n + 600) / 10) + rng.normal(0, 0.1, 600)
    x[[150, 300, 450]] += 30.0  # spikes unlike anything in training: ConformalKNN flags them
    x[500:520] = 12.0
    t = pd.date_range(t[-1], periods=601, freq="1min")[1:].astype(str)
    pd.DataFrame({"timestamp": t, "x0": x}).to_csv(d / "new.csv", index=False)
    res = _run(["train", d / "series.csv", "-d", "ConformalKNN", "-o", d / "series-model"])
    assert res.exit_code == 0, res.output
    res = _run(["train", d / "series.csv", "-d", "RollingZScore", "-o", d / "zscore-model"])
    assert res.exit_code == 0, res.output
    return d


# --------------------------------------------------------------------------- deepad stream
def test_stream_on_a_table_model_says_it_needs_a_series_model(work):
    rows = (work / "table.csv").read_text().splitlines()[:5]
    res = _run(["stream", work / "table-model"], input="\n".join(rows) + "\n")
    assert res.exit_code == 2
    assert "missing column" not in res.output
    assert "trained on table rows" in res.output and "time-series model" in res.output
    assert "deepad score" in res.output and "ConformalKNN" in res.output


def test_stream_json_lines_line_numbers_count_from_one(work):
    good = json.dumps({"timestamp": "2022-01-01 20:00:00", "x0": 0.5})
    bad = json.dumps({"timestamp": "2022-01-01 20:01:00", "x0": "zz"})
    res = _run(["stream", work / "series-model"], input=f"{bad}\n")
    assert res.exit_code == 2 and "line 1:" in res.output, res.output
    res = _run(["stream", work / "series-model"], input=f"{good}\n\n{bad}\n")  # a blank line still counts
    assert res.exit_code == 2 and "line 3:" in res.output, res.output
    # CSV: the header is line 1, so the second data row is line 3
    res = _run(
        ["stream", work / "series-model"], input="timestamp,x0\n2022-01-01 20:00:00,0.5\n2022-01-01 20:01:00,zz\n"
    )
    assert res.exit_code == 2 and "line 3:" in res.output, res.output


def test_stream_risk_for_conformal_knn_is_refused_not_ignored(work):
    line = json.dumps({"timestamp": "2022-01-01 20:00:00", "x0": 0.5}) + "\n"
    res = _run(["stream", work / "series-model", "--risk", "0.01"], input=line)
    assert res.exit_code == 2
    assert "--risk does not apply to ConformalKNN" in res.output and "--contamination" in res.output
    res = _run(["stream", work / "zscore-model", "--risk", "0.01", "--fixed-threshold"], input=line)
    assert res.exit_code == 2 and "--fixed-threshold" in res.output
    assert _run(["stream", work / "zscore-model", "--risk", "0.01"], input=line).exit_code == 0  # SPOT: applies


def test_risk_for_likelihood_detectors_is_refused_not_ignored(work, tmp_path):
    """LikelihoodKNN's stream alarms by the anomaly likelihood: --risk (SPOT's) used to be accepted and ignored."""
    model = tmp_path / "lk-model"
    res = _run(["train", work / "series.csv", "-d", "LikelihoodKNN", "-o", model])
    assert res.exit_code == 0, res.output
    line = json.dumps({"timestamp": "2022-01-01 20:00:00", "x0": 0.5}) + "\n"
    res = _run(["stream", model, "--risk", "0.01"], input=line)
    assert res.exit_code == 2 and "--risk does not apply to LikelihoodKNN" in res.output, res.output
    assert "anomaly likelihood" in res.output and '"epsilon"' in res.output and "--fixed-threshold" in res.output
    assert _run(["stream", model], input=line).exit_code == 0
    res = _run(["report", model, work / "series.csv", "-o", tmp_path / "r.html", "--risk", "0.01"])
    assert res.exit_code == 2 and "--risk does not apply to LikelihoodKNN" in res.output
    assert "--fixed-threshold" not in res.output and not (tmp_path / "r.html").exists()


def test_stream_settings_on_a_saved_state_are_refused_not_ignored(work, tmp_path):
    rows = (work / "series.csv").read_text().splitlines()[:40]
    res = _run(["stream", work / "zscore-model", "--save-state", tmp_path / "st"], input="\n".join(rows) + "\n")
    assert res.exit_code == 0, res.output
    res = _run(["stream", tmp_path / "st", "--rearm", "5", "--smoothing", "2"], input=rows[0] + "\n")
    assert res.exit_code == 2
    assert "saved stream state" in res.output and "--rearm, --smoothing do not apply" in res.output
    assert _run(["stream", tmp_path / "st"], input="\n".join(rows[:3]) + "\n").exit_code == 0


# --------------------------------------------------------------------------- series p-values
@pytest.mark.parametrize("model, level", [("series-model", 0.01), ("zscore-model", 1e-4)])
def test_series_p_value_is_below_the_alert_level_exactly_on_flagged_rows(work, tmp_path, model, level):
    out = tmp_path / "scored.csv"
    res = _run(["score", work / model, work / "new.csv", "-o", out])
    assert res.exit_code == 0, res.output
    d = pd.read_csv(out)
    scored = d["score"].notna()
    assert d["is_anomaly"].sum() >= 1  # the spikes are flagged, so both sides of the rule are exercised
    below = d["p_value"] < level
    assert (below == (d["is_anomaly"] == 1))[scored].all()
    assert (~below & scored).sum() > 100  # most rows are normal
    assert d.loc[scored, "p_value"].between(0, 1).all()


def test_score_help_says_what_p_value_means_for_a_series():
    res = _run(["score", "--help"])
    text = " ".join(res.output.split())
    assert "exactly on the rows with is_anomaly 1" in text and "conformal p-value" in text


# --------------------------------------------------------------------------- -q and --help
def test_quiet_after_the_subcommand(work, tmp_path):
    before = _run(["-q", "train", work / "table.csv", "-d", "HBOS", "-o", tmp_path / "m1"])
    after = _run(["train", work / "table.csv", "-d", "HBOS", "-o", tmp_path / "m2", "-q"])
    loud = _run(["train", work / "table.csv", "-d", "HBOS", "-o", tmp_path / "m3"])
    assert before.exit_code == after.exit_code == loud.exit_code == 0, after.output
    assert "Columns:" in loud.output and "Columns:" not in after.output
    assert after.output.replace("m2", "m1") == before.output
    res = _run(["score", tmp_path / "m2", work / "table.csv", "-o", tmp_path / "s.csv", "--quiet"])
    assert res.exit_code == 0, res.output


def test_every_command_takes_quiet_after_its_name():
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"-q", "--quiet"} <= opts, name


def test_help_keeps_bracketed_extras():
    shown = {}
    for command in ("serve", "train", "score", "tune"):
        res = _run([command, "--help"])
        assert res.exit_code == 0
        shown[command] = " ".join(res.output.split())
    assert "pip install 'deepad[serve]'" in shown["serve"]
    assert "'deepad[tracking]'" in shown["train"]
    for command, text in shown.items():
        assert "pip install 'deepad'" not in text, command


# --------------------------------------------------------------------------- deepad score -o, detector kinds
@pytest.mark.parametrize("command, name", [("score", "out.csv"), ("report", "report.html")])
def test_output_into_a_missing_directory_is_an_error(work, tmp_path, command, name):
    out = tmp_path / "nonexistent" / "dir" / name
    res = _run([command, work / "table-model", work / "table.csv", "-o", out])
    assert res.exit_code == 2
    assert str(out.parent) in res.output and "does not exist" in res.output
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "file").write_text("")
    res = _run([command, work / "table-model", work / "table.csv", "-o", tmp_path / "file" / name])
    assert res.exit_code == 2 and "is not a directory" in res.output


def test_image_detector_on_a_table_names_the_problem(work, tmp_path):
    res = _run(["train", work / "table.csv", "-d", "ConvAutoEncoder", "-o", tmp_path / "m"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "ConvAutoEncoder is an image detector" in text and "folder of images" in text
    assert "HBOS" in text and "(N, H, W)" not in text
    assert not (tmp_path / "m").exists()


def test_explain_help_does_not_promise_a_row_column(work, tmp_path):
    text = " ".join(_run(["explain", "--help"]).output.split())
    assert "`deepad score`'s row column" not in text
    assert "only when the data has no id column" in text and "from 0" in text
    # with ids, score writes no row column, and --rows still counts data rows by position
    ids = pd.read_csv(work / "table.csv").assign(tx=lambda d: [f"T{i:04d}" for i in range(len(d))])
    ids.to_csv(tmp_path / "ids.csv", index=False)
    model = tmp_path / "ids-model"
    assert _run(["train", tmp_path / "ids.csv", "-d", "HBOS", "-o", model]).exit_code == 0  # tx: an id column
    assert _run(["score", model, tmp_path / "ids.csv", "-o", tmp_path / "s.csv"]).exit_code == 0
    scored = pd.read_csv(tmp_path / "s.csv")
    assert "row" not in scored.columns and scored["tx"].iloc[7] == "T0007"
    res = _run(["explain", model, tmp_path / "ids.csv", "--rows", "7"])
    assert res.exit_code == 0, res.output
    assert f"{scored['score'].iloc[7]:.4g}" in res.output


def test_report_options_that_do_not_apply_are_refused(work, tmp_path):
    out = tmp_path / "r.html"
    res = _run(["report", work / "series-model", work / "new.csv", "-o", out, "--risk", "0.01"])
    assert res.exit_code == 2 and "--risk does not apply to ConformalKNN" in res.output
    res = _run(["report", work / "table-model", work / "table.csv", "-o", out, "--rearm", "5", "--png", "x.png"])
    assert res.exit_code == 2 and "--rearm, --png apply to time-series models" in res.output
    assert not out.exists()
    res = _run(["report", work / "zscore-model", work / "new.csv", "-o", out, "--risk", "0.01"])
    assert res.exit_code == 0, res.output  # SPOT: --risk applies


def test_score_options_that_would_be_ignored_are_refused(work, tmp_path):
    """--top without --explain, --batch-rows on a series: refused, not silently ignored (issue 19)."""
    out = tmp_path / "s.csv"
    res = _run(["score", work / "table-model", work / "table.csv", "-o", out, "--top", "5"])
    assert res.exit_code == 2 and "--top sets how many columns --explain lists" in res.output
    assert not out.exists()
    res = _run(["score", work / "table-model", work / "table.csv", "-o", out, "--top", "2", "--explain"])
    assert res.exit_code == 0, res.output
    listed = pd.read_csv(out)["top_features"].dropna()
    counts = listed.str.split("; ").map(len)
    assert len(listed) and counts.max() == 2
    res = _run(["score", work / "series-model", work / "new.csv", "-o", tmp_path / "x.csv", "--batch-rows", "100"])
    assert res.exit_code == 2 and "--batch-rows is for tables" in res.output
    assert _run(["score", work / "table-model", work / "table.csv", "-o", out, "--batch-rows", "64"]).exit_code == 0
