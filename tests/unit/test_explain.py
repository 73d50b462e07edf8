"""deepad.explain: attributions with known answers, for each family of methods, and one-hot aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepad.detectors import ECOD, KNN, AutoEncoder, DeepSVDD, IsolationForest
from deepad.explain import (
    counterfactual,
    explain,
    explanation_method,
    family_method,
    top_feature_table,
    top_features,
    typical_encoded_row,
)
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
    reference = X if name == "IsolationForest" else None
    assert explanation_method(model) == "shapley" and family_method(model) == method
    for how in (method, "shapley", "auto"):
        A = explain(model, perturbed, reference=reference, method=how)
        assert A.attrs["method"] == ("shapley" if how == "auto" else how)
        assert list(A.columns) == [f"x{k}" for k in range(D)] and A.shape == (48, D)
        hit = (A.to_numpy().argmax(axis=1) == j).mean()
        assert hit >= 0.9, (name, how, hit)


def test_reconstruction_and_tail_attributions_sum_to_the_score(gaussian, fitted):
    _, perturbed, _ = gaussian
    for name in ("AutoEncoder", "ECOD"):  # ECOD's default aggregation is the sum of per-feature tail scores
        model = fitted[name]
        A = explain(model, perturbed, method=family_method(model))
        np.testing.assert_allclose(A.to_numpy().sum(axis=1), model.decision_function(perturbed), rtol=1e-5)


def test_integrated_gradients_completeness_and_exact_zero_for_unchanged_features(fitted):
    model = fitted["DeepSVDD"]
    baseline = model.scaler_center_  # the training mean (standard preprocessing)
    # Known answer: rows equal to the baseline except feature j -> every other feature gets exactly 0.
    rows = np.tile(baseline, (D, 1))
    rows[np.arange(D), np.arange(D)] += 5 * model.scaler_scale_
    A = explain(model, rows, method="integrated_gradients").to_numpy()
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
    A = explain(model, new, method="reconstruction")
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
    for method in ("reconstruction", "shapley"):
        A = explain(tabular_ae, foreign, method=method)
        assert (A.idxmax(axis=1) == "country").mean() >= 0.9, method
    cf = counterfactual(tabular_ae, foreign)
    flagged = cf[cf["flagged"]]
    assert len(flagged) >= 10 and flagged["found"].all() and (flagged["score_after"] <= tabular_ae.threshold_).all()
    assert (flagged["text"] == "country = US").mean() >= 0.9  # the most frequent training country


def test_occlusion_on_a_table_replaces_the_whole_block(table):
    train, new = table
    model = TabularDetector(KNN(n_neighbors=5)).fit(train)
    big = new.assign(amount=new["amount"] * 80)
    A = explain(model, big, top_k=2, method="occlusion")
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


# --------------------------------------------------------------------------- Shapley values and counterfactuals
def test_negligible_and_zero_attributions_are_not_listed():
    A = pd.DataFrame([[1.0, 1.11e-16, 0.0, -0.5, 0.004]], columns=["a", "b", "c", "d", "e"])
    assert top_features(A, 5) == ["a (+1)"]  # 1.11e-16, 0 and 0.004 (< 1 % of the row's 1.504) are not causes
    assert top_feature_table(A, 5) == [[("a", 1.0), ("d", -0.5)]]  # a real negative attribution is kept


def test_shapley_of_an_additive_score_is_each_feature_s_own_change(gaussian, fitted):
    """ECOD's score is a sum over features, so the Shapley value of feature j is exactly tail_j(x) - tail_j(b)."""
    _, perturbed, _ = gaussian
    model = fitted["ECOD"]
    base = np.median(model.sorted_train_, axis=0)
    expected = model.feature_scores(perturbed) - model.feature_scores(base[None, :])
    exact = explain(model, perturbed, method="shapley").to_numpy()
    np.testing.assert_allclose(exact, expected, rtol=1e-6, atol=1e-9)
    sampled = explain(model, perturbed, method="shapley", max_exact=0, n_permutations=6).to_numpy()
    np.testing.assert_allclose(sampled, expected, rtol=1e-6, atol=1e-9)  # additive: every order gives the same


