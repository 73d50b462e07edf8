"""deepad.explain: attributions with known answers, for each family of methods, and one-hot aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepad.detectors import ECOD, KNN, AutoEncoder, DeepSVDD, IsolationForest
from deepad.explain import explain, explanation_method, top_features, typical_encoded_row
from deepad.pipeline import TabularDetector

from data_fraud import make_fraud_frame

D = 6


@pytest.fixture(scope="module")
def gaussian():
    """Correlated Gaussian training rows, and held-out normal rows each with ONE feature pushed 6 sd up."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(D, D)) * 0.3 + np.eye(D)
    X = rng.normal(size=(600, D)) @ mixing
    test = rng.normal(size=(48, D)) @ mixing
    j = np.arange(48) % D
    perturbed = test.copy()
    perturbed[np.arange(48), j] += 6 * X.std(axis=0)[j]
    return X, perturbed, j


@pytest.fixture(scope="module")
def fitted(gaussian):
    X = gaussian[0]
    return {
        "AutoEncoder": AutoEncoder(hidden_dims=(16, 8), latent_dim=3, epochs=30, batch_size=64, random_state=0).fit(X),
        "DeepSVDD": DeepSVDD(random_state=0).fit(X),  # defaults: 64-32-16, early-stopped
        "KNN": KNN(n_neighbors=5).fit(X),
        "IsolationForest": IsolationForest(n_estimators=100, random_state=0).fit(X),
        "ECOD": ECOD().fit(X),
    }


@pytest.mark.parametrize(
    "name, method",
    [
        ("AutoEncoder", "reconstruction"),
        ("DeepSVDD", "integrated_gradients"),
        ("KNN", "occlusion"),
        ("IsolationForest", "occlusion"),
        ("ECOD", "tail"),
    ],
)
def test_the_perturbed_feature_is_the_top_feature(gaussian, fitted, name, method):
    X, perturbed, j = gaussian
    model = fitted[name]
    A = explain(model, perturbed, reference=X if name == "IsolationForest" else None)
    assert A.attrs["method"] == method == explanation_method(model)
    assert list(A.columns) == [f"x{k}" for k in range(D)] and A.shape == (48, D)
    hit = (A.to_numpy().argmax(axis=1) == j).mean()
    assert hit >= 0.9, (name, hit)


def test_reconstruction_and_tail_attributions_sum_to_the_score(gaussian, fitted):
    _, perturbed, _ = gaussian
    for name in ("AutoEncoder", "ECOD"):  # ECOD's default aggregation is the sum of per-feature tail scores
        model = fitted[name]
        A = explain(model, perturbed)
        np.testing.assert_allclose(A.to_numpy().sum(axis=1), model.decision_function(perturbed), rtol=1e-5)


def test_integrated_gradients_completeness_and_exact_zero_for_unchanged_features(fitted):
    model = fitted["DeepSVDD"]
    baseline = model.scaler_center_  # the training mean (standard preprocessing)
    # Known answer: rows equal to the baseline except feature j -> every other feature gets exactly 0.
    rows = np.tile(baseline, (D, 1))
    rows[np.arange(D), np.arange(D)] += 5 * model.scaler_scale_
    A = explain(model, rows).to_numpy()
    off_diagonal = A[~np.eye(D, dtype=bool)]
    assert np.abs(off_diagonal).max() < 1e-6
    assert (A.argmax(axis=1) == np.arange(D)).all()
    # Completeness (Sundararajan et al., 2017): attributions sum to f(x) - f(baseline).
    gap = model.decision_function(rows) - model.decision_function(baseline[None, :])
    np.testing.assert_allclose(A.sum(axis=1), gap, rtol=2e-3, atol=1e-5)


def test_attributions_do_not_depend_on_the_batch(gaussian, fitted):
    _, perturbed, _ = gaussian
    for name in ("DeepSVDD", "KNN"):
        whole = explain(fitted[name], perturbed).to_numpy()
        single = np.vstack([explain(fitted[name], perturbed[i : i + 1]).to_numpy() for i in (0, 7, 31)])
        np.testing.assert_allclose(single, whole[[0, 7, 31]], rtol=1e-5, atol=1e-7)


