"""A stream of a model trained on a series starts after the end of its training series (issue 21: no cold start)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import deepad
from deepad.detectors import LikelihoodKNN, OnlineForecaster
from deepad.stream import HISTORY_ROWS, StreamScorer, keep_stream_history

from conftest import FAST_PARAMS


def _daily_cycle(n=3000, seed=0):
    """A clean daily cycle on a 5-minute grid: every point after the training part is normal."""
    rng = np.random.default_rng(seed)
    return 50 + 10 * np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.5, n)


@pytest.fixture(scope="module")
def knn():
    v = _daily_cycle()
    model = LikelihoodKNN().fit(v[:2000, None])
    keep_stream_history(model, v[:2000, None])
    return model, v


def test_a_kept_history_removes_the_cold_start_false_alerts(knn):
    model, v = knn
    live = v[2000:, None]
    warm = StreamScorer(model)  # history="auto": the model's stream_history_
    cold = StreamScorer(model, history=None)
    assert warm.n_primed == 2000 and cold.n_primed == 0
    n_warm, n_cold = int(warm.update(live).alerts.sum()), int(cold.update(live).alerts.sum())
    assert n_warm == 0 and n_cold >= 20  # measured: 0 against 71 on this series
    # the same as priming by hand with the training rows
    by_hand = StreamScorer(model, history=None).prime(v[:2000, None]).update(live)
    np.testing.assert_array_equal(StreamScorer(model).update(live).scores, by_hand.scores)


def test_the_history_is_saved_with_the_model_and_bounded(knn, tmp_path):
    model, v = knn
    model.save(tmp_path / "m")
    again = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(again.stream_history_, v[:2000, None])
    long = np.tile(v[:, None], (3, 1))  # 9,000 rows: only the end is kept
    keep_stream_history(again, long)
    assert again.stream_history_.shape == (HISTORY_ROWS, 1)
    np.testing.assert_array_equal(again.stream_history_, long[-HISTORY_ROWS:])


def test_online_forecaster_keeps_its_window_and_replay_buffer():
    X = _daily_cycle(4000)[:, None]
    model = OnlineForecaster(**{**FAST_PARAMS["OnlineForecaster"], "replay": 3000}).fit(X[:1500])
    keep_stream_history(model, X)
    assert model.stream_history_.shape[0] == 3000 + 16 - 1  # replay windows of window=16 rows
    scores = StreamScorer(model).update(X[-10:]).scores
    assert np.isfinite(scores).all()  # full windows from the first point


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: keep_stream_history(m, np.zeros((10, 2))), "must have 1 columns"),
        (lambda m: StreamScorer(m, history="warm"), "history must be 'auto', None or an array"),
        (lambda m: StreamScorer(m, history=np.zeros((5, 3))), "points must have 1 values per row"),
    ],
)
def test_bad_history_is_refused_clearly(knn, call, message):
    with pytest.raises(ValueError, match=message):
        call(knn[0])


def _stream(model_dir, csv_text, *args):
    out = subprocess.run(
        [sys.executable, "-m", "deepad.cli", "stream", str(model_dir), *args],
        input=csv_text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, [json.loads(line) for line in out.stdout.splitlines()]


def test_cli_train_keeps_the_history_and_stream_starts_after_it(tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app

    v = _daily_cycle()
    t = pd.date_range("2026-01-01", periods=v.size, freq="5min")
    pd.DataFrame({"timestamp": t[:2000], "value": v[:2000]}).to_csv(tmp_path / "train.csv", index=False)
    live = pd.DataFrame({"timestamp": t[2000:2400], "value": v[2000:2400]}).to_csv(index=False)
    res = CliRunner().invoke(
        app, ["train", str(tmp_path / "train.csv"), "-d", "LikelihoodKNN", "-o", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    assert deepad.load(tmp_path / "m").stream_history_.shape == (2000, 1)
    out, warm = _stream(tmp_path / "m", live)
    assert out.returncode == 0, out.stderr
    assert "Stream continues the training series (its last 2,000 points)." in out.stderr
    assert len(warm) == 400 and not any(r["alert"] for r in warm)
    out, cold = _stream(tmp_path / "m", live, "--cold-start")
    assert out.returncode == 0 and "continues the training series" not in out.stderr
    assert sum(r["alert"] for r in cold) >= 20  # the cold start's false alerts, all in the first 100 points
    assert all(i < 100 for i, r in enumerate(cold) if r["alert"])
    # a saved stream state carries its own history: --cold-start does not apply to it
    out, _ = _stream(tmp_path / "m", live, "--save-state", str(tmp_path / "state"))
    assert out.returncode == 0, out.stderr
    out, _ = _stream(tmp_path / "state", live, "--cold-start")
    assert out.returncode == 2 and "--cold-start does not apply" in out.stderr and "Traceback" not in out.stderr


def test_cli_stream_of_a_model_saved_without_history_says_it_starts_cold(knn, tmp_path):
    model, v = knn
    old = LikelihoodKNN().fit(v[:2000, None])
    old.series_input_ = {"timestamp": "timestamp", "step": "5min", "fill_limit": 3}  # as deepad train records it
    old.save(tmp_path / "old")
    t = pd.date_range("2026-01-01", periods=v.size, freq="5min")
    live = pd.DataFrame({"timestamp": t[2000:2050], "value": v[2000:2050]}).to_csv(index=False)
    out, rows = _stream(tmp_path / "old", live)
    assert out.returncode == 0, out.stderr
    assert "does not keep the end of its training series" in out.stderr and len(rows) == 50


def test_the_library_default_threshold_is_the_one_deepad_stream_uses(knn):
    """StreamScorer(model) takes the detector's own calibrated threshold, as deepad stream and the service do."""
    from deepad.detectors import ConformalKNN
    from deepad.stream import default_threshold

    v = knn[1]
    conformal = ConformalKNN(window=8, coarse_chunks=4, coarse_width=8, memory=400).fit(v[:800, None])
    assert default_threshold(conformal) == "fixed" and StreamScorer(conformal).threshold == "fixed"
    assert StreamScorer(knn[0]).threshold == default_threshold(knn[0]) == "spot"
    assert StreamScorer(conformal, threshold="spot").threshold == "spot"  # asked for: kept
    with pytest.raises(ValueError, match="threshold must be 'auto', 'spot' or 'fixed'"):
        StreamScorer(conformal, threshold="adaptive")
