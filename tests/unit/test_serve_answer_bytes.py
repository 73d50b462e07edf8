"""The score answer written from JSON fragments per column (deepad.serve.scoring._answer_bytes) against the dict route.

``_answer`` writes an unexplained answer from per-column fragments rather than one dict per row; the bytes must be
those of ``dumps`` of the dicts, for every kind of score (non-finite ones are null), id value (text with commas,
quotes, backslashes and unicode, integers, None, booleans, NumPy scalars, timestamps) and number of id columns, and
where pydantic-core cannot encode a value (a lone surrogate) the dict route's answer (``json.dumps``) is given.
"""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from deepad.serve import scoring  # noqa: E402
from deepad.serve.scoring import _answer, _answer_bytes, _answer_dicts, _id_list, dumps  # noqa: E402

TEXT = ["T-1", "a,b", 'say "hi"', "back\\slash", "é日本😀", "tab\tnew\nline\x00", "\u2028", "", ",", "{}[]:"]
SCALARS = [7, -3, 0, None, True, False, 2**70, np.int64(42), np.int32(-5), np.float64(1.5), np.float64("nan"), 2.5]
TIMES = pd.Series(pd.to_datetime(["2024-03-05 03:12:00", None, "2024-03-05T03:12:00.5"], format="ISO8601"))
TIMES_UTC = pd.Series(
    pd.to_datetime(["2024-03-05T03:12:00+02:00", "2023-12-31T23:59:59-01:00"], utc=True, format="ISO8601")
)


def _cycle(values: list, n: int) -> list:
    return [values[i % len(values)] for i in range(n)]


def _ids(kind: str, n: int) -> dict[str, list]:
    if kind == "none":
        return {}
    if kind == "text":
        return {"transaction_id": _cycle(TEXT, n)}
    if kind == "scalars":
        return {"transaction_id": _cycle(SCALARS, n)}
    if kind == "times":
        return {"opened": _cycle(_id_list(TIMES), n)}
    if kind == "series":  # as _score reads an id column from its table
        return {"account": _id_list(pd.Series(_cycle(["A", None, "B,C"], n), dtype="string"))}
    if kind == "several":
        return {
            "transaction_id": _cycle(TEXT, n),
            "merchant id": _cycle(SCALARS, n),
            'q"uote\\d': _cycle(_id_list(TIMES_UTC), n),
            "when": _cycle([datetime.date(2024, 3, 5), None, "x"], n),
        }
    raise AssertionError(kind)


