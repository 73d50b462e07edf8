"""Classical baselines: each score checked against a direct NumPy computation or PyOD; the PyOD adapter."""

from __future__ import annotations

import datetime
import json
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import deepad
from deepad.detectors import ECOD, KNN, LOF, PCA, IsolationForest, Mahalanobis, OneClassSVM, PyODDetector
from deepad.persistence import ModelFormatError

from conftest import make_blobs_with_anomalies

CLASSICAL = [IsolationForest, KNN, LOF, OneClassSVM, PCA, Mahalanobis, ECOD]


@pytest.fixture(scope="module")
def data():
    X_train, _ = make_blobs_with_anomalies(n_normal=300, n_anomalies=0, n_features=5, seed=11)
    X_test, y_test = make_blobs_with_anomalies(n_normal=100, n_anomalies=15, n_features=5, seed=12)
    return X_train, X_test, y_test


def _pairwise(A, B):
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))


# --------------------------------------------------------------------------- KNN
@pytest.mark.parametrize(
    "method, agg",
    [("largest", lambda d: d[:, -1]), ("mean", lambda d: d.mean(1)), ("median", lambda d: np.median(d, 1))],
)
def test_knn_scores_equal_brute_force(data, method, agg):
    X_train, X_test, _ = data
    k = 7
    det = KNN(n_neighbors=k, method=method).fit(X_train)
    expected = agg(np.sort(_pairwise(X_test, X_train), axis=1)[:, :k])
    np.testing.assert_allclose(det.decision_function(X_test), expected, rtol=1e-12, atol=1e-12)
    # rescoring the training rows: every training row is its own nearest neighbour at distance 0
    D = _pairwise(X_train, X_train)
    in_sample = agg(np.sort(D, axis=1)[:, :k])
    np.testing.assert_allclose(det.decision_function(X_train), in_sample, rtol=1e-12, atol=1e-12)
    # training scores (and the threshold's) are leave-one-out: the k nearest *other* rows, as PyOD's
    np.fill_diagonal(D, np.inf)
    loo = agg(np.sort(D, axis=1)[:, :k])
    np.testing.assert_allclose(det.decision_scores_, loo, rtol=1e-12, atol=1e-12)
    assert det._reference_scores_ is det.decision_scores_
    assert det.threshold_ == pytest.approx(np.quantile(loo, 0.9))
    np.testing.assert_array_equal(det.labels_, loo > det.threshold_)


def test_knn_leave_one_out_keeps_duplicates_as_neighbours():
    X = np.repeat(np.arange(10.0).reshape(-1, 1), 2, axis=0)  # every value twice
    det = KNN(n_neighbors=1).fit(X)
    np.testing.assert_array_equal(det._reference_scores_, np.zeros(20))  # the twin, not the row itself, at 0
    np.testing.assert_array_equal(det.decision_function([[0.5], [12.0]]), [0.5, 3.0])


def test_knn_reference_makes_new_normal_rows_p_values_uniform():
    # In-sample kNN scores are biased low; thresholds built on them would flag far more than
    # contamination of new normal rows.  The leave-one-out reference fixes that.
    rng = np.random.default_rng(0)
    X_train, X_new = rng.normal(size=(500, 4)), rng.normal(size=(2000, 4))
    det = KNN(n_neighbors=1, contamination=0.1).fit(X_train)
    assert abs(det.predict(X_new).mean() - 0.1) < 0.03
    in_sample_threshold = np.quantile(det.decision_function(X_train), 0.9)
    assert (det.decision_function(X_new) > in_sample_threshold).mean() > 0.2  # what the naive rule would do
    assert abs(det.p_values(X_new).mean() - 0.5) < 0.05


