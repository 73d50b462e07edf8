"""`deepad serve`: a real Uvicorn server on a free loopback port, spoken to over HTTP with httpx.

Covers scoring (JSON records, column arrays, CSV, Parquet) against the
library's own scores, request validation (422 naming the field, never a
500), the body limit (413), API keys, generic 500s, several models, hot
reload under load, the CLI's refusal to listen publicly without a key, and
a bounded schemathesis run against the OpenAPI document.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import deepad  # noqa: E402
from deepad.detectors import AutoEncoder  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve import create_app  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402
from live_server import running_server  # noqa: E402

AE = dict(epochs=4, hidden_dims=(16, 8), latent_dim=4, batch_size=128)
KEY = "test-key-0123456789abcdef"


def train(seed: int = 0, n: int = 1500) -> TabularDetector:
    df = make_fraud_frame(n, seed=1).drop(columns=["is_fraud"])
    return TabularDetector(AutoEncoder(random_state=seed, **AE), contamination=0.02).fit(df)


@contextlib.contextmanager
def running(app):
    """Uvicorn in a thread on a free loopback port; yields the base URL."""
    with running_server(app) as (url, _):
        yield url


def records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    model = train(seed=0)
    model.save(root / "fraud")
    new = make_fraud_frame(300, seed=7, start_index=50_000)
    return {
        "root": root,
        "dir": root / "fraud",
        "model": deepad.load(root / "fraud"),
        "new": new,
        "X": new.drop(columns=["is_fraud"]),
    }


@pytest.fixture(scope="module")
def base(models):
    with running(create_app(models["dir"], reload_interval=0)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=60) as c:
        yield c


def scores_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([r["score"] for r in response.json()["results"]], dtype=np.float64)


# --------------------------------------------------------------------------- basics
def test_health_ready_and_model_info(client, models):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["models"]) == {"fraud"}
    info = client.get("/v1/model").json()
    m = models["model"]
    assert info["detector"] == "AutoEncoder" and info["pipeline"] == "TabularDetector"
    assert info["threshold"] == pytest.approx(float(m.threshold_), rel=0, abs=0)
    assert info["training_rows"] == len(m.decision_scores_)
    assert info["parameters"]["hidden_dims"] == [16, 8]
    assert {c["name"]: c["kind"] for c in info["input_columns"]} == m.schema_.kinds
    assert info["schema"]["columns"] == m.schema_.columns
    assert info["saved_with"].get("deepad") == deepad.__version__
    assert info["version"] == ready["models"]["fraud"]
    assert client.get("/v1/models/fraud").json()["version"] == info["version"]
    assert client.get("/v1/models").json()["models"][0]["name"] == "fraud"


def test_json_csv_and_parquet_scores_equal_the_library(client, models):
    m, X = models["model"], models["X"]
    expected = m.decision_function(X)
    r = client.post("/v1/score", json=records(X))
    got = scores_of(r)
    assert np.array_equal(got, expected)
    body = r.json()
    assert body["n"] == len(X) and body["model"] == "fraud"
    assert [x["is_anomaly"] for x in body["results"]] == list(m.predict(X).astype(bool))
    assert np.array_equal([x["p_value"] for x in body["results"]], m.p_values(X))
    assert body["n_anomalies"] == int(m.predict(X).sum())
    assert [x["ids"]["transaction_id"] for x in body["results"]] == list(X["transaction_id"])
    # the same rows as column arrays, as CSV, as Parquet, and through the per-model path
    columns = {c: [r[c] for r in records(X)] for c in X.columns}
    assert np.array_equal(scores_of(client.post("/v1/models/fraud/score", json={"columns": columns})), expected)
    csv = client.post("/v1/score", content=X.to_csv(index=False), headers={"content-type": "text/csv"})
    assert np.array_equal(scores_of(csv), expected)
    buf = io.BytesIO()
    X.to_parquet(buf, index=False)
    for ctype in ("application/vnd.apache.parquet", "application/octet-stream"):
        pq = client.post("/v1/score", content=buf.getvalue(), headers={"content-type": ctype})
        assert np.array_equal(scores_of(pq), expected)
    # one record alone scores as it does in a batch (no batch effects)
    one = client.post("/v1/score", json=records(X.iloc[[5]]))
    assert scores_of(one)[0] == expected[5]


def test_top_contributing_features(client, models):
    from deepad.explain import BULK_SHAPLEY, explain, top_feature_table

    m, X = models["model"], models["X"].iloc[:60]
    r = client.post("/v1/score", params={"explain": "all", "top": 2}, json=records(X))
    assert r.status_code == 200, r.text
    body = r.json()
    expected = top_feature_table(explain(m, X, **BULK_SHAPLEY), 2)
    assert body["explanation_method"] == "shapley"
    for got, want in zip(body["results"], expected):
        assert [(t["column"], t["attribution"]) for t in got["top_features"]] == [
            (c, pytest.approx(a)) for c, a in want
        ]
    flagged = client.post("/v1/score", params={"explain": "anomalies"}, json=records(models["X"])).json()
    assert flagged["n_anomalies"] > 0
    for res in flagged["results"]:
        assert (res["top_features"] is not None) == res["is_anomaly"]
        assert res["top_features"] is None or 1 <= len(res["top_features"]) <= 3  # negligible ones not listed
    assert "top_features" not in client.post("/v1/score", json=records(X)).json()["results"][0]
    for params in ({"top": 0}, {"explain": "some"}):
        assert client.post("/v1/score", params=params, json=records(X)).status_code == 422


def test_missing_values_and_unseen_categories_are_scored(client, models):
    X = models["X"].iloc[:3].copy()
    recs = records(X)
    recs[0]["amount"] = None
    recs[1]["merchant_category"] = "mcc_never_seen"
    r = client.post("/v1/score", json=recs)
    assert r.status_code == 200, r.text
    X.loc[X.index[0], "amount"] = np.nan
    X.loc[X.index[1], "merchant_category"] = "mcc_never_seen"
    assert np.array_equal(scores_of(r), models["model"].decision_function(X))
    assert any("mcc_never_seen" in n for n in r.json()["notes"])


def _detail(r, status=422):
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text and 'File "' not in r.text
    return r.json()["detail"]


def test_bad_records_get_422_naming_the_field(client, models):
    good = records(models["X"].iloc[:2])
    missing = [good[0], {k: v for k, v in good[1].items() if k != "amount"}]
    assert {"loc": ["body", 1, "amount"], "msg": "Field required", "type": "missing"} in _detail(
        client.post("/v1/score", json=missing)
    )
    wrong = [dict(good[0], amount="twelve", channel=True, customer_age="old")]
    locs = {tuple(d["loc"]) for d in _detail(client.post("/v1/score", json=wrong))}
    assert locs == {("body", 0, "amount"), ("body", 0, "channel"), ("body", 0, "customer_age")}
    extra = [dict(good[0], amountt=3.0)]
    assert _detail(client.post("/v1/score", json=extra))[0]["loc"] == ["body", 0, "amountt"]
    when = [good[0], dict(good[1], timestamp="yesterday")]
    d = _detail(client.post("/v1/score", json=when))
    assert d[0]["loc"] == ["body", 1, "timestamp"] and "yesterday" in d[0]["msg"]
    inf = [dict(good[0], amount=float("inf"))]
    r = client.post("/v1/score", content=json.dumps(inf), headers={"content-type": "application/json"})
    assert _detail(r)[0]["loc"] == ["body", 0, "amount"]
    # shapes that are not records at all
    for body in ([], 5, "text", [[1, 2]], {"rows": []}, {"columns": {"amount": [1.0]}}, [None]):
        _detail(client.post("/v1/score", json=body))
    _detail(client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"}))
    cols = {c: [r[c] for r in good] for c in good[0]}
    cols["amount"] = cols["amount"][:1]
    d = _detail(client.post("/v1/score", json={"columns": cols}))
    assert d[0]["loc"] == ["body", "columns", "amount"] and "same number" in d[0]["msg"]


def test_bad_files_and_media_types(client, models):
    X = models["X"].iloc[:20]
    d = _detail(
        client.post(
            "/v1/score", content=X.drop(columns=["amount"]).to_csv(index=False), headers={"content-type": "text/csv"}
        )
    )
    assert "amount" in d[0]["loc"] and "missing" in d[0]["msg"]
    bad = X.copy().astype({"amount": object})
    bad.loc[bad.index[3], "amount"] = "12,5"
    d = _detail(client.post("/v1/score", content=bad.to_csv(index=False), headers={"content-type": "text/csv"}))
    assert d[0]["loc"] == ["body", 3, "amount"] and "12,5" in d[0]["msg"]
    _detail(client.post("/v1/score", content=b"PAR1 not really", headers={"content-type": "application/octet-stream"}))
    _detail(client.post("/v1/score", content=b"\x00\x01garbage", headers={"content-type": "application/octet-stream"}))
    assert client.post("/v1/score", content=b"a,b", headers={"content-type": "text/plain"}).status_code == 415
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/score").status_code == 405


def test_unexpected_errors_are_a_generic_500(client, models, monkeypatch):
    import deepad.serve.app as app_module

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(app_module, "_score_body", boom)
    # one record is scored on the event loop, 200 in a pool thread: both end as the same generic 500
    for rows in (1, 200):
        r = client.post("/v1/score", json=records(models["X"].iloc[:rows]))
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error"}
        assert "secret" not in r.text and "Traceback" not in r.text


# --------------------------------------------------------------------------- limits and keys
@pytest.fixture(scope="module")
def secured(models):
    with running(create_app(models["dir"], api_key=KEY, max_body_bytes=20_000, reload_interval=0)) as url:
        yield url


def test_a_worker_scores_at_most_concurrency_requests_at_once(models, monkeypatch):
    """Requests beyond --concurrency wait for a slot (not a pool thread each): all answered, never two at once."""
    import deepad.serve.app as app_module

    inner, active, peak, lock = app_module._score_body, [0], [0], threading.Lock()

    def counted(*args):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.02)  # long enough for the other requests to arrive meanwhile
            return inner(*args)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(app_module, "_score_body", counted)
    body = records(models["X"].iloc[:100])  # above the inline size: scored in the pool
    with running(create_app(models["dir"], reload_interval=0, concurrency=1)) as url:
        with httpx.Client(base_url=url, timeout=60) as c, ThreadPoolExecutor(6) as ex:
            answers = list(ex.map(lambda _: c.post("/v1/score", json=body), range(12)))
    assert [r.status_code for r in answers] == [200] * 12
    assert all(r.json()["n"] == 100 for r in answers)
    assert peak[0] == 1


def test_api_key_and_body_limit(secured, models):
    one = records(models["X"].iloc[:1])
    with httpx.Client(base_url=secured, timeout=60) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}):
            r = c.post("/v1/score", json=one, headers=headers)
            assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/v1/model").status_code == 401
        auth = {"X-API-Key": KEY}
        assert c.post("/v1/score", json=one, headers=auth).status_code == 200
        spec = c.get("/openapi.json", headers=auth).json()
        assert spec["components"]["securitySchemes"]["APIKey"]["name"] == "X-API-Key"
        big = records(models["X"])  # ~80 kB of JSON
        r = c.post("/v1/score", json=big, headers=auth)
        assert r.status_code == 413 and "limit" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit is enforced while reading
            data = json.dumps(big).encode()
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = c.post("/v1/score", content=chunks(), headers={**auth, "content-type": "application/json"})
        assert r.status_code == 413


def test_cli_refuses_a_public_host_without_a_key(models, monkeypatch):
    from typer.testing import CliRunner

    from deepad.cli import app
    from deepad.serve.app import check_bind

    result = CliRunner().invoke(app, ["serve", str(models["dir"]), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "API key" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("SHORT_KEY", "abc")
    result = CliRunner().invoke(app, ["serve", str(models["dir"]), "--api-key-env", "SHORT_KEY"])
    assert result.exit_code == 2 and "at least 16" in result.output
    result = CliRunner().invoke(app, ["serve", str(models["dir"]), "--api-key-env", "UNSET_VAR_FOR_TEST"])
    assert result.exit_code == 2 and "UNSET_VAR_FOR_TEST" in result.output
    check_bind("127.0.0.1", None, False)
    check_bind("::1", None, False)
    check_bind("0.0.0.0", KEY, False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="API key"):
        check_bind("192.168.1.5", None, False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_deepad_serve_command_in_a_subprocess(models, workers):
    """The real command line: worker process(es), an API key from the environment, SIGTERM to stop."""
    port = _free_port()
    env = {**os.environ, "DEEPAD_TEST_KEY": KEY, "DEEPAD_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepad.cli",
            "serve",
            str(models["dir"]),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--api-key-env",
            "DEEPAD_TEST_KEY",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        # spawned workers import and load the models before answering: minutes on a loaded 2-core machine
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "deepad serve did not become ready"
            time.sleep(0.3)
        X = models["X"].iloc[:50]
        r = httpx.post(f"{url}/v1/score", json=records(X), headers={"X-API-Key": KEY}, timeout=60)
        assert np.array_equal(scores_of(r), models["model"].decision_function(X))
        assert httpx.post(f"{url}/v1/score", json=records(X), timeout=60).status_code == 401
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out


# --------------------------------------------------------------------------- several models, hot reload
def test_several_models_and_hot_reload_without_dropped_requests(models, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(models["dir"], root / "fraud")
    shutil.copytree(models["dir"], root / "fraud-b")
    (root / "notes").mkdir()  # not a model: skipped
    X = models["X"].iloc[:40]
    payload = records(X)
    new_model = train(seed=1)
    with running(create_app(root, reload_interval=0.2)) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert sorted(m["name"] for m in c.get("/v1/models").json()["models"]) == ["fraud", "fraud-b"]
        assert c.post("/v1/score", json=payload).status_code == 404  # several models: name one
        old_version = c.get("/v1/models/fraud").json()["version"]
        assert np.array_equal(
            scores_of(c.post("/v1/models/fraud-b/score", json=payload)), models["model"].decision_function(X)
        )
        assert c.post("/v1/models/fraud/reload").json()["reloaded"] is False  # unchanged on disk

        stop = threading.Event()
        statuses, versions = [], set()

        def hammer():
            with httpx.Client(base_url=url, timeout=60) as h:
                while not stop.is_set():
                    r = h.post("/v1/models/fraud/score", json=payload)
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        versions.add(r.json()["version"])

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(hammer) for _ in range(3)]
            time.sleep(0.5)
            new_model.save(root / "fraud")  # atomic directory swap; the watcher picks it up
            deadline = time.monotonic() + 30
            while c.get("/v1/models/fraud").json()["version"] == old_version:
                assert time.monotonic() < deadline, "the watcher did not reload the new version"
                time.sleep(0.1)
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result()
        assert statuses and set(statuses) == {200}, f"{len(statuses)} requests, statuses {set(statuses)}"
        new_version = c.get("/v1/models/fraud").json()["version"]
        assert versions == {old_version, new_version}
        assert np.array_equal(scores_of(c.post("/v1/models/fraud/score", json=payload)), new_model.decision_function(X))
        # the other model is untouched; an explicit reload of a damaged version keeps the old one
        assert c.get("/v1/models/fraud-b").json()["version"] == old_version
        (root / "fraud-b" / "model.json").write_text("{ damaged")
        r = c.post("/v1/models/fraud-b/reload")
        assert r.status_code == 409 and old_version in r.json()["detail"]
        assert c.get("/v1/models/fraud-b").json()["last_reload_error"]
        assert np.array_equal(
            scores_of(c.post("/v1/models/fraud-b/score", json=payload)), models["model"].decision_function(X)
        )


# --------------------------------------------------------------------------- schemathesis
def test_openapi_fuzzing_finds_no_server_errors(base):
    """Schemathesis-generated requests for every operation of the OpenAPI document: never a 5xx, and every
    response matches its documented status codes and schema.  Bounded: a few examples per operation."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/v1/score", "/v1/models/fraud/score", "/v1/model", "/healthz"} <= paths
    statuses: dict[tuple[str, str], list[int]] = {}
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        for op in operations:
            many = op.path.endswith("/score")
            if mode == schemathesis.GenerationMode.NEGATIVE and not (many or op.path.endswith("/reload")):
                continue  # nothing to make invalid: no body, no parameters
            seen = statuses.setdefault((mode.value, op.label), [])

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=20 if many else 3,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                seen.append(case.call_and_validate(checks=checks).status_code)

            check()
    assert all(code < 500 for codes in statuses.values() for code in codes)
    # the generated valid bodies really were scored, and the invalid ones refused
    assert 200 in statuses[("positive", "POST /v1/score")], statuses
    assert 422 in statuses[("negative", "POST /v1/score")], statuses


