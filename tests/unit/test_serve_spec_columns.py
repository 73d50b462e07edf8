"""JSON column arrays as a table (deepad.serve.spec.InputSpec.parse_json) against the column model's route.

``parse_json`` checks a column body's values by their Python types (and NumPy for non-finite numbers) and builds
the table from them without pydantic when it can; it must accept exactly the bodies the column model accepts,
give the same table (values, dtypes, columns) and, for a body it does not take as is, the column model's 422.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from deepad.detectors import HBOS  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve.spec import BodyError, input_spec  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402


@pytest.fixture(scope="module")
def spec():
    train = make_fraud_frame(300, seed=3)
    model = TabularDetector(HBOS(), contamination=0.02, exclude=["is_fraud"]).fit(train)
    return input_spec(model, "fraud")


@pytest.fixture(scope="module")
def plain_spec():
    rng = np.random.default_rng(0)
    model = HBOS().fit(pd.DataFrame(rng.standard_normal((200, 3)), columns=["a", "b", "c"]))
    return input_spec(model, "plain")


def _columns(n: int = 60, seed: int = 5) -> dict:
    frame = make_fraud_frame(n, seed=seed, start_index=10_000)
    return {"columns": {k: list(v.values()) for k, v in json.loads(frame.to_json(orient="columns")).items()}}


def _pydantic_route(spec, body: bytes):
    try:
        return spec._frame_from_columns(spec._columns.validate_json(body))
    except BodyError as exc:
        return exc.detail
    except Exception as exc:  # noqa: BLE001 - pydantic's own error: worded by parse_json as a BodyError
        from deepad.serve.spec import _details

        return _details(exc, shape="columns")


def _both(spec, body) -> tuple:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        fast = spec.parse_json(raw)
    except BodyError as exc:
        fast = exc.detail
    return fast, _pydantic_route(spec, raw)


def _assert_same(a, b) -> None:
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        assert isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame), (a, b)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    else:
        assert a == b


def test_a_clean_body_skips_pydantic_and_gives_the_same_table(spec, monkeypatch):
    body = _columns()
    body["columns"]["amount"][3] = None
    body["columns"]["amount"][4] = 12  # an integer in a numeric column
    body["columns"]["card_present"][5] = None
    body["columns"]["merchant_category"][7] = 17  # an integer category
    body["columns"]["timestamp"][9] = None
    body["columns"]["is_fraud"] = ["anything"] * 60  # excluded column: ignored
    a, b = _both(spec, body)
    assert isinstance(a, pd.DataFrame) and len(a) == 60
    _assert_same(a, b)
    assert a["amount"].dtype == np.float64 and np.isnan(a["amount"].iloc[3]) and a["amount"].iloc[4] == 12.0
    assert str(a["card_present"].dtype) == "boolean" and pd.isna(a["card_present"].iloc[5])
    monkeypatch.setattr(type(spec._columns), "validate_json", lambda *a, **k: pytest.fail("took pydantic's route"))
    pd.testing.assert_frame_equal(spec.parse_json(json.dumps(body).encode()), b, check_exact=True)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["amount"].__setitem__(2, "12.5"),  # text in a numeric column
        lambda c: c["amount"].__setitem__(2, True),  # a boolean in a numeric column
        lambda c: c["amount"].__setitem__(2, 10**400),  # an integer beyond float64
        lambda c: c["amount"].__setitem__(2, 1e308),  # large but finite
        lambda c: c["amount"].__setitem__(2, 10**30),  # an integer beyond int64, still a finite float
        lambda c: c["card_present"].__setitem__(2, "yes"),  # lax booleans: pydantic's route takes them
        lambda c: c["card_present"].__setitem__(2, 0),
        lambda c: c["card_present"].__setitem__(2, "maybe"),
        lambda c: c["card_present"].__setitem__(2, 1.0),
        lambda c: c["timestamp"].__setitem__(2, 20240101),
        lambda c: c["merchant_category"].__setitem__(2, 2.5),  # a float category: pydantic's route
        lambda c: c["merchant_category"].__setitem__(2, [1]),
        lambda c: c["merchant_category"].__setitem__(2, True),
        lambda c: c["transaction_id"].__setitem__(2, 1.5),
        lambda c: c.__setitem__("transaction_id", None),  # an optional id sent as null
        lambda c: c.pop("transaction_id"),  # an optional id not sent
        lambda c: c.__setitem__("transaction_id", [None] * 60),  # an id column of nulls: kept, as pydantic's
        lambda c: c.__setitem__("amont", [1.0] * 60),  # a misspelt column
        lambda c: c.pop("amount"),  # a missing column
        lambda c: c.__setitem__("amount", 3.0),  # not a list
        lambda c: c.__setitem__("amount", None),  # a required column as null
        lambda c: c["amount"].pop(),  # columns of different lengths
        lambda c: c.__setitem__("is_fraud", "x"),  # an excluded column that is not a list
        lambda c: c["channel"].__setitem__(2, "a\ud800b"),  # a lone surrogate: an object column
    ],
)
def test_same_answer_for_odd_bodies(spec, change):
    body = _columns()
    change(body["columns"])
    a, b = _both(spec, body)
    _assert_same(a, b)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"columns": {"amount": [NaN]}}',
        b"{}",
        b'{"columns": {}}',
        b'{"columns": [], "extra": 1}',
        b'{"rows": {}}',
        b"{",
    ],
)
def test_same_answer_for_odd_json(spec, raw):
    a, b = _both(spec, raw)
    assert isinstance(a, list) and isinstance(b, list), (a, b)  # both refuse
    if raw != b"{":  # invalid JSON: the same 422, worded by pydantic's parser
        assert a == b


def test_non_finite_literals_and_nulls_in_a_plain_detector(plain_spec):
    ok = {"columns": {"a": [1.0, 2], "b": [0.5, -1e300], "c": [3, 4]}}
    a, b = _both(plain_spec, ok)
    _assert_same(a, b)
    for raw in (
        b'{"columns": {"a": [1.0, NaN], "b": [0.5, 1], "c": [3, 4]}}',
        b'{"columns": {"a": [1.0, Infinity], "b": [0.5, 1], "c": [3, 4]}}',
        b'{"columns": {"a": [1.0, -Infinity], "b": [0.5, 1], "c": [3, 4]}}',
        b'{"columns": {"a": [1.0, null], "b": [0.5, 1], "c": [3, 4]}}',  # plain detectors take no missing values
    ):
        a, b = _both(plain_spec, raw)
        assert isinstance(a, list) and a == b, (raw, a, b)
