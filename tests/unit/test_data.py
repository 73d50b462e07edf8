"""The data layer: readers, schema inference, TabularPreprocessor and the TabularDetector pipeline."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import deepad
from deepad.base import BaseDetector, LabelsIgnoredWarning
from deepad.data import (
    DataReadError,
    DataValidationError,
    Schema,
    ScoringReport,
    TabularPreprocessor,
    infer_schema,
    iter_batches,
    read_table,
)
from deepad.data.readers import count_rows, table_columns
from deepad.data.schema import _looks_like_id_name
from deepad.detectors import AutoEncoder
from deepad.pipeline import ExtraColumnsWarning, TabularDetector

from data_fraud import make_fraud_frame

AE = dict(epochs=8, hidden_dims=(16, 8), latent_dim=4, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def frame():
    return make_fraud_frame(1500, seed=3)


@pytest.fixture(scope="module")
def small():
    """A small mixed table with every kind of column and holes."""
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(8)],
            "x": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0],
            "n": [1, 2, 3, 4, 5, 6, 7, 8],
            "cat": ["a", "a", "b", "b", None, "a", "c", "a"],
            "flag": [True, False, True, True, False, True, True, False],
            "when": pd.to_datetime(
                [
                    "2024-01-01 00:30",
                    "2024-01-01 23:30",
                    "2024-02-03 12:00",
                    None,
                    "2024-03-05 06:00",
                    "2024-03-06 18:00",
                    "2024-04-07 09:15",
                    "2024-05-08 13:00",
                ]
            ),
        }
    )


@pytest.fixture(scope="module")
def fitted(frame):
    return TabularDetector(AutoEncoder(**AE), exclude=["is_fraud"], contamination=0.02).fit(frame)


# --------------------------------------------------------------------------- readers
@pytest.mark.parametrize("ext", ["csv", "parquet", "jsonl", "tsv"])
def test_readers_round_trip_and_chunks_equal_whole(tmp_path, small, ext):
    df = small.drop(columns=["when"]).assign(flag=lambda d: d.flag.astype(bool))
    path = tmp_path / f"t.{ext}"
    if ext in ("csv", "tsv"):
        df.to_csv(path, index=False, sep="," if ext == "csv" else "\t")
    elif ext == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    whole = read_table(path)
    assert list(whole.columns) == list(df.columns) and len(whole) == len(df)
    np.testing.assert_array_equal(
        whole["x"].to_numpy(dtype=float, na_value=np.nan), df["x"].to_numpy(dtype=float, na_value=np.nan)
    )
    assert whole["cat"].isna().sum() == 1 and list(whole["id"]) == list(df["id"])
    chunks = list(iter_batches(path, batch_size=3))
    assert [len(c) for c in chunks] == [3, 3, 2]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_dtype=False)
    assert table_columns(path) == list(df.columns)


def test_numpy_and_in_memory_sources(tmp_path):
    X = np.arange(12.0).reshape(6, 2)
    np.save(tmp_path / "a.npy", X)
    np.savez(tmp_path / "b.npz", X=X, y=np.zeros(6))
    for p in (tmp_path / "a.npy", tmp_path / "b.npz"):
        df = read_table(p)
        assert list(df.columns) == ["0", "1"]
        np.testing.assert_array_equal(df.to_numpy(), X)
    assert [len(c) for c in iter_batches(tmp_path / "a.npy", batch_size=4)] == [4, 2]
    assert count_rows(tmp_path / "a.npy") == 6
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert list(read_table(table).columns) == ["a", "b"]
    assert sum(len(c) for c in iter_batches(table.to_pandas(), batch_size=2)) == 3


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataReadError, match=r"empty\.csv is empty"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(DataReadError, match=r"empty\.csv is empty"):
        next(iter_batches(tmp_path / "empty.csv"))
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataReadError, match=r"header\.csv has a header but no data rows"):
        read_table(tmp_path / "header.csv")
    with pytest.raises(DataReadError, match=r"header\.csv has a header but no data rows"):
        list(iter_batches(tmp_path / "header.csv"))
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataReadError, match=r"ragged\.csv: cannot read as CSV: .*Expected 2 columns, got 3"):
        read_table(tmp_path / "ragged.csv")
    (tmp_path / "dup.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataReadError, match=r"dup\.csv has duplicate column names: \['a'\] \('a' is column 1 and 3\)"):
        read_table(tmp_path / "dup.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataReadError, match=r"data\.xlsx: cannot read as an Excel \.xlsx workbook"):
        read_table(tmp_path / "data.xlsx")
    (tmp_path / "data.sav").write_text("x")
    with pytest.raises(DataReadError, match=r"data\.sav: cannot tell the format"):
        read_table(tmp_path / "data.sav")
    (tmp_path / "bad.parquet").write_text("not parquet at all")
    with pytest.raises(DataReadError, match=r"bad\.parquet: cannot read as Parquet"):
        read_table(tmp_path / "bad.parquet")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.ones((2, 2)))
    with pytest.raises(DataReadError, match=r"two\.npz holds arrays \['a', 'b'\]"):
        read_table(tmp_path / "two.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataReadError, match=r"obj\.npy holds Python objects"):
        read_table(tmp_path / "obj.npy")


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_delimiter_is_sniffed_from_the_header(tmp_path, sep):
    import gzip

    df = pd.DataFrame({"amount": [1.5, 2.25, 3.0, 4.75], "city": ["Köln", "Paris", "Rome", "Oslo"], "n": [1, 2, 3, 4]})
    text = df.to_csv(index=False, sep=sep)
    (tmp_path / "x.csv").write_text(text, encoding="utf-8")
    pd.testing.assert_frame_equal(read_table(tmp_path / "x.csv"), read_table(df))
    assert table_columns(tmp_path / "x.csv") == ["amount", "city", "n"]
    assert len(pd.concat(iter_batches(tmp_path / "x.csv", batch_size=3))) == 4
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(text.encode()))
    assert list(read_table(tmp_path / "x.csv.gz").columns) == ["amount", "city", "n"]


def test_csv_delimiter_keeps_commas_when_unsure(tmp_path):
    (tmp_path / "one.csv").write_text("value\n1\n2\n")  # a single column: nothing to sniff
    assert list(read_table(tmp_path / "one.csv").columns) == ["value"]
    (tmp_path / "mixed.csv").write_text("a;b\n1;2\n3\n4;5\n")  # not every line agrees: stays ","
    assert list(read_table(tmp_path / "mixed.csv").columns) == ["a;b"]
    (tmp_path / "text.csv").write_text("a,note\n1,x;y\n2,z;w\n")  # a comma header wins over ';' in values
    assert read_table(tmp_path / "text.csv")["note"].tolist() == ["x;y", "z;w"]


def test_csv_that_is_not_utf8_names_column_and_row(tmp_path):
    (tmp_path / "l1.csv").write_bytes("a,city\n1,Paris\n2,Orl\xe9ans\n".encode("latin-1"))
    with pytest.raises(DataReadError, match=r"l1\.csv: column 'city' is not UTF-8 text \(row 1: b'Orl\\xe9ans'"):
        read_table(tmp_path / "l1.csv")
    with pytest.raises(DataReadError, match=r"column 'city' is not UTF-8"):
        list(iter_batches(tmp_path / "l1.csv"))


# --------------------------------------------------------------------------- schema
def test_schema_inference_on_fraud_table(frame):
    schema = infer_schema(frame, label="is_fraud")
    kinds = schema.kinds
    assert kinds["transaction_id"] == "id"
    assert kinds["timestamp"] == "datetime"  # ISO text
    assert kinds["amount"] == kinds["distance_km"] == kinds["customer_age"] == kinds["n_tx_24h"] == "numeric"
    assert kinds["merchant_category"] == kinds["merchant_id"] == kinds["country"] == "categorical"
    assert kinds["card_present"] == "boolean"
    assert kinds["is_fraud"] == "excluded"
    assert schema.id_columns == ["transaction_id"]
    assert "is_fraud" not in schema.feature_columns
    # JSON-able as is, and round-trips
    again = Schema.from_json(json.dumps(schema))
    assert again == schema and again.kinds == kinds


@pytest.mark.parametrize(
    "name,expected",
    [
        ("id", True),
        ("transaction_id", True),
        ("TransactionID", True),
        ("userId", True),
        ("uuid", True),
        ("row_key", True),
        ("paid", False),
        ("valid", False),
        ("idle_time", False),
        ("amount", False),
        ("keyword", False),
    ],
)
def test_id_like_names(name, expected):
    assert _looks_like_id_name(name) is expected


def test_schema_overrides_and_errors(small):
    # a unique integer column without an id-like name stays numeric; with one it is an id
    assert infer_schema(small).kinds["n"] == "numeric"
    assert infer_schema(small.rename(columns={"n": "row_id"})).kinds["row_id"] == "id"
    schema = infer_schema(small, exclude=["x"], types={"n": "categorical"})
    assert schema.kinds["x"] == "excluded" and schema.kinds["n"] == "categorical"
    with pytest.raises(ValueError, match=r"exclude names column\(s\) \['nope'\]"):
        infer_schema(small, exclude=["nope"])
    with pytest.raises(ValueError, match="not a column kind"):
        infer_schema(small, types={"n": "number"})
    df = pd.DataFrame({"amount": [str(v) for v in range(30)] + ["12,5"], "k": ["a", "b"] * 15 + ["a"]})
    with pytest.raises(DataValidationError, match=r"column 'amount' looks numeric .* row 30 \('12,5'\)"):
        infer_schema(df)
    assert infer_schema(df, types={"amount": "categorical"}).kinds["amount"] == "categorical"


# --------------------------------------------------------------------------- preprocessor
def test_preprocessor_imputes_encodes_and_maps_sources(small):
    prep = TabularPreprocessor(scaling=None, min_category_count=1)
    Z = prep.fit_transform(small)
    names = prep.feature_names_out_
    assert Z.shape == (8, len(names)) and np.isfinite(Z).all()
    col = dict(zip(names, Z.T))
    assert col["x"][2] == np.median([1, 2, 4, 5, 6, 7, 8]) and col["x__missing"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert "n__missing" not in names  # no holes in training -> no indicator
    assert col["cat=a"].tolist() == [1, 1, 0, 0, 0, 1, 0, 1]
    assert col["cat=__missing__"][4] == 1 and "cat=__other__" in names
    assert col["flag"].tolist() == [1, 0, 1, 1, 0, 1, 1, 0]
    # cyclic hour: 00:30 and 23:30 are neighbours
    h = np.column_stack([col["when__hour_sin"], col["when__hour_cos"]])
    assert np.linalg.norm(h[0] - h[1]) < 0.3 and np.linalg.norm(h[0] - h[2]) > 1.5
    assert col["when__missing"][3] == 1
    assert set(prep.feature_sources_) == {"x", "n", "cat", "flag", "when"} and "id" not in prep.feature_sources_
    grouped = prep.group_by_source(np.ones((1, len(names))))
    assert list(grouped.columns) == ["x", "n", "cat", "flag", "when"]
    assert grouped["when"].iloc[0] == 7.0  # 6 cyclic features + indicator


def test_preprocessor_unseen_categories_and_high_cardinality(frame):
    prep = TabularPreprocessor(max_categories=10)
    prep.fit(frame.drop(columns=["is_fraud"]))
    block = [n for n in prep.feature_names_out_ if n.startswith("merchant_id")]
    assert len(block) == 12 and "merchant_id__logfreq" in block  # 10 one-hot + other + frequency
    new = frame.head(50).copy()
    new.loc[new.index[:7], "merchant_category"] = "mcc_spaceship"
    report = ScoringReport()
    Z = prep.transform(new, report=report)
    names = prep.feature_names_out_
    j = names.index("merchant_category=__other__")
    assert np.allclose(Z[:7, j], (1 - prep.center_[j]) / prep.scale_[j])  # one-hot "present", rarity-scaled
    assert report.unseen["merchant_category"] == 7 and report.unseen_examples["merchant_category"] == ["mcc_spaceship"]
    assert report.rows == 50 and any("mcc_spaceship" in n for n in report.notes())


@pytest.mark.parametrize("scaling", ["standard", "robust", "minmax", None])
def test_scaling_options(frame, scaling):
    prep = TabularPreprocessor(scaling=scaling)
    Z = prep.fit_transform(frame)
    a = Z[:, prep.feature_names_out_.index("amount")]
    raw = frame["amount"].to_numpy()
    if scaling == "standard":
        assert abs(a.mean()) < 1e-9 and abs(a.std() - 1) < 1e-9
    elif scaling == "robust":
        assert abs(np.median(a)) < 1e-9
    elif scaling == "minmax":
        assert a.min() == 0 and abs(a.max() - 1) < 1e-12
    else:
        np.testing.assert_array_equal(a, raw)
    onehots = [i for i, n in enumerate(prep.feature_names_out_) if "=" in n]
    if scaling is None:
        assert set(np.unique(Z[:, onehots])) <= {0.0, 1.0}
    else:  # category_encoding="rarity": two values per one-hot column, "absent" below 0 and "present" above
        assert all(len(np.unique(Z[:, j])) <= 2 and Z[:, j].min() < 0 for j in onehots)


def test_preprocessor_state_is_json_and_round_trips(frame):
    prep = TabularPreprocessor().fit(frame)
    state = json.loads(json.dumps(prep.to_state(), allow_nan=False))
    again = TabularPreprocessor.from_state(state)
    np.testing.assert_array_equal(again.transform(frame), prep.transform(frame))
    assert again.feature_sources_ == prep.feature_sources_


def test_bad_values_at_scoring_name_column_and_rows(frame):
    prep = TabularPreprocessor().fit(frame)
    bad = frame.head(20).copy()
    bad["amount"] = bad["amount"].astype(object)
    bad.loc[bad.index[[3, 11]], "amount"] = ["abc", "1.2.3"]
    with pytest.raises(
        DataValidationError,
        match=r"column 'amount': 2 value\(s\) cannot be read as numbers: "
        r"row 1003 \('abc'\), row 1011 \('1.2.3'\)",
    ):
        prep.transform(bad, row_offset=1000)
    bad = frame.head(20).copy()
    bad["timestamp"] = np.arange(20) * 1000  # epoch numbers where training had datetimes
    with pytest.raises(
        DataValidationError,
        match=r"column 'timestamp' holds int64 values where training had "
        r"dates/times: row 0 \(0\)",
    ):
        prep.transform(bad)
    bad = frame.head(20).copy()
    bad["card_present"] = bad["card_present"].astype(object)
    bad.loc[bad.index[5], "card_present"] = "maybe"
    with pytest.raises(DataValidationError, match=r"column 'card_present'.*true/false: row 5 \('maybe'\)"):
        prep.transform(bad)
    bad = frame.head(20).copy()
    bad.loc[bad.index[2], "distance_km"] = np.inf
    with pytest.raises(DataValidationError, match=r"column 'distance_km'.*infinity.*row 2"):
        prep.transform(bad)
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['amount', 'country'\]"):
        prep.transform(frame.drop(columns=["amount", "country"]))


# --------------------------------------------------------------------------- the pipeline detector
def test_pipeline_fit_score_and_reproduce(fitted, frame):
    from sklearn.metrics import roc_auc_score

    np.testing.assert_array_equal(fitted.decision_function(frame), fitted.decision_scores_)
    assert fitted.n_features_in_ == frame.shape[1] and fitted.schema_.kinds["transaction_id"] == "id"
    assert 0.01 <= fitted.labels_.mean() <= 0.03
    assert roc_auc_score(frame["is_fraud"], fitted.decision_scores_) > 0.8
    p = fitted.p_values(frame.head(100))
    assert ((p > 0) & (p <= 1)).all()
    np.testing.assert_array_equal(fitted.predict(frame), fitted.labels_)
    # Arrow tables and extra columns work; extras are ignored with a warning
    np.testing.assert_array_equal(
        fitted.decision_function(pa.Table.from_pandas(frame.head(30))), fitted.decision_scores_[:30]
    )
    with pytest.warns(ExtraColumnsWarning, match="'note'"):
        s = fitted.decision_function(frame.head(30).assign(note="x"))
    np.testing.assert_array_equal(s, fitted.decision_scores_[:30])


def test_pipeline_encoding_does_not_depend_on_batch_composition(fitted, frame):
    whole = fitted.transform(frame)
    parts = np.vstack([fitted.transform(frame.iloc[i : i + 97]) for i in range(0, len(frame), 97)])
    np.testing.assert_array_equal(parts, whole)
    # scores: equal up to the wrapped network's float32 rounding, which can vary with the batch size
    scores = np.concatenate([fitted.decision_function(frame.iloc[i : i + 97]) for i in range(0, len(frame), 97)])
    np.testing.assert_allclose(scores, fitted.decision_scores_, rtol=1e-6, atol=0)


def test_pipeline_save_load_identical(fitted, frame, tmp_path):
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m" / "detector_" / "model.json").is_file()  # nested detector as a sub-directory
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    assert config["kinds"]["preprocessor_state_"] == "json"
    loaded = deepad.load(tmp_path / "m")
    assert type(loaded) is TabularDetector and type(loaded.detector_) is AutoEncoder
    test = make_fraud_frame(400, seed=9)
    np.testing.assert_array_equal(loaded.decision_function(test), fitted.decision_function(test))
    np.testing.assert_array_equal(loaded.p_values(test), fitted.p_values(test))
    assert loaded.threshold_ == fitted.threshold_
    assert loaded.schema_ == fitted.schema_ and loaded.feature_names_out_ == fitted.feature_names_out_
    a, b = loaded.get_params(deep=False), fitted.get_params(deep=False)
    assert a.pop("detector").get_params() == b.pop("detector").get_params()
    assert a == b


def test_pipeline_labels(frame):
    y = frame["is_fraud"].to_numpy()

    class LabelAware(BaseDetector):
        _uses_labels = True

        def __init__(self, contamination=0.1):
            self.contamination = contamination

        def _fit(self, X, y, seed):
            self.seen_labels_ = y

        def _score(self, X):
            return np.abs(X).sum(axis=1)

    det = TabularDetector(LabelAware(), exclude=["is_fraud"]).fit(frame, y)
    np.testing.assert_array_equal(det.detector_.seen_labels_, y)
    with pytest.warns(LabelsIgnoredWarning):
        TabularDetector(AutoEncoder(**{**AE, "epochs": 1}), exclude=["is_fraud"]).fit(frame.head(200), y[:200])


def test_pipeline_rejects_bad_tables(fitted, frame):
    with pytest.raises(ValueError, match="empty"):
        TabularDetector(AutoEncoder(**AE)).fit(frame.head(0))
    with pytest.raises(ValueError, match=r"has 2 rows, but this TabularDetector needs at least 4"):
        TabularDetector(AutoEncoder(**AE)).fit(frame.head(2))
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['amount'\]"):
        fitted.decision_function(frame.drop(columns=["amount"]))
    with pytest.raises(ValueError, match="empty"):
        fitted.decision_function(frame.head(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.decision_function(
            frame.drop(columns=["is_fraud", "transaction_id"]).head(5)
        )  # known, unused: no warning


def test_parquet_typed_columns_score_like_csv_text(fitted, frame, tmp_path):
    """The same rows as typed Parquet and as CSV text (read as text, parsed by the preprocessor) score identically."""
    df = frame.head(300).copy()
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df.to_parquet(tmp_path / "t.parquet", index=False)
    frame.head(300).to_csv(tmp_path / "t.csv", index=False)
    ref = fitted.decision_function(frame.head(300))
    from_parquet = np.concatenate(
        [fitted.decision_function(c) for c in iter_batches(tmp_path / "t.parquet", batch_size=128)]
    )
    text = fitted.schema_.names
    from_csv = np.concatenate(
        [fitted.decision_function(c) for c in iter_batches(tmp_path / "t.csv", batch_size=128, text_columns=text)]
    )
    np.testing.assert_array_equal(from_parquet, ref)
    np.testing.assert_array_equal(from_csv, ref)
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_rows == 300


def test_constant_feature_scale_unit_for_tables_evidence_for_detectors():
    from deepad.data.scaling import fit_scaler

    X = np.column_stack([np.arange(100.0), np.zeros(100), np.full(100, 7.0)])
    for kind in ("standard", "robust", "minmax"):
        _, unit = fit_scaler(X, kind)
        _, evidence = fit_scaler(X, kind, constant="evidence")
        np.testing.assert_allclose(unit[1:], 1.0)
        np.testing.assert_allclose(evidence[1:], 0.1)  # 1 / sqrt(100)
        assert unit[0] == evidence[0] > 1.0  # varying features are scaled the same either way
    with pytest.raises(ValueError, match="constant must be"):
        fit_scaler(X, "standard", constant="zero")


@pytest.mark.parametrize("name", ["LocalGlobalEnsemble", "AutoEncoder", "DeepIsolationForest"])
def test_a_value_never_seen_in_a_constant_feature_is_flagged(name):
    """One unit off a feature that was constant in 400 training rows outranks 3 standard deviations elsewhere."""
    import deepad.detectors as D

    rng = np.random.default_rng(0)
    X_train = np.column_stack([rng.normal(size=(400, 4)), np.zeros(400)])
    wobble = np.array([[3.0, 0, 0, 0, 0]])  # an unusual but seen-before kind of value
    novel = np.array([[0.0, 0, 0, 0, 1.0]])  # a value the constant feature never took
    kwargs = {"random_state": 0} if name != "LocalGlobalEnsemble" else {}
    det = getattr(D, name)(**kwargs).fit(X_train)
    s_wobble, s_novel = det.decision_function(np.vstack([wobble, novel]))
    assert s_novel > s_wobble
    assert s_novel > det.decision_scores_.max()


def test_a_value_that_overflows_scores_inf_and_is_flagged():
    """1e308 in a column whose spread is ~1 overflows inside DEFAULT (it used to score NaN, i.e. 'normal')."""
    from deepad.detectors import DEFAULT

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500), "c": rng.choice(list("xyz"), 500)})
    model = TabularDetector(DEFAULT(), contamination=0.05).fit(train)
    probe = train.iloc[:4].copy()
    probe.loc[3, "b"] = 1e308
    scores = model.decision_function(probe)
    assert scores[3] == np.inf and np.isfinite(scores[:3]).all()
    assert model.predict(probe)[3] == 1 and model.p_values(probe)[3] == model.p_values(probe).min()


def test_nested_columns_are_named_and_can_be_excluded(tmp_path):
    df = pd.DataFrame({"a": np.arange(40.0), "tags": [[1, 2]] * 40})
    df.to_parquet(tmp_path / "nested.parquet")
    frame = read_table(tmp_path / "nested.parquet")
    with pytest.raises(DataValidationError, match=r"column 'tags' holds nested values .*--exclude tags"):
        infer_schema(frame)
    assert infer_schema(frame, exclude=["tags"]).feature_columns == ["a"]


def test_label_values_word_their_error_as_labels_not_as_a_boolean_feature():
    import pandas as pd
    import pytest

    from deepad.data import DataValidationError
    from deepad.data.values import boolean_values, label_values

    assert label_values(pd.Series([0, 1, None]), "y").tolist()[:2] == [0.0, 1.0]
    with pytest.raises(DataValidationError, match=r"cannot be read as labels \(numbers must be 1 = anomaly") as e:
        label_values(pd.Series([0, 1, 2]), "y")
    assert "training had" not in str(e.value)
    with pytest.raises(DataValidationError, match=r"labels \(1/true = anomaly, 0/false = normal, blank = unknown\)"):
        label_values(pd.Series(["0", "1", "maybe"], dtype="str"), "y")
    with pytest.raises(DataValidationError, match="training had a boolean"):  # a feature keeps its wording
        boolean_values(pd.Series([0, 1, 2]), "x")
