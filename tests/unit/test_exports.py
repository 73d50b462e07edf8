"""Issue 19, items 1 and 3: id columns that repeat a few times, mostly-unseen categories, and European/messy exports."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from deepad.data import DataReadError, TabularPreprocessor, infer_schema, iter_batches, read_table
from deepad.data.exports import ReadOptions, ReadWarning, normalize_frame
from deepad.data.preprocessing import UnseenCategoryWarning
from deepad.data.readers import table_columns
from deepad.detectors import ECOD
from deepad.pipeline import TabularDetector
from deepad.scoring import score_file

from data_fraud import make_fraud_frame


# --------------------------------------------------------------------------- item 1: ids
def _with_repeats(values: np.ndarray, k: int = 3) -> np.ndarray:
    values = values.copy()
    values[1 : k + 1] = values[0]
    return values


def test_an_id_that_repeats_a_few_times_is_an_id_with_a_reason():
    n = 6000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "txn_id": _with_repeats(np.char.add("T", np.arange(n).astype(str)).astype(object)),
            "customer_id": _with_repeats(np.arange(10_000, 10_000 + n)),  # integers, id-like name
            "code": _with_repeats(np.char.add("TX-", np.char.zfill((np.arange(n) % 5000).astype(str), 6))),
            "amount": np.round(rng.lognormal(3, 1, n), 6),  # all distinct floats: a feature
            "cents": rng.permutation(n) * 7,  # all-distinct integers without an id name: a feature
            "merchant": rng.choice([f"M{i:04d}" for i in range(300)], n).astype(object),  # 300 levels: categorical
            "channel": rng.choice(["pos", "online"], n).astype(object),
        }
    )
    schema = infer_schema(df)
    assert schema.kinds == {
        "txn_id": "id",
        "customer_id": "id",
        "code": "id",
        "amount": "numeric",
        "cents": "numeric",
        "merchant": "categorical",
        "channel": "categorical",
    }
    reasons = {c["name"]: c["reason"] for c in schema.columns}
    assert "3 repeated" in reasons["txn_id"] and "excluded from the features" in reasons["txn_id"]
    assert "fixed-pattern codes ('AA-999999')" in reasons["code"]
    assert set(schema.feature_columns) == {"amount", "cents", "merchant", "channel"}
    # the user still decides
    assert infer_schema(df, types={"txn_id": "categorical"}).kinds["txn_id"] == "categorical"


def test_near_unique_needs_enough_rows_and_uuid_hashes_are_ids():
    small = pd.DataFrame({"name": ["a", "b", "c", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    assert infer_schema(small).kinds["name"] == "categorical"  # 4 rows: only exact uniqueness counts
    import uuid

    n = 200
    ids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(n)]
    ids[-30:] = ids[:30]  # 85 % distinct
    df = pd.DataFrame({"ref": ids, "x": np.arange(n, dtype=float)})
    assert infer_schema(df).kinds["ref"] == "id"


def test_txn_id_with_repeats_no_longer_flags_every_row():
    """The issue's failure: a repeating txn_id inferred categorical flagged 2,998 of 3,000 test rows."""
    train = make_fraud_frame(3000, seed=1).drop(columns="is_fraud")
    train.loc[1:3, "transaction_id"] = train.loc[0, "transaction_id"]
    test = make_fraud_frame(1000, seed=2, start_index=3000).drop(columns="is_fraud")
    model = TabularDetector(ECOD(), contamination=0.01).fit(train)
    assert model.schema_.kinds["transaction_id"] == "id"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCategoryWarning)  # no column mostly unseen any more
        flagged = (model.decision_function(test) > model.threshold_).mean()
    assert flagged < 0.05


