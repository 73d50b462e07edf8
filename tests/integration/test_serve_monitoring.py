"""The service's monitoring (issue 20): Prometheus ``GET /metrics`` and ``GET /v1/models/{name}/drift``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from deepad.detectors import PCA  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve import create_app  # noqa: E402
from deepad.serve.monitoring import MIN_DRIFT_ROWS, ScoreWindow  # noqa: E402

KEY = "test-key-0123456789abcdef"


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return pd.DataFrame({"a": a, "b": 2.0 * a + rng.normal(0.0, 0.3, n), "c": rng.gamma(2.0, 3.0, n)})


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _calibrated(n: int, seed: int) -> TabularDetector:
    """A PCA model calibrated on held-out clean rows: its reference scores are valid for the drift test."""
    model = TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(n, seed))
    model.calibrate(_table(1000, seed + 100))
    return model.set_threshold(fpr=0.05)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    _calibrated(3000, 0).save(root / "m")
    _calibrated(3000, 1).save(root / "other")
    return root


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_rows_and_flags(root):
    client = TestClient(create_app(root, reload_interval=0))
    before = _samples(client.get("/metrics").text)
    assert not any(k[0] == "deepad_rows_scored_total" for k in before)
    new = _table(400, 5)
    new.loc[:9, "c"] = 500.0  # ten clear anomalies
    r = client.post("/v1/models/m/score", json=_records(new))
    assert r.status_code == 200
    flagged = r.json()["n_anomalies"]
    assert flagged >= 10
    assert client.post("/v1/models/m/score", json=[{"a": "text"}]).status_code == 422
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    s = _samples(m.text)
    model = (("model", "m"),)
    assert s[("deepad_rows_scored_total", model)] == 400
    assert s[("deepad_rows_flagged_total", model)] == flagged
    ok = (("endpoint", "score"), ("model", "m"), ("status", "200"))
    assert s[("deepad_requests_total", ok)] == 1
    assert s[("deepad_requests_total", (("endpoint", "score"), ("model", "m"), ("status", "422")))] == 1
    assert s[("deepad_request_duration_seconds_count", (("endpoint", "score"), ("model", "m")))] == 2
    assert ("deepad_rows_scored_total", (("model", "other"),)) not in s  # counted per model
    # an unknown name is not a new label value (bounded cardinality)
    client.post("/v1/models/nope/score", json=[])
    assert not any(dict(k[1]).get("model") == "nope" for k in _samples(client.get("/metrics").text))


def test_each_app_has_its_own_registry(root):
    a, b = TestClient(create_app(root / "m", reload_interval=0)), TestClient(create_app(root / "m", reload_interval=0))
    assert a.post("/v1/score", json=_records(_table(50, 2))).status_code == 200  # the only model's short path
    assert _samples(a.get("/metrics").text)[("deepad_rows_scored_total", (("model", "m"),))] == 50
    assert ("deepad_rows_scored_total", (("model", "m"),)) not in _samples(b.get("/metrics").text)


def test_metrics_and_drift_need_the_api_key_when_set(root):
    client = TestClient(create_app(root, api_key=KEY, reload_interval=0))
    assert client.get("/healthz").status_code == 200
    for path in ("/metrics", "/v1/models/m/drift"):
        r = client.get(path)
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert client.get(path, headers={"X-API-Key": KEY}).status_code == 200
    # the query parameters change nothing: the key is checked first, then the parameters
    assert client.get("/v1/models/m/drift", params={"alpha": 0}).status_code == 401
    bad = client.get("/v1/models/m/drift", params={"alpha": 0}, headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "alpha"]
    ok = client.get("/v1/models/m/drift", params={"alpha": 0.01, "rows": 200}, headers={"X-API-Key": KEY})
    assert ok.status_code == 200


def test_drift_endpoint_on_in_distribution_and_shifted_rows(root):
    client = TestClient(create_app(root, reload_interval=0))
    r = client.get("/v1/models/m/drift")
    assert r.status_code == 200
    few = r.json()
    assert (
        few["drift"] is None and few["p_value"] is None and few["n_rows"] == 0 and str(MIN_DRIFT_ROWS) in few["detail"]
    )

    assert (
        client.post("/v1/models/m/score", json=_records(_table(1500, 12))).status_code == 200
    )  # the model calibrated on held-out rows
    same = client.get("/v1/models/m/drift").json()
    assert same["n_rows"] == 1500 and same["drift"] is False and same["p_value"] > 0.05
    assert same["expected_flag_rate"] == pytest.approx(0.05, abs=0.01)
    assert abs(same["flag_rate"] - same["expected_flag_rate"]) < 0.03
    text = client.get("/metrics").text
    assert _samples(text)[("deepad_score_drift_p_value", (("model", "m"),))] == pytest.approx(same["p_value"])

    shifted = _table(1500, 13)
    shifted["b"] = shifted["b"] + 1.5  # breaks the a-b relation the model learned
    client2 = TestClient(create_app(root, reload_interval=0))
    assert client2.post("/v1/models/m/score", json=_records(shifted)).status_code == 200
    moved = client2.get("/v1/models/m/drift").json()
    assert moved["drift"] is True and moved["p_value"] < 1e-6 and moved["flag_rate"] > 2 * moved["expected_flag_rate"]
    assert _samples(client2.get("/metrics").text)[("deepad_score_drift", (("model", "m"),))] == 1.0
    assert client2.get("/v1/models/other/drift").json()["n_rows"] == 0  # windows are per model

    r = client.get("/v1/models/nope/drift")
    assert r.status_code == 404 and "nope" in r.json()["detail"] and "'m'" not in r.json()["detail"]


def _drift(client, **params) -> dict:
    r = client.get("/v1/models/m/drift", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _gauge(client, metric: str) -> float:
    return _samples(client.get("/metrics").text)[(metric, (("model", "m"),))]


def test_drift_alpha_sets_the_verdict_and_the_gauge(root):
    client = TestClient(create_app(root, reload_interval=0))
    assert client.post("/v1/models/m/score", json=_records(_table(1500, 57))).status_code == 200
    default = _drift(client)
    p = default["p_value"]
    assert 0.01 < p < 0.05  # seed 57: p = 0.031 (the one seed of 11-59 between the two alphas below)
    assert default["alpha"] == 0.05 and default["drift"] is True
    loose = _drift(client, alpha=0.05)
    assert loose["drift"] is True and loose["alpha"] == 0.05 and loose["p_value"] == p
    assert _gauge(client, "deepad_score_drift") == 1.0
    strict = _drift(client, alpha=0.01)
    assert strict["drift"] is False and strict["alpha"] == 0.01 and strict["p_value"] == p  # same window, same test
    assert _gauge(client, "deepad_score_drift") == 0.0  # the verdict at the alpha of the last request
    assert _gauge(client, "deepad_score_drift_p_value") == pytest.approx(p)
    for bad in (0, 1, -0.5, 2, "nan", "abc"):
        r = client.get("/v1/models/m/drift", params={"alpha": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "alpha"], (bad, r.text)
    assert _gauge(client, "deepad_score_drift") == 0.0  # a refused request leaves the gauges alone


def test_drift_tail_quantiles_reach_score_drift(root):
    client = TestClient(create_app(root, reload_interval=0))
    assert client.post("/v1/models/m/score", json=_records(_table(1500, 12))).status_code == 200
    plain = _drift(client)
    assert plain["score"]["tails"] == []
    tails = _drift(client, tail_quantiles="0.5,0.99")
    section = tails["score"]
    assert [t["quantile"] for t in section["tails"]] == [0.5, 0.99]
    assert all(t["test"] == "exceedances (one-sided, exact)" for t in section["tails"])
    ps = [section["distribution"]["p_value"], section["flag_rate"]["p_value"]] + [
        t["p_value"] for t in section["tails"]
    ]
    assert tails["p_value"] == pytest.approx(min(1.0, 4 * min(ps)))  # Bonferroni over the four tests that ran
    assert tails["n_rows"] == plain["n_rows"] == 1500
    assert _drift(client, tail_quantiles="0.99, 0.9")["score"]["tails"][1]["quantile"] == 0.9  # spaces are fine

    for bad, says in (("1.5", "'1.5'"), ("abc", "'abc'"), ("0.9,0.9", "twice"), ("0.9,", "''"), ("", "''")):
        r = client.get("/v1/models/m/drift", params={"tail_quantiles": bad})
        assert r.status_code == 422, (bad, r.text)
        (entry,) = r.json()["detail"]  # FastAPI's detail list, as for alpha and rows
        assert entry["loc"] == ["query", "tail_quantiles"] and entry["type"] == "value_error"
        assert "tail_quantiles" in entry["msg"] and says in entry["msg"] and entry["input"] == bad
    # a bad value is a 422 even before the window can be tested, and for an unknown name
    empty = TestClient(create_app(root, reload_interval=0))
    assert empty.get("/v1/models/m/drift", params={"tail_quantiles": "1.5"}).status_code == 422
    assert empty.get("/v1/models/m/drift", params={"tail_quantiles": "0.9"}).json()["drift"] is None


def test_drift_rows_tests_only_the_most_recent_scores(root):
    from deepad.drift import score_drift

    app = create_app(root, reload_interval=0)
    client = TestClient(app)
    assert client.post("/v1/models/m/score", json=_records(_table(5000, 12))).status_code == 200
    shifted = _table(300, 13)
    shifted["b"] = shifted["b"] + 0.4  # a small break of the a-b relation the model learned
    r = client.post("/v1/models/m/score", json=_records(shifted))
    assert r.status_code == 200
    last = np.array([g["score"] for g in r.json()["results"]])

    # the 300 shifted rows drift (p = 3e-16); diluted in the 5,300-row window they do not (p = 0.49)
    whole = _drift(client)
    assert whole["n_rows"] == whole["window_rows"] == 5300 and "detail" not in whole
    assert whole["drift"] is False and whole["p_value"] > 0.05
    recent = _drift(client, rows=300)
    assert recent["n_rows"] == 300 and recent["window_rows"] == 5300 and "detail" not in recent
    assert recent["drift"] is True and recent["p_value"] < 1e-6
    direct = score_drift(app.state.registry.get("m").model, last)  # the same test on the last 300 scores
    assert recent["p_value"] == pytest.approx(direct["p_value"])
    assert recent["score"]["distribution"]["statistic"] == pytest.approx(direct["distribution"]["statistic"])
    assert _gauge(client, "deepad_score_drift_p_value") == pytest.approx(recent["p_value"])
    assert _gauge(client, "deepad_score_drift") == 1.0
    assert _drift(client, rows=5300)["p_value"] == pytest.approx(whole["p_value"])

    more = _drift(client, rows=8000)  # more than the window holds: the test runs on what there is and says so
    assert more["n_rows"] == 5300 and more["p_value"] == pytest.approx(whole["p_value"])
    assert "rows=8000" in more["detail"] and "5300" in more["detail"]
    for bad in (MIN_DRIFT_ROWS - 1, 10_001, 0, "abc"):
        r = client.get("/v1/models/m/drift", params={"rows": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "rows"], (bad, r.text)

    few = client.get("/v1/models/other/drift", params={"rows": 200}).json()  # nothing scored: the answer as before
    assert few["drift"] is None and few["n_rows"] == 0 and few["min_rows"] == MIN_DRIFT_ROWS


def test_drift_parameters_in_the_openapi_document(root):
    spec = TestClient(create_app(root, reload_interval=0)).get("/openapi.json").json()
    op = spec["paths"]["/v1/models/{name}/drift"]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert set(params) == {"alpha", "tail_quantiles", "rows", "score_in_verdict"}
    assert all(p["description"] and not p["required"] for p in params.values())
    alpha = params["alpha"]["schema"]
    assert alpha["default"] == 0.05 and alpha["exclusiveMinimum"] == 0 and alpha["exclusiveMaximum"] == 1
    (rows,) = [s for s in params["rows"]["schema"]["anyOf"] if s["type"] == "integer"]
    assert rows["minimum"] == MIN_DRIFT_ROWS and rows["maximum"] == 10_000
    assert "gauge" in params["alpha"]["description"] and "0.9,0.99" in params["tail_quantiles"]["description"]
    assert "422" in op["responses"]


def test_score_window_keeps_the_last_scores_in_order():
    w = ScoreWindow(5, "v1")
    w.add(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(w.values(), [1, 2, 3])
    w.add(np.array([4.0, 5.0, 6.0, np.nan]))  # wraps; non-finite scores are not kept
    np.testing.assert_array_equal(w.values(), [2, 3, 4, 5, 6])
    w.add(np.arange(10.0, 17.0))  # more than the window at once
    np.testing.assert_array_equal(w.values(), [12, 13, 14, 15, 16])
    w.add(np.array([20.0]))
    np.testing.assert_array_equal(w.values(), [13, 14, 15, 16, 20])


def test_stream_rows_and_alarms_are_counted_but_kept_out_of_the_drift_window(tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app as cli

    rng = np.random.default_rng(0)
    t = pd.date_range("2024-01-01", periods=1400, freq="5min")
    v = np.sin(np.arange(1400) * 2 * np.pi / 144) + 0.05 * rng.normal(size=1400)
    v[1250:1255] += 3.0
    pd.DataFrame({"time": t[:1000], "cpu": v[:1000]}).to_csv(tmp_path / "hist.csv", index=False)
    params = '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}'
    res = CliRunner().invoke(
        cli,
        ["train", str(tmp_path / "hist.csv"), "-d", "ConformalKNN", "-o", str(tmp_path / "cpu"), "--params", params],
    )
    assert res.exit_code == 0, res.output
    client = TestClient(create_app(tmp_path / "cpu", reload_interval=0))
    live = [{"time": str(a), "cpu": float(b)} for a, b in zip(t[1000:], v[1000:])]
    r = client.post("/v1/models/cpu/stream", json=live)
    assert r.status_code == 200, r.text
    alarms = sum(g["alarm"] for g in r.json()["results"])
    assert alarms > 0
    s = _samples(client.get("/metrics").text)
    assert s[("deepad_rows_scored_total", (("model", "cpu"),))] == 400
    assert s[("deepad_rows_flagged_total", (("model", "cpu"),))] == alarms
    assert s[("deepad_requests_total", (("endpoint", "stream"), ("model", "cpu"), ("status", "200")))] == 1
    assert client.get("/v1/models/cpu/drift").json()["n_rows"] == 0


def test_a_new_version_starts_a_new_drift_window(tmp_path):
    _calibrated(1000, 0).save(tmp_path / "m")
    client = TestClient(create_app(tmp_path, reload_interval=0))
    assert client.post("/v1/models/m/score", json=_records(_table(300, 4))).status_code == 200
    old = client.get("/v1/models/m/drift").json()
    assert old["n_rows"] == 300 and old["drift"] is not None
    _calibrated(1000, 9).save(tmp_path / "m")
    assert client.post("/v1/models/m/reload").status_code == 200
    new = client.get("/v1/models/m/drift").json()
    assert new["version"] != old["version"] and new["n_rows"] == 0 and new["drift"] is None  # old scores dropped
    assert client.post("/v1/models/m/score", json=_records(_table(150, 5))).status_code == 200
    assert client.get("/v1/models/m/drift").json()["n_rows"] == 150


def test_in_sample_reference_gives_no_verdict_unless_asked(tmp_path):
    # uncalibrated PCA: its reference is its in-sample training scores, which new normal rows out-score
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(1000, 0)).save(tmp_path / "m")
    client = TestClient(create_app(tmp_path, reload_interval=0))
    shifted = _table(600, 13)
    shifted["b"] = shifted["b"] + 1.5
    assert client.post("/v1/models/m/score", json=_records(shifted)).status_code == 200
    r = client.get("/v1/models/m/drift").json()
    assert r["drift"] is None and r["p_value"] < 1e-6 and r["score"]["held_out"] is False
    assert "not held out" in r["detail"] and "recalibrate" in r["detail"]
    s = _samples(client.get("/metrics").text)
    assert np.isnan(s[("deepad_score_drift", (("model", "m"),))])
    assert s[("deepad_score_drift_p_value", (("model", "m"),))] == pytest.approx(r["p_value"])
    asked = client.get("/v1/models/m/drift", params={"score_in_verdict": "true"}).json()
    assert asked["drift"] is True and asked["p_value"] == r["p_value"] and "detail" not in asked
    assert _samples(client.get("/metrics").text)[("deepad_score_drift", (("model", "m"),))] == 1.0
