"""Time series: reading/resampling/windowing, window detectors (own contract tests), streaming scorer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import deepad
import deepad.detectors as D
from deepad.data.series import align_to_points, median_step, read_series, regularize, sliding_windows
from deepad.stream import SPOT, StreamScorer

from conftest import FAST_PARAMS

SERIES_DETECTORS = ["RollingZScore", "GRUForecaster", "TCNAutoEncoder"]


def sine(n=1200, d=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = [np.sin(t / (8 + 3 * j)) + 0.05 * rng.normal(size=n) for j in range(d)]
    return np.column_stack(cols)


def make(name, **extra):
    params = {**FAST_PARAMS[name], **extra}
    cls = getattr(D, name)
    if "random_state" in cls().get_params():
        params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture(scope="module")
def fitted():
    X = sine()
    return {name: make(name).fit(X[:600]) for name in SERIES_DETECTORS}


# --------------------------------------------------------------------------- data
def test_read_and_regularize_irregular_series_with_gaps(tmp_path):
    ts = pd.date_range("2021-01-01", periods=100, freq="1min")
    keep = np.ones(100, dtype=bool)
    keep[[10, 11]] = False          # short gap: interpolated
    keep[50:60] = False             # long gap: dropped
    df = pd.DataFrame({"ts": ts[keep] + pd.to_timedelta(np.r_[0, np.full(keep.sum() - 1, 2)], unit="s"),
                       "a": np.arange(100.0)[keep], "b": 2 * np.arange(100.0)[keep]})
    df = df.iloc[::-1]  # unsorted input
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    s = read_series(path)
    assert list(s.columns) == ["a", "b"] and s.index.is_monotonic_increasing
    assert median_step(s.index) == pd.Timedelta("1min")
    r = regularize(s, limit=3)
    assert r.attrs["imputed"] == 2
    assert np.isfinite(r.to_numpy()).all()
    assert len(r) == 90                       # 100 bins - 10 in the long gap
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
        assert np.all(s[:w - 1] == s[w - 1])

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
    sc = StreamScorer(det, risk=1e-3, refractory=20).prime(X[600 - (w - 1):600])
    first = [sc.update(X[i]) for i in range(600, 800)]
    got = np.concatenate([u.scores for u in first])
    np.testing.assert_allclose(got, full[600:800], rtol=1e-5, atol=1e-7)  # float32 batch-size rounding only
    assert sc.latency_per_point_s > 0
    sc.save(tmp_path / "st")
    resumed = StreamScorer.load(tmp_path / "st")
    a, b = sc.update(X[800:]), resumed.update(X[800:])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.alerts, b.alerts)
    assert a.alerts[1000 - 800]                 # the spike raises an alert
    assert a.alerts.sum() <= a.alarms.sum()


def test_stream_without_history_gives_nan_until_full_window(fitted):
    det = fitted["RollingZScore"]
    sc = StreamScorer(det, threshold="fixed")
    u = sc.update(sine()[:det.window + 5])
    assert np.isnan(u.scores[:det.window - 1]).all() and np.isfinite(u.scores[det.window - 1:]).all()
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
    assert rearm.suppressed[first + 1:400][rearm.alarms[first + 1:400]].all()
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
    out = subprocess.run([sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "st")], input=csv,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(rows) == 20 and all(r["score"] is not None for r in rows)  # resumed with a full buffer


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
    assert np.isfinite(full).all() and (full[:det.window - 1] == full[det.window - 1]).all()
    sc = StreamScorer(det, risk=1e-3, refractory=20)
    u0 = sc.update(X[:600])  # a stream from scratch: NaN until the first full window, then the batch scores
    assert np.isnan(u0.scores[:det.window - 1]).all()
    np.testing.assert_array_equal(u0.scores[det.window - 1:], full[det.window - 1:600])
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
    out = build_series_report(det, tmp_path / "s.csv", tmp_path / "r.html", label_column="label", refractory=50,
                              png=str(tmp_path / "r.png"))
    html = out.read_text()
    assert "data:image/png;base64," in html and "2022-03-01 11:40:00" in html  # the alert at row 700 is listed
    assert "1 labelled anomalous rows; 1 alerts on them" in html
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no label column"):
        build_series_report(det, tmp_path / "s.csv", tmp_path / "r2.html", label_column="nope")
    det.save(tmp_path / "m")
    r = CliRunner().invoke(app, ["report", str(tmp_path / "m"), str(tmp_path / "s.csv"), "-o", str(tmp_path / "c.html"),
                                 "-l", "label", "--refractory", "50"])
    assert r.exit_code == 0, r.output
    assert "alerts" in (tmp_path / "c.html").read_text()


# --------------------------------------------------------------------------- ConformalKNN (continual kNN conformal)
def _knn(**kw):
    return D.ConformalKNN(**{"window": 8, "coarse_chunks": 4, "coarse_width": 8, "memory": 400, **kw})


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
        x[b:b + 10] += 2.0  # a job that starts to run periodically
    det = _knn(memory=3000).fit(x[:600, None])
    s = det.decision_function(x[600:, None])
    first, last = s[bumps[0] - 600:bumps[0] - 590].max(), s[bumps[-1] - 600:bumps[-1] - 590].max()
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


def test_cli_stream_and_report_use_conformal_knn_threshold(tmp_path):
    from deepad.report.series import series_scores

    X = sine(n=900, d=2, seed=6)
    X[800, 0] += 3.0
    det = _knn().fit(X[:500])
    det.save(tmp_path / "m")
    res = series_scores(det, X[500:], refractory=50)
    assert (res["threshold"] == det.threshold_).all() and res["alert"].iloc[300]
    lines = "\n".join(json.dumps({"x0": float(a), "x1": float(b)}) for a, b in X[500:])
    out = subprocess.run([sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m")], input=lines + "\n",
                         capture_output=True, text=True, timeout=120)
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
    cpu[spike:spike + 5] += 3.0
    df = pd.DataFrame({"time": t, "cpu": cpu, "mem": np.cos(np.arange(n) / 40), "host": "a",
                       "is_anomaly": (np.arange(n) >= spike) & (np.arange(n) < spike + 5)})
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
    res = _cli("train", tmp_path / "s.csv", "-d", "ConformalKNN", "-o", tmp_path / "m", "-x", "host",
               "-l", "is_anomaly", "--params", '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}')
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
    out = subprocess.run([sys.executable, "-m", "deepad.cli", "stream", str(tmp_path / "m"), "--rearm", "64"],
                         input=(tmp_path / "live.csv").read_text(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(live)
    hits = [pd.Timestamp(r["timestamp"]) for r in rows if r["alert"]]  # the model's timestamp column, passed through
    spike = pd.Timestamp("2024-01-01") + 450 * pd.Timedelta("5min")
    assert hits and any(spike <= t <= spike + pd.Timedelta("50min") for t in hits)
    assert "2 missing step(s) are not filled" in out.stderr  # steps 400-401 are missing from the live file too
    rep = _cli("report", tmp_path / "m", tmp_path / "live.csv", "-o", tmp_path / "r.html", "-l", "is_anomaly",
               "--rearm", "64")
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


@pytest.mark.parametrize("args, message", [
    (["-d", "ConformalKNN"], "value column(s) ['host'] are not numeric (row 0: 'a')"),
    (["-d", "ConformalKNN", "-x", "host", "--threshold", "pot"], "--threshold pot does not apply"),
    (["-d", "ConformalKNN", "-x", "host", "--type", "cpu=numeric"], "--type applies to tables"),
    (["-d", "ConformalKNN", "-x", "host", "--resample", "banana"], "--resample expects a positive fixed step"),
    (["-d", "ConformalKNN", "-x", "host", "--timestamp-column", "when"], "no timestamp column 'when'"),
    (["-d", "ConformalKNN", "-x", "host,nope"], "--exclude names columns it does not have: ['nope']"),
    (["-d", "KNN", "--resample", "5min"], "--resample applies to time-series detectors"),
])
def test_cli_train_series_bad_input_is_one_clear_line(tmp_path, args, message):
    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli("train", tmp_path / "s.csv", "-o", tmp_path / "m", *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "m").exists()


def test_read_series_names_the_first_bad_timestamp(tmp_path):
    from deepad.data.series import read_series

    df = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 00:05", "soon", "2024-01-01 00:15"],
                       "v": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"row 2: 'soon'"):
        read_series(df)
    ok = read_series(df.assign(timestamp=["2024-01-01", "2024-01-01 00:05", "2024-01-01 00:10", "2024-01-01 00:15"]))
    assert len(ok) == 4  # mixed ISO formats parse


def test_cli_stream_checks_the_trained_grid_clock(tmp_path):
    _irregular_series_csv(tmp_path / "s.csv")
    res = _cli("train", tmp_path / "s.csv", "-d", "ConformalKNN", "-o", tmp_path / "m", "-x", "host,is_anomaly",
               "--params", '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}')
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
    assert _cli("train", tmp_path / "s.csv", "-d", "ConformalKNN", "-o", tmp_path / "m", "-x", "host,is_anomaly",
                "--params", '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}').exit_code == 0
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
    assert "--explain is for tables" in _cli("score", tmp_path / "m", tmp_path / "live.csv", "-o",
                                             tmp_path / "o2.csv", "--explain").output
    assert not (tmp_path / "o2.csv").exists()


def test_one_stream_record_builder():
    """StreamUpdate.records: the line `deepad stream` prints and the row the service's stream endpoint answers."""
    import json

    from deepad.stream import StreamUpdate

    u = StreamUpdate(scores=np.array([np.nan, 2.5]), thresholds=np.array([np.inf, 1.0]),
                     alarms=np.array([False, True]), alerts=np.array([False, True]), latency_s=0.0)
    records = u.records(["t0", "t1"])
    assert records == [{"timestamp": "t0", "score": None, "threshold": None, "alarm": False, "alert": False},
                       {"timestamp": "t1", "score": 2.5, "threshold": 1.0, "alarm": True, "alert": True}]
    assert all(type(r["score"]) in (float, type(None)) and type(r["alarm"]) is bool for r in records)
    json.dumps(records)  # JSON-able as they are
