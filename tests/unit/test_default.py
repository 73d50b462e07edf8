"""deepad.detectors.DEFAULT (LocalGlobalEnsemble) and its HBOS member.

The generic contract (determinism, save/load, thresholds, bad input) is
checked for both classes by test_contract.py; here we test what makes the
ensemble the default: the calibrated two-view scoring rule, robustness to
anomaly clumps in the training data, scale invariance, and its cost.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import deepad
import deepad.detectors as D
from deepad.detectors import HBOS, KNN, LocalGlobalEnsemble


def test_default_is_the_local_global_ensemble():
    assert D.DEFAULT is LocalGlobalEnsemble


def _normal(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d))


def test_scoring_rule_matches_the_docstring(planted):
    X_train, X_test, _ = planted
    for w in (0.0, 0.65, 1.0):
        det = LocalGlobalEnsemble(local_weight=w, n_neighbors_global=50, deep_weight=0.0).fit(X_train)
        assert det.deep_ is None
        views = det.view_scores(X_test)
        local, glob = views[:, 0], views[:, 1]
        np.testing.assert_allclose(det.decision_function(X_test), glob + w * np.maximum(local - glob, 0))
        if w == 1.0:
            np.testing.assert_allclose(det.decision_function(X_test), np.maximum(local, glob))
    # the deep view adds its calibrated excess over both kNN views, weighted
    two_view = det.decision_function(X_test)
    deep = LocalGlobalEnsemble(local_weight=1.0, n_neighbors_global=50, deep_weight=0.4).fit(X_train)
    d = (deep.deep_.decision_function(X_test) - deep.deep_center_) / deep.deep_scale_
    np.testing.assert_allclose(
        deep.decision_function(X_test), two_view + 0.4 * np.maximum(d - np.maximum(local, glob), 0)
    )
    assert (deep.decision_function(X_test) >= two_view - 1e-12).all()  # the deep view only ever raises a score
    # member scores are the documented raw scores: kNN-mean distances in standardised space and HBOS
    raw = det.member_scores(X_test)
    Z_train = (X_train - X_train.mean(0)) / X_train.std(0)
    Z_test = (X_test - X_train.mean(0)) / X_train.std(0)
    d = np.sqrt(((Z_test[:, None, :] - Z_train[None, :, :]) ** 2).sum(-1))
    d.sort(axis=1)
    np.testing.assert_allclose(raw[:, 0], d[:, :5].mean(1), rtol=1e-9)
    np.testing.assert_allclose(raw[:, 1], d[:, :50].mean(1), rtol=1e-9)
    np.testing.assert_allclose(raw[:, 2], HBOS(n_bins="auto").fit(Z_train).decision_function(Z_test), rtol=1e-9)


def test_views_are_calibrated_on_leave_one_out_training_scores(planted):
    X_train, _, _ = planted
    det = LocalGlobalEnsemble().fit(X_train)
    # rescored in-sample, each row is its own nearest neighbour, so its score is biased low
    assert np.mean(det.decision_function(X_train) < det.decision_scores_) > 0.9
    # calibration makes the median leave-one-out training row 0 in each view
    dist, _ = det.neighbors_.kneighbors(None, n_neighbors=det.k_global_)
    raw = np.column_stack([dist[:, :5].mean(1), dist.mean(1), det.hbos_._reference_scores_])
    np.testing.assert_allclose(np.median(det._calibrated(det._views(raw)), axis=0), 0.0, atol=1e-12)
    # thresholds come from the leave-one-out scores: about 10% of new normal rows are flagged
    det2 = LocalGlobalEnsemble().fit(_normal(1000, d=6, seed=1))
    assert 0.05 < det2.predict(_normal(2000, d=6, seed=2)).mean() < 0.15


def test_clump_of_training_anomalies_does_not_hide_new_ones():
    """Contaminated training data: 25 copies of one anomaly.  5-NN calls new copies normal; DEFAULT does not."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(2000, 4))
    clump = np.array([6.0, -6.0, 6.0, -6.0]) + 0.01 * rng.normal(size=(25, 4))
    X_train = np.vstack([normal, clump])
    new_normal = rng.normal(size=(500, 4))
    new_anomalies = np.array([6.0, -6.0, 6.0, -6.0]) + 0.01 * rng.normal(size=(10, 4))
    X_test = np.vstack([new_normal, new_anomalies])
    y_test = np.r_[np.zeros(500), np.ones(10)]
    knn = KNN(n_neighbors=5, method="mean").fit(X_train)
    assert roc_auc_score(y_test, knn.decision_function(X_test)) < 0.1  # fooled by the clump
    det = LocalGlobalEnsemble().fit(X_train)
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.99
    # and they are flagged at the default threshold
    assert det.predict(new_anomalies).all()