def test_neighbour_detectors_need_enough_rows_and_valid_params(data):
    X_train = data[0]
    with pytest.raises(ValueError, match=r"has 5 rows, but this KNN needs at least 6"):
        KNN(n_neighbors=5).fit(X_train[:5])
    with pytest.raises(ValueError, match=r"has 20 rows, but this LOF needs at least 21"):
        LOF().fit(X_train[:20])
    with pytest.raises(ValueError, match="method must be one of"):
        KNN(method="max").fit(X_train)
    with pytest.raises(ValueError, match="n_neighbors must be an integer >= 1"):
        KNN(n_neighbors=0).fit(X_train)
    with pytest.raises(TypeError, match="n_neighbors must be an integer"):
        LOF(n_neighbors=2.5).fit(X_train)


def test_n_jobs_does_not_change_scores(data):
    X_train, X_test, _ = data
    for cls in (KNN, LOF):
        np.testing.assert_array_equal(
            cls(n_jobs=2).fit(X_train).decision_function(X_test), cls(n_jobs=1).fit(X_train).decision_function(X_test)
        )
    np.testing.assert_array_equal(
        IsolationForest(n_estimators=20, n_jobs=2, random_state=0).fit(X_train).decision_function(X_test),
        IsolationForest(n_estimators=20, n_jobs=1, random_state=0).fit(X_train).decision_function(X_test),
    )


# --------------------------------------------------------------------------- LOF
def test_lof_scores_and_leave_one_out_reference(data):
    from sklearn.neighbors import LocalOutlierFactor

    X_train, X_test, y_test = data
    det = LOF(n_neighbors=10).fit(X_train)
    sk = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(X_train)
    np.testing.assert_array_equal(det.decision_function(X_test), -sk.score_samples(X_test))
    np.testing.assert_array_equal(det._reference_scores_, -sk.negative_outlier_factor_)
    # the training scores are the leave-one-out factors; rescoring differs (self-match at distance 0)
    assert det.decision_scores_ is det._reference_scores_
    assert not np.allclose(det.decision_function(X_train), det.decision_scores_)
    assert np.median(det._reference_scores_) == pytest.approx(1.0, abs=0.1)  # LOF ~ 1 for inliers
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.9


# --------------------------------------------------------------------------- ECOD
def _ecod_numpy(X_train, X, aggregation, loo=False):
    """Direct formula: brute-force counts, no sorting or searchsorted."""
    from scipy.stats import skew

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the constant column's skewness is NaN -> 0
        g = np.nan_to_num(skew(X_train, axis=0))
    n = X_train.shape[0]
    le = (X_train[None, :, :] <= X[:, None, :]).sum(1).astype(float)
    ge = (X_train[None, :, :] >= X[:, None, :]).sum(1).astype(float)
    if loo:
        fl, fr = le / n, ge / n
    else:
        fl, fr = (le + 1) / (n + 1), (ge + 1) / (n + 1)
    ul, ur = -np.log(fl), -np.log(fr)
    if aggregation == "sum_of_max":
        return np.maximum(ul, ur).sum(1)
    us = np.where(g < 0, ul, ur)
    return np.max([ul.sum(1), ur.sum(1), us.sum(1)], axis=0)


@pytest.mark.parametrize("aggregation", ["max_of_sums", "sum_of_max"])
def test_ecod_matches_direct_formula(aggregation):
    rng = np.random.default_rng(3)
    X_train = np.column_stack(
        [
            rng.exponential(size=200),
            -rng.exponential(size=200),
            rng.normal(size=200),
            rng.integers(0, 4, size=200),
            np.full(200, 2.0),
        ]
    )  # skewed, ties, constant
    far = [[100, -100, 100, 9, 5], [1000, -1000, 1000, 90, 50]]  # beyond the training range in every feature
    X_test = np.vstack([X_train[:5], rng.normal(scale=3, size=(40, 5)), far])
    det = ECOD(aggregation=aggregation).fit(X_train)
    np.testing.assert_allclose(det.decision_function(X_test), _ecod_numpy(X_train, X_test, aggregation), rtol=1e-13)
    np.testing.assert_allclose(det.decision_function(X_train), _ecod_numpy(X_train, X_train, aggregation), rtol=1e-13)
    np.testing.assert_allclose(det.decision_scores_, _ecod_numpy(X_train, X_train, aggregation, loo=True), rtol=1e-13)
    assert np.isfinite(det.decision_function(X_test)).all()
    # beyond the training range, tail probabilities bottom out at 1 / (n + 1): finite and saturated
    far_scores = det.decision_function(far)
    assert np.isfinite(far_scores).all() and far_scores[0] == far_scores[1]
    if aggregation == "sum_of_max":  # every feature in its extreme tail: the largest possible score
        assert far_scores[0] == pytest.approx(5 * np.log(201)) == det.decision_function(X_test).max()