# --------------------------------------------------------------------------- live streams for series models
@pytest.fixture(scope="module")
def series_model(tmp_path_factory):
    from typer.testing import CliRunner

    from deepad.cli import app as cli

    root = tmp_path_factory.mktemp("serve_series")
    rng = np.random.default_rng(0)
    t = pd.date_range("2024-01-01", periods=1400, freq="5min")
    v = np.sin(np.arange(1400) * 2 * np.pi / 144) + 0.05 * rng.normal(size=1400)
    v[1250:1255] += 3.0
    pd.DataFrame({"time": t[:1000], "cpu": v[:1000]}).to_csv(root / "hist.csv", index=False)
    res = CliRunner().invoke(
        cli,
        [
            "train",
            str(root / "hist.csv"),
            "-d",
            "ConformalKNN",
            "-o",
            str(root / "cpu"),
            "--params",
            '{"window": 8, "coarse_chunks": 4, "coarse_width": 8}',
        ],
    )
    assert res.exit_code == 0, res.output
    live = [{"time": str(a), "cpu": float(b)} for a, b in zip(t[1000:], v[1000:])]
    return {"dir": root / "cpu", "model": deepad.load(root / "cpu"), "live": live, "values": v[1000:]}


def test_stream_endpoint_keeps_history_across_requests(series_model):
    from deepad.stream import StreamScorer

    live = series_model["live"]
    expected = StreamScorer(series_model["model"], threshold="fixed").update(series_model["values"].reshape(-1, 1))
    with running(create_app(series_model["dir"], reload_interval=0)) as url, httpx.Client(base_url=url) as c:
        got = []
        for start, stop in ((0, 1), (1, 150), (150, 400)):  # one point, then batches: the history carries over
            r = c.post("/v1/models/cpu/stream", json=live[start:stop])
            assert r.status_code == 200, r.text
            got += r.json()["results"]
        assert r.json()["n_seen"] == 400 and got[0]["timestamp"] == live[0]["time"]  # the timestamp comes back
        np.testing.assert_allclose([g["score"] for g in got], expected.scores)
        # the live stream starts after the training series the model keeps, not cold (issue 21)
        cold = StreamScorer(series_model["model"], threshold="fixed", history=None).update(
            series_model["values"][:8, None]
        )
        assert not np.allclose([g["score"] for g in got[:8]], cold.scores)
        assert [g["alert"] for g in got] == expected.alerts.tolist() and any(g["alert"] for g in got[250:256])
        # out of order: 422 naming row and field; nothing of that request is scored
        r = c.post("/v1/models/cpu/stream", json=[live[10]])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 0, "time"]
        assert "rows must arrive in time order" in r.json()["detail"][0]["msg"]
        assert (
            c.post("/v1/models/cpu/stream", json=[{"time": "2030-01-01 00:00:00", "cpu": 0.0}]).json()["n_seen"] == 401
        )
        # reset: back to the training state, with alert suppression
        r = c.post("/v1/models/cpu/stream/reset", params={"refractory": 16, "rearm": 64})
        assert r.status_code == 200 and r.json()["rearm"] == 64
        r = c.post("/v1/models/cpu/stream", json=live[:400])
        assert r.json()["n_seen"] == 400 and r.json()["rearm"] == 64
        assert sum(g["alert"] for g in r.json()["results"]) <= sum(expected.alerts)
        # /score says what it did with a series
        assert "use .../stream" in c.post("/v1/models/cpu/score", json=live[:3]).json()["notes"][0]


