"""The detector contract, checked for every detector that deepad.detectors exports."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import deepad
import deepad.detectors as D
from deepad.base import BaseDetector, LabelsIgnoredWarning

from conftest import FAST_PARAMS

NAMES = sorted(
    n
    for n in D.__all__
    if n != "DEFAULT"
    and isinstance(getattr(D, n), type)
    and issubclass(getattr(D, n), BaseDetector)
    and not getattr(getattr(D, n), "_needs_wrapped", False)
    # image detectors take (N, C, H, W) arrays, not tables: tests/test_images.py checks their contract
    and not getattr(getattr(D, n), "_image_input", False)
)


def make(name, **extra):
    params = {**FAST_PARAMS[name], **extra}
    params.setdefault("random_state", 0)
    cls = getattr(D, name)
    if "random_state" not in cls().get_params():
        params.pop("random_state")
    return cls(**params)


@pytest.fixture(scope="module")
def fitted(planted):
    X_train, _, _ = planted
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make(name).fit(X_train)
        return cache[name]

    return get


def test_every_detector_has_fast_params():
    assert set(NAMES) <= set(FAST_PARAMS), f"add FAST_PARAMS for {sorted(set(NAMES) - set(FAST_PARAMS))}"


def test_default_is_exported_detector():
    assert D.DEFAULT.__name__ in D.__all__ and issubclass(D.DEFAULT, BaseDetector)


def test_scikit_learn_knows_every_detector_is_an_outlier_detector():
    from sklearn.base import is_outlier_detector

    from deepad.image_pipeline import ImagePipeline
    from deepad.pipeline import TabularDetector

    classes = [getattr(D, n) for n in D.__all__ if n != "DEFAULT"] + [TabularDetector, ImagePipeline]
    assert all(isinstance(c, type) and issubclass(c, BaseDetector) for c in classes)
    assert [c.__name__ for c in classes if not is_outlier_detector(c())] == []


@pytest.mark.parametrize("name", NAMES)
class TestContract:
    def test_fit_returns_self_and_learned_attributes(self, name, planted):
        X_train, _, _ = planted
        det = make(name)
        assert det.fit(X_train) is det
        n = X_train.shape[0]
        assert det.decision_scores_.shape == (n,)
        assert det.labels_.shape == (n,) and set(np.unique(det.labels_)) <= {0, 1}
        assert np.isfinite(det.threshold_)
        # contamination=0.1 flags about 10% of the training rows
        assert 0.05 <= det.labels_.mean() <= 0.15
        assert det.n_features_in_ == X_train.shape[1]

    def test_rescoring_training_data_reproduces_decision_scores(self, name, planted, fitted):
        X_train, _, _ = planted
        det = fitted(name)
        rescored = det.decision_function(X_train)
        if det.training_scores_kind() == "leave-one-out training scores":
            # memorising detectors: decision_scores_ score each row without itself (PyOD's KNN); rescoring
            # finds the row itself, so the scores differ but rank the rows alike
            from scipy.stats import spearmanr

            assert not np.array_equal(rescored, det.decision_scores_)
            assert spearmanr(rescored, det.decision_scores_).statistic > 0.8
        else:
            np.testing.assert_array_equal(rescored, det.decision_scores_)

    def test_planted_anomalies_found(self, name, planted, fitted):
        _, X_test, y_test = planted
        auc = roc_auc_score(y_test, fitted(name).decision_function(X_test))
        assert auc > 0.9, f"{name}: ROC-AUC {auc:.3f} on planted anomalies"

    def test_higher_score_means_anomalous_and_predict_uses_threshold(self, name, planted, fitted):
        _, X_test, y_test = planted
        det = fitted(name)
        s = det.decision_function(X_test)
        assert s[y_test == 1].mean() > s[y_test == 0].mean()
        np.testing.assert_array_equal(det.predict(X_test), (s > det.threshold_).astype(int))

    def test_predict_proba_is_calibrated_p_value(self, name, planted, fitted):
        _, X_test, _ = planted
        det = fitted(name)
        proba = det.predict_proba(X_test)
        assert proba.shape == (X_test.shape[0], 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert ((proba >= 0) & (proba <= 1)).all()
        s = det.decision_function(X_test)
        order = np.argsort(s)
        assert np.all(np.diff(proba[order, 1]) >= -1e-12), "probability must not decrease as the score rises"
        # p-values of the training rows against their own reference are ~uniform
        p_train = det.p_values(planted[0])
        assert 0.3 < p_train.mean() < 0.7

    def test_same_seed_same_scores_and_refit_reproduces(self, name, planted):
        X_train, X_test, _ = planted
        a = make(name).fit(X_train)
        b = make(name).fit(X_train)
        np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))
        first = a.decision_function(X_test)
        a.fit(X_train)
        np.testing.assert_array_equal(a.decision_function(X_test), first)

    def test_global_random_state_untouched(self, name, planted):
        X_train, _, _ = planted
        np_state = np.random.get_state()[1].copy()
        torch_state = torch.get_rng_state().clone()
        threads = torch.get_num_threads()
        make(name).fit(X_train)
        assert np.array_equal(np.random.get_state()[1], np_state)
        assert torch.equal(torch.get_rng_state(), torch_state)
        assert torch.get_num_threads() == threads

    def test_save_load_identical_scores(self, name, planted, fitted, tmp_path):
        _, X_test, _ = planted
        det = fitted(name)
        det.save(tmp_path / "model")
        loaded = deepad.load(tmp_path / "model")
        assert type(loaded) is type(det)
        np.testing.assert_array_equal(loaded.decision_function(X_test), det.decision_function(X_test))
        assert loaded.threshold_ == det.threshold_
        np.testing.assert_array_equal(loaded.predict_proba(X_test), det.predict_proba(X_test))
        assert loaded.get_params() == det.get_params()

    def test_clone_and_get_params_round_trip(self, name):
        det = make(name)
        params = det.get_params()
        twin = clone(det)
        assert twin.get_params() == params
        assert type(det)(**params).get_params() == params

    def test_set_threshold_without_retraining(self, name, planted, fitted):
        _, X_test, _ = planted
        det = fitted(name)
        scores_before = det.decision_scores_.copy()
        original = det.threshold_
        try:
            det.set_threshold(contamination=0.02)
            assert det.labels_.mean() <= 0.05
            np.testing.assert_array_equal(det.decision_scores_, scores_before)
            det.set_threshold(value=float(np.median(scores_before)))
            assert abs(det.labels_.mean() - 0.5) < 0.05
            det.set_threshold(fpr=0.05)
            assert np.isfinite(det.threshold_)
            det.set_threshold(pot_risk=0.01)
            assert np.isfinite(det.threshold_)
            with pytest.raises(ValueError, match="exactly one"):
                det.set_threshold(contamination=0.1, fpr=0.1)
        finally:
            det.set_threshold(value=original)

    # ------------------------------------------------------------------ bad input
    def test_nan_and_inf_rejected_with_location(self, name, planted, fitted):
        X_train, X_test, _ = planted
        bad = X_train.copy()
        bad[7, 3] = np.nan
        with pytest.raises(ValueError, match=r"NaN \(first at row 7, column 3"):
            make(name).fit(bad)
        bad = X_test.copy()
        bad[2, 1] = np.inf
        with pytest.raises(ValueError, match=r"infinity \(first at row 2, column 1"):
            fitted(name).decision_function(bad)

    def test_wrong_feature_count_rejected(self, name, planted, fitted):
        _, X_test, _ = planted
        with pytest.raises(ValueError, match=r"has 5 features, but this .* was fitted with 6"):
            fitted(name).decision_function(X_test[:, :5])

    def test_one_dimensional_and_empty_rejected(self, name, planted, fitted):
        _, X_test, _ = planted
        with pytest.raises(ValueError, match="must be 2-D"):
            fitted(name).decision_function(X_test[0])
        with pytest.raises(ValueError, match="empty"):
            fitted(name).decision_function(X_test[:0])
        with pytest.raises(ValueError, match="must be 2-D"):
            make(name).fit(X_test[:, 0])

    def test_non_numeric_columns_rejected(self, name, planted):
        X_train, _, _ = planted
        df = pd.DataFrame(X_train, columns=[f"f{i}" for i in range(X_train.shape[1])])
        df["merchant"] = "shop"
        with pytest.raises(TypeError, match=r"non-numeric columns: 'merchant'"):
            make(name).fit(df)
        with pytest.raises(TypeError, match="cannot be read as numbers"):
            make(name).fit(np.array([["a", "b"]] * 20, dtype=object))

    def test_too_few_rows_rejected(self, name, planted):
        X_train, _, _ = planted
        with pytest.raises(ValueError, match=r"has 1 rows, but this .* needs at least"):
            make(name).fit(X_train[:1])

    def test_bad_contamination_rejected(self, name, planted):
        with pytest.raises(ValueError, match="contamination"):
            make(name, contamination=0.7).fit(planted[0])

    def test_dataframe_columns_checked_at_scoring(self, name, planted):
        X_train, X_test, _ = planted
        cols = [f"f{i}" for i in range(X_train.shape[1])]
        det = make(name).fit(pd.DataFrame(X_train, columns=cols))
        renamed = pd.DataFrame(X_test, columns=cols[:-1] + ["other"])
        with pytest.raises(ValueError, match="missing \\['f5'\\]"):
            det.decision_function(renamed)
        det.decision_function(pd.DataFrame(X_test, columns=cols))

    def test_labels_warned_when_unsupported(self, name, planted):
        det = make(name)
        if det._uses_labels:
            pytest.skip("weakly supervised detector uses labels")
        X_train, _, _ = planted
        with pytest.warns(LabelsIgnoredWarning, match="ignores y"):
            det.fit(X_train, np.zeros(len(X_train)))
