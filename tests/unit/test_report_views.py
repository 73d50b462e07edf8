"""The report's views (issue 19, item 7): in-sample metrics said, the operating point marked, a 2-D view that separates."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from deepad.detectors import HBOS, KNN
from deepad.pipeline import TabularDetector
from deepad.report import build_report
from deepad.report.plots import operating_point, roc_pr_curves
from deepad.report.views import PROJECTIONS, training_overlap, two_d_view

from data_fraud import make_fraud_frame


@pytest.fixture(scope="module")
def fraud():
    train = make_fraud_frame(1500, seed=1, anomaly_rate=0.02)
    new = make_fraud_frame(800, seed=2, start_index=10_000, anomaly_rate=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TabularDetector(KNN(), contamination=0.05).fit(train.drop(columns=["is_fraud"]))
    return model, train, new


def _overlap(model, X):
    """training_overlap as the report calls it: the scores and the encoded rows."""
    return training_overlap(model, model.decision_function(X), model.preprocessor.transform(X))


def test_training_overlap_tells_training_rows_from_new_ones(fraud):
    model, train, new = fraud
    X_train, X_new = train.drop(columns=["is_fraud"]), new.drop(columns=["is_fraud"])
    assert model.train_fingerprints_.shape == (1500,)  # every row's hash kept (fewer than 4,096 rows)
    assert _overlap(model, X_train) == 1.0
    assert _overlap(model, X_new) == 0.0
    mixed = pd.concat([X_new, X_train.iloc[:400]], ignore_index=True)
    assert _overlap(model, mixed) == pytest.approx(400 / 1200)
    # a shuffled copy of the training rows is still the training data
    assert _overlap(model, X_train.sample(frac=1, random_state=0)) == 1.0


def test_training_overlap_estimates_from_a_sample_of_hashes(monkeypatch):
    import deepad.pipeline

    monkeypatch.setattr(deepad.pipeline, "FINGERPRINT_ROWS", 500)
    train = make_fraud_frame(3000, seed=3, anomaly_rate=0.0).drop(columns=["is_fraud"])
    new = make_fraud_frame(1000, seed=4, start_index=20_000, anomaly_rate=0.0).drop(columns=["is_fraud"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TabularDetector(HBOS()).fit(train)
    assert model.train_fingerprints_.shape == (500,)
    assert _overlap(model, train) == 1.0
    assert _overlap(model, new) == 0.0
    half = pd.concat([new, train.iloc[:1000]], ignore_index=True)
    assert _overlap(model, half) == pytest.approx(0.5, abs=0.1)


def test_training_overlap_by_score_for_models_without_hashes():
    """A model saved before fingerprints, or a bare detector: told by its (in-sample) training scores."""
    from deepad.detectors import PCA

    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(400, 4)), rng.normal(size=(200, 4))
    model = PCA().fit(X)
    assert training_overlap(model, model.decision_function(X)) == 1.0
    assert training_overlap(model, model.decision_function(X_new)) == 0.0
    ties = rng.integers(0, 3, size=(500, 2)).astype(float)  # few distinct rows: many equal scores
    model = PCA().fit(ties)
    assert training_overlap(model, model.decision_function(ties)) == 1.0  # row for row: still certain
    assert training_overlap(model, model.decision_function(ties[::-1][:300])) is None


def _report(model, frame, tmp_path, name, **kw):
    path = build_report(model, frame, "is_fraud", tmp_path / f"{name}.html", top_n=3, **kw)
    return path.read_text()


def test_report_says_when_metrics_are_in_sample(fraud, tmp_path):
    model, train, new = fraud
    html = _report(model, train, tmp_path, "train")
    assert "In-sample: these metrics are on the training data the model was fitted on" in html
    html = _report(model, new, tmp_path, "new")
    assert "In-sample" not in html and "Out-of-sample: the labelled rows are not rows the model was fitted on" in html
    html = _report(model, pd.concat([new, train.iloc[:200]], ignore_index=True), tmp_path, "mixed")
    assert re.search(r"Partly in-sample: about 20% of the labelled rows", html)
    html = _report(model, new, tmp_path, "told", in_sample=True)  # the caller knows better
    assert "In-sample: these metrics are on the training data" in html and "their scores equal" not in html


def test_operating_point_is_the_threshold_on_the_labelled_rows():
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.4, 0.35, 0.95])
    op = operating_point(y, s, 0.5)  # flags 0.9 (normal), 0.8, 0.95 (anomalies)
    assert (op["flagged"], op["tp"], op["fp"]) == (3, 2, 1)
    assert op["tpr"] == pytest.approx(2 / 3) and op["fpr"] == pytest.approx(1 / 5)
    assert op["precision"] == pytest.approx(2 / 3)
    assert np.isnan(operating_point(y, s, 2.0)["precision"])
    fig, auc, ap = roc_pr_curves(y, s, threshold=0.5)
    roc, pr = fig.axes
    marks = {ax: [ln for ln in ax.get_lines() if ln.get_marker() == "o"] for ax in (roc, pr)}
    assert len(marks[roc]) == 1 and len(marks[pr]) == 1
    np.testing.assert_allclose(marks[roc][0].get_xydata(), [[0.2, 2 / 3]])
    np.testing.assert_allclose(marks[pr][0].get_xydata(), [[2 / 3, 2 / 3]])
    assert "FPR 0.200, TPR 0.667" in marks[roc][0].get_label()


def test_report_marks_and_describes_the_operating_point(fraud, tmp_path):
    model, train, new = fraud
    html = _report(model, new, tmp_path, "op")
    scores = model.decision_function(new.drop(columns=["is_fraud"]))
    op = operating_point(new["is_fraud"].to_numpy(), scores, model.threshold_)
    assert (
        f"flags {op['flagged']:,} of the 800 labelled rows ({op['tp']:,} anomalies, {op['fp']:,} normal rows)" in html
    )
    assert f"false-positive rate {op['fpr']:.3f}" in html


def _knn_auc(P, y):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    P = (P - P.mean(0)) / P.std(0)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    proba = cross_val_predict(KNeighborsClassifier(15), P, y, cv=cv, method="predict_proba")[:, 1]
    return roc_auc_score(y, proba)


def test_two_d_view_puts_the_score_on_x_and_separates(fraud):
    model, train, new = fraud
    df = new.drop(columns=["is_fraud"])
    Z = model.preprocessor.transform(df)
    scores = model.decision_function(df)
    flags = scores > model.threshold_
    keep = np.arange(len(df))
    fig, note = two_d_view(model, Z, scores, flags, keep, True)
    ax = fig.axes[0]
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert points.shape == (len(df), 2)
    assert "x: the anomaly score as a quantile" in note and "encoded features the detector sees" in note
    threshold_line = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(threshold_line) == 1
    np.testing.assert_allclose(threshold_line[0].get_xdata()[0], np.mean(scores <= model.threshold_))
    # flagged rows right of the line, the others left of it
    P, _ = PROJECTIONS["score_pc1"](Z, scores, flags)
    assert P[flags, 0].min() > np.mean(scores <= model.threshold_) >= P[~flags, 0].max()
    y = new["is_fraud"].to_numpy()
    pca, _ = PROJECTIONS["pca"](Z, scores, flags)
    # the labels (never used by the view) separate on it, at least as well as on the PCA plane
    view_auc, pca_auc = _knn_auc(P, y), _knn_auc(pca, y)
    assert view_auc > 0.85 and view_auc >= pca_auc - 0.01, (view_auc, pca_auc)
