"""Issue 21: the anomaly likelihood, LikelihoodKNN, OnlineForecaster and their streams (causal, resumable)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepad
from deepad.detectors import LikelihoodEnsemble, LikelihoodKNN, OnlineForecaster, RollingZScore
from deepad.detectors.series_likelihood import AnomalyLikelihood, log_likelihood
from deepad.stream import StreamScorer, default_threshold


def _q(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _series(n=1600, seed=0, spike_at=1200):
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) * 2 * np.pi / 50) + 0.05 * rng.standard_normal(n)
    if spike_at is not None:
        x[spike_at : spike_at + 5] += 4.0
    return x.reshape(-1, 1)


# --------------------------------------------------------------------------- the likelihood's arithmetic
def test_likelihood_matches_a_hand_computed_case():
    al = AnomalyLikelihood(short_window=2, long_window=4, min_history=2, epsilon=0.01, alarm_update="clip")
    al.initialize([1.0, 3.0])  # short means 1 (one value), 2 -> long window [1, 2]
    assert (al.mu, al.sigma) == (1.5, 0.5)
    q = al.update(5.0)  # short mean (3 + 5) / 2 = 4, z = (4 - 1.5) / 0.5 = 5
    assert q == pytest.approx(_q(5.0), rel=1e-12)
    assert al.alarm(q)
    clipped = 1.5 + 2.3263478740408408 * 0.5  # an alarm joins at mu + z_0.01 sigma, not at 4
    long = [1.0, 2.0, clipped]
    q2 = al.update(3.0)  # short mean (5 + 3) / 2 = 4 against the three values above
    mu = sum(long) / 3
    sigma = math.sqrt(sum(v * v for v in long) / 3 - mu * mu)
    assert (al.mu, al.sigma) == (pytest.approx(mu), pytest.approx(sigma))
    assert q2 == pytest.approx(_q((4.0 - mu) / sigma), rel=1e-9)
    # the long window keeps its last 4 values: two more updates push the 1 out
    al.update(0.0)
    al.update(0.0)
    al._estimate()
    assert al.n_long == 6 and sorted(al._long.tolist())[0] != 1.0
    assert log_likelihood(1e-5) == pytest.approx(0.5, abs=1e-5) and al.threshold == pytest.approx(0.2)


def test_likelihood_alarm_update_rules_and_warmup():
    def run(rule):
        al = AnomalyLikelihood(short_window=1, long_window=200, min_history=10, epsilon=1e-3, alarm_update=rule)
        al.initialize(np.random.default_rng(0).normal(0, 1, 100))
        return al, [al.update(v) for v in [8.0] * 30]

    learn, q_learn = run("learn")
    clip, q_clip = run("clip")
    skip, q_skip = run("skip")
    # a long incident: "learn" absorbs it soonest, "skip" never; "clip" adapts but slower than "learn"
    assert sum(q < 1e-3 for q in q_skip) == 30
    assert sum(q < 1e-3 for q in q_learn) < sum(q < 1e-3 for q in q_clip) <= 30
    assert skip.n_long == 100
    fresh = AnomalyLikelihood(min_history=100)
    assert fresh.update(100.0) == 0.5  # warm-up: no estimate yet, no alarm


@pytest.mark.parametrize(
    "kw",
    [
        dict(short_window=0),
        dict(long_window=1),
        dict(epsilon=0.0),
        dict(epsilon=0.7),
        dict(min_std=0.0),
        dict(alarm_update="forget"),
        dict(min_history=50, long_window=10),
    ],
)
def test_likelihood_bad_settings(kw):
    with pytest.raises(ValueError):
        AnomalyLikelihood(**kw)


def test_likelihood_state_round_trip():
    al = AnomalyLikelihood(short_window=3, long_window=50, min_history=5).initialize(np.arange(20.0))
    for v in (1.0, 30.0, 2.0):
        al.update(v)
    js, arrays = al.state()
    twin = AnomalyLikelihood.from_state(js, arrays)
    for v in np.random.default_rng(1).normal(10, 3, 80):
        assert twin.update(v) == al.update(v)


# --------------------------------------------------------------------------- the stream with the likelihood
@pytest.fixture(scope="module")
def lknn():
    return LikelihoodKNN(window=8, coarse_chunks=4, coarse_width=8, memory=500).fit(_series()[:400])


def _stream(det, X, start=400, **kw):
    sc = StreamScorer(det, threshold=default_threshold(det), refractory=16, rearm=64, **kw)
    sc.prime(X[:start])
    return sc, sc.update(X[start:])


def test_likelihood_knn_stream_alerts_on_the_spike_and_reports_consistently(lknn):
    X = _series()
    sc, u = _stream(lknn, X)
    assert sc.likelihood is not None and sc.range_tolerance == 0.05  # the detector's own rules ("auto")
    alerts = np.flatnonzero(u.alerts) + 400
    assert any(1200 <= a <= 1210 for a in alerts) and len(alerts) <= 3
    finite = np.isfinite(u.scores)
    assert np.array_equal(u.alarms[finite], (u.p_values[finite] < lknn.epsilon) | (u.scores[finite] == 1.0))
    assert np.all(u.thresholds[finite] == pytest.approx(0.4))  # -log10(1e-4) / 10
    assert np.array_equal(u.alarms[finite], u.scores[finite] > u.thresholds[finite])
    # the p-values are an AnomalyLikelihood's over the raw scores, started on the training reference
    twin = AnomalyLikelihood(**lknn._stream_likelihood()).initialize(lknn.p_value_reference)
    q = np.array([twin.update(v) for v in u.raw_scores])
    in_range = u.scores < 1.0
    np.testing.assert_array_equal(u.p_values[in_range], q[in_range])


@pytest.mark.parametrize("make", ["lknn", "online", "ensemble"])
def test_streams_are_causal_and_resume_exactly(make, lknn, online, ensemble, tmp_path):
    det = {"lknn": lknn, "online": online, "ensemble": ensemble}[make]
    X = _series()
    _, full = _stream(det, X)
    Y = X.copy()
    Y[1000:] = Y[1000:] * -3.0 + 7.0  # change the future after row 1000
    _, changed = _stream(det, Y)
    k = 1000 - 400
    assert np.array_equal(full.scores[:k], changed.scores[:k], equal_nan=True)
    assert np.array_equal(full.alerts[:k], changed.alerts[:k]) and not np.array_equal(full.scores, changed.scores)
    # save mid-stream, resume: the same scores and alerts as one uninterrupted stream
    sc = StreamScorer(det, threshold=default_threshold(det), refractory=16, rearm=64)
    sc.prime(X[:400])
    first = sc.update(X[400:900])
    sc.save(tmp_path / "s")
    resumed = StreamScorer.load(tmp_path / "s")
    rest = [resumed.update(X[i : i + 1]) for i in range(900, X.shape[0])]  # one point per call after the resume
    scores = np.concatenate([first.scores] + [r.scores for r in rest])
    alerts = np.concatenate([first.alerts] + [r.alerts for r in rest])
    assert np.array_equal(scores, full.scores, equal_nan=True) and np.array_equal(alerts, full.alerts)
    if sc.likelihood is not None:
        assert resumed.likelihood.n_updates == sc.likelihood.n_updates + X.shape[0] - 900


def test_range_check_and_warmup_on_any_detector():
    X = _series(spike_at=None)
    det = RollingZScore(window=32).fit(X[:400])
    Y = X.copy()
    Y[700] = 10.0  # far beyond everything seen
    lk = dict(short_window=5, long_window=500, epsilon=1e-12)  # a likelihood that (almost) never alarms
    sc = StreamScorer(det, likelihood=lk, range_tolerance=0.05, refractory=16, rearm=64)
    sc.prime(X[:400])
    u = sc.update(Y[400:])
    assert np.flatnonzero(u.alerts).tolist() == [300] and u.scores[300] == 1.0 and u.p_values[300] == 0.0
    quiet = StreamScorer(det, likelihood=lk, range_tolerance=None)
    quiet.prime(X[:400])
    assert not quiet.update(Y[400:]).alerts.any()
    late = StreamScorer(det, likelihood=lk, range_tolerance=0.05, warmup=301)
    late.prime(X[:400])
    ul = late.update(Y[400:])
    assert ul.alarms[300] and not ul.alerts.any() and ul.suppressed[:301].all()


def test_likelihood_knn_contract_and_bad_params(lknn, tmp_path):
    X = _series()[:400]
    assert lknn.decision_scores_.shape == (400,) and np.isfinite(lknn.decision_scores_).all()
    assert lknn.threshold_ == pytest.approx(np.quantile(lknn.decision_scores_, 0.99), rel=0.05)
    assert lknn.value_range_.shape == (2, 1)
    lknn.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.decision_function(_series()[400:700]), lknn.decision_function(_series()[400:700])
    )
    for kw in (dict(range_tolerance=-1.0), dict(epsilon=2.0), dict(alarm_update="x"), dict(short_window=0)):
        with pytest.raises(ValueError):
            LikelihoodKNN(window=8, coarse_chunks=0, memory=100, **kw).fit(X)


# --------------------------------------------------------------------------- the online deep forecaster
@pytest.fixture(scope="module")
def online():
    return OnlineForecaster(window=16, hidden=8, epochs=3, random_state=0).fit(_series()[:400])


def test_online_forecaster_learns_a_new_regime(online):
    n = 3000
    t = np.arange(n)
    X = np.sin(t * 2 * np.pi / 17).reshape(-1, 1)  # a period it was not trained on
    frozen = OnlineForecaster(window=16, hidden=8, epochs=3, random_state=0, online_lr=0.0).fit(_series()[:400])
    s_on, s_off = online.decision_function(X), frozen.decision_function(X)
    assert s_on[-500:].mean() < 0.5 * s_off[-500:].mean()
    assert s_on[-500:].mean() < s_on[100:600].mean()  # its own error falls as it learns
    np.testing.assert_allclose(s_on[:16], s_off[:16])  # the first forecasts come from the same fitted network


def test_online_forecaster_contract(online, tmp_path):
    X = _series()
    assert online.fit(X[:400]) is online
    assert isinstance(online.module_, __import__("torch").nn.Module)
    assert np.isfinite(online.decision_scores_).all() and online.decision_scores_.shape == (400,)
    online.save(tmp_path / "m")
    np.testing.assert_array_equal(deepad.load(tmp_path / "m").decision_function(X), online.decision_function(X))
    with pytest.raises(ValueError):
        OnlineForecaster(window=1).fit(X[:400])
    with pytest.raises(ValueError):
        OnlineForecaster(train_every=0, epochs=1).fit(X[:400])


# --------------------------------------------------------------------------- the ensemble
@pytest.fixture(scope="module")
def ensemble():
    knn = dict(window=8, coarse_chunks=4, coarse_width=8, memory=500)
    fc = dict(window=16, hidden=8, epochs=3)
    return LikelihoodEnsemble(knn, fc, random_state=0).fit(_series()[:400])


def test_ensemble_alarms_exactly_when_a_member_likelihood_or_the_range_does(ensemble):
    X = _series()
    sc, u = _stream(ensemble, X)
    assert sc.threshold == "fixed" and sc.likelihood is None and ensemble.threshold_ == 1.0
    # recompute each member's likelihood on its own stream of raw scores
    member_alarm = np.zeros(X.shape[0] - 400, dtype=bool)
    for m in ensemble.members_:
        state = m._stream_state()
        m._stream_prime(state, X[:400])
        raw = m._stream_scores(state, X[400:])
        al = AnomalyLikelihood(**m._stream_likelihood()).initialize(m.p_value_reference)
        member_alarm |= np.array([al.update(v) < al.epsilon if np.isfinite(v) else False for v in raw])
    lo, hi = X[:400].min(), X[:400].max()
    seen_hi = np.maximum.accumulate(np.r_[hi, X[400:, 0]])[:-1]
    seen_lo = np.minimum.accumulate(np.r_[lo, X[400:, 0]])[:-1]
    span = seen_hi - seen_lo
    out = (X[400:, 0] > seen_hi + 0.05 * span) | (X[400:, 0] < seen_lo - 0.05 * span)
    np.testing.assert_array_equal(u.alarms, member_alarm | out)
    assert out.any() and any(1200 <= a + 400 <= 1210 for a in np.flatnonzero(u.alerts))


def test_ensemble_save_load_and_bad_params(ensemble, tmp_path):
    X = _series()
    ensemble.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(X), ensemble.decision_function(X))
    with pytest.raises(ValueError):
        LikelihoodEnsemble(range_tolerance=-1).fit(X[:400])