@pytest.mark.parametrize("max_exact", [10, 0])
def test_shapley_efficiency_and_batch_independence(gaussian, fitted, max_exact):
    X, perturbed, _ = gaussian
    model = fitted["KNN"]
    A = explain(model, perturbed, method="shapley", max_exact=max_exact, n_permutations=8)
    base = np.median(model.estimator_._fit_X, axis=0)
    gap = model.decision_function(perturbed) - model.decision_function(base[None, :])
    np.testing.assert_allclose(A.to_numpy().sum(axis=1), gap, rtol=1e-9, atol=1e-9)  # sum = f(x) - f(typical)
    single = explain(model, perturbed[5:6], method="shapley", max_exact=max_exact, n_permutations=8)
    np.testing.assert_allclose(single.to_numpy()[0], A.to_numpy()[5], rtol=1e-9, atol=1e-12)
    refs = X[:4]  # a reference set: the game averages over its rows; efficiency against their mean score
    R = explain(model, perturbed[:6], method="shapley", baseline=refs).to_numpy()
    np.testing.assert_allclose(
        R.sum(axis=1), model.decision_function(perturbed[:6]) - model.decision_function(refs).mean(), rtol=1e-9
    )


def _either_detector():
    """A row is anomalous when x0 OR x1 is far: repairing either alone leaves it anomalous (causes acting together)."""
    from deepad.detectors import Mahalanobis

    class EitherDetector(Mahalanobis):
        def decision_function(self, X):
            X = np.asarray(X, dtype=np.float64)
            return np.maximum(np.abs(X[:, 0]), np.abs(X[:, 1])) + 0.01 * np.abs(X[:, 2:]).sum(axis=1)

    rng = np.random.default_rng(0)
    model = EitherDetector().fit(rng.normal(size=(300, 5)))
    model.threshold_ = 2.0
    return model


def test_causes_that_act_together_are_found_where_occlusion_misses_them():
    model = _either_detector()
    rows = np.zeros((3, 5))
    rows[:, :2] = 6.0
    rows[:, 2:] = 1.0  # mildly unusual elsewhere
    base = np.zeros(5)
    occ = explain(model, rows, method="occlusion", baseline=base)
    np.testing.assert_allclose(occ[["x0", "x1"]].to_numpy(), 0.0, atol=1e-12)  # the old method: x0, x1 "no effect"
    assert set(top_features(occ, 2, values=False)[0].split("; ")) <= {"x2", "x3", "x4"}
    A = explain(model, rows, baseline=base)
    assert A.attrs["method"] == "shapley"
    assert all(set(t.split("; ")) == {"x0", "x1"} for t in top_features(A, 2, values=False))
    np.testing.assert_allclose(A[["x0", "x1"]].to_numpy(), 3.0, rtol=1e-9)  # max(6, 6) - 0, split evenly
    cf = counterfactual(model, rows, baseline=base)
    assert cf["found"].all() and all(sorted(r) == ["x0", "x1"] for r in cf["repair"])  # both are needed
    assert (cf["score_after"] <= model.threshold_).all()
    # max(x0, 0) + 0.03 <= 2  ->  x0 <= 1.97, shown rounded towards typical
    assert cf["text"].iloc[0] in ("x0 <= 1.96; x1 <= 1.96", "x1 <= 1.96; x0 <= 1.96")


