"""The service's fast path for small JSON requests (deepad.serve.rows) against the DataFrame path.

The fast path encodes validated records without building a table; it must give the *same bits*: the encoded
matrix, the ScoringReport's notes, the scores, p-values and the whole JSON answer, on every kind of column
(numeric with and without training missing values, boolean, every datetime feature, categorical with and
without the log-frequency feature, numbers as categories, id and excluded columns), with missing values, unseen
categories, UTC offsets and fractional seconds.  Values it does not handle go down the DataFrame path (same
answer, same 422s).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from deepad.data.preprocessing import ScoringReport  # noqa: E402
from deepad.detectors import HBOS  # noqa: E402
from deepad.detectors.ensemble import LocalGlobalEnsemble  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve.registry import ModelRegistry  # noqa: E402
from deepad.serve.rows import parse_iso_datetime  # noqa: E402
from deepad.serve.scoring import _score, _score_records  # noqa: E402
from deepad.serve.spec import BodyError  # noqa: E402
from deepad.thresholds import conformal_p_values, conformal_p_values_sorted  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402

# Date/time text the fast path reads itself (pandas must read it the same way).
PLAIN_TIMES = [
    "2024-03-05 03:12:00",
    "2024-03-05T03:12:00",
    "2024-03-05",
    "2024-03-05 03:12",
    "2024-03-05T03:12:00Z",
    "2024-03-05T03:12:00+02:00",
    "2024-03-05T23:12:00-0530",
    "2024-03-05 03:12:00.5",
    "2024-03-05T03:12:59.123456+01:00",
    "2024-02-29 23:59:59",
    "2023-12-31T23:59:59-01:00",
    "1969-12-31 23:59:59.999999",
    "2024-03-31T00:30:00+01:00",
]
# Text pandas reads but the fast path leaves to it (the answer is the same, through the table).
OTHER_TIMES = ["20240305", "2024-3-5 3:12:00", " 2024-03-05 03:12:00", "2024-03-05T03:12:00.123456789", "1850-01-01"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    df = make_fraud_frame(n, seed=seed, start_index=seed * 100_000)
    rng = np.random.default_rng(seed)
    df["terminal"] = rng.choice([1, 2, 3, 17], size=n)  # integer categories
    df["weekend_flag"] = pd.array(rng.random(n) < 0.3, dtype="boolean")
    df.loc[rng.random(n) < 0.05, "weekend_flag"] = pd.NA  # a boolean with missing values (an indicator)
    df["opened"] = df["timestamp"]
    df.loc[rng.random(n) < 0.05, "opened"] = None  # a datetime with missing values
    return df


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two saved models, loaded as the service loads them: DEFAULT (kNN views) and HBOS, both on every feature."""
    root = tmp_path_factory.mktemp("served")
    train = _frame(400, seed=1)
    for name, det in {
        "default": LocalGlobalEnsemble(deep_weight=0, n_neighbors_global=40),
        "hbos": HBOS(),
    }.items():
        model = TabularDetector(
            det,
            contamination=0.02,
            exclude=["is_fraud"],
            types={"terminal": "categorical", "opened": "datetime"},
            datetime_features=("hour", "dayofweek", "month", "unix"),
        )
        model.fit(train)
        model.save(root / name)
    return ModelRegistry.from_root(root)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _edge_records() -> list[dict]:
    base = _records(_frame(30, seed=7))
    out = []
    for i, t in enumerate(PLAIN_TIMES):
        r = dict(base[i % len(base)], timestamp=t, opened=PLAIN_TIMES[-1 - i])
        out.append(r)
    r = dict(base[0])
    for col in ("amount", "customer_age", "distance_km", "card_present", "weekend_flag", "opened", "country"):
        r[col] = None  # missing everywhere, including columns that had no missing values in training
    out.append(r)
    out.append(dict(base[1], merchant_id="M99999", country="Atlantis", terminal=99))  # unseen categories
    out.append(dict(base[2], terminal=17.0, card_present="yes", weekend_flag=0))  # 17.0 is category "17"
    out.append(dict(base[3], terminal="17", card_present=1, merchant_category=5.5))
    out.append({k: v for k, v in base[4].items() if k not in ("transaction_id", "is_fraud")})  # no id sent
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("name", ["default", "hbos"])
def test_fast_path_encodes_and_scores_as_the_table_path_bit_for_bit(served, name):
    loaded = served.get(name)
    assert loaded.rows is not None
    rows = _records(_frame(60, seed=3)) + _edge_records()
    batches = [[r] for r in rows] + [rows[i : i + 7] for i in range(0, len(rows), 7)]
    for batch in batches:
        body = json.dumps(batch).encode()
        records = loaded.spec.parse_records(body)
        fast_report, table_report = ScoringReport(), ScoringReport()
        Z = loaded.rows.encode(records, fast_report)
        assert Z is not None
        df = loaded.spec.frame_from_records(records)
        expected = loaded.model.preprocessor.transform(df, report=table_report)
        assert Z.shape == expected.shape
        np.testing.assert_array_equal(_bits(Z), _bits(expected))
        assert fast_report == table_report
        # the table's text columns are pandas strings; as plain objects (how requests were read before) they encode
        # the same
        legacy = df.astype({c: object for c in df.columns if pd.api.types.is_string_dtype(df[c].dtype)})
        np.testing.assert_array_equal(_bits(loaded.model.preprocessor.transform(legacy)), _bits(expected))
        # the whole answer: scores, p-values, flags, ids, notes
        assert _score_records(loaded, records) == _score(loaded, df, "records")