# --------------------------------------------------------------------------- item 1: unseen categories warn
def test_mostly_unseen_categories_warn_once_per_column_naming_it(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    train = pd.DataFrame(
        {"shop": rng.choice(["a", "b", "c"], n).astype(object), "x": rng.normal(size=n), "y": rng.normal(size=n)}
    )
    prep = TabularPreprocessor().fit(train)
    new = train.copy()
    new.loc[: int(0.8 * n), "shop"] = "zzz"
    with pytest.warns(UnseenCategoryWarning, match=r"column 'shop': 321 of 400 scored rows \(80%\)"):
        prep.transform(new)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCategoryWarning)
        few = train.copy()
        few.loc[:10, "shop"] = "zzz"
        prep.transform(few)  # 3 % unseen: no warning
        prep.transform(new.iloc[:5])  # 5 rows: too few to say
    model = TabularDetector(ECOD()).fit(train)
    new.to_csv(tmp_path / "new.csv", index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score_file(model, tmp_path / "new.csv", tmp_path / "out.csv", batch_size=50)  # 8 chunks, one warning
    unseen = [w for w in caught if issubclass(w.category, UnseenCategoryWarning)]
    assert len(unseen) == 1 and "'shop'" in str(unseen[0].message)


# --------------------------------------------------------------------------- item 3: European exports
def test_semicolon_file_with_decimal_commas_reads_without_flags(tmp_path):
    (tmp_path / "eu.csv").write_text(
        "id;amount;age;distance;when;city\n"
        "1;1.234,56;34;12,5;31.12.2024 13:45;Köln\n"
        "2;482,10;41;0,75;01.02.2024 08:00;Graz\n"
        "3;12,00;;1.003,0;15.06.2024 23:10;Bern\n"
    )
    df = read_table(tmp_path / "eu.csv")
    assert df["amount"].tolist() == [1234.56, 482.10, 12.0]
    assert df["distance"].tolist() == [12.5, 0.75, 1003.0]
    assert df["age"].iloc[:2].tolist() == [34, 41] and np.isnan(df["age"].iloc[2])
    assert list(pd.to_datetime(df["when"]).dt.strftime("%Y-%m-%d %H:%M")) == [
        "2024-12-31 13:45",
        "2024-02-01 08:00",
        "2024-06-15 23:10",
    ]
    assert df["city"].tolist() == ["Köln", "Graz", "Bern"]
    assert df.attrs["deepad_read"]["amount"] == "numbers, decimal comma"
    chunks = pd.concat(list(iter_batches(tmp_path / "eu.csv", batch_size=2)))
    assert chunks["amount"].tolist() == df["amount"].tolist()
    # streamed as text (how deepad score reads), the same values
    text = pd.concat(list(iter_batches(tmp_path / "eu.csv", batch_size=2, text_columns=list(df.columns))))
    assert text["distance"].tolist() == df["distance"].tolist() and text["when"].tolist() == df["when"].tolist()


def test_thousands_groups_and_forced_conventions():
    df = pd.DataFrame(
        {
            "us": ["1,234.5", "12", "1,000,000.25", None],
            "swiss": ["1'234.50", "99.90", "3'000", "7"],
            "fr": ["1\u202f234,5", "12,25", "3 000", "7"],
            "ambiguous": ["1.234", "2.500", "12.000", "3.125"],
            "code": ["A1", "B2", "C3", "D4"],
        }
    )
    out, how = normalize_frame(df)
    assert out["us"].tolist()[:3] == [1234.5, 12.0, 1_000_000.25] and np.isnan(out["us"].iloc[3])
    assert out["swiss"].tolist() == [1234.5, 99.9, 3000.0, 7.0]
    assert out["fr"].tolist() == [1234.5, 12.25, 3000.0, 7.0]
    assert out["ambiguous"].tolist() == [1.234, 2.5, 12.0, 3.125]  # a '.' file: decimal point
    assert out["code"].tolist() == ["A1", "B2", "C3", "D4"] and "code" not in how
    assert normalize_frame(df, file_decimal=",")[0]["ambiguous"].tolist() == [1234, 2500, 12000, 3125]
    forced = normalize_frame(df[["ambiguous"]], ReadOptions(decimal=",", thousands="."))[0]
    assert forced["ambiguous"].tolist() == [1234, 2500, 12000, 3125]
    nogroups = normalize_frame(df[["us"]], ReadOptions(thousands=""))[0]
    assert nogroups["us"].tolist()[0] == "1,234.5"  # not a number without grouping: left as text
    kept = normalize_frame(df, keep_text=["us"])[0]
    assert kept["us"].tolist()[0] == "1,234.5"


def test_read_options_are_validated():
    with pytest.raises(ValueError, match="decimal must be '.' or ','"):
        ReadOptions(decimal=";")
    with pytest.raises(ValueError, match="thousands and decimal are both ','"):
        ReadOptions(decimal=",", thousands=",")
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        ReadOptions(encoding="klingon")
    with pytest.raises(ValueError, match="strftime codes"):
        ReadOptions(date_format="DD.MM.YYYY")


def test_dates_mixed_formats_dayfirst_and_date_format():
    df = pd.DataFrame(
        {
            "mixed": ["2024-05-01 10:00", "02.05.2024 11:30", "2024/05/03", None],
            "us": ["03/04/2024", "12/25/2024", "01/02/2024", "07/08/2024"],
            "eu_slash": ["03/04/2024", "25/12/2024", "01/02/2024", "07/08/2024"],
            "ambiguous": ["03/04/2024", "05/06/2024", "01/02/2024", "07/08/2024"],
            "custom": ["20240501", "20240502", "20240503", "20240504"],
            "bad": ["31.02.2024", "01.03.2024", "02.03.2024", "03.03.2024"],
        }
    )
    out, how = normalize_frame(df)
    day = lambda col: list(out[col].dt.strftime("%Y-%m-%d"))  # noqa: E731
    assert list(out["mixed"].iloc[:3].dt.strftime("%Y-%m-%d %H:%M")) == [
        "2024-05-01 10:00",
        "2024-05-02 11:30",
        "2024-05-03 00:00",
    ]
    assert "mixed formats" in how["mixed"]
    assert day("us")[:2] == ["2024-03-04", "2024-12-25"]  # a month above 12 in the second field: month first
    assert day("eu_slash")[:2] == ["2024-04-03", "2024-12-25"]
    assert day("ambiguous")[0] == "2024-03-04"  # '/' in a '.' file: month first ...
    assert normalize_frame(df, file_decimal=",")[0]["ambiguous"].dt.day.iloc[0] == 3  # ... in a ',' file day first
    assert normalize_frame(df, ReadOptions(dayfirst=True))[0]["ambiguous"].dt.month.iloc[0] == 4
    assert out["custom"].tolist()[0] == 20240501  # digits only: a number (as a CSV reader has it) unless told
    custom = normalize_frame(df[["custom"]], ReadOptions(date_format="%Y%m%d"))[0]
    assert list(custom["custom"].dt.strftime("%Y-%m-%d"))[0] == "2024-05-01"
    as_int = normalize_frame(pd.DataFrame({"d": [20240501, 20241231]}), ReadOptions(date_format="%Y%m%d"))[0]
    assert list(as_int["d"].dt.strftime("%m-%d")) == ["05-01", "12-31"]
    assert out["bad"].tolist() == df["bad"].tolist()  # 31 February: left as text


def test_na_tokens_and_columns_that_look_numeric_warn(tmp_path):
    (tmp_path / "na.csv").write_text("amount;when;note\n1,5;01.02.2024;x\n-;k.A.;y\n2,5;03.02.2024;z\n")
    plain = read_table(tmp_path / "na.csv")
    assert plain["amount"].tolist() == ["1,5", "-", "2,5"]
    df = read_table(tmp_path / "na.csv", options=ReadOptions(na_values=("-", "k.A.")))
    assert df["amount"].iloc[[0, 2]].tolist() == [1.5, 2.5] and np.isnan(df["amount"].iloc[1])
    assert df["when"].isna().tolist() == [False, True, False]
    assert pd.api.types.is_datetime64_any_dtype(df["when"])
    rng = np.random.default_rng(0)
    messy = pd.DataFrame(
        {
            "amount": [f"{v:.2f}".replace(".", ",") for v in rng.lognormal(3, 1, 40)] + ["n.v."] * 10,
            "when": [f"{d:02d}.01.2024" for d in range(1, 31)] + ["unbekannt"] * 20,
            "shop": rng.choice(["a", "b"], 50).astype(object),
        }
    )
    with pytest.warns(ReadWarning) as caught:
        schema = infer_schema(messy)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("column 'amount' looks numeric (80% of its values") and "'n.v.'" in m for m in messages)
    assert any(m.startswith("column 'when' looks temporal (60%") for m in messages)
    assert not any("'shop'" in m for m in messages)
    assert schema.kinds["amount"] == "categorical" and "look like numbers" in schema.columns[0]["reason"]