def test_ecod_scores_are_per_row_and_against_training_ecdf():
    rng = np.random.default_rng(4)
    X_train, X_test = rng.normal(size=(300, 6)), rng.normal(scale=2, size=(50, 6))
    det = ECOD().fit(X_train)
    batch = det.decision_function(X_test)
    single = np.array([det.decision_function(X_test[i : i + 1])[0] for i in range(len(X_test))])
    np.testing.assert_array_equal(single, batch)
    np.testing.assert_array_equal(det.decision_function(X_test[::-1]), batch[::-1])
    # the score of one row does not depend on others in the batch (PyOD's does)
    np.testing.assert_array_equal(det.decision_function(np.vstack([X_test, X_test * 10]))[:50], batch)


def test_ecod_per_feature_scores_and_bad_aggregation():
    rng = np.random.default_rng(5)
    X_train = rng.normal(size=(200, 3))
    det = ECOD(aggregation="sum_of_max").fit(X_train)
    row = np.array([[0.0, 8.0, 0.0]])
    fs = det.feature_scores(row)
    assert fs.shape == (1, 3) and fs[0].argmax() == 1
    assert fs[0, 1] == pytest.approx(np.log(201))  # beyond the max: F_right = 1 / (n + 1)
    np.testing.assert_allclose(fs.sum(1), det.decision_function(row))
    with pytest.raises(ValueError, match="aggregation must be one of"):
        ECOD(aggregation="mean").fit(X_train)


# --------------------------------------------------------------------------- PCA and Mahalanobis
def test_pca_minor_component_scores_equal_numpy(data):
    X_train, X_test, _ = data
    mu, sd = X_train.mean(0), X_train.std(0)
    Z, Zt = (X_train - mu) / sd, (X_test - mu) / sd
    lam, V = np.linalg.eigh(np.cov(Z, rowvar=False))  # ascending: minor components first
    proj = (Zt - Z.mean(0)) @ V
    for n_sel, weighted in [(2, True), (2, False), (None, True)]:
        det = PCA(n_selected_components=n_sel, weighted=weighted).fit(X_train)
        cols = slice(0, n_sel)  # the n_sel smallest-variance axes
        expected = (proj[:, cols] ** 2 / (lam[cols] if weighted else 1.0)).sum(1)
        np.testing.assert_allclose(det.decision_function(X_test), expected, rtol=1e-9)


def test_pca_all_components_weighted_is_mahalanobis(data):
    X_train, X_test, _ = data
    n = X_train.shape[0]
    pca = PCA().fit(X_train).decision_function(X_test)
    maha = Mahalanobis(robust=False).fit(X_train).decision_function(X_test)
    # PCA eigenvalues use ddof=1, the empirical covariance ddof=0
    np.testing.assert_allclose(pca * n / (n - 1), maha, rtol=1e-9)


def test_pca_unweighted_reconstruction_error_and_bad_selection(data):
    from sklearn.decomposition import PCA as SkPCA

    X_train, X_test, _ = data
    det = PCA(n_selected_components=3, weighted=False, standardization=False).fit(X_train)
    top2 = SkPCA(n_components=2).fit(X_train)
    recon = top2.inverse_transform(top2.transform(X_test))
    np.testing.assert_allclose(det.decision_function(X_test), ((X_test - recon) ** 2).sum(1), rtol=1e-9)
    with pytest.raises(ValueError, match="n_selected_components=4 exceeds the 3 principal components"):
        PCA(n_components=3, n_selected_components=4).fit(X_train)