def test_counterfactual_of_table_rows_brings_them_under_the_threshold(table):
    train, new = table
    model = TabularDetector(KNN(n_neighbors=5)).fit(train)
    odd = new.head(8).assign(amount=new["amount"].head(8) * 60, n_tx_24h=40, country="NG")
    A = explain(model, odd, counterfactual=True)
    assert (model.decision_function(odd) > model.threshold_).all()
    repairs = A.attrs["counterfactual"]
    cf = counterfactual(model, odd)
    assert [r["text"] for r in repairs] == cf["text"].tolist()
    prep = model.preprocessor
    typical = {c["name"]: c["fill"] for c in prep.columns_ if c["kind"] == "numeric"}
    typical.update({c["name"]: c["levels"][0] for c in prep.columns_ if c["kind"] == "categorical"})
    for (i, row), r in zip(odd.iterrows(), repairs):
        assert r["found"] and r["flagged"] and r["repair"], r
        assert set(r["repair"]) >= {"amount"} and set(r["repair"]) <= set(typical)  # numeric or categorical here
        fixed = row.to_frame().T.astype(odd.dtypes.to_dict())
        for c in r["repair"]:
            fixed[c] = typical[c]
        assert model.decision_function(fixed)[0] == pytest.approx(r["score_after"], rel=1e-9)
        assert r["score_after"] <= model.threshold_
        for cond in r["conditions"]:  # each bound keeps the row normal, the other repaired columns typical
            if cond["op"] in ("<=", ">="):
                at_bound = fixed.copy()
                at_bound[cond["column"]] = cond["value"]
                assert model.decision_function(at_bound)[0] <= model.threshold_, cond
                assert (cond["value"] > typical[cond["column"]]) == (cond["op"] == "<=")
    normal = counterfactual(model, new.head(30))
    calm = ~normal["flagged"]
    assert calm.any() and (normal.loc[calm, "text"] == "").all() and normal.loc[calm, "repair"].map(len).eq(0).all()


def test_exhaustive_and_greedy_counterfactuals_agree_on_a_simple_case(table):
    train, new = table
    model = TabularDetector(KNN(n_neighbors=5)).fit(train)
    odd = new.head(5).assign(amount=new["amount"].head(5) * 60)
    exact = counterfactual(model, odd)
    greedy = counterfactual(model, odd, max_exact=0, n_permutations=8)
    assert exact["repair"].map(len).tolist() == [1] * 5 and greedy["repair"].tolist() == exact["repair"].tolist()


def test_shapley_names_planted_pairs_for_knn_and_default(table):
    """Two columns far out at once: amount above every training amount and a 1,500 km distance.

    One-column occlusion (the old default for both) names distance_km alone and gives amount ~0 or less:
    with the distance still far, a typical amount leaves the row just as anomalous.
    """
    from deepad.detectors import DEFAULT

    train, new = table
    base = new[new["amount"] > 10].head(16)
    rows = base.assign(amount=base["amount"] * 40, distance_km=1500.0)  # > 400, above every training amount
    assert (rows["amount"] > train["amount"].max()).all()

    def listed_pair(A):  # the listed causes (top_features: positive, non-negligible) are exactly the pair
        return sum(set(t.split("; ")) == {"amount", "distance_km"} for t in top_features(A, 2, values=False))

    for det in (KNN(n_neighbors=5), DEFAULT()):
        model = TabularDetector(det).fit(train)
        new_way, old_way = listed_pair(explain(model, rows)), listed_pair(explain(model, rows, method="occlusion"))
        assert new_way == len(rows) and old_way < len(rows), (type(det).__name__, new_way, old_way)


def test_counterfactual_needs_shapley():
    model = _either_detector()
    with pytest.raises(ValueError, match="counterfactual=True needs method='shapley'"):
        explain(model, np.zeros((1, 5)), method="occlusion", baseline=np.zeros(5), counterfactual=True)
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 2"):
        explain(model, np.zeros((1, 5)), baseline=np.zeros(5), max_exact=0, n_permutations=1)


@pytest.fixture(scope="module")
def forest_table():
    """An IsolationForest on 6 numeric columns and 2 categories; rows with one value 6-8 sd out and ordinary levels."""
    rng = np.random.default_rng(3)
    n = 1500
    num = [f"x{i}" for i in range(6)]
    train = pd.DataFrame(rng.normal(size=(n, 6)), columns=num)
    train["c"] = rng.choice(["c0", "c1", "c2"], size=n, p=[0.55, 0.3, 0.15])
    train["d"] = rng.choice(["d0", "d1", "d2", "d3"], size=n, p=[0.4, 0.25, 0.2, 0.15])
    model = TabularDetector(IsolationForest(random_state=0)).fit(train)
    rows = pd.DataFrame(np.zeros((6, 6)), columns=num)
    rows["c"], rows["d"] = "c1", "d1"  # 30 % and 25 % of the training rows: not modal, not unusual
    for j in range(6):
        rows.iloc[j, j] = [6.0, -7.0, 8.0, 6.5, -6.0, 7.5][j]
    return model, rows, num