def test_encodings_and_the_cp1252_hint(tmp_path):
    (tmp_path / "w.csv").write_bytes("a;price\n1;5 €\n2;Müller\n".encode("cp1252"))
    with pytest.raises(DataReadError, match=r"looks like cp1252 text \(byte 0x80 is the euro sign there\).*--encoding"):
        read_table(tmp_path / "w.csv")
    df = read_table(tmp_path / "w.csv", options=ReadOptions(encoding="cp1252"))
    assert df["price"].tolist() == ["5 €", "Müller"]
    assert table_columns(tmp_path / "w.csv", ReadOptions(encoding="cp1252")) == ["a", "price"]
    (tmp_path / "l1.csv").write_bytes("a,city\n1,Orléans\n".encode("latin-1"))
    with pytest.raises(DataReadError, match="looks like latin1 text"):
        read_table(tmp_path / "l1.csv")
    (tmp_path / "u16.csv").write_bytes("a,b\n1,2\n".encode("utf-16"))
    with pytest.raises(DataReadError, match="UTF-16 text: read it with --encoding utf-16"):
        read_table(tmp_path / "u16.csv")
    assert read_table(tmp_path / "u16.csv", options=ReadOptions(encoding="utf-16"))["b"].tolist() == [2]


def test_xlsx_is_read_and_binary_files_are_named(tmp_path):
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "amount": [1.5, 2.25, None],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
            "text_amount": ["1.234,5", "2,5", "3"],
        }
    )
    with pd.ExcelWriter(tmp_path / "book.xlsx") as xl:
        df.to_excel(xl, sheet_name="first", index=False)
        df.iloc[:2].to_excel(xl, sheet_name="second", index=False)
    got = read_table(tmp_path / "book.xlsx")
    assert got["amount"].iloc[:2].tolist() == [1.5, 2.25] and got["text_amount"].tolist() == [1234.5, 2.5, 3.0]
    assert pd.api.types.is_datetime64_any_dtype(got["when"])
    assert len(read_table(tmp_path / "book.xlsx", options=ReadOptions(sheet="second"))) == 2
    assert len(read_table(tmp_path / "book.xlsx", options=ReadOptions(sheet=1))) == 2
    assert table_columns(tmp_path / "book.xlsx") == ["id", "amount", "when", "text_amount"]
    # An empty row in the middle of a sheet is a row (all missing), not dropped; empty rows after the last value go.
    import openpyxl

    book = openpyxl.Workbook()
    for row in (["a", "b"], [1, 2], [None, None], [3, 4]):
        book.active.append(row)
    book.active.cell(row=8, column=1).number_format = "0.00"  # a formatted but empty cell further down
    book.save(tmp_path / "gap.xlsx")
    gap = read_table(tmp_path / "gap.xlsx")
    assert len(gap) == 3 and gap["a"].isna().tolist() == [False, True, False]
    with pytest.raises(DataReadError, match=r"has no sheet 'third'; its sheets are \['first', 'second'\]"):
        read_table(tmp_path / "book.xlsx", options=ReadOptions(sheet="third"))
    (tmp_path / "book.csv").write_bytes((tmp_path / "book.xlsx").read_bytes())
    with pytest.raises(DataReadError, match=r"book\.csv is not a text table: it is a zip archive"):
        read_table(tmp_path / "book.csv")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(100))
    with pytest.raises(DataReadError, match=r"old Excel \.xls workbook"):
        read_table(tmp_path / "old.xls")
    (tmp_path / "bin.csv").write_bytes(b"a,b\n\x00\x01\x02\n")
    with pytest.raises(DataReadError, match=r"bin\.csv is a binary file, not CSV text"):
        read_table(tmp_path / "bin.csv")