def test_pca_degenerate_direction_gives_finite_large_scores():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(200, 1))
    X = np.hstack([a, 2 * a, rng.normal(size=(200, 1))])  # feature 1 = 2 * feature 0
    det = PCA().fit(X)
    s = det.decision_function([[1.0, 2.0, 0.0], [1.0, 2.5, 0.0]])
    assert np.isfinite(s).all() and s[1] > 1e6 * s[0]


def test_mahalanobis_equals_numpy_and_robust_resists_contamination():
    rng = np.random.default_rng(7)
    clean = rng.multivariate_normal([0, 0, 0], [[1, 0.6, 0], [0.6, 1, 0], [0, 0, 2]], size=400)
    X_train = np.vstack([clean, rng.normal(loc=8, size=(40, 3))])  # 9% gross contamination
    X_test = rng.normal(scale=3, size=(30, 3))
    mu, C = X_train.mean(0), np.cov(X_train, rowvar=False, ddof=0)
    diff = X_test - mu
    expected = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(C), diff)
    np.testing.assert_allclose(Mahalanobis(robust=False).fit(X_train).decision_function(X_test), expected, rtol=1e-9)
    robust = Mahalanobis(robust=True, random_state=0).fit(X_train)
    assert np.abs(robust.estimator_.location_).max() < 0.3  # the MCD centre ignores the contaminants
    assert np.abs(X_train.mean(0)).max() > 0.5
    # so the contaminating cluster scores far higher under the robust fit
    assert robust.decision_scores_[400:].min() > robust.decision_scores_[:400].max()


