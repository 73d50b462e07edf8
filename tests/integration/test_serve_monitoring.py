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


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(3000, 0)).save(root / "m")
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(3000, 1)).save(root / "other")
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
    )  # p = 0.79 (seed 11: p = 0.027, a 1-in-40 draw)
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
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(1000, 0)).save(tmp_path / "m")
    client = TestClient(create_app(tmp_path, reload_interval=0))
    assert client.post("/v1/models/m/score", json=_records(_table(300, 4))).status_code == 200
    old = client.get("/v1/models/m/drift").json()
    assert old["n_rows"] == 300 and old["drift"] is not None
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(1000, 9)).save(tmp_path / "m")
    assert client.post("/v1/models/m/reload").status_code == 200
    new = client.get("/v1/models/m/drift").json()
    assert new["version"] != old["version"] and new["n_rows"] == 0 and new["drift"] is None  # old scores dropped
    assert client.post("/v1/models/m/score", json=_records(_table(150, 5))).status_code == 200
    assert client.get("/v1/models/m/drift").json()["n_rows"] == 150
