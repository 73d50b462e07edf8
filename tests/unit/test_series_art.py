"""Issue 21: ARTimeStream -- causal, deterministic, resumable, and it finds a planted spike and a level shift."""

from __future__ import annotations

import numpy as np
import pytest

import deepad
from deepad.detectors import ARTimeStream
from deepad.detectors.series_art import _haar_matrix
from deepad.stream import StreamScorer, default_threshold

TRAIN = 600


def _series(n=3000, seed=0, spike_at=None, shift_at=None):
    rng = np.random.default_rng(seed)
    x = 10.0 + np.sin(np.arange(n) * 2 * np.pi / 100) + 0.05 * rng.standard_normal(n)
    if spike_at is not None:
        x[spike_at : spike_at + 10] += 3.0
    if shift_at is not None:
        x[shift_at:] += 1.5
    return x.reshape(-1, 1)


@pytest.fixture(scope="module")
def art():
    return ARTimeStream().fit(_series()[:TRAIN])


def _stream(det, X, start=TRAIN):
    sc = StreamScorer(det, threshold=default_threshold(det), refractory=16, rearm=64)
    sc.prime(X[:start])
    return sc, sc.update(X[start:])


def test_fit_state_and_stream_settings(art):
    # 600 training rows, window 8, 13 windows per training period: one value per 5 rows, 120 learning steps
    assert (art.sstep_, art.learn_steps_, art.mask_steps_) == (5, 120, 12)
    assert 0.0 < art.initial_vigilance_ < 1.0 and art.n_categories_ == art.state_W_.shape[0] > 0
    rho_lb, rho_ub = art.state_floats_[1], art.state_floats_[2]
    assert rho_lb == rho_ub == art.initial_vigilance_  # no vigilance update while the ART learns
    assert np.all((art.state_W_ >= 0) & (art.state_W_ <= 1))  # complement-coded hyperboxes in [0, 1]
    assert default_threshold(art) == "fixed" and art.threshold_ == 0.3  # min_confidence
    assert "confidence above 0.3" in art.threshold_method_["reason"]
    assert np.array_equal(art.decision_scores_, np.zeros(TRAIN))
    H = _haar_matrix(8)
    np.testing.assert_allclose(H @ H.T, np.eye(8), atol=1e-12)  # the Haar transform is orthonormal


@pytest.mark.parametrize("range_tolerance", [0.05, None])  # None: the ART alone, without the range check
def test_finds_a_planted_spike_and_a_level_shift(range_tolerance):
    det = ARTimeStream(range_tolerance=range_tolerance).fit(_series()[:TRAIN])
    for kw, at in ((dict(spike_at=2000), 2000), (dict(shift_at=2000), 2000)):
        _, u = _stream(det, _series(**kw))
        alerts = np.flatnonzero(u.alerts) + TRAIN
        assert np.any((alerts >= at) & (alerts < at + 60)), (kw, alerts)
        before = alerts[alerts < at]
        assert before.size <= 1, before  # the clean part of the stream: at most one false alert
    _, clean = _stream(det, _series())
    assert clean.alerts.sum() <= 1


def test_stream_is_causal_deterministic_and_matches_decision_function(art):
    X = _series(spike_at=2000)
    _, full = _stream(art, X)
    Y = X.copy()
    Y[1500:] = Y[1500:] * -3.0 + 50.0  # change the future after row 1500
    _, changed = _stream(art, Y)
    k = 1500 - TRAIN
    assert np.array_equal(full.scores[:k], changed.scores[:k]) and np.array_equal(full.alerts[:k], changed.alerts[:k])
    assert not np.array_equal(full.scores, changed.scores)
    again = ARTimeStream().fit(X[:TRAIN])  # deterministic: a refit streams the same scores
    np.testing.assert_array_equal(_stream(again, X)[1].scores, full.scores)
    np.testing.assert_array_equal(art.decision_function(X[TRAIN:]), full.scores)
    # one point per call gives the scores of one batch
    sc = StreamScorer(art, threshold="fixed")
    one = np.concatenate([sc.update(X[i]).scores for i in range(TRAIN, 1200)])
    np.testing.assert_array_equal(one, full.scores[: 1200 - TRAIN])