def test_local_anomaly_between_clusters_is_found():
    """Two tight clusters far apart: a row halfway is a local anomaly the local view catches."""
    rng = np.random.default_rng(1)
    X_train = np.vstack([rng.normal(0, 0.1, size=(500, 2)), rng.normal(10, 0.1, size=(500, 2))])
    X_test = np.vstack([rng.normal(0, 0.1, size=(50, 2)), rng.normal(10, 0.1, size=(50, 2)), [[0.8, 0.8], [9.2, 9.2]]])
    det = LocalGlobalEnsemble().fit(X_train)
    s = det.decision_function(X_test)
    assert s[-2:].min() > s[:-2].max()


def test_invariant_to_feature_units(planted):
    X_train, X_test, _ = planted
    scale = np.array([1e-3, 1.0, 1e3, 5.0, 1.0, 250.0])
    a = LocalGlobalEnsemble().fit(X_train).decision_function(X_test)
    b = LocalGlobalEnsemble().fit(X_train * scale).decision_function(X_test * scale)
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_tiny_training_set_caps_the_global_neighbourhood():
    X = _normal(8, d=3)
    det = LocalGlobalEnsemble().fit(X)
    assert det.k_global_ == 7 and det.k_local_ == 5
    assert np.isfinite(det.decision_function(_normal(4, d=3, seed=3))).all()
    with pytest.raises(ValueError, match=r"has 5 rows, but this LocalGlobalEnsemble needs at least 6"):
        LocalGlobalEnsemble().fit(X[:5])


def test_duplicated_training_rows_are_handled():
    """Many identical rows make IQRs zero; scores must stay finite and still rank a far row first."""
    X = np.vstack([np.zeros((300, 3)), np.ones((10, 3))])
    det = LocalGlobalEnsemble().fit(X)
    s = det.decision_function(np.array([[0.0, 0, 0], [1.0, 1, 1], [8.0, -8, 8]]))
    assert np.isfinite(s).all() and s[2] > s[1] > s[0] - 1e-12


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(n_neighbors=0), "n_neighbors must be an integer >= 1"),
        (dict(n_neighbors_global=2.5), "n_neighbors_global must be an integer >= 1"),
        (dict(local_weight=1.5), r"local_weight must be a number in \[0, 1\]"),
        (dict(n_bins="many"), "n_bins must be an integer >= 2 or 'auto'"),
        (dict(preprocessing="zscore"), "preprocessing must be one of"),
    ],
)
def test_bad_parameters_rejected(planted, params, message):
    with pytest.raises(ValueError, match=message):
        LocalGlobalEnsemble(**params).fit(planted[0])


def test_save_load_keeps_members(planted, tmp_path):
    X_train, X_test, _ = planted
    det = LocalGlobalEnsemble(n_neighbors_global=50).fit(X_train)
    det.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    assert isinstance(loaded.hbos_, HBOS)
    np.testing.assert_array_equal(loaded.view_scores(X_test), det.view_scores(X_test))
    np.testing.assert_array_equal(loaded._reference_scores_, det._reference_scores_)