def _european(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col, decimals in (("amount", 2), ("distance_km", 1)):
        text = df[col].map(lambda v: "" if pd.isna(v) else f"{v:,.{decimals}f}")
        out[col] = text.str.replace(",", "_").str.replace(".", ",").str.replace("_", ".")
    out["timestamp"] = pd.to_datetime(df["timestamp"]).dt.strftime("%d.%m.%Y %H:%M:%S")
    out["card_present"] = np.where(df["card_present"], "true", "false")
    return out


def test_european_export_encodes_exactly_like_the_plain_csv(tmp_path):
    """The issue's measurement in miniature (benchmarks/european_export.py has the scores): same matrix."""
    df = make_fraud_frame(1500, seed=3)
    plain = df.assign(card_present=np.where(df["card_present"], "true", "false"))
    plain.to_csv(tmp_path / "plain.csv", index=False)
    _european(df).to_csv(tmp_path / "eu.csv", index=False, sep=";")
    a, b = read_table(tmp_path / "plain.csv"), read_table(tmp_path / "eu.csv")
    assert infer_schema(a, label="is_fraud").kinds == infer_schema(b, label="is_fraud").kinds
    pa_, pb = TabularPreprocessor().fit(a.drop(columns="is_fraud")), TabularPreprocessor()
    Zb = pb.fit_transform(b.drop(columns="is_fraud"))
    np.testing.assert_allclose(pa_.transform(a.drop(columns="is_fraud")), Zb, rtol=0, atol=1e-9)
    # scored chunk by chunk as deepad score reads it (text), the European file gives the same matrix
    model = TabularDetector(ECOD()).fit(b.drop(columns="is_fraud"))
    score_file(model, tmp_path / "eu.csv", tmp_path / "s_eu.csv", batch_size=400)
    score_file(model, tmp_path / "plain.csv", tmp_path / "s_plain.csv", batch_size=400)
    s_eu, s_plain = pd.read_csv(tmp_path / "s_eu.csv"), pd.read_csv(tmp_path / "s_plain.csv")
    np.testing.assert_allclose(s_eu["score"], s_plain["score"], rtol=1e-12)
    assert s_eu["transaction_id"].tolist() == df["transaction_id"].tolist()


def test_scoring_keeps_the_training_day_month_order_for_dates_that_do_not_tell(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    days = rng.integers(1, 29, n)
    months = rng.integers(1, 13, n)
    train = pd.DataFrame(
        {"when": [f"{d:02d}/{m:02d}/2024 10:00" for d, m in zip(days, months)], "x": rng.normal(size=n)}
    )
    train.to_csv(tmp_path / "train.csv", index=False)
    X = read_table(tmp_path / "train.csv")
    model = TabularDetector(ECOD()).fit(X)
    entry = next(c for c in model.schema_.columns if c["name"] == "when")
    assert entry["kind"] == "datetime" and entry["read"] == "dates day first (D.M.Y)"
    from deepad.scoring import column_plan

    assert column_plan(model, ["when", "x"]).dayfirst == {"when": True}
    new = pd.DataFrame({"when": ["03/04/2024 10:00"] * 30, "x": np.zeros(30)})  # no day above 12
    new.to_csv(tmp_path / "new.csv", index=False)
    assert read_table(tmp_path / "new.csv")["when"].dt.month.iloc[0] == 3  # alone: month first in a '.' file
    score_file(model, tmp_path / "new.csv", tmp_path / "out.csv", batch_size=10)
    expected = model.decision_function(new.assign(when=pd.Timestamp("2024-04-03 10:00")))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["score"], expected, rtol=1e-12)