def test_save_and_resume_mid_stream(art, tmp_path):
    X = _series(spike_at=2000)
    _, full = _stream(art, X)
    sc = StreamScorer(art, threshold=default_threshold(art), refractory=16, rearm=64)
    first = sc.update(X[TRAIN:1700])
    sc.save(tmp_path / "s")
    resumed = StreamScorer.load(tmp_path / "s")
    rest = [resumed.update(X[i : i + 1]) for i in range(1700, X.shape[0])]
    scores = np.concatenate([first.scores] + [r.scores for r in rest])
    alerts = np.concatenate([first.alerts] + [r.alerts for r in rest])
    assert np.array_equal(scores, full.scores) and np.array_equal(alerts, full.alerts)
    art.save(tmp_path / "m")  # the fitted detector alone: same state, same scores
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(X[TRAIN:]), full.scores)
    assert loaded.get_params() == art.get_params()


def test_range_check_and_confidence_cut():
    X = _series(spike_at=2000)
    X[2500] = 30.0  # far beyond everything seen
    det = ARTimeStream(range_tolerance=0.05).fit(X[:TRAIN])
    s = det.decision_function(X[TRAIN:])
    assert s[2500 - TRAIN] == 1.0
    strict = ARTimeStream(min_confidence=0.99).fit(X[:TRAIN])
    assert strict.threshold_ == 0.99 and (strict.predict(X[TRAIN:]) <= (s > 0.99)).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(window=6), "power of two"),
        (dict(window=1), "window"),
        (dict(chomp=2.0), "chomp"),
        (dict(range_margin=-1.0), "range_margin"),
        (dict(range_tolerance="wide"), "range_tolerance"),
        (dict(min_confidence=1.5), "min_confidence"),
    ],
)
def test_bad_settings_name_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        ARTimeStream(**kw).fit(_series()[:TRAIN])


def test_univariate_only_with_a_clear_error():
    with pytest.raises(ValueError, match="univariate: X has 2 value columns"):
        ARTimeStream().fit(np.hstack([_series()[:TRAIN]] * 2))


# --------------------------------------------------------------------------- ARTimeEnsemble
def test_ensemble_is_the_or_of_its_members_and_resumes_exactly(tmp_path):
    from deepad.detectors import ARTimeEnsemble, LikelihoodKNN

    X = _series(spike_at=2000)
    X[1200:1260] = 10.0  # a flat stretch inside the range: a broken pattern, not a spike
    ens = ARTimeEnsemble().fit(X[:TRAIN])
    assert ens.art_.min_confidence == 0.7 and ens.art_.range_tolerance is None and ens.threshold_ == 1.0
    _, full = _stream(ens, X)
    # its alarms are exactly: the k-NN likelihood's, or the ART's confident mismatches, or the range check's
    knn = LikelihoodKNN().fit(X[:TRAIN])
    lk_sc = StreamScorer(knn, threshold="spot", range_tolerance=0.05)
    lk_alarms = lk_sc.update(X[TRAIN:]).alarms
    art = ARTimeStream(min_confidence=0.7, range_tolerance=None).fit(X[:TRAIN])
    art_alarms = art.decision_function(X[TRAIN:]) > 0.7
    np.testing.assert_array_equal(full.alarms, lk_alarms | art_alarms)
    alerts = np.flatnonzero(full.alerts) + TRAIN
    assert np.any((alerts >= 1200) & (alerts < 1300)) and np.any((alerts >= 2000) & (alerts < 2060)), alerts
    # causal, and a save mid-stream resumes with the same scores and alerts
    Y = X.copy()
    Y[1500:] = Y[1500:] * -3.0 + 50.0
    _, changed = _stream(ens, Y)
    assert np.array_equal(full.scores[: 1500 - TRAIN], changed.scores[: 1500 - TRAIN])
    sc = StreamScorer(ens, threshold=default_threshold(ens), refractory=16, rearm=64)
    sc.prime(X[:TRAIN])
    first = sc.update(X[TRAIN:1700])
    sc.save(tmp_path / "s")
    resumed = StreamScorer.load(tmp_path / "s")
    rest = [resumed.update(X[i : i + 1]) for i in range(1700, 1900)] + [resumed.update(X[1900:])]
    scores = np.concatenate([first.scores] + [r.scores for r in rest])
    alerts_resumed = np.concatenate([first.alerts] + [r.alerts for r in rest])
    assert np.array_equal(scores, full.scores) and np.array_equal(alerts_resumed, full.alerts)
    with pytest.raises(ValueError, match="univariate"):
        ARTimeEnsemble().fit(np.hstack([X[:TRAIN]] * 2))
