"""JSON records as a table (deepad.serve.spec.InputSpec.records_frame) against the record models' route.

``records_frame`` validates a large array of records as column arrays (one validation per column, not a model
instance per record); it must accept exactly the bodies the record models accept, give the same table (values,
dtypes, which id columns are present) and, for a body it does not take as is, the record models' 422.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from deepad.data.values import boolean_values  # noqa: E402
from deepad.detectors import HBOS  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve.spec import BodyError, RowLimitError, input_spec  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402


@pytest.fixture(scope="module")
def spec():
    train = make_fraud_frame(300, seed=3)
    model = TabularDetector(HBOS(), contamination=0.02, exclude=["is_fraud"]).fit(train)
    return input_spec(model, "fraud")


def _records(n: int = 80, seed: int = 5) -> list[dict]:
    return json.loads(make_fraud_frame(n, seed=seed, start_index=10_000).to_json(orient="records"))


def _both(spec, records) -> tuple:
    """(records_frame's answer, the record models' answer): a DataFrame or the BodyError's detail."""
    body = json.dumps(records).encode()
    out = []
    for route in (spec.records_frame, lambda b: spec.frame_from_records(spec.parse_records(b))):
        try:
            out.append(route(body))
        except BodyError as exc:
            out.append(exc.detail)
    return tuple(out)


def _assert_same(a, b) -> None:
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        assert isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame), (a, b)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    else:
        assert a == b


def test_same_table_as_the_record_models(spec, monkeypatch):
    records = _records()
    records[3]["amount"] = None
    records[4]["amount"] = 12  # an integer in a numeric column
    records[5]["card_present"] = "yes"
    records[6]["card_present"] = 0
    records[7]["merchant_category"] = 17  # numbers as categories
    records[8]["merchant_category"] = 2.5
    records[9]["timestamp"] = None
    records[10]["is_fraud"] = "anything"  # excluded column: ignored
    a, b = _both(spec, records)
    assert isinstance(a, pd.DataFrame) and len(a) == len(records)
    _assert_same(a, b)
    assert "transaction_id" in a.columns
    # ... and that table came through the column arrays, not the record models
    monkeypatch.setattr(type(spec), "parse_records", lambda *a, **k: pytest.fail("took the record models' route"))
    pd.testing.assert_frame_equal(spec.records_frame(json.dumps(records).encode()), b, check_exact=True)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r[2].update(amount="12.5"),  # text in a numeric column
        lambda r: r[2].update(amount=True),  # a boolean in a numeric column
        lambda r: r[2].update(card_present="maybe"),
        lambda r: r[2].update(card_present=2),
        lambda r: r[2].update(card_present=1.0),
        lambda r: r[2].update(timestamp=20240101),
        lambda r: r[2].update(merchant_category=[1]),
        lambda r: r[2].update(transaction_id=1.5),
        lambda r: r[2].update(amont=3.0),  # a misspelt column
        lambda r: r[2].pop("amount"),  # a missing column
        lambda r: r[2].pop("transaction_id"),  # an id sent by some records only
        lambda r: r.__setitem__(2, [1, 2, 3]),  # not an object
        lambda r: r.__setitem__(2, {}),
    ],
)
def test_same_answer_for_odd_bodies(spec, change):
    records = _records()
    change(records)
    a, b = _both(spec, records)
    _assert_same(a, b)


def test_ids_that_are_all_null_are_left_out_as_for_records(spec):
    records = _records()
    for r in records:
        r["transaction_id"] = None
    a, b = _both(spec, records)
    _assert_same(a, b)
    assert "transaction_id" not in a.columns


def test_large_numbers_and_the_row_limit(spec):
    records = _records()
    records[1]["amount"] = 1e308
    records[2]["amount"] = 10**30  # an integer beyond int64 is still a finite float
    a, b = _both(spec, records)
    _assert_same(a, b)
    with pytest.raises(RowLimitError):
        spec.records_frame(json.dumps(records).encode(), max_rows=10)
    for bad in (b"[", b"[]", b"{}", b"[1, 2]", b"null"):
        with pytest.raises(BodyError):
            spec.records_frame(bad)


def test_boolean_text_read_once_per_distinct_value():
    text = [" True", None, "no", "YES", "1", "0", "false", "Y"]
    got = boolean_values(pd.Series(text, dtype="str"), "flag")
    same = boolean_values(pd.Series(text, dtype=object), "flag")  # the object path, value by value
    np.testing.assert_array_equal(got, same)
    np.testing.assert_array_equal(got, [1, np.nan, 0, 1, 1, 0, 0, 1])
    with pytest.raises(ValueError, match=r"row 2 \('maybe'\)"):
        boolean_values(pd.Series(["true", None, "maybe"], dtype="str"), "flag")


def test_answers_encode_the_same_values_as_json_dumps():
    from deepad.serve.scoring import dumps

    rng = np.random.default_rng(0)
    values = [float(v) for v in rng.standard_normal(200) * 10.0 ** rng.integers(-300, 300, 200)]
    out = {"results": [{"score": v, "p_value": 0.5, "is_anomaly": v > 0} for v in values], "n": 200, "notes": []}
    assert json.loads(dumps(out)) == json.loads(json.dumps(out))
    assert json.loads(dumps({"ids": {"id": np.int64(7)}, "t": float("inf")})) == {"ids": {"id": 7}, "t": None}
    lone = {"ids": {"id": "a\ud800b"}}  # text JSON carries only escaped: the json.dumps fallback writes it
    assert json.loads(dumps(lone)) == lone