# --------------------------------------------------------------------------- common behaviour
@pytest.mark.parametrize("cls", CLASSICAL, ids=lambda c: c.__name__)
def test_scores_do_not_depend_on_batch_composition(cls, data):
    X_train, X_test, _ = data
    det = cls(random_state=0) if "random_state" in cls().get_params() else cls()
    det.fit(X_train)
    batch = det.decision_function(X_test)
    single = np.array([det.decision_function(X_test[i : i + 1])[0] for i in range(0, len(X_test), 10)])
    np.testing.assert_allclose(single, batch[::10], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(det.decision_function(X_test[::-1])[::-1], batch, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [IsolationForest, PCA, Mahalanobis], ids=lambda c: c.__name__)
def test_seed_comes_from_random_state(cls, data):
    X_train, X_test, _ = data
    a = cls(random_state=1).fit(X_train)
    assert a.seed_ == 1
    b = cls(random_state=np.random.default_rng(0)).fit(X_train)
    np.testing.assert_array_equal(
        cls(random_state=b.seed_).fit(X_train).decision_function(X_test), b.decision_function(X_test)
    )


def test_isolation_forest_is_sklearn_score(data):
    from sklearn.ensemble import IsolationForest as SkIF

    X_train, X_test, y_test = data
    det = IsolationForest(random_state=5).fit(X_train)
    np.testing.assert_array_equal(
        det.decision_function(X_test), -SkIF(random_state=5).fit(X_train).score_samples(X_test)
    )
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.9
    assert (
        IsolationForest(random_state=6).fit(X_train).decision_function(X_test).tolist()
        != det.decision_function(X_test).tolist()
    )


# --------------------------------------------------------------------------- against PyOD
def test_against_pyod_namesakes(data):
    pytest.importorskip("pyod")
    from pyod.models.ecod import ECOD as PECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN as PKNN
    from pyod.models.lof import LOF as PLOF
    from pyod.models.mcd import MCD
    from pyod.models.ocsvm import OCSVM

    X_train, X_test, _ = data
    # KNN and LOF: identical new-row scores, and our leave-one-out reference is PyOD's decision_scores_
    for ours, theirs in [(KNN(method="mean"), PKNN(method="mean")), (LOF(), PLOF())]:
        ours.fit(X_train)
        theirs.fit(X_train)
        np.testing.assert_allclose(ours.decision_function(X_test), theirs.decision_function(X_test), rtol=1e-12)
        np.testing.assert_allclose(ours._reference_scores_, theirs.decision_scores_, rtol=1e-12)
    np.testing.assert_allclose(
        OneClassSVM().fit(X_train).decision_function(X_test), OCSVM().fit(X_train).decision_function(X_test), rtol=1e-10
    )
    np.testing.assert_allclose(
        Mahalanobis(random_state=0).fit(X_train).decision_function(X_test),
        MCD(random_state=0).fit(X_train).decision_function(X_test),
        rtol=1e-10,
    )
    # PyOD's IForest subtracts sklearn's constant offset_: same trees, scores differ by a constant
    diff = IsolationForest(random_state=0).fit(X_train).decision_function(X_test) - IForest(random_state=0).fit(
        X_train
    ).decision_function(X_test)
    np.testing.assert_allclose(diff, diff[0], atol=1e-12)
    # ECOD: PyOD scores one new row against training + that row, i.e. (count + 1) / (n + 1); its training
    # scores use count / n, our leave-one-out reference.
    ours, theirs = ECOD(aggregation="sum_of_max").fit(X_train), PECOD().fit(X_train)
    np.testing.assert_allclose(ours._reference_scores_, theirs.decision_scores_, rtol=1e-10)
    rows = [theirs.decision_function(X_test[i : i + 1])[0] for i in range(0, len(X_test), 7)]
    np.testing.assert_allclose(ours.decision_function(X_test[::7]), rows, rtol=1e-10)


# --------------------------------------------------------------------------- PyOD adapter
def test_adapter_reports_missing_pyod(monkeypatch, data):
    for name in [m for m in sys.modules if m == "pyod" or m.startswith("pyod.")] + ["pyod"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="PyODDetector needs PyOD.*pip install pyod"):
        PyODDetector("pyod.models.knn.KNN").fit(data[0])


def test_adapter_rejects_bad_detectors(data):
    pytest.importorskip("pyod")
    from pyod.models.knn import KNN as PKNN

    X_train = data[0]
    with pytest.raises(ValueError, match="needs a detector"):
        PyODDetector().fit(X_train)
    with pytest.raises(ValueError, match="not a PyOD class path"):
        PyODDetector("os.system").fit(X_train)
    with pytest.raises(ValueError, match="no such class"):
        PyODDetector("pyod.models.knn.Nope").fit(X_train)
    with pytest.raises(ValueError, match="not a PyOD detector class"):
        PyODDetector("pyod.models.knn.NearestNeighbors").fit(X_train)
    with pytest.raises(TypeError, match="not the class KNN"):
        PyODDetector(PKNN).fit(X_train)
    with pytest.raises(TypeError, match="must have fit and decision_function"):
        PyODDetector(object()).fit(X_train)
    with pytest.raises(TypeError, match="params do not fit"):
        PyODDetector("pyod.models.knn.KNN", params={"k": 3}).fit(X_train)


def test_adapter_behaves_like_the_wrapped_detector(data):
    pytest.importorskip("pyod")
    from pyod.models.knn import KNN as PKNN

    X_train, X_test, y_test = data
    template = PKNN(n_neighbors=8)
    det = PyODDetector(template, contamination=0.05).fit(X_train)
    assert not hasattr(template, "decision_scores_")  # the template is cloned, never fitted
    assert det.detector_.contamination == 0.05
    direct = PKNN(n_neighbors=8).fit(X_train)
    np.testing.assert_array_equal(det.decision_function(X_test), direct.decision_function(X_test))
    # training scores, thresholds and p-values are PyOD's own (leave-one-out) training scores, as in PyOD
    np.testing.assert_array_equal(det.decision_scores_, direct.decision_scores_)
    np.testing.assert_array_equal(det.labels_, direct.decision_scores_ > np.quantile(direct.decision_scores_, 0.95))
    assert det.threshold_ == pytest.approx(np.quantile(direct.decision_scores_, 0.95))
    assert roc_auc_score(y_test, det.predict_proba(X_test)[:, 1]) > 0.9
    # string form with params gives the same model
    by_name = PyODDetector("pyod.models.knn.KNN", params={"n_neighbors": 8}).fit(X_train)
    np.testing.assert_array_equal(by_name.decision_function(X_test), det.decision_function(X_test))
    # params override the template's
    overridden = PyODDetector(PKNN(), params={"n_neighbors": 8}).fit(X_train)
    np.testing.assert_array_equal(overridden.decision_function(X_test), det.decision_function(X_test))
    assert clone(det).get_params()["detector"].get_params() == template.get_params()
    det.set_threshold(fpr=0.1)
    assert np.isfinite(det.threshold_)


def test_adapter_seeds_wrapped_random_state(data):
    pytest.importorskip("pyod")
    from pyod.models.iforest import IForest

    X_train, X_test, _ = data
    a = PyODDetector(IForest(n_estimators=20), random_state=3).fit(X_train)
    b = PyODDetector(IForest(n_estimators=20), random_state=3).fit(X_train)
    assert a.detector_.random_state == 3
    np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))
    c = PyODDetector(IForest(n_estimators=20), random_state=4).fit(X_train)
    assert not np.array_equal(a.decision_function(X_test), c.decision_function(X_test))
    explicit = PyODDetector(IForest(n_estimators=20, random_state=3), random_state=99).fit(X_train)
    np.testing.assert_array_equal(explicit.decision_function(X_test), a.decision_function(X_test))


