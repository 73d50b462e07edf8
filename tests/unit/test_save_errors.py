"""deepad.save on what is not a deepad detector says what it is and what to use instead (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

import deepad


def test_saving_a_fitted_sklearn_pipeline_names_it_instead_of_not_fitted(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepad.detectors import HBOS

    X = np.random.default_rng(0).normal(size=(80, 3))
    pipe = make_pipeline(StandardScaler(), HBOS()).fit(X)
    with pytest.raises(TypeError) as err:
        deepad.save(pipe, tmp_path / "m")
    text = str(err.value)
    assert "not fitted" not in text
    assert "Pipeline (StandardScaler -> HBOS)" in text and "TabularDetector" in text and "pipeline[-1]" in text
    assert not (tmp_path / "m").exists()
    deepad.save(pipe[-1], tmp_path / "m")  # the advice works
    np.testing.assert_array_equal(
        deepad.load(tmp_path / "m").decision_function(X[:5]), pipe[-1].decision_function(X[:5])
    )


def test_saving_a_plain_sklearn_estimator_says_it_is_not_a_deepad_detector(tmp_path):
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="deepad.save saves deepad detectors, not IsolationForest"):
        deepad.save(IsolationForest().fit(np.zeros((10, 2))), tmp_path / "m")


def test_an_unfitted_detector_is_still_not_fitted(tmp_path):
    from sklearn.exceptions import NotFittedError

    from deepad.detectors import HBOS

    with pytest.raises(NotFittedError):
        deepad.save(HBOS(), tmp_path / "m")