def test_the_answers_say_what_the_table_path_says(served):
    loaded = served.get("default")
    edge = _edge_records()
    answer = json.loads(_score_records(loaded, loaded.spec.parse_records(json.dumps(edge).encode())))
    notes = " ".join(answer["notes"])
    assert "column 'country' were not seen in training (e.g. '__missing__', 'Atlantis')" in notes  # with examples
    assert "1 value(s) in column 'terminal' were not seen in training (e.g. '99')" in notes
    assert "which had none in training; imputed" in notes  # missing where training had none
    assert answer["results"][0]["ids"] == {"transaction_id": edge[0]["transaction_id"]}
    assert "ids" in answer["results"][-1] and answer["results"][-1]["ids"] == {"transaction_id": None}
    alone = json.loads(_score_records(loaded, loaded.spec.parse_records(json.dumps(edge[-1:]).encode())))
    assert "ids" not in alone["results"][0]  # no record sent an id: none echoed, as from its table


def test_other_date_forms_go_through_the_table_with_the_same_answer(served):
    loaded = served.get("default")
    base = _records(_frame(5, seed=11))
    for t in OTHER_TIMES:
        assert parse_iso_datetime(t) is None
        records = loaded.spec.parse_records(json.dumps([dict(base[0], timestamp=t)]).encode())
        assert loaded.rows.encode(records, ScoringReport()) is None
        df = loaded.spec.frame_from_records(records)
        assert _score_records(loaded, records) == _score(loaded, df, "records")


@pytest.mark.parametrize("bad", ["2024-02-30", "2024-03-05T24:00:00", "yesterday", "2024-13-01 00:00:00"])
def test_unreadable_dates_are_the_table_paths_422_naming_the_row(served, bad):
    loaded = served.get("default")
    base = _records(_frame(3, seed=5))
    records = loaded.spec.parse_records(json.dumps([base[0], dict(base[1], timestamp=bad)]).encode())
    with pytest.raises(BodyError) as fast:
        _score_records(loaded, records)
    with pytest.raises(BodyError) as table:
        _score(loaded, loaded.spec.frame_from_records(records), "records")
    assert fast.value.detail == table.value.detail
    assert fast.value.detail[0]["loc"] == ["body", 1, "timestamp"]


def test_parse_iso_datetime_agrees_with_pandas():
    from deepad.data.schema import parse_datetimes

    for t in PLAIN_TIMES:
        expected = parse_datetimes(pd.Series([t], dtype=object)).iloc[0]
        assert parse_iso_datetime(t) == expected.to_pydatetime(), t


def test_sorted_reference_p_values_equal_conformal_p_values():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=500)
    ref[:20] = ref[20]  # ties
    scores = np.concatenate([rng.normal(size=50), ref[:5], [np.inf, -np.inf, np.nan]])
    np.testing.assert_array_equal(conformal_p_values_sorted(np.sort(ref), scores), conformal_p_values(ref, scores))


def test_plain_detector_fast_path(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    HBOS(contamination=0.05).fit(X).save(tmp_path / "plain")
    loaded = ModelRegistry.from_root(tmp_path / "plain").get("plain")
    assert loaded.rows is not None
    rows = _records(pd.DataFrame(rng.normal(size=(9, 4)) * 3, columns=["a", "b", "c", "d"]))
    for batch in [rows[:1], rows]:
        records = loaded.spec.parse_records(json.dumps(batch).encode())
        assert _score_records(loaded, records) == _score(loaded, loaded.spec.frame_from_records(records), "records")