@pytest.mark.parametrize(
    "make",
    [
        lambda: PyODDetector(__import__("pyod.models.iforest").models.iforest.IForest(n_estimators=30), random_state=0),
        lambda: PyODDetector("pyod.models.lof.LOF", params={"n_neighbors": 10}),
        lambda: PyODDetector("pyod.models.ecod.ECOD"),
    ],
    ids=["IForest-instance", "LOF-path", "ECOD-path"],
)
def test_adapter_save_load_round_trip(make, data, tmp_path):
    pytest.importorskip("pyod")
    X_train, X_test, _ = data
    det = make().fit(X_train)
    det.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    assert type(loaded) is PyODDetector and type(loaded.detector_) is type(det.detector_)
    np.testing.assert_array_equal(loaded.decision_function(X_test), det.decision_function(X_test))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), det.predict_proba(X_test))
    assert loaded.threshold_ == det.threshold_
    p, q = loaded.get_params(), det.get_params()
    if isinstance(q["detector"], str):
        assert p == q
    else:  # an unfitted template is saved as its class and parameters
        assert type(p["detector"]) is type(q["detector"])
        assert p["detector"].get_params() == q["detector"].get_params()


def test_adapter_refuses_to_save_untrusted_types(data, tmp_path):
    pytest.importorskip("pyod")
    import torch

    det = PyODDetector("pyod.models.knn.KNN").fit(data[0])
    det.detector_.fitted_on_ = datetime.date(2024, 1, 1)
    with pytest.raises(TypeError, match=r"holds types that deepad would refuse to load \(datetime.date"):
        det.save(tmp_path / "a")
    det.detector_.fitted_on_ = torch.zeros(2)
    with pytest.raises(TypeError, match="skops cannot serialise it"):
        deepad.save(det, tmp_path / "b")  # the module-level save checks too
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_loading_refuses_non_pyod_template(data, tmp_path):
    pytest.importorskip("pyod")
    from pyod.models.iforest import IForest

    det = PyODDetector(IForest(n_estimators=10), random_state=0).fit(data[0])
    det.save(tmp_path / "m")
    config_path = tmp_path / "m" / "model.json"
    config = json.loads(config_path.read_text())
    assert config["params"]["detector"]["__pyod__"] == "pyod.models.iforest.IForest"
    config["params"]["detector"]["__pyod__"] = "subprocess.Popen"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="not a PyOD class path"):
        deepad.load(tmp_path / "m")


def test_adapter_is_excluded_from_generic_contract():
    import test_contract

    assert PyODDetector._needs_wrapped and "PyODDetector" not in test_contract.NAMES
    assert {c.__name__ for c in CLASSICAL} <= set(test_contract.NAMES)
