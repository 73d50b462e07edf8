"""Time series: reading/resampling/windowing, window detectors (own contract tests), streaming scorer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import deepad
import deepad.detectors as D
from deepad.data.series import align_to_points, median_step, read_series, regularize, sliding_windows
from deepad.stream import SPOT, StreamScorer

import series_data
from series_data import SERIES_DETECTORS, _knn, make, sine

fitted = series_data.fitted  # the module-scoped fixture: the fitted series detectors


# --------------------------------------------------------------------------- data
def test_read_and_regularize_irregular_series_with_gaps(tmp_path):
    ts = pd.date_range("2021-01-01", periods=100, freq="1min")
    keep = np.ones(100, dtype=bool)
    keep[[10, 11]] = False  # short gap: interpolated
    keep[50:60] = False  # long gap: dropped
    df = pd.DataFrame(
        {
            "ts": ts[keep] + pd.to_timedelta(np.r_[0, np.full(keep.sum() - 1, 2)], unit="s"),
            "a": np.arange(100.0)[keep],
            "b": 2 * np.arange(100.0)[keep],
        }
    )
    df = df.iloc[::-1]  # unsorted input
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    s = read_series(path)
    assert list(s.columns) == ["a", "b"] and s.index.is_monotonic_increasing
    assert median_step(s.index) == pd.Timedelta("1min")
    r = regularize(s, limit=3)
    assert r.attrs["imputed"] == 2
    assert np.isfinite(r.to_numpy()).all()
    assert len(r) == 90  # 100 bins - 10 in the long gap
    np.testing.assert_allclose(r["a"].iloc[10:12], [10.0, 11.0], atol=0.05)  # time interpolation of a ramp
    np.testing.assert_allclose(r["b"], 2 * r["a"])


def test_read_series_errors(tmp_path):
    with pytest.raises(ValueError, match="timestamp column 'nope'"):
        read_series(pd.DataFrame({"t": ["2020-01-01"], "v": [1.0]}), timestamp="nope")
    with pytest.raises(ValueError, match="cannot be parsed"):
        read_series(pd.DataFrame({"t": ["x", "y"], "v": [1.0, 2.0]}), timestamp="t")
    with pytest.raises(ValueError, match="no numeric value columns"):
        read_series(pd.DataFrame({"timestamp": ["2020-01-01"], "v": ["a"]}))


def test_windows_and_alignment():
    X = np.arange(10.0).reshape(-1, 1)
    W = sliding_windows(X, 4)
    assert W.shape == (7, 4, 1)
    np.testing.assert_array_equal(W[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(W[-1, :, 0], [6, 7, 8, 9])
    assert sliding_windows(X, 4, stride=3).shape == (3, 4, 1)
    s = align_to_points(np.arange(7.0), 10, 4)
    np.testing.assert_array_equal(s, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="fewer than the window"):
        sliding_windows(X, 11)


# --------------------------------------------------------------------------- detector contract
@pytest.mark.parametrize("name", SERIES_DETECTORS)
class TestSeriesContract:
    def test_exported_and_marked(self, name):
        assert name in D.__all__ and getattr(D, name)._needs_wrapped

    def test_one_score_per_row_and_rescoring_reproduces(self, name, fitted):
        det = fitted[name]
        X = sine()
        assert det.decision_scores_.shape == (600,)
        np.testing.assert_array_equal(det.decision_function(X[:600]), det.decision_scores_)
        assert det.decision_function(X).shape == (X.shape[0],)
        assert 0.05 <= det.labels_.mean() <= 0.15

    def test_planted_spike_and_flatline_found(self, name, fitted):
        det = fitted[name]
        X = sine(seed=3)
        X[900, 0] += 3.0
        s = det.decision_function(X)
        assert s[900] > np.quantile(s[650:], 0.99), f"{name}: spike not in top 1%"

    def test_first_rows_get_first_full_window_score(self, name, fitted):
        det = fitted[name]
        s = det.decision_function(sine()[:100])
        w = det.window
        assert np.all(s[: w - 1] == s[w - 1])

    def test_seed_determinism_and_global_state(self, name):
        X = sine()[:400]
        np_state = np.random.get_state()[1].copy()
        torch_state = torch.get_rng_state().clone()
        a, b = make(name).fit(X), make(name).fit(X)
        assert np.array_equal(np.random.get_state()[1], np_state)
        assert torch.equal(torch.get_rng_state(), torch_state)
        np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))

    def test_save_load_clone(self, name, fitted, tmp_path):
        det = fitted[name]
        det.save(tmp_path / "m")
        loaded = deepad.load(tmp_path / "m")
        X = sine(seed=5)
        np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))
        assert loaded.threshold_ == det.threshold_
        assert clone(det).get_params() == det.get_params()

    def test_bad_input(self, name, fitted):
        det = fitted[name]
        with pytest.raises(ValueError, match="window"):
            det.decision_function(sine()[:3])
        with pytest.raises(ValueError, match="features"):
            det.decision_function(np.ones((100, 3)))
        with pytest.raises(ValueError, match="window"):
            make(name, window=0).fit(sine()[:200])


# --------------------------------------------------------------------------- streaming
def test_stream_matches_batch_and_resumes(fitted, tmp_path):
    det = fitted["GRUForecaster"]
    X = sine(seed=7)
    X[1000, 1] += 4.0
    full = det.decision_function(X)
    w = det.window
    sc = StreamScorer(det, risk=1e-3, refractory=20).prime(X[600 - (w - 1) : 600])
    first = [sc.update(X[i]) for i in range(600, 800)]
    got = np.concatenate([u.scores for u in first])
    np.testing.assert_allclose(got, full[600:800], rtol=1e-5, atol=1e-7)  # float32 batch-size rounding only
    assert sc.latency_per_point_s > 0
    sc.save(tmp_path / "st")
    resumed = StreamScorer.load(tmp_path / "st")
    a, b = sc.update(X[800:]), resumed.update(X[800:])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.alerts, b.alerts)
    assert a.alerts[1000 - 800]  # the spike raises an alert
    assert a.alerts.sum() <= a.alarms.sum()


def test_stream_without_history_gives_nan_until_full_window(fitted):
    det = fitted["RollingZScore"]
    sc = StreamScorer(det, threshold="fixed")
    u = sc.update(sine()[: det.window + 5])
    assert np.isnan(u.scores[: det.window - 1]).all() and np.isfinite(u.scores[det.window - 1 :]).all()
    with pytest.raises(ValueError, match="values per row"):
        sc.update(np.ones(5))


def test_refractory_suppresses_repeated_alarms(fitted):
    det = fitted["RollingZScore"]
    X = sine(seed=9)[:400]
    X[200:230, 0] += 5.0  # one long incident
    plain = StreamScorer(det, threshold="fixed", refractory=0).update(X)
    quiet = StreamScorer(det, threshold="fixed", refractory=100).update(X)
    assert plain.alarms[200:230].sum() > 1
    np.testing.assert_array_equal(plain.alarms, quiet.alarms)
    assert quiet.alerts[200:230].sum() == 1 and quiet.alerts.sum() < plain.alerts.sum()


def test_rearm_gives_one_alert_per_incident_however_long(tmp_path):
    det = D.KNN(contamination=0.001).fit(sine()[:600])  # scores each point alone: alarms exactly while shifted
    X = sine(seed=9)[:700]
    X[200:400, 0] += 5.0  # an incident longer than the refractory period ...
    X[470:480, 0] += 5.0  # ... and a second one, 70 quiet points later
    only_refractory = StreamScorer(det, threshold="fixed", refractory=50).update(X)
    rearm = StreamScorer(det, threshold="fixed", refractory=50, rearm=40).update(X)
    np.testing.assert_array_equal(only_refractory.alarms, rearm.alarms)
    assert only_refractory.alerts[200:400].sum() > 1  # the fixed period runs out inside the incident
    assert rearm.alerts[200:400].sum() == 1 and rearm.alerts[470:480].sum() == 1
    # every alarm inside the first incident after its alert is reported as suppressed
    first = int(np.flatnonzero(rearm.alerts)[0])
    assert rearm.suppressed[first + 1 : 400][rearm.alarms[first + 1 : 400]].all()
    assert not rearm.suppressed[first]
    # too short a quiet spell does not re-arm: a 70-point gap with rearm=100 gives one alert in all
    strict = StreamScorer(det, threshold="fixed", refractory=50, rearm=100).update(X)
    assert strict.alerts[200:700].sum() == 1
    # the open incident survives save/load: resuming mid-incident raises no new alert
    sc = StreamScorer(det, threshold="fixed", refractory=10, rearm=40)
    sc.update(X[:300])
    sc.save(tmp_path / "st")
    resumed = StreamScorer.load(tmp_path / "st")
    assert resumed.rearm == 40 and resumed.quiet_run >= 0
    rest = resumed.update(X[300:])
    assert rest.alerts[:100].sum() == 0 and rest.alerts[170:180].sum() == 1
    with pytest.raises(ValueError, match="rearm"):
        StreamScorer(det, rearm=-1)


def test_spot_threshold_tracks_risk():
    rng = np.random.default_rng(0)
    spot = SPOT(risk=1e-3, init_quantile=0.98).initialize(rng.exponential(size=5000))
    # exponential tail: the 1 - 1e-3 quantile is ln(1000) ~ 6.9
    assert 5.5 < spot.z < 8.5
    alarms = sum(spot.step(x) for x in rng.exponential(size=20000))
    assert alarms < 60  # ~20 expected at risk 1e-3
    assert SPOT.from_state(json.loads(json.dumps(spot.state()))).z == spot.z
    with pytest.raises(ValueError, match="risk"):
        SPOT(risk=2.0)


# --------------------------------------------------------------------------- stateful GRU stream (O(1) per point)
@pytest.fixture(scope="module")
def stateful_gru():
    return make("GRUForecaster", stateful=True).fit(sine()[:600])


def test_stateful_gru_stream_equals_batch_exactly_and_resumes(stateful_gru, tmp_path):
    det = stateful_gru
    X = sine(seed=7)
    X[1000, 1] += 4.0
    np.testing.assert_array_equal(det.decision_function(sine()[:600]), det.decision_scores_)
    full = det.decision_function(X)
    assert np.isfinite(full).all() and (full[: det.window - 1] == full[det.window - 1]).all()
    sc = StreamScorer(det, risk=1e-3, refractory=20)
    u0 = sc.update(X[:600])  # a stream from scratch: NaN until the first full window, then the batch scores
    assert np.isnan(u0.scores[: det.window - 1]).all()
    np.testing.assert_array_equal(u0.scores[det.window - 1 :], full[det.window - 1 : 600])
    got = np.concatenate([sc.update(X[i]).scores for i in range(600, 800)])  # one point per call
    np.testing.assert_array_equal(got, full[600:800])
    sc.save(tmp_path / "st")
    resumed = StreamScorer.load(tmp_path / "st")
    a, b = sc.update(X[800:]), resumed.update(X[800:])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.unit_scores, b.unit_scores)
    assert a.alerts[1000 - 800]
    assert ((a.unit_scores >= 0) & (a.unit_scores <= 1)).all()
    assert a.unit_scores[1000 - 800] == a.unit_scores.max()  # rarity is monotone in the score


def test_stateful_gru_history_matters_and_state_is_saved(stateful_gru, tmp_path):
    X = sine(seed=3)
    fresh = StreamScorer(stateful_gru).update(X[500:560]).scores
    primed = StreamScorer(stateful_gru).prime(X[:500]).update(X[500:560]).scores
    assert np.isnan(fresh[0]) and np.isfinite(primed).all()
    np.testing.assert_array_equal(primed, stateful_gru.decision_function(X[:560])[500:])
    stateful_gru.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(X), stateful_gru.decision_function(X))


# --------------------------------------------------------------------------- ConformalKNN (continual kNN conformal)
def test_conformal_knn_contract_stream_and_resume(tmp_path):
    X = sine(n=1400, seed=2)
    X[1000, 0] += 3.0
    det = _knn().fit(X[:500])
    assert "ConformalKNN" in D.__all__ and D.ConformalKNN._needs_wrapped
    np.testing.assert_array_equal(det.decision_function(X[:500]), det.decision_scores_)
    assert det.threshold_ == pytest.approx(0.2) and det.threshold_method_["method"] == "conformal"
    full = det.decision_function(X[500:])  # X[500:] continues the training series
    assert ((full >= 0) & (full <= 1)).all()
    assert full[500] == full.max() and full[500] >= det.threshold_  # the spike is the rarest point
    sc = StreamScorer(det, threshold="fixed", refractory=50)  # no history: padded like decision_function
    got = np.concatenate([sc.update(X[i]).scores for i in range(500, 900)])  # one point per call
    np.testing.assert_array_equal(got, full[:400])
    primed = StreamScorer(det, threshold="fixed").prime(X[:500]).update(X[500:1100])  # with the real context
    assert primed.alerts[500] and primed.scores[0] < full[0]
    sc.save(tmp_path / "st")
    resumed = StreamScorer.load(tmp_path / "st")
    a, b = sc.update(X[900:]), resumed.update(X[900:])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.unit_scores, a.scores)  # scores already are rarities in [0, 1]
    assert a.alerts[100] and a.alerts.sum() <= 3
    det.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(X[500:]), full)
    assert clone(det).get_params() == det.get_params()


def test_conformal_knn_learns_continually():
    """A new pattern is rare the first time and ordinary once it has recurred (continual memory)."""
    rng = np.random.default_rng(0)
    n = 3000
    x = np.sin(np.arange(n) * 2 * np.pi / 50) + 0.05 * rng.standard_normal(n)
    bumps = [1000, 1400, 1800, 2200, 2600]
    for b in bumps:
        x[b : b + 10] += 2.0  # a job that starts to run periodically
    det = _knn(memory=3000).fit(x[:600, None])
    s = det.decision_function(x[600:, None])
    first, last = s[bumps[0] - 600 : bumps[0] - 590].max(), s[bumps[-1] - 600 : bumps[-1] - 590].max()
    assert first >= det.threshold_ > last


def test_conformal_knn_bad_params():
    X = sine()[:300]
    for bad in (dict(window=0), dict(n_neighbors=0), dict(memory=-1), dict(exclusion=-2), dict(contamination=2.0)):
        with pytest.raises(ValueError):
            _knn(**bad).fit(X)
    with pytest.raises(ValueError, match="features"):
        _knn().fit(X).decision_function(np.ones((50, 3)))
    with pytest.raises(ValueError, match="at least"):
        _knn().fit(X[:10])


def test_read_series_names_the_first_bad_timestamp(tmp_path):
    from deepad.data.series import read_series

    df = pd.DataFrame(
        {"timestamp": ["2024-01-01 00:00", "2024-01-01 00:05", "soon", "2024-01-01 00:15"], "v": [1.0, 2.0, 3.0, 4.0]}
    )
    with pytest.raises(ValueError, match=r"row 2: 'soon'"):
        read_series(df)
    ok = read_series(df.assign(timestamp=["2024-01-01", "2024-01-01 00:05", "2024-01-01 00:10", "2024-01-01 00:15"]))
    assert len(ok) == 4  # mixed ISO formats parse


def test_one_stream_record_builder():
    """StreamUpdate.records: the line `deepad stream` prints and the row the service's stream endpoint answers."""
    import json

    from deepad.stream import StreamUpdate

    u = StreamUpdate(
        scores=np.array([np.nan, 2.5]),
        thresholds=np.array([np.inf, 1.0]),
        alarms=np.array([False, True]),
        alerts=np.array([False, True]),
        latency_s=0.0,
    )
    records = u.records(["t0", "t1"])
    assert records == [
        {"timestamp": "t0", "score": None, "threshold": None, "alarm": False, "alert": False},
        {"timestamp": "t1", "score": 2.5, "threshold": 1.0, "alarm": True, "alert": True},
    ]
    assert all(type(r["score"]) in (float, type(None)) and type(r["alarm"]) is bool for r in records)
    json.dumps(records)  # JSON-able as they are
