"""NAB scorer on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepad.bench import nab

from conftest import SHARED
from nab_data import _tiny_corpus

N = 1000  # probation = 150 rows
WINS = [(300, 399), (700, 749)]


def mask(*rows, n=N):
    m = np.zeros(n, dtype=int)
    m[list(rows)] = 1
    return m


def test_scaled_sigmoid_values():
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert nab.scaled_sigmoid(3.5) == -1.0
    assert nab.scaled_sigmoid(1.0) < 0 < nab.scaled_sigmoid(-0.5)


def test_probation_length():
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(10000) == 750
    assert nab.probation_length(10000, cap=None) == 1500


@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_perfect_detector_scores_100_and_null_0(profile):
    perfect = nab.score_corpus({"a": (mask(300, 700), WINS, N), "b": (mask(n=500), [], 500)}, profile)
    null = nab.score_corpus({"a": (mask(), WINS, N), "b": (mask(n=500), [], 500)}, profile)
    assert perfect["score"] == pytest.approx(100.0)
    assert null["score"] == pytest.approx(0.0)
    fn = abs(nab.PROFILES[profile].a_fn)
    assert null["raw"] == pytest.approx(-2 * fn)
    assert perfect["raw"] == pytest.approx(2.0)


def test_first_detection_in_window_counts_and_late_detection_earns_less():
    at_start = nab.score_file(mask(300), WINS[:1], N)
    at_start_then_more = nab.score_file(mask(300, 310, 399), WINS[:1], N)
    late = nab.score_file(mask(399), WINS[:1], N)
    middle = nab.score_file(mask(350), WINS[:1], N)
    assert at_start["raw"] == pytest.approx(1.0)  # the perfect per-window reward
    assert at_start_then_more["raw"] == pytest.approx(1.0)  # later detections in the window ignored
    assert at_start_then_more["fp"] == 0
    assert late["raw"] == pytest.approx(nab.scaled_sigmoid(-1 / 100) / nab.scaled_sigmoid(-1.0))  # last row
    assert 0 < late["raw"] < 0.03
    assert late["raw"] < middle["raw"] < at_start["raw"]
    # middle: position -(399-350+1)/100 = -0.5
    assert middle["raw"] == pytest.approx(nab.scaled_sigmoid(-0.5) / nab.scaled_sigmoid(-1.0))


def test_false_positives_weighted_by_distance_and_profile():
    # no preceding window: full A_FP; detection + missed window
    early = nab.score_file(mask(200), WINS[:1], N)
    assert early["raw"] == pytest.approx(-0.11 - 1.0)
    assert early["fp"] == 1 and early["fn"] == 1
    low_fp = nab.score_file(mask(200), WINS[:1], N, "reward_low_FP_rate")
    assert low_fp["raw"] == pytest.approx(-0.22 - 1.0)
    low_fn = nab.score_file(mask(200), WINS[:1], N, "reward_low_FN_rate")
    assert low_fn["raw"] == pytest.approx(-0.11 - 2.0)
    # just after a window: sigmoid of distance / (width - 1) -- small penalty, growing with distance
    near = nab.score_file(mask(300, 405), WINS[:1], N)
    far = nab.score_file(mask(300, 700), WINS[:1], N)
    assert near["raw"] == pytest.approx(1.0 + 0.11 * nab.scaled_sigmoid(6 / 99))
    assert far["raw"] == pytest.approx(1.0 - 0.11)  # 301/99 > 3: the full A_FP
    assert 1.0 - 0.11 <= far["raw"] < near["raw"] < 1.0


def test_probationary_period_ignored():
    r = nab.score_file(mask(10, 100, 300), WINS[:1], N)
    assert r["fp"] == 0 and r["raw"] == pytest.approx(1.0)


def test_window_metrics():
    res = nab.score_corpus({"a": (mask(300, 200, 800), WINS, N)})
    assert (res["tp"], res["fp"], res["fn"]) == (1, 2, 1)
    m = nab.window_metrics(res)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


def test_window_indices_from_timestamps():
    ts = pd.date_range("2020-01-01", periods=10, freq="5min")
    wins = nab.window_indices(ts, [["2020-01-01 00:10:00.000000", "2020-01-01 00:20:00.000000"]])
    assert wins == [(2, 4)]
    with pytest.raises(ValueError, match="ends before"):
        nab.window_indices(ts, [["2020-01-01 00:20:00", "2020-01-01 00:10:00"]])


def test_bad_detections_rejected():
    with pytest.raises(ValueError, match="detection rows"):
        nab.score_file([5, 2000], WINS, N)


@pytest.mark.skipif(not (SHARED / "nab" / "combined_windows.json").exists(), reason="NAB data not available")
def test_corpus_loads_and_null_is_zero():
    results = {}
    for key, df, wins in nab.load_corpus(SHARED / "nab", categories=["realAWSCloudwatch"]):
        assert {"timestamp", "value"} <= set(df.columns)
        results[key] = (np.zeros(len(df), dtype=int), wins, len(df))
    assert results
    assert nab.score_corpus(results)["score"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- NAB's threshold optimisation
@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_optimize_threshold_matches_brute_force_sweep(profile):
    rng = np.random.default_rng(1)
    res = {}
    for f in range(3):
        s = np.round(rng.random(N), 2)  # ties on purpose
        s[rng.integers(0, N, 5)] = np.nan
        s[305] = s[702] = 0.995  # a good detector's early hits
        res[f"f{f}"] = (s, WINS if f != 1 else [(500, 520)], N)
    best = nab.optimize_threshold(res, profile)
    brute = max(
        (
            nab.score_corpus({k: (np.nan_to_num(s, nan=-1.0) >= t, w, n) for k, (s, w, n) in res.items()}, profile)[
                "score"
            ],
            t,
        )
        for t in np.unique(np.concatenate([s[np.isfinite(s)] for s, _, _ in res.values()]))
    )
    assert best["score"] == pytest.approx(max(brute[0], 0.0))
    at = nab.score_corpus(
        {k: (np.nan_to_num(s, nan=-1.0) >= best["threshold"], w, n) for k, (s, w, n) in res.items()}, profile
    )
    assert at["score"] == pytest.approx(best["score"])
    assert (at["tp"], at["fp"]) == (best["tp"], best["fp"])


def test_optimize_threshold_perfect_and_null_scores():
    perfect = np.zeros(N)
    perfect[[300, 700]] = 1.0
    assert nab.optimize_threshold({"a": (perfect, WINS, N)})["score"] == pytest.approx(100.0)
    null = nab.optimize_threshold({"a": (np.zeros(N), WINS, N)})  # everything flagged or nothing: nothing wins
    assert null["score"] == pytest.approx(0.0) and null["threshold"] == float("inf")
    with pytest.raises(ValueError, match="scores for"):
        nab.optimize_threshold({"a": (np.zeros(10), WINS, N)})


# --------------------------------------------------------------------------- the runner
def test_run_nab_finds_planted_spikes_and_writes_outputs(tmp_path):
    from deepad.bench.nab_run import run_nab

    root = _tiny_corpus(tmp_path / "nab")
    s = run_nab(root, "RollingZScore", {"window": 32}, out=tmp_path / "out", progress=False)
    det = s["causal"]["deepad RollingZScore"]
    assert s["files"] == 3 and det["tp"] == 2 and det["fn"] == 0
    assert det["standard"] > 50 and s["causal"]["null"]["standard"] == pytest.approx(0.0)
    assert s["nab"]["deepad RollingZScore"]["standard"] > 50
    assert s["nab"]["deepad RollingZScore"]["standard"] > s["nab"]["random (uniform scores)"]["standard"]
    assert 0 < s["latency_ms_per_point"] < 50
    for f in ("summary_RollingZScore.md", "results_RollingZScore.json", "per_file_RollingZScore.csv"):
        assert (tmp_path / "out" / f).exists()
    per_file = pd.read_csv(tmp_path / "out" / "per_file_RollingZScore.csv")
    assert list(per_file["file"]) == ["cat/a.csv", "cat/b.csv", "cat/c.csv"] and per_file["tp"].sum() == 2
