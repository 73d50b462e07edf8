"""A multivariate series through the CLI (issue 21): train MultiSeriesKNN on sensors, stream them with the columns
that drove each alert, score and report them, and the bad inputs a stream of several columns can bring."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepad.cli import app
from deepad.data.synthetic import make_sensor_series

TRAIN = 1500


def run(*args):
    result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def stream(model, text: str, *extra: str):
    """``deepad stream`` in-process (stdin from ``text``); ``test_series_cli.py`` runs it in a real subprocess."""
    result = CliRunner().invoke(app, ["--quiet", "stream", str(model), *extra], input=text)
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    frame, faults = make_sensor_series(n=3000, train=TRAIN, n_faults=4, seed=1)
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame.iloc[:TRAIN].to_csv(d / "train.csv", index=False)
    frame.iloc[TRAIN:].to_csv(d / "new.csv", index=False)
    r = run("train", d / "train.csv", "-d", "MultiSeriesKNN", "--contamination", "0.0001", "-o", d / "model")
    assert r.exit_code == 0, r.output
    return {"dir": d, "faults": faults, "frame": frame}


def test_stream_prints_the_columns_that_drove_each_alert(work):
    d, faults = work["dir"], work["faults"]
    out = stream(d / "model", (d / "new.csv").read_text(), "--refractory", "16", "--rearm", "16")
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3000 - TRAIN
    alerts = [(i + TRAIN, r) for i, r in enumerate(rows) if r["alert"]]
    assert alerts and all("columns" not in r for r in rows if not r["alert"])
    in_fault = 0
    for i, r in alerts:
        f = faults[(faults.start <= i) & (i < faults.end + 15)]
        if len(f):
            in_fault += 1
            culprits = set(f.iloc[0]["columns"].split(","))
            assert set(list(r["columns"])[: len(culprits)]) == culprits, (i, r["columns"])
            assert all(0.0 <= v <= 1.0 for v in r["columns"].values())
    assert in_fault >= len(faults)  # every fault was found and named


def test_score_and_report_show_the_driving_columns_and_each_alert_window(work):
    d = work["dir"]
    r = run("score", d / "model", d / "new.csv", "-o", d / "scores.csv")
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(d / "scores.csv", keep_default_na=False)
    hit = scored[scored["alert"] == 1]
    assert len(hit) and (scored.loc[scored["alert"] == 0, "columns"] == "").all()
    assert all(next(iter(json.loads(c))).startswith("sensor_") for c in hit["columns"])
    r = run("report", d / "model", d / "new.csv", "-o", d / "r.html", "--refractory", "16", "--rearm", "16")
    assert r.exit_code == 0, r.output
    html = (d / "r.html").read_text()
    assert "columns that drove it" in html and "own rarity" in html
    images = re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    n_alerts = int(re.search(r"<b>(\d+)</b> alerts", html).group(1))
    assert n_alerts >= 4 and len(images) == 1 + min(n_alerts, 30)  # the overview plus one window per alert
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert re.search(r"<code>sensor_3</code> 0\.\d{3}", html)  # a shift fault names its sensor with its rarity


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.replace(",sensor_5", ",other", 1), "lacks the model's value column(s) ['sensor_5']"),
        (lambda t: _cell(t, 40, 4, "oops"), "line 41: non-numeric value in field 'sensor_3' ('oops')"),
        (lambda t: _cell(t, 40, 4, ""), "line 41: non-numeric value in field 'sensor_3' (empty)"),
        (lambda t: _cell(t, 40, 2, "nan"), "line 41: field 'sensor_1' is 'nan'"),
    ],
)
def test_stream_bad_input_is_one_clear_line_and_exit_2(work, mutate, message):
    d = work["dir"]
    text = "\n".join((d / "new.csv").read_text().splitlines()[:80]) + "\n"
    out = stream(d / "model", mutate(text))
    assert out.exit_code == 2, (out.exit_code, out.output)
    assert message in out.output


def _cell(text: str, row: int, col: int, value: str) -> str:
    lines = text.splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_stream_of_json_lines_missing_a_sensor_names_it(work):
    d = work["dir"]
    rec = {"timestamp": "2024-01-02 01:00:00", **{f"sensor_{j}": 0.1 for j in range(5)}}
    out = stream(d / "model", json.dumps(rec) + "\n")
    assert out.exit_code == 2 and "missing field(s) ['sensor_5']" in out.output


def test_train_names_a_non_numeric_value_column(work):
    d = work["dir"]
    frame = work["frame"].iloc[:TRAIN].copy()
    frame["sensor_2"] = frame["sensor_2"].astype(str)
    frame.loc[7, "sensor_2"] = "broken"
    frame.to_csv(d / "bad.csv", index=False)
    r = run("train", d / "bad.csv", "-d", "MultiSeriesKNN", "-o", d / "bad_model")
    assert r.exit_code == 2 and "sensor_2" in r.output and "'broken'" in r.output
    assert not (d / "bad_model").exists()
    assert np.isfinite(work["frame"].iloc[:, 1:].to_numpy(dtype=float)).all()
