"""KDSM: the noise rule, the scoring rule of its docstring, the step budget, the teacher filter and bad parameters.

The shared contract (fit/score/save/load/thresholds/validation) is checked by test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepad.detectors import KDSM
from deepad.detectors.kdsm import _peak_centred, kurtosis_noise_scales

from conftest import FAST_PARAMS


@pytest.fixture(scope="module")
def kdsm(planted):
    return KDSM(**FAST_PARAMS["KDSM"], random_state=0).fit(planted[0])


def test_noise_scales_follow_kurtosis():
    rng = np.random.default_rng(0)
    n = 20_000
    X = np.column_stack(
        [
            rng.normal(size=n),  # kurtosis 3, about 2.4 once its tails are trimmed
            rng.uniform(-1, 1, size=n),  # flat: kurtosis 1.8, less noise
            rng.laplace(size=n),  # peaked, heavy tails: kurtosis 6 (3.3 trimmed), more noise
            np.r_[rng.normal(-4, 0.3, n // 2), rng.normal(4, 0.3, n - n // 2)],  # two modes: one peak once centred
            np.ones(n),  # constant: the largest noise
        ]
    )
    scales, kurt = kurtosis_noise_scales(X, base=0.5, c=0.33)
    assert kurt[0] == pytest.approx(2.4, abs=0.1)
    assert kurt[1] < 2.0 and kurt[2] > 3.1
    assert kurt[3] > 2.3  # a plain kurtosis of the two-mode column is 1.0: centring sees one peak per mode
    assert scales[1] < scales[0] < scales[2]
    assert scales[4] == 3.0
    np.testing.assert_allclose(scales[:4], np.clip(0.5 * (1 + 0.33 * (kurt[:4] - 3)), 0.1, 3.0))


def test_peak_centring_puts_the_most_frequent_bin_at_zero_then_alternates():
    col = np.r_[np.zeros(50), np.ones(30), np.full(20, 2.0), np.full(10, 3.0)]
    out = _peak_centred(col, bins=4)
    assert set(out[:50]) == {0.0} and set(out[50:80]) == {1.0}
    assert set(out[80:100]) == {-1.0} and set(out[100:]) == {2.0}


def test_score_is_the_norm_of_the_network_output_on_the_standardised_row(kdsm, planted):
    _, X_test, _ = planted
    z = torch.as_tensor((X_test - kdsm.scaler_center_) / kdsm.scaler_scale_, dtype=torch.float32)
    with torch.no_grad():
        expected = kdsm.module_(z).norm(dim=1).double().numpy()
    np.testing.assert_allclose(kdsm.decision_function(X_test), expected, rtol=1e-5)
    np.testing.assert_allclose(kdsm.score_components(X_test).sum(axis=1), expected**2, rtol=1e-4)


def test_a_row_scores_the_same_alone_and_in_a_batch(kdsm, planted):
    _, X_test, _ = planted
    batch = kdsm.decision_function(X_test)
    alone = np.array([kdsm.decision_function(X_test[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(alone, batch[:5], rtol=1e-5)


def test_training_runs_the_step_budget_whatever_the_row_count(planted):
    X = planted[0]
    small = KDSM(**{**FAST_PARAMS["KDSM"], "n_steps": 20, "batch_size": 64}, random_state=0).fit(X[:100])
    large = KDSM(**{**FAST_PARAMS["KDSM"], "n_steps": 20, "batch_size": 64}, random_state=0).fit(X)
    assert small.n_epochs_ == 10  # 2 batches per epoch
    assert large.n_epochs_ == 3  # 7 batches per epoch
    assert small.noise_scales_.shape == (X.shape[1],)


def test_planted_off_manifold_anomalies_beat_the_density_bulk():
    """Normal rows on a curved 1-D manifold in 4-D; anomalies inside its bounding box but off the curve."""
    rng = np.random.default_rng(3)
    t = rng.uniform(-2, 2, size=1200)
    curve = np.column_stack([t, t**2, np.sin(2 * t), np.cos(t)])
    X_train = curve[:1000] + rng.normal(scale=0.05, size=(1000, 4))
    lo, hi = X_train.min(axis=0), X_train.max(axis=0)
    anomalies = rng.uniform(lo, hi, size=(60, 4))
    X_test = np.vstack([curve[1000:] + rng.normal(scale=0.05, size=(200, 4)), anomalies])
    y_test = np.r_[np.zeros(200), np.ones(60)]
    det = KDSM(width=64, n_blocks=2, n_steps=300, random_state=0).fit(X_train)
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.95


def test_teacher_filter_trains_away_from_planted_contamination():
    """A tight cluster of 10 % far-away rows in training: without the filter the network learns it as normal."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(900, 5))
    far = rng.normal(loc=6.0, scale=0.3, size=(100, 5))
    X = np.vstack([normal, far])
    X_test = np.vstack([rng.normal(size=(200, 5)), rng.normal(loc=6.0, scale=0.3, size=(20, 5))])
    y_test = np.r_[np.zeros(200), np.ones(20)]
    params = dict(width=64, n_blocks=1, n_steps=250, batch_size=100, random_state=0)
    plain = roc_auc_score(y_test, KDSM(**params).fit(X).decision_function(X_test))
    filtered = roc_auc_score(
        y_test, KDSM(**params, filter_fraction=0.2, ema_decay=0.9).fit(X).decision_function(X_test)
    )
    assert plain < 0.5 < 0.9 < filtered  # measured: 0.07 without the filter, 1.00 with it


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"width": 0}, "width must be a positive integer"),
        ({"n_steps": 1.5}, "n_steps must be a positive integer"),
        ({"n_noise": 0}, "n_noise must be a positive integer"),
        ({"noise": "gaussian"}, "noise must be 'kurtosis' or 'constant'"),
        ({"base_noise": 0.0}, "base_noise must be a positive number"),
        ({"filter_fraction": 1.0}, r"filter_fraction must be a number in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
    ],
)
def test_bad_parameters_rejected_by_name(bad, message, planted):
    with pytest.raises(ValueError, match=message):
        KDSM(**{**FAST_PARAMS["KDSM"], **bad}).fit(planted[0])


def test_constant_noise_uses_the_base_scale(planted):
    det = KDSM(**{**FAST_PARAMS["KDSM"], "n_steps": 5}, noise="constant", base_noise=0.7, random_state=0).fit(
        planted[0]
    )
    np.testing.assert_array_equal(det.noise_scales_, np.full(planted[0].shape[1], 0.7))


def test_explanations_use_the_neural_methods_and_sum_to_the_score_difference(kdsm, planted):
    from deepad.explain import explain, family_method

    _, X_test, y_test = planted
    rows = X_test[y_test == 1][:3]
    assert family_method(kdsm) == "integrated_gradients"  # not "reconstruction": the score is no reconstruction
    baseline = np.median(planted[0], axis=0)
    ig = explain(kdsm, rows, method="integrated_gradients", baseline=baseline, n_steps=64)
    gap = kdsm.decision_function(rows) - kdsm.decision_function(baseline[None, :])[0]
    np.testing.assert_allclose(ig.to_numpy().sum(axis=1), gap, rtol=0.05)