def test_on_bundled_cardio_beats_its_own_members():
    """One-class split of the bundled ADBench cardio set: the ensemble is at least as good as 5-NN."""
    from sklearn.model_selection import train_test_split

    from deepad.data import load_cardio

    X, y = load_cardio()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    det = LocalGlobalEnsemble().fit(X_tr[y_tr == 0])
    auc = roc_auc_score(y_te, det.decision_function(X_te))
    knn = roc_auc_score(y_te, KNN(n_neighbors=5).fit(X_tr[y_tr == 0]).decision_function(X_te))
    assert auc > 0.9 and auc >= knn - 0.01


# --------------------------------------------------------------------------- HBOS
def test_hbos_matches_pyod_ranking_on_minmax_data():
    pyod_hbos = pytest.importorskip("pyod.models.hbos")
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(600, 5))
    lo, hi = X[:400].min(0), X[:400].max(0)
    Xs = (X - lo) / (hi - lo)
    ours = HBOS(n_bins=10).fit(Xs[:400]).decision_function(Xs[400:])
    theirs = pyod_hbos.HBOS(n_bins=10).fit(Xs[:400]).decision_function(Xs[400:])
    assert np.corrcoef(np.argsort(np.argsort(ours)), np.argsort(np.argsort(theirs)))[0, 1] > 0.999


def test_hbos_scoring_rule_and_leave_one_out():
    X = np.array([[0.0], [0.0], [0.0], [1.0], [10.0]])
    det = HBOS(n_bins=2, alpha=0.1).fit(X)
    # bins [0, 5) and [5, 10]: frequencies 4/5 and 1/5
    floor = 0.1 / 2
    np.testing.assert_allclose(
        det.decision_function(np.array([[0.5], [9.0]])), [-np.log(0.8 + floor), -np.log(0.2 + floor)]
    )
    # leave-one-out: the lone row at 10 sees an empty bin
    np.testing.assert_allclose(det._reference_scores_[-1], -np.log(0.0 + floor))
    # far outside the range: the emptiest bin's frequency
    np.testing.assert_allclose(det.decision_function(np.array([[100.0]])), [-np.log(0.2 + floor)])


def test_hbos_constant_feature_and_auto_bins():
    X = np.column_stack([np.linspace(0, 1, 1000), np.full(1000, 3.0)])
    det = HBOS(n_bins="auto").fit(X)
    assert det.n_bins_ == 20  # ceil(2 * 1000 ** (1/3))
    s = det.decision_function(np.array([[0.5, 3.0], [0.5, 3.1]]))
    assert s[1] > s[0]


@pytest.mark.skipif(not os.environ.get("DEEPAD_SLOW"), reason="set DEEPAD_SLOW=1 (fits a 10,000 x 100 set)")
def test_fit_cost_on_10000_by_100():
    X = _normal(10_000, d=100)
    t0 = time.process_time()
    LocalGlobalEnsemble().fit(X)
    assert time.process_time() - t0 < 60


