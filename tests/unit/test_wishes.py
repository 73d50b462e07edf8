"""Issue 19, item 7: small wishes of the analyst (load_cardio order, detector listing, report views)."""

from __future__ import annotations

import warnings

import numpy as np


# --------------------------------------------------------------------------- load_cardio
def test_load_cardio_is_shuffled_reproducibly_and_keeps_rows():
    from deepad.data import load_cardio

    X, y = load_cardio()
    X0, y0 = load_cardio(shuffle=False)
    assert X.shape == (1831, 21) and y.sum() == 176
    # the file lists the anomalies last; the default order spreads them out
    assert y0[-176:].all()
    assert 0.05 < y[:610].mean() < 0.15 and 0.05 < y[-610:].mean() < 0.15
    X2, y2 = load_cardio()
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # the same rows, only reordered
    order0 = np.lexsort(X0.T)
    order = np.lexsort(X.T)
    np.testing.assert_array_equal(X[order], X0[order0])
    np.testing.assert_array_equal(y[order], y0[order0])
    assert not np.array_equal(load_cardio(random_state=1)[1], y)


def test_load_cardio_works_with_grid_search_cv3():
    from sklearn.model_selection import GridSearchCV

    from deepad.data import load_cardio
    from deepad.detectors import KNN

    X, y = load_cardio()
    search = GridSearchCV(KNN(), {"n_neighbors": [5, 20]}, cv=3, scoring="roc_auc", error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KNN is unsupervised: it warns that it ignores y
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and scores.min() > 0.6
    assert search.best_params_["n_neighbors"] in (5, 20)


# --------------------------------------------------------------------------- a DataFrame's index in table outputs
def _fraud_model():
    import warnings

    from data_fraud import make_fraud_frame

    from deepad.detectors import KNN
    from deepad.pipeline import TabularDetector

    df = make_fraud_frame(400, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TabularDetector(KNN(), contamination=0.05).fit(df.drop(columns=["is_fraud"]))
    return model, df


def test_score_table_keeps_the_index_and_matches_the_estimator():
    import pandas as pd

    from deepad.scoring import score_table

    model, df = _fraud_model()
    df.index = pd.Index([f"tx-{i}" for i in range(len(df))][::-1], name="ref")
    table = score_table(model, df, keep=["is_fraud"], explain_top=2, batch_size=64)
    assert table.index.equals(df.index) and table.index.name == "ref"
    assert list(table.columns) == ["transaction_id", "is_fraud", "score", "p_value", "is_anomaly", "top_features"]
    scores = model.decision_function(df.drop(columns=["is_fraud"]))
    assert isinstance(scores, np.ndarray)  # the estimator contract stays NumPy, in row order
    np.testing.assert_array_equal(table["score"].to_numpy(), scores)
    np.testing.assert_array_equal(table["is_anomaly"].to_numpy(), model.predict(df.drop(columns=["is_fraud"])))
    assert table["top_features"].notna().sum() == table["is_anomaly"].sum() > 0
    joined = df.join(table[["score"]])
    np.testing.assert_array_equal(joined["score"].to_numpy(), scores)


def test_score_table_on_arrays_and_plain_detectors():
    import pandas as pd

    from deepad.detectors import KNN
    from deepad.scoring import score_table

    X = np.random.default_rng(0).normal(size=(120, 3))
    model = KNN().fit(X)
    table = score_table(model, X)
    assert table.index.equals(pd.RangeIndex(120)) and list(table.columns)[0] == "row"
    np.testing.assert_array_equal(table["score"].to_numpy(), model.decision_function(X))
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(120) * 2)
    named = KNN().fit(frame)
    table = score_table(named, frame.assign(key=np.arange(120)), keep=["key"])
    assert table.index.equals(frame.index) and table["key"].tolist() == list(range(120))


def test_report_names_rows_by_a_dataframe_index(tmp_path):
    from deepad.report import build_report

    model, df = _fraud_model()
    df.index = [f"tx-{i}" for i in range(len(df))]
    html = build_report(model, df, "is_fraud", tmp_path / "r.html", top_n=3).read_text()
    top = df.index[np.argmax(model.decision_function(df.drop(columns=["is_fraud"])))]
    assert "<th>index</th>" in html and f'<td class="num">{top}</td>' in html
    html = build_report(model, df.reset_index(drop=True), "is_fraud", tmp_path / "r2.html", top_n=3).read_text()
    assert "<th>row</th>" in html


def test_explain_keeps_a_dataframe_index():
    """deepad.explain's table carries the input's index, as score_table does (a guard for the index contract)."""
    import pandas as pd

    from deepad.detectors import KNN
    from deepad.explain import explain

    model, df = _fraud_model()
    rows = df.drop(columns=["is_fraud"]).iloc[[5, 3, 9]]
    rows.index = pd.Index(["a", "b", "c"], name="ref")
    out = explain(model, rows, top_k=2)
    assert out.index.equals(rows.index)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=list("xyz"), index=range(100, 150))
    assert explain(KNN().fit(X), X.iloc[:3], reference=X).index.tolist() == [100, 101, 102]