def test_isolation_forest_shapley_does_not_blame_an_ordinary_category(forest_table):
    # Against the modal category (c0, d0), the forest's shorter path for c1 / d1 is credited as a cause, about
    # as much as a value 6-8 sd out; against the categories' training mix it is not.
    model, rows, num = forest_table
    A = explain(model, rows)
    assert list(A.idxmax(axis=1)) == num
    against_mode = explain(model, rows, method="shapley", baseline=typical_encoded_row(model.preprocessor))
    share = (A["c"].abs() + A["d"].abs()) / A[num].max(axis=1)  # categories' credit per unit of the planted one's
    share_mode = (against_mode["c"] + against_mode["d"]) / against_mode[num].max(axis=1)
    assert share.mean() < 0.3 and share_mode.mean() > 0.6
    assert (share < share_mode / 2).all()


def test_isolation_forest_shapley_reference_is_the_category_mix(forest_table):
    from deepad.explain._methods import category_mix_row

    model, rows, _ = forest_table
    prep = model.preprocessor
    Z = prep.transform(model._validate_for_scoring(rows))
    typical = typical_encoded_row(prep)
    mix = category_mix_row(prep, typical)
    sources = np.asarray(model.feature_sources_)
    hot = np.isin(sources, ["c", "d"])
    assert np.array_equal(mix[~hot], typical[~hot])  # numeric columns stay at the median
    for col in prep.columns_[-2:]:  # one-hot features at the training shares (the rest in __other__)
        block = sources == col["name"]
        counts = dict(zip(col["levels"], col["counts"]))
        shares = [counts[c] / col["n_rows"] for c in col["categories"]]
        raw = mix[block] * prep.scale_[block] + prep.center_[block]
        np.testing.assert_allclose(raw, shares + [1 - sum(shares)], atol=1e-12)
    score = model.detector_.decision_function
    A = explain(model, rows)  # efficiency against that row
    np.testing.assert_allclose(A.sum(axis=1), score(Z) - score(mix[None])[0], atol=1e-10)
    B = explain(model, rows, method="shapley", baseline=typical)  # an explicit baseline is used as given
    np.testing.assert_allclose(B.sum(axis=1), score(Z) - score(typical[None])[0], atol=1e-10)
    O = explain(model, rows.assign(c="c0"), method="occlusion")  # occlusion still repairs to the typical row
    assert (O["c"] == 0).all()


def test_isolation_forest_counterfactual_still_repairs_to_the_typical_row(forest_table):
    model, rows, _ = forest_table
    rows = rows.assign(c="c2", d="d3", x5=9.0)
    assert (model.decision_function(rows) > model.threshold_).all()
    A = explain(model, rows, counterfactual=True)
    cf = counterfactual(model, rows)
    assert [r["repair"] for r in A.attrs["counterfactual"]] == list(cf["repair"])
    assert [r["text"] for r in A.attrs["counterfactual"]] == list(cf["text"])
    assert all(r["found"] and r["score_after"] <= model.threshold_ for r in A.attrs["counterfactual"])
    repaired_c = [r for r in A.attrs["counterfactual"] if "c" in r["repair"]]
    assert repaired_c and all("c = c0" in r["text"] for r in repaired_c)  # a real row: the modal category


def test_method_description_says_when_categories_are_mixed(forest_table):
    from deepad.explain import METHOD_DESCRIPTIONS, method_description

    model, rows, num = forest_table
    assert "categorical columns at their training mix" in method_description(model, "shapley")
    assert method_description(model, "occlusion") == METHOD_DESCRIPTIONS["occlusion"]
    numeric_only = TabularDetector(IsolationForest(n_estimators=50, random_state=0)).fit(rows[num])
    knn = TabularDetector(KNN(n_neighbors=5)).fit(rows.assign(c=["c0", "c1"] * 3))
    assert method_description(numeric_only, "shapley") == METHOD_DESCRIPTIONS["shapley"]
    assert method_description(knn, "shapley") == METHOD_DESCRIPTIONS["shapley"]