def test_bad_requests(gaussian, fitted):
    X, perturbed, _ = gaussian
    with pytest.raises(ValueError, match="reference=X_train"):
        explain(fitted["IsolationForest"], perturbed)  # keeps no record of its training rows
    with pytest.raises(ValueError, match="feature_errors"):
        explain(fitted["KNN"], perturbed, method="reconstruction")
    with pytest.raises(ValueError, match="method must be one of"):
        explain(fitted["KNN"], perturbed, method="shap")
    with pytest.raises(ValueError, match="baseline must have 6 values"):
        explain(fitted["KNN"], perturbed, baseline=np.zeros(3))
    with pytest.raises(ValueError, match="5 features"):
        explain(fitted["KNN"], perturbed[:, :5])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        top_features(explain(fitted["KNN"], perturbed[:2]), 0)


def test_top_feature_strings():
    A = pd.DataFrame([[0.5, -1.0, 2.0], [-0.1, -0.2, -0.3]], columns=["a", "b", "c"])
    assert top_features(A, 2) == ["c (+2); a (+0.5)", ""]  # only columns that raised the score
    assert top_features(A, 3, values=False) == ["c; a", ""]


# --------------------------------------------------------------------------- tables: back to source columns
@pytest.fixture(scope="module")
def table():
    train = make_fraud_frame(1500, seed=1, anomaly_rate=0.0).drop(columns=["is_fraud"])
    new = make_fraud_frame(60, seed=2, anomaly_rate=0.0, start_index=10_000).drop(columns=["is_fraud"])
    return train, new


@pytest.fixture(scope="module")
def tabular_ae(table):
    return TabularDetector(
        AutoEncoder(hidden_dims=(16, 8), latent_dim=4, epochs=20, batch_size=64, random_state=0)
    ).fit(table[0])


def test_one_hot_blocks_sum_into_their_source_column(table, tabular_ae):
    model = tabular_ae
    _, new = table
    A = explain(model, new)
    schema = model.schema_
    assert list(A.columns) == schema.feature_columns  # user's column names, not "country=US"
    assert list(A.index) == list(new.index)
    Z = model.transform(new)
    per_feature = model.detector_.feature_errors(Z) / Z.shape[1]
    sources = np.asarray(model.feature_sources_)
    for column in ("merchant_category", "country", "timestamp", "customer_age"):
        block = sources == column
        assert block.sum() >= 2  # one-hot block / sin-cos pairs / value + missing indicator
        np.testing.assert_allclose(A[column], per_feature[:, block].sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(A.sum(axis=1), model.decision_function(new), rtol=1e-5)


def test_a_changed_category_is_the_top_column(table, tabular_ae):
    _, new = table
    foreign = new.assign(country="NG")  # rare in training (0.2 %)
    A = explain(tabular_ae, foreign)
    assert (A.idxmax(axis=1) == "country").mean() >= 0.9


def test_occlusion_on_a_table_replaces_the_whole_block(table):
    train, new = table
    model = TabularDetector(KNN(n_neighbors=5)).fit(train)
    big = new.assign(amount=new["amount"] * 80)
    A = explain(model, big, top_k=2)
    assert (A.idxmax(axis=1) == "amount").all()
    assert all(s.startswith("amount (+") for s in A.attrs["top_features"])
    # By hand, for merchant_category: set its whole one-hot block (and frequency feature) to the typical row's.
    Z = model.transform(big)
    typical = typical_encoded_row(model.preprocessor)
    block = np.asarray(model.feature_sources_) == "merchant_category"
    Zo = Z.copy()
    Zo[:, block] = typical[block]
    expected = model.detector_.decision_function(Z) - model.detector_.decision_function(Zo)
    np.testing.assert_allclose(A["merchant_category"], expected, rtol=1e-9)
    # The typical row is a valid encoding: exactly one category of each one-hot block is set.
    cat = np.array([n.startswith("merchant_category=") for n in model.feature_names_out_])
    raw = typical * model.preprocessor.scale_ + model.preprocessor.center_
    assert np.isclose(raw[cat], 1.0).sum() == 1 and np.isclose(raw[cat], 0.0).sum() == cat.sum() - 1
