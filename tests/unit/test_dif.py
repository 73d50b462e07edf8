"""DeepIsolationForest: the scoring rule of its docstring, and what the random representations buy.

The generic contract (determinism, save/load, thresholds, bad input) is
checked by test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.metrics import roc_auc_score

import deepad
from deepad.detectors import DeepIsolationForest, IsolationForest
from deepad.detectors.dif import RandomNetEnsemble, _average_path_length

SMALL = dict(n_ensemble=8, hidden_dims=(64, 32))


def test_planted_anomalies_found(planted):
    X_train, X_test, y_test = planted
    det = DeepIsolationForest(random_state=0).fit(X_train)
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.95


def test_depth_scores_are_isolation_forest_scores_in_each_representation(planted):
    """scoring="depth" is exactly scikit-learn's Isolation Forest score, averaged over the representation spaces."""
    X_train, X_test, _ = planted
    det = DeepIsolationForest(scoring="depth", random_state=3, **SMALL).fit(X_train)
    # re-draw the networks and the forests' seeds as _fit does
    rng = np.random.default_rng(det.seed_)
    RandomNetEnsemble(X_train.shape[1], SMALL["hidden_dims"], 20, SMALL["n_ensemble"]).reset_random(rng)
    R_train, R_test = det._representation(X_train), det._representation(X_test)
    expected = np.zeros(len(X_test))
    for e in range(SMALL["n_ensemble"]):
        forest = SkIsolationForest(n_estimators=6, max_samples=256, random_state=int(rng.integers(2**31 - 1)))
        expected += -forest.fit(R_train[e]).score_samples(R_test[e])
    np.testing.assert_allclose(det.decision_function(X_test), expected / SMALL["n_ensemble"], rtol=1e-12)


def test_deas_is_depth_times_mean_deviation_from_the_split_values(planted):
    """The deviation term, recomputed node by node from scikit-learn's decision paths."""
    X_train, X_test, _ = planted
    det = DeepIsolationForest(n_ensemble=2, n_estimators=3, hidden_dims=(16,), random_state=1).fit(X_train)
    rng = np.random.default_rng(det.seed_)
    RandomNetEnsemble(X_train.shape[1], (16,), 20, 2).reset_random(rng)
    R_train, R_test = det._representation(X_train), det._representation(X_test[:30])
    expected = np.zeros(30)
    for e in range(2):
        forest = SkIsolationForest(n_estimators=3, max_samples=256, random_state=int(rng.integers(2**31 - 1)))
        forest.fit(R_train[e])
        depth = -forest.score_samples(R_test[e])
        dev = np.zeros(30)
        for tree in forest.estimators_:
            t = tree.tree_
            path = tree.decision_path(R_test[e]).toarray().astype(bool)
            for i in range(30):
                nodes = [k for k in np.flatnonzero(path[i]) if t.children_left[k] >= 0]
                dev[i] += np.mean([abs(float(R_test[e][i, t.feature[k]]) - t.threshold[k]) for k in nodes])
        expected += depth * dev / 3
    np.testing.assert_allclose(det.decision_function(X_test[:30]), expected / 2, rtol=1e-9)


def test_scores_do_not_depend_on_the_batch():
    """Representations are standardised with training statistics, so a row scores the same alone or in a batch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    det = DeepIsolationForest(batch_size=64, random_state=0, **SMALL).fit(X)
    Xnew = rng.normal(size=(40, 4)) * 2
    together = det.decision_function(Xnew)
    alone = np.array([det.decision_function(row[None, :])[0] for row in Xnew])
    np.testing.assert_allclose(alone, together, rtol=1e-5)


def test_seed_controls_the_networks_and_trees(planted):
    X_train, X_test, _ = planted
    a = DeepIsolationForest(random_state=5, **SMALL).fit(X_train).decision_function(X_test)
    b = DeepIsolationForest(random_state=5, **SMALL).fit(X_train).decision_function(X_test)
    c = DeepIsolationForest(random_state=6, **SMALL).fit(X_train).decision_function(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a different seed is a different random forest, not a different ranking of the obvious anomalies
    assert np.corrcoef(a, c)[0, 1] > 0.8


def test_nonlinear_views_isolate_anomalies_hidden_inside_the_marginals():
    """Normal rows on a ring; anomalies at its centre sit inside every feature's range.

    Axis-parallel cuts on the raw features cannot isolate the centre quickly;
    cuts in random non-linear representations can.
    """
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 2000)
    ring = np.c_[np.cos(angle), np.sin(angle)] + 0.05 * rng.normal(size=(2000, 2))
    X_train = ring[:1500]
    X_test = np.vstack([ring[1500:], 0.1 * rng.normal(size=(25, 2))])
    y_test = np.r_[np.zeros(500), np.ones(25)]
    dif = roc_auc_score(y_test, DeepIsolationForest(random_state=0).fit(X_train).decision_function(X_test))
    iforest = roc_auc_score(y_test, IsolationForest(random_state=0).fit(X_train).decision_function(X_test))
    assert dif > 0.99
    assert 1 - dif < (1 - iforest) / 10  # at most a tenth of Isolation Forest's mis-ranked pairs


def test_scaled_weights_do_not_saturate_the_hidden_units():
    """The docstring's reason for weight_init="scaled": N(0, 1) weights turn the second tanh layer into a binary code."""
    import torch

    X = torch.from_numpy(np.random.default_rng(0).uniform(size=(500, 6)).astype(np.float32))
    saturated = {}
    for scaled in (False, True):
        w = RandomNetEnsemble(6, (500, 100), 20, 1).reset_random(np.random.default_rng(0), scaled).weights()
        h2 = torch.tanh(torch.tanh(X @ w[0][0]) @ w[1][0])
        saturated[scaled] = float((h2.abs() > 0.99).float().mean())
    assert saturated[False] > 0.8 and saturated[True] < 0.01


def test_save_load_keeps_networks_and_trees(planted, tmp_path):
    X_train, X_test, _ = planted
    det = DeepIsolationForest(random_state=0, **SMALL).fit(X_train)
    det.save(tmp_path / "dif")
    loaded = deepad.load(tmp_path / "dif")
    for a, b in zip(det.net_.weights(), loaded.net_.weights()):
        assert torch_equal(a, b)
    np.testing.assert_array_equal(loaded.tree_threshold_, det.tree_threshold_)
    np.testing.assert_array_equal(loaded.decision_function(X_test), det.decision_function(X_test))
    assert not list((tmp_path / "dif").glob("*.skops")), "trees are saved as plain arrays"


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_average_path_length():
    # c(n) = 2 H(n-1) - 2 (n-1)/n, with H(i) ~ ln(i) + Euler's constant; c(1) = 0, c(2) = 1
    np.testing.assert_allclose(
        _average_path_length(np.array([1, 2, 256])), [0.0, 1.0, 2 * (np.log(255) + np.euler_gamma) - 2 * 255 / 256]
    )


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_ensemble=0),
        dict(max_samples=1),
        dict(scoring="mean"),
        dict(activation="swish"),
        dict(hidden_dims=(8, 0)),
        dict(weight_init="xavier"),
    ],
)
def test_bad_parameters_rejected(planted, bad):
    with pytest.raises(ValueError):
        DeepIsolationForest(**bad).fit(planted[0])