def test_stream_restarts_on_hot_reload(series_model, tmp_path):
    shutil.copytree(series_model["dir"], tmp_path / "cpu")
    with running(create_app(tmp_path / "cpu", reload_interval=0)) as url, httpx.Client(base_url=url) as c:
        assert c.post("/v1/models/cpu/stream", json=series_model["live"][:50]).json()["n_seen"] == 50
        newer = deepad.load(tmp_path / "cpu")
        newer.threshold_ = 0.25
        newer.save(tmp_path / "cpu")
        assert c.post("/v1/models/cpu/reload").json()["reloaded"]
        r = c.post("/v1/models/cpu/stream", json=series_model["live"][:5]).json()
        assert r["n_seen"] == 5 and "stream restarted" in r["notes"][0] and r["results"][0]["threshold"] == 0.25


def test_stream_endpoint_refuses_without_one_process_and_for_tables(series_model, models):
    with running(create_app(series_model["dir"], reload_interval=0, streams=False)) as url:
        r = httpx.post(f"{url}/v1/models/cpu/stream", json=series_model["live"][:2])
        assert r.status_code == 409 and "--workers 1" in r.json()["detail"]
    with running(create_app(models["dir"], reload_interval=0)) as url:
        assert httpx.post(f"{url}/v1/models/fraud/stream", json=[{}]).status_code == 404  # no stream for a table


def test_stream_openapi_fuzzing_finds_no_server_errors(series_model):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    with running(create_app(series_model["dir"], reload_interval=0)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        ops = [r.ok() for r in schema.get_all_operations() if "/stream" in r.ok().path]
        assert {op.path for op in ops} == {"/v1/models/cpu/stream", "/v1/models/cpu/stream/reset"}
        codes = []
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            for op in ops:

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=15,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def check(case):
                    codes.append(
                        case.call_and_validate(
                            checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
                        ).status_code
                    )

                check()
        assert codes and all(c < 500 for c in codes) and 200 in codes and 422 in codes
