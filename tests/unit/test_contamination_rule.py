"""The contamination rule means what it says: ``labels_.mean() == contamination`` on the training data (issue 19).

``threshold_`` is the ``1 - contamination`` quantile of ``decision_scores_``
and ``labels_`` flags the training rows above it, for every detector --
including those that memorise their rows (kNN, LOF, ECOD, HBOS, DEFAULT),
whose training scores are leave-one-out as in PyOD.  On scores without
ties the flagged fraction is ``contamination`` up to one row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepad
import deepad.detectors as D
from deepad import thresholds as T
from deepad.base import BaseDetector

from conftest import FAST_PARAMS

TABULAR = sorted(
    n
    for n in D.__all__
    if n != "DEFAULT"
    and issubclass(getattr(D, n), BaseDetector)
    and not getattr(getattr(D, n), "_needs_wrapped", False)
    and not getattr(getattr(D, n), "_image_input", False)
    and n != "ConformalKNN"  # its threshold is a conformal false-alarm rate, not a quantile (test_series.py)
    and n != "PyODDetector"  # needs a wrapped PyOD model: tested below
)
IMAGE = sorted(n for n in D.__all__ if n != "DEFAULT" and getattr(getattr(D, n), "_image_input", False))
LEAVE_ONE_OUT = {"KNN", "LOF", "ECOD", "HBOS", "LocalGlobalEnsemble"}
MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def _make(name, **extra):
    cls = getattr(D, name)
    params = {**FAST_PARAMS[name], **extra}
    if "random_state" in cls().get_params():
        params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture(scope="module")
def X():
    # continuous, so no detector's scores tie (HBOS bins and the isolation trees are checked for ties below)
    return np.random.default_rng(3).normal(size=(301, 5))


def _check_rule(det, contamination):
    """labels_ are decision_scores_ above threshold_, threshold_ their quantile, and the fraction is contamination."""
    scores, n = det.decision_scores_, det.decision_scores_.size
    assert det.threshold_ == pytest.approx(np.quantile(scores, 1 - contamination), rel=0, abs=0)
    np.testing.assert_array_equal(det.labels_, (scores > det.threshold_).astype(np.int64))
    if np.unique(scores).size == n:
        assert abs(det.labels_.mean() - contamination) <= 1 / n, (type(det).__name__, det.labels_.mean())
    else:  # tied scores at the threshold are all flagged or none is: never more than contamination
        assert det.labels_.mean() <= contamination + 1 / n


@pytest.mark.parametrize("name", TABULAR)
def test_labels_flag_the_contamination_fraction_of_the_training_rows(name, X):
    det = _make(name, contamination=0.1).fit(X)
    _check_rule(det, 0.1)
    for c in (0.05, 0.25, 0.5):  # set_threshold by contamination keeps the same rule
        _check_rule(det.set_threshold(contamination=c), c)
    assert np.shares_memory(det._reference_scores_, det.decision_scores_)  # the threshold's scores, stored once


@pytest.mark.parametrize("name", sorted(LEAVE_ONE_OUT))
def test_memorising_detectors_report_leave_one_out_training_scores(name, X):
    det = _make(name, contamination=0.1).fit(X)
    assert det.training_scores_kind() == "leave-one-out training scores"
    in_sample = det.decision_function(X)
    assert not np.array_equal(in_sample, det.decision_scores_)  # each row finds itself when rescored
    # with the in-sample scores the same threshold flags a different number of rows: the contradiction of issue 19
    assert (in_sample > det.threshold_).mean() != pytest.approx(0.1, abs=1 / X.shape[0])


def test_knn_training_scores_and_labels_are_pyods():
    pyod_knn = pytest.importorskip("pyod.models.knn")
    X = np.random.default_rng(0).normal(size=(500, 4))
    ours = D.KNN(n_neighbors=5, contamination=0.1).fit(X)
    theirs = pyod_knn.KNN(n_neighbors=5, contamination=0.1).fit(X)
    np.testing.assert_allclose(ours.decision_scores_, theirs.decision_scores_, rtol=1e-12)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.labels_.mean() == 0.1 and ours.threshold_ == pytest.approx(theirs.threshold_, rel=1e-12)


def test_pyod_adapter_uses_the_wrapped_models_training_scores(X):
    pytest.importorskip("pyod")
    det = D.PyODDetector("pyod.models.lof.LOF", contamination=0.1).fit(X)
    np.testing.assert_array_equal(det.decision_scores_, det.detector_.decision_scores_)
    _check_rule(det, 0.1)
    assert "PyOD" in det.training_scores_kind()


@pytest.mark.parametrize("name", IMAGE)
def test_image_detectors_follow_the_rule(name):
    imgs = np.random.default_rng(0).uniform(size=(64, 1, 8, 8)).astype(np.float32)
    det = _make(name, contamination=0.1, device="cpu", epochs=1).fit(imgs)
    _check_rule(det, 0.1)


@pytest.mark.parametrize("inner", ["KNN", "AutoEncoder"])
def test_table_pipeline_flags_the_fraction_and_scores_training_rows_once(inner, X):
    from deepad.pipeline import TabularDetector

    df = pd.DataFrame(X, columns=list("abcde"))
    model = TabularDetector(_make(inner), contamination=0.2).fit(df)
    _check_rule(model, 0.2)
    assert model.decision_scores_ is model.detector_.decision_scores_  # no second pass over the training rows
    if inner == "AutoEncoder":  # in-sample scores: rescoring the training table reproduces them
        np.testing.assert_array_equal(model.decision_function(df), model.decision_scores_)
    assert model.training_scores_kind() == model.detector_.training_scores_kind()


@pytest.mark.parametrize("rule", [dict(fpr=0.05), dict(pot_risk=0.01), dict(value=0.5)])
def test_set_threshold_keeps_labels_on_the_thresholds_scores(rule, X):
    det = D.KNN(contamination=0.1).fit(X)
    det.set_threshold(**rule)
    np.testing.assert_array_equal(det.labels_, (det.decision_scores_ > det.threshold_).astype(np.int64))


def test_old_models_relabel_on_their_reference_scores():
    """A KNN saved before issue 19 holds in-sample decision_scores_ and leave-one-out _reference_scores_."""
    old = deepad.load(MODELS / "KNN")
    assert not np.array_equal(old.decision_scores_, old._reference_scores_)
    old.set_threshold(contamination=0.2)
    np.testing.assert_array_equal(old.labels_, (old._reference_scores_ > old.threshold_).astype(np.int64))
    assert abs(old.labels_.mean() - 0.2) <= 1 / old.labels_.size


def test_the_rule_says_which_scores_and_how_many_rows(X):
    det = D.KNN(contamination=0.1).fit(X[:300])
    assert det.threshold_method_["scores"] == "leave-one-out training scores"  # also without deepad train
    assert "90th percentile of the leave-one-out training scores" in T.describe_threshold(det)
    det.set_threshold(contamination=0.2)
    assert "80th percentile of the leave-one-out training scores" in T.describe_threshold(det)
    T.apply_threshold_rule(det, "contamination")  # keeps the threshold it was last set with, and says so
    assert det.threshold_ == np.quantile(det.decision_scores_, 0.8)
    assert "80th percentile" in det.threshold_method_["reason"] and "60 of 300" in det.threshold_method_["reason"]
    det.set_threshold(fpr=0.05)
    T.apply_threshold_rule(det, "contamination")  # back from another rule: the model's contamination
    assert det.threshold_ == np.quantile(det.decision_scores_, 0.9) and det.labels_.sum() == 30
    T.apply_threshold_rule(det, "contamination")
    reason = det.threshold_method_["reason"]
    assert reason.startswith(
        "the threshold is the 90th percentile of the leave-one-out training scores (contamination 0.1, PyOD's "
        "rule); it flags 30 of 300 training rows (10.00%)"
    )
    assert det.threshold_method_["flagged"] == det.labels_.sum() == 30
    assert det.threshold_method_["scores"] == "leave-one-out training scores"
    T.apply_threshold_rule(det, "fpr", fpr=0.02)
    assert f"it flags {det.labels_.sum()} of 300 training rows" in det.threshold_method_["reason"]


@pytest.mark.parametrize(
    "q, text", [(0.9, "90th percentile"), (0.99, "99th percentile"), (0.999, "99.9th percentile"), (0.5, "median")]
)
def test_percentile_wording(q, text):
    assert T._percentile(q) == text
    assert T._percentile(0.91) == "91st percentile" and T._percentile(0.92) == "92nd percentile"
    assert T._percentile(0.93) == "93rd percentile" and T._percentile(0.11) == "11th percentile"
