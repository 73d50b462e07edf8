"""Thresholds and calibrated p-values."""

from __future__ import annotations

import numpy as np
import pytest

from deepad import thresholds as T


def test_conformal_p_values_match_brute_force():
    rng = np.random.default_rng(0)
    ref, s = rng.normal(size=200), rng.normal(size=50)
    s[:3] = ref[:3]  # ties count as "at least as extreme"
    brute = np.array([(1 + np.sum(ref >= v)) / (ref.size + 1) for v in s])
    np.testing.assert_allclose(T.conformal_p_values(ref, s), brute)


def test_conformal_p_values_are_uniform_on_exchangeable_data():
    rng = np.random.default_rng(1)
    p = T.conformal_p_values(rng.normal(size=5000), rng.normal(size=5000))
    assert abs(np.mean(p <= 0.05) - 0.05) < 0.01
    assert abs(np.mean(p <= 0.5) - 0.5) < 0.02


def test_fpr_threshold_controls_false_positives():
    rng = np.random.default_rng(2)
    cal, fresh = rng.exponential(size=2000), rng.exponential(size=200_000)
    for fpr in (0.01, 0.05, 0.1):
        t = T.fpr_threshold(cal, fpr)
        # the guarantee is marginal over calibration sets: allow ~3 standard errors of one draw
        assert abs(np.mean(fresh > t) - fpr) <= 3 * np.sqrt(fpr * (1 - fpr) / cal.size) + 1e-3
    assert T.fpr_threshold(cal[:10], 0.01) == np.inf  # too few calibration rows to certify 1%
    with pytest.raises(ValueError, match="fpr"):
        T.fpr_threshold(cal, 1.5)


def test_fpr_threshold_agrees_with_p_values():
    rng = np.random.default_rng(3)
    cal, new = rng.normal(size=999), rng.normal(size=5000)
    t = T.fpr_threshold(cal, 0.05)
    np.testing.assert_array_equal(new > t, T.conformal_p_values(cal, new) <= 0.05)


def test_pot_threshold_estimates_extreme_quantile():
    rng = np.random.default_rng(4)
    x = rng.exponential(size=20_000)
    t = T.pot_threshold(x, risk=1e-3)
    assert t == pytest.approx(-np.log(1e-3), rel=0.1)  # true 99.9% quantile of Exp(1) = 6.91


def test_pot_threshold_falls_back_on_tiny_samples():
    x = np.arange(20.0)
    assert T.pot_threshold(x, risk=0.1) == pytest.approx(np.quantile(x, 0.9))


@pytest.mark.parametrize("bad", [0, -0.1, 0.51, 1.0])
def test_contamination_range(bad):
    with pytest.raises(ValueError, match=r"contamination must be in \(0, 0.5\]"):
        T.contamination_threshold(np.arange(10.0), bad)
    with pytest.raises(TypeError):
        T.validate_contamination("0.1")


def test_contamination_threshold_flags_that_fraction():
    scores = np.arange(1000.0)
    t = T.contamination_threshold(scores, 0.1)
    assert np.mean(scores > t) == pytest.approx(0.1, abs=0.002)


# --------------------------------------------------------------------------- the threshold rule (deepad.thresholds)
@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({}, "contamination"),
        ({"fpr": 0.05}, "fpr"),
        ({"threshold": " POT "}, "pot"),
        ({"threshold": "pot", "pot_risk": 0.01, "calibration_fraction": 0.2}, "pot"),
    ],
)
def test_threshold_rule_names_the_rule(kwargs, rule):
    assert T.threshold_rule(**kwargs) == rule


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": "median"}, "threshold must be contamination, fpr or pot"),
        ({"threshold": "pot", "fpr": 0.1}, "fpr goes with threshold fpr, not threshold pot"),
        ({"threshold": "fpr", "contamination": 0.1}, "contamination goes with threshold contamination"),
        ({"fpr": 1.5}, r"fpr must be in \(0, 1\)"),
        ({"calibration_fraction": float("nan")}, r"calibration_fraction must be in \[0, 1\)"),
    ],
)
def test_threshold_rule_refuses_a_bad_choice(kwargs, message):
    with pytest.raises(ValueError, match=message):
        T.threshold_rule(**kwargs)


def test_threshold_rule_spells_settings_as_the_caller_does():
    with pytest.raises(ValueError, match="--pot-risk goes with --threshold pot"):
        T.threshold_rule(pot_risk=0.01, flag=lambda n: "--" + n.replace("_", "-"))


