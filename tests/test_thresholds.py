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