def _scores(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    s = rng.normal(size=n) * 10.0 ** rng.integers(-8, 17, size=n)
    if kind == "broken" and n:
        s[:: max(1, n // 4)] = np.nan
        s[1::7] = np.inf
        s[2::9] = -np.inf
    if kind == "exact" and n:
        s[: min(n, 4)] = [0.0, -0.0, 1.0, 1e-7][: min(n, 4)]
    return s


def _loaded(reference: np.ndarray | None = None, name: str = "fraud", version: str = "3") -> SimpleNamespace:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=300)
    model = SimpleNamespace(threshold_=np.float64(1.25), p_value_reference=ref)
    return SimpleNamespace(name=name, version=version, model=model, reference=reference)


def _spy(monkeypatch) -> list:
    """What each call of ``_answer_bytes`` returned (``None``: it left the answer to the dict route)."""
    got: list = []

    def spy(*args):
        got.append(_answer_bytes(*args))
        return got[-1]

    monkeypatch.setattr(scoring, "_answer_bytes", spy)
    return got


def _both(loaded, scores, notes, id_values, monkeypatch) -> tuple[bytes, bytes]:
    """``_answer`` as it is, and with the fragment route switched off (the dict route alone)."""
    with monkeypatch.context() as m:
        got = _spy(m)
        fast = _answer(loaded, scores, list(notes), id_values, "none", 3, None)
    assert len(got) == 1 and got[0] in (None, fast)
    if got[0] is None:
        fast = None
    with monkeypatch.context() as m:
        m.setattr(scoring, "_answer_bytes", lambda *a: None)
        dicts = _answer(loaded, scores, list(notes), id_values, "none", 3, None)
    return fast, dicts


@pytest.mark.parametrize("ids", ["none", "text", "scalars", "times", "series", "several"])
@pytest.mark.parametrize("kind", ["plain", "broken", "exact"])
@pytest.mark.parametrize("n", [1, 2, 37, 1000])
def test_the_fragments_are_the_dict_routes_bytes(ids, kind, n, monkeypatch):
    scores, id_values = _scores(kind, n), _ids(ids, n)
    notes = ["ignored 1 column(s) the model was not trained on: ['x, \"y\"']", "é"]
    fast, dicts = _both(_loaded(), scores, notes, id_values, monkeypatch)
    assert fast is not None  # written from the fragments
    assert fast == dicts
    assert json.loads(fast) == json.loads(dicts)
    answer = json.loads(fast)
    assert list(answer) == ["model", "version", "threshold", "n", "n_anomalies", "results", "notes"]
    assert answer["n"] == n and len(answer["results"]) == n
    if ids == "none":
        assert all("ids" not in r for r in answer["results"])
    else:
        assert all(list(r["ids"]) == list(id_values) for r in answer["results"])
    if kind == "broken":
        assert answer["results"][0]["score"] is None and answer["results"][0]["is_anomaly"] is True
        assert "non-finite score" in answer["notes"][-1]


def test_direct_calls_agree_with_the_sorted_reference_and_no_notes():
    rng = np.random.default_rng(1)
    head = {"model": "m", "version": "v", "threshold": float("nan"), "n": 5, "n_anomalies": 2}
    values = [0.5, None, 1e300, -2.0, 3.0]
    p_values = rng.random(5).tolist()
    flags = [False, True, True, False, False]
    for id_values in ({}, {"id": ["a", "b", "c", "d", "e"]}, {"b": [1, 2, 3, 4, 5], "a": list("vwxyz")}):
        got = _answer_bytes(head, values, p_values, flags, id_values, [])
        assert got == dumps(_answer_dicts(head, values, p_values, flags, id_values, []))
    loaded = _loaded(reference=np.sort(rng.normal(size=300)))
    fast = _answer(loaded, _scores("plain", 20), [], {"id": list(range(20))}, "none", 3, None)
    assert json.loads(fast)["notes"] == []


def test_empty_answer_and_short_id_columns():
    head = {"model": "m", "version": "v", "threshold": 1.0, "n": 0, "n_anomalies": 0}
    assert _answer_bytes(head, [], [], [], {}, []) == dumps(_answer_dicts(head, [], [], [], {}, []))
    assert _answer_bytes(head, [], [], [], {"id": []}, []) == dumps(_answer_dicts(head, [], [], [], {"id": []}, []))
    head["n"] = 1
    assert _answer_bytes(head, [0.5], [0.1], [False], {"id": []}, []) is None  # ids shorter than the rows


@pytest.mark.parametrize("where", ["id", "note", "name"])
def test_a_lone_surrogate_takes_the_dict_route(where, monkeypatch):
    bad = "x\udc00y"
    id_values = {"transaction_id": ["a", bad if where == "id" else "b", "c"]}
    notes = [bad] if where == "note" else []
    loaded = _loaded(name=bad if where == "name" else "fraud")
    scores = _scores("plain", 3)
    p = _p_values(loaded, scores)
    head = {"model": loaded.name, "version": "3", "threshold": 1.25, "n": 3, "n_anomalies": int((scores > 1.25).sum())}
    assert _answer_bytes(head, scores.tolist(), p, (scores > 1.25).tolist(), id_values, notes) is None
    fast, dicts = _both(loaded, scores, notes, id_values, monkeypatch)
    assert fast is None  # the fragment route gave up
    assert b'"model": ' in dicts  # json.dumps's separators: the dict route's fallback
    assert json.loads(dicts)["results"][1]["ids"]["transaction_id"] == id_values["transaction_id"][1]


def _p_values(loaded, scores) -> list:
    from deepad.thresholds import conformal_p_values

    return conformal_p_values(loaded.model.p_value_reference, scores).tolist()


def test_explained_answers_keep_the_dict_route(monkeypatch):
    def no(*args):
        raise AssertionError("the fragment route is for unexplained answers only")

    monkeypatch.setattr(scoring, "_answer_bytes", no)

    def explain_rows(model, data, rows, top, results):
        for i in rows.tolist():
            results[i]["top_features"] = [{"column": "a", "attribution": 0.5}]
        return "stub"

    monkeypatch.setattr(scoring, "_explain_rows", explain_rows)
    scores = _scores("broken", 12)
    answer = json.loads(_answer(_loaded(), scores, [], _ids("text", 12), "anomalies", 3, None))
    assert list(answer)[-1] == "explanation_method" and answer["explanation_method"] == "stub"
    assert list(answer["results"][0]) == ["score", "p_value", "is_anomaly", "ids", "top_features"]
    flagged = [r["is_anomaly"] for r in answer["results"]]
    assert [r["top_features"] is not None for r in answer["results"]] == flagged


def test_through_the_app_the_same_bytes(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from deepad.detectors import HBOS
    from deepad.pipeline import TabularDetector
    from deepad.serve import create_app

    from data_fraud import make_fraud_frame

    train = make_fraud_frame(400, seed=1)
    TabularDetector(HBOS(), contamination=0.02, exclude=["is_fraud"]).fit(train).save(tmp_path / "fraud")
    new = make_fraud_frame(1000, seed=7, start_index=50_000)
    body = new.to_json(orient="records").encode()
    few = new.iloc[:3].to_json(orient="records").encode()  # the records fast path (deepad.serve.rows)
    csv = new.to_csv(index=False).encode()
    client = TestClient(create_app(tmp_path / "fraud", reload_interval=0))
    url = "/v1/models/fraud/score"
    requests = [(body, "application/json"), (few, "application/json"), (csv, "text/csv")]

    def post(content, media):
        r = client.post(url, content=content, headers={"content-type": media})
        assert r.status_code == 200, r.text
        return r

    with monkeypatch.context() as m:
        got = _spy(m)
        fast = [post(*r) for r in requests]
    assert len(got) == 3 and all(g is not None for g in got)
    monkeypatch.setattr(scoring, "_answer_bytes", lambda *a: None)
    for r, (content, media) in zip(fast, requests):
        assert r.content == post(content, media).content
    results = fast[0].json()["results"]
    assert len(results) == 1000 and results[0]["ids"] == {"transaction_id": new["transaction_id"].iloc[0]}


@pytest.mark.parametrize("dtype", ["str", "string[python]", "string[pyarrow]", object])
def test_id_list_gives_python_text_and_none_for_missing_whatever_the_text_storage(dtype):
    s = pd.Series(["T1", None, "a,b", "é", ""], dtype=dtype)
    assert _id_list(s) == ["T1", None, "a,b", "é", ""]