class _Scored:
    """Not a deepad detector: the rule needs only set_threshold, threshold_method_ and the score arrays."""

    def __init__(self, calibration=None):
        self.contamination = 0.1
        self.decision_scores_ = np.arange(100.0)
        if calibration is not None:
            self.calibration_scores_ = calibration
        self.threshold_method_ = {"method": "contamination", "contamination": 0.1}
        self.calls = []

    def set_threshold(self, **kw):
        self.calls.append(kw)
        ((kind, value),) = kw.items()
        self.threshold_method_ = {"method": kind, kind: value}


def test_apply_threshold_rule_works_by_duck_typing():
    m = _Scored()
    T.apply_threshold_rule(m, "contamination", default=True)
    assert m.calls == [] and m.threshold_method_["reference_rows"] == 100
    assert m.threshold_method_["reason"].startswith(
        "the default, as no other rule was chosen; the threshold is the 90th percentile of the training scores"
    )
    assert T.describe_threshold(m) == m.threshold_method_["reason"]
    m = _Scored(calibration=np.arange(30.0))
    T.apply_threshold_rule(m, "fpr")
    assert m.calls == [{"fpr": 0.01}]
    assert m.threshold_method_["reference"] == "calibration" and m.threshold_method_["reference_rows"] == 30
    assert "(30 rows)" in m.threshold_method_["reason"] and "conformal guarantee" in m.threshold_method_["reason"]
    T.apply_threshold_rule(m, "pot", pot_risk=0.002)
    assert m.calls[-1] == {"pot_risk": 0.002} and "risk 0.002" in m.threshold_method_["reason"]


def test_the_report_reexports_the_reason_text():
    from deepad.report import describe_threshold, threshold_reason

    assert threshold_reason is T.threshold_reason and describe_threshold is T.describe_threshold


def test_smoothed_conformal_p_value_is_uniform_even_when_scores_tie():
    """Vovk's smoothed p-value: exactly U(0, 1] under exchangeability, ties included (the stream's drift input)."""
    from scipy import stats

    from deepad.thresholds import conformal_p_values_sorted, smoothed_conformal_p_value

    rng = np.random.default_rng(0)
    # the guarantee is over the draw of the reference and the new point: a fresh (rounded, so tied) pair per trial
    refs, new = np.sort(np.round(rng.normal(size=(3000, 20)), 1), axis=1), np.round(rng.normal(size=3000), 1)
    p = np.array([smoothed_conformal_p_value(r, s, i) for i, (r, s) in enumerate(zip(refs, new))])
    assert 0.0 < p.min() and p.max() <= 1.0
    assert stats.kstest(p, "uniform").pvalue > 0.01
    conservative = np.array([conformal_p_values_sorted(r, s) for r, s in zip(refs, new)])
    assert np.all(p <= conservative + 1e-12) and stats.kstest(conservative, "uniform").pvalue < 1e-6
    # a flat line: every score tied with the whole reference; the conservative p-value is 1 on every point
    flat = np.zeros(500)
    p = np.array([smoothed_conformal_p_value(flat, 0.0, i) for i in range(4000)])
    assert abs(np.mean(-np.log(p)) - 1.0) < 0.06 and stats.kstest(p, "uniform").pvalue > 0.01
    assert smoothed_conformal_p_value(flat, 0.0, 7) == smoothed_conformal_p_value(flat, 0.0, 7)  # deterministic
    # mostly tied (a square wave), a score between the two levels, above all, below all
    wave = np.sort(np.r_[np.zeros(600), np.ones(400)])
    assert 400 / 1001 < smoothed_conformal_p_value(wave, 0.5, 3) <= 401 / 1001  # no tie: u / (n + 1) wide
    assert smoothed_conformal_p_value(wave, 2.0, 3) <= 1 / 1001
    assert smoothed_conformal_p_value(wave, -1.0, 3) >= 1000 / 1001


def test_stream_drift_is_quiet_on_a_flat_line():
    """A flat-lined series scored against its own flat reference: no drift event (the conservative p-value of a
    tied score is 1, which used to make the 'down' side fire within a few dozen points)."""
    from deepad.detectors import RollingZScore
    from deepad.stream import StreamScorer

    x = np.full((3000, 1), 5.0)
    det = RollingZScore(window=16).fit(x[:1000])
    sc = StreamScorer(det, threshold="fixed", drift=True)
    events = [e for i in range(1000, 3000, 250) for e in sc.update(x[i : i + 250]).drift_events]
    assert events == [], events