def test_deep_view_is_fitted_on_the_rows_the_knn_views_find_least_unusual(planted):
    X_train, _, _ = planted
    two_view = LocalGlobalEnsemble(deep_weight=0.0).fit(X_train)
    det = LocalGlobalEnsemble(deep_weight=0.25, deep_trim=0.2).fit(X_train)
    loo = two_view._reference_scores_
    kept = loo <= np.quantile(loo, 0.8)
    assert det.deep_.decision_scores_.shape[0] == kept.sum()
    np.testing.assert_allclose(det.deep_.scaler_center_, X_train[kept].min(axis=0))  # DIF's min-max scaler
    # seeded: the default random_state makes DEFAULT give the same scores on every fit
    again = LocalGlobalEnsemble(deep_weight=0.25, deep_trim=0.2).fit(X_train)
    np.testing.assert_array_equal(det.decision_scores_, again.decision_scores_)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(deep_weight=-0.1), "deep_weight"),
        (dict(deep_trim=0.5), "deep_trim"),
        (dict(deep_weight=True), "deep_weight"),
    ],
)
def test_bad_deep_view_settings_are_rejected(planted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalGlobalEnsemble(**kwargs).fit(planted[0])


@pytest.mark.parametrize("n_features", [9, 30])  # kd-tree and brute-force neighbour search
def test_a_row_scores_the_same_alone_and_in_any_batch(n_features):
    """Single-record service requests and batch files give a row the same score, to the bit (issue 15)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, n_features))
    T = np.vstack([rng.normal(size=(40, n_features)), rng.normal(4.0, 1.0, size=(5, n_features))])
    model = LocalGlobalEnsemble(random_state=0).fit(X)
    whole = model.decision_function(T)
    alone = np.concatenate([model.decision_function(T[i : i + 1]) for i in range(len(T))])
    chunks = np.concatenate([model.decision_function(T[i : i + 7]) for i in range(0, len(T), 7)])
    np.testing.assert_array_equal(alone, whole)
    np.testing.assert_array_equal(chunks, whole)


# --------------------------------------------------------------------------- issue 17: no deep view by default
def test_default_has_no_deep_view_and_imports_no_torch():
    """DEFAULT is the two kNN views and HBOS: deterministic, and fitting and scoring it never imports torch."""
    import subprocess
    import sys

    assert LocalGlobalEnsemble().get_params()["deep_weight"] == 0.0
    assert LocalGlobalEnsemble().get_params()["max_reference"] == 20_000
    code = (
        "import sys, numpy as np; import deepad.detectors as D; "
        "X = np.random.default_rng(0).normal(size=(300, 4)); m = D.DEFAULT().fit(X); m.decision_function(X[:5]); "
        "assert m.deep_ is None; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_model_saved_with_the_old_default_keeps_its_deep_view():
    """Saved with deep_weight=0.25 (the default before issue 17): it loads with its deep view and exact kNN."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "LocalGlobalEnsemble"
    model = deepad.load(folder)
    params = model.get_params()
    assert params["deep_weight"] == 0.25 and model.deep_ is not None
    assert params["max_reference"] is None  # saved before the parameter existed: every training row is a reference
    X = np.load(folder.parent / "LocalGlobalEnsemble.input.npy")
    expected = np.load(folder.parent / "LocalGlobalEnsemble.scores.npy")
    # the deep view is a float32 network: to its rounding on this CPU, as in test_fixture_models.py
    np.testing.assert_allclose(
        model.decision_function(X), expected, rtol=0, atol=5e-6 * max(1.0, np.abs(expected).max())
    )


# --------------------------------------------------------------------------- issue 17: the bounded reference set
def _raw_loo(det, X):
    """Raw leave-one-out (local, global) kNN means of the training rows, from the views ``fit`` leaves behind."""
    views = det.pop_training_views()
    z_local = views[:, 0] * det.view_scale_[0] + det.view_center_[0]
    return z_local * det.member_scale_[0] + det.member_center_[0]


def test_bounded_reference_scores_every_training_row_leave_one_out():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4))
    det = LocalGlobalEnsemble(n_neighbors_global=20, max_reference=60).fit(X)
    assert det.n_reference_ == 60 and det.k_global_ == 20
    ref = det.neighbors_._fit_X
    assert ref.shape == (60, 4)
    Z = (X - X.mean(0)) / X.std(0)
    d = np.sqrt(((Z[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    in_ref = np.isclose(d, 0.0, atol=1e-12)
    assert in_ref.sum() == 60 and (in_ref.sum(axis=1) <= 1).all()
    d[in_ref] = np.inf  # a reference row is scored without itself, the other rows against all 60
    d.sort(axis=1)
    np.testing.assert_allclose(_raw_loo(det, X), d[:, :5].mean(1), rtol=1e-9)
    # HBOS keeps every training row; new rows are scored against the 60 reference rows
    assert det.hbos_._reference_scores_.shape == (300,)
    T = rng.normal(size=(7, 4))
    Zt = (T - X.mean(0)) / X.std(0)
    dt = np.sort(np.sqrt(((Zt[:, None, :] - ref[None, :, :]) ** 2).sum(-1)), axis=1)
    np.testing.assert_allclose(det.member_scores(T)[:, :2], np.c_[dt[:, :5].mean(1), dt[:, :20].mean(1)], rtol=1e-9)
    # seeded by random_state: the same reference rows on every fit, other ones for another seed
    np.testing.assert_array_equal(
        LocalGlobalEnsemble(n_neighbors_global=20, max_reference=60).fit(X).decision_scores_, det.decision_scores_
    )
    other = LocalGlobalEnsemble(n_neighbors_global=20, max_reference=60, random_state=1).fit(X)
    assert not np.array_equal(other.neighbors_._fit_X, ref)


def test_a_bound_above_the_rows_is_the_exact_model(planted):
    X_train, X_test, _ = planted
    exact = LocalGlobalEnsemble(max_reference=None).fit(X_train)
    bounded = LocalGlobalEnsemble(max_reference=len(X_train)).fit(X_train)
    assert bounded.n_reference_ == exact.n_reference_ == len(X_train)
    np.testing.assert_array_equal(bounded.decision_scores_, exact.decision_scores_)
    np.testing.assert_array_equal(bounded.decision_function(X_test), exact.decision_function(X_test))


def test_chunked_neighbour_queries_give_the_same_scores(monkeypatch):
    """Large inputs are queried in chunks of rows (memory O(chunk x k)); the scores do not change, to the bit."""
    import deepad.detectors.ensemble as ens

    rng = np.random.default_rng(2)
    X, T = rng.normal(size=(1500, 6)), rng.normal(size=(700, 6))
    whole = LocalGlobalEnsemble(n_neighbors_global=30).fit(X)
    monkeypatch.setattr(ens, "_QUERY_CHUNK_VALUES", 256 * 31)  # 256 rows per query
    assert ens._query_chunk(30) == 256
    chunked = LocalGlobalEnsemble(n_neighbors_global=30).fit(X)
    np.testing.assert_array_equal(chunked.decision_scores_, whole.decision_scores_)
    np.testing.assert_array_equal(chunked.decision_function(T), whole.decision_function(T))
    # and with a bounded reference set, whose own rows are queried in chunks too
    monkeypatch.setattr(ens, "_QUERY_CHUNK_VALUES", 1 << 22)
    one = LocalGlobalEnsemble(n_neighbors_global=30, max_reference=900).fit(X)
    monkeypatch.setattr(ens, "_QUERY_CHUNK_VALUES", 256 * 31)
    many = LocalGlobalEnsemble(n_neighbors_global=30, max_reference=900).fit(X)
    np.testing.assert_array_equal(many.decision_scores_, one.decision_scores_)


def test_duplicates_beyond_the_neighbours_in_a_chunked_self_query(monkeypatch):
    """More identical rows than neighbours: each reference row still drops exactly one copy of itself."""
    import deepad.detectors.ensemble as ens

    X = np.vstack([np.zeros((600, 2)), np.random.default_rng(0).normal(size=(400, 2))])
    whole = LocalGlobalEnsemble(n_neighbors_global=10).fit(X)
    monkeypatch.setattr(ens, "_QUERY_CHUNK_VALUES", 256 * 11)
    chunked = LocalGlobalEnsemble(n_neighbors_global=10).fit(X)
    np.testing.assert_array_equal(chunked.decision_scores_, whole.decision_scores_)


@pytest.mark.parametrize(
    "value, error, match",
    [
        (0, ValueError, "max_reference must be None or a positive integer, got 0"),
        (2.5, TypeError, "max_reference must be None or a positive integer, got 2.5"),
        (True, TypeError, "max_reference must be None or a positive integer"),
        (
            5,
            ValueError,
            r"max_reference=5 keeps fewer reference rows than the local view needs \(n_neighbors \+ 1 = 6\)",
        ),
    ],
)
def test_bad_max_reference_is_rejected(planted, value, error, match):
    with pytest.raises(error, match=match):
        LocalGlobalEnsemble(max_reference=value).fit(planted[0])
