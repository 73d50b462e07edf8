"""`deepad serve` under abuse: request limits, timeouts, error answers and what reaches the client (issue 15).

Every test speaks to a real service: a Uvicorn server in a thread on a free loopback port (raw sockets where
the point is what happens on the connection), or Starlette's TestClient where only the answer matters.
Models are small (TabularDetector(KNN) on 300 rows; a ConformalKNN series model) so each test takes well
under a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import socket
import time

import numpy as np
import pandas as pd
import pytest

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import deepad  # noqa: E402
import deepad.serve.app as app_module  # noqa: E402
from deepad.detectors import KNN  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.serve import create_app  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402
from live_server import running_server  # noqa: E402

KEY = "test-key-0123456789abcdef"


# --------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from typer.testing import CliRunner

    from deepad.cli import app as cli

    root = tmp_path_factory.mktemp("abuse")
    train = make_fraud_frame(300, seed=1).drop(columns=["is_fraud"])
    TabularDetector(KNN(n_neighbors=5), contamination=0.02).fit(train).save(root / "fraud")
    rng = np.random.default_rng(0)
    t = pd.date_range("2024-01-01", periods=500, freq="5min")
    v = np.sin(np.arange(500) * 2 * np.pi / 144) + 0.05 * rng.normal(size=500)
    pd.DataFrame({"time": t[:400], "cpu": v[:400]}).to_csv(root / "hist.csv", index=False)
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
    X = make_fraud_frame(60, seed=7, start_index=50_000).drop(columns=["is_fraud"])
    live = [{"time": str(a), "cpu": float(b)} for a, b in zip(t[400:], v[400:])]
    return {
        "root": root,
        "fraud": root / "fraud",
        "cpu": root / "cpu",
        "X": X,
        "live": live,
        "model": deepad.load(root / "fraud"),
    }


running = running_server  # Uvicorn in a thread; yields (base URL, port)


def client_for(app):
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def parquet_bytes(df: pd.DataFrame, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf, **kwargs)
    return buf.getvalue()


def recv_all(sock: socket.socket, timeout: float) -> bytes:
    """Read until the peer closes or ``timeout`` passes without data; what arrived."""
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(socket.timeout, ConnectionResetError):
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    return out


def recv_response(sock: socket.socket, timeout: float = 10) -> bytes:
    """One HTTP/1.1 response with a Content-Length (head and body); b'' if the connection was closed."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except ConnectionResetError:
        return data


def http_request(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# --------------------------------------------------------------------------- 1. rows and decompressed size
def test_parquet_row_limit_is_checked_from_the_metadata_before_reading(models, monkeypatch):
    """A few KB of Parquet that would decompress to 200,001 rows: 413 naming max_rows, data never read."""
    X = models["X"]
    bomb = parquet_bytes(X.iloc[np.zeros(200_001, dtype=int)].reset_index(drop=True), compression="zstd")
    assert len(bomb) < 200_000  # tiny on the wire
    c = client_for(create_app(models["fraud"], reload_interval=0))  # the default limit: 100,000 rows

    def no_reading(*args, **kwargs):
        raise AssertionError("the Parquet data was read before the limits were checked")

    with monkeypatch.context() as m:
        m.setattr(pq, "read_table", no_reading)
        m.setattr(pq.ParquetFile, "read", no_reading)
        m.setattr(pq.ParquetFile, "iter_batches", no_reading)
        r = c.post("/v1/models/fraud/score", content=bomb, headers={"content-type": "application/vnd.apache.parquet"})
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "200,001 rows" in detail and "100,000" in detail and "max_rows" in detail
    # under the limit the same kind of body scores, with the library's scores
    ok = c.post(
        "/v1/models/fraud/score", content=parquet_bytes(X), headers={"content-type": "application/octet-stream"}
    )
    assert ok.status_code == 200, ok.text
    assert np.array_equal([x["score"] for x in ok.json()["results"]], models["model"].decision_function(X))


def test_parquet_decompressed_size_limit(models, monkeypatch):
    X = pd.concat([models["X"]] * 50, ignore_index=True)  # 3,000 rows
    c = client_for(create_app(models["fraud"], reload_interval=0, max_decompressed_bytes=1_000_000))
    ptype = {"content-type": "application/vnd.apache.parquet"}
    # distinct 1 kB texts, plain-encoded: 3 MB uncompressed per the column chunks' metadata, ~100 kB compressed
    wide = X.assign(merchant_id=[f"{i:06d}" + "m" * 1000 for i in range(len(X))])
    body = parquet_bytes(wide, compression="zstd", use_dictionary=False)
    assert len(body) < 300_000
    with monkeypatch.context() as m:
        m.setattr(pq, "read_table", lambda *a, **k: pytest.fail("read before the metadata check"))
        r = c.post("/v1/models/fraud/score", content=body, headers=ptype)
    assert r.status_code == 413, r.text
    assert "1,000,000" in r.json()["detail"] and "max_decompressed_bytes" in r.json()["detail"]
    # one 10 kB text repeated: dictionary-encoded, a few kB even uncompressed in the metadata, but 30 MB
    # as a plain column: refused while still dictionary-encoded, not expanded first
    same = X.assign(merchant_id="m" * 10_000)
    body = parquet_bytes(same, compression="zstd")
    assert len(body) < 100_000
    assert (
        sum(
            pq.ParquetFile(io.BytesIO(body)).metadata.row_group(0).column(j).total_uncompressed_size
            for j in range(X.shape[1])
        )
        < 1_000_000
    )
    r = c.post("/v1/models/fraud/score", content=body, headers=ptype)
    assert r.status_code == 413, r.text
    assert "max_decompressed_bytes" in r.json()["detail"]
    # a normal body still scores
    assert c.post("/v1/models/fraud/score", content=parquet_bytes(X.iloc[:100]), headers=ptype).status_code == 200


def test_row_limit_applies_to_json_csv_and_streams(models):
    X = models["X"]
    c = client_for(create_app(models["root"], reload_interval=0, max_rows=50))
    url = "/v1/models/fraud/score"
    assert c.post(url, json=records(X.iloc[:50])).status_code == 200
    for r in (
        c.post(url, json=records(X.iloc[:51])),
        c.post(url, json={"columns": {k: [row[k] for row in records(X.iloc[:51])] for k in X.columns}}),
        c.post(url, content=X.iloc[:51].to_csv(index=False), headers={"content-type": "text/csv"}),
        c.post(url, content=parquet_bytes(X.iloc[:51]), headers={"content-type": "application/octet-stream"}),
        c.post("/v1/models/cpu/stream", json=models["live"][:51]),
    ):
        assert r.status_code == 413, r.text
        assert "51 rows" in r.json()["detail"] and "limit is 50" in r.json()["detail"], r.text
    assert c.post(url, content=X.iloc[:50].to_csv(index=False), headers={"content-type": "text/csv"}).status_code == 200
    assert c.post("/v1/models/cpu/stream", json=models["live"][:50]).json()["n_seen"] == 50
    # a CSV whose quoted values hold newlines is counted in rows, not lines
    quoted = X.iloc[:20].assign(merchant_id="a\nb\nc")
    assert c.post(url, content=quoted.to_csv(index=False), headers={"content-type": "text/csv"}).status_code == 200
    with pytest.raises(ValueError, match="max_rows"):
        create_app(models["fraud"], reload_interval=0, max_rows=0)


def test_serve_config_carries_the_limits_to_worker_processes(models, monkeypatch):
    cfg = app_module.ServeConfig(
        models=str(models["fraud"]),
        max_rows=7,
        max_decompressed_bytes=12_345,
        body_timeout=3.5,
        header_timeout=4.5,
        keep_alive_timeout=2.5,
        workers=2,
        reload_interval=0,
    )
    seen = {}
    real = app_module.create_app

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "create_app", spy)
    monkeypatch.setattr(app_module.HeaderTimeoutH11Protocol, "header_timeout", 30.0)  # restored afterwards
    monkeypatch.setenv(app_module._ENV_CONFIG, json.dumps(app_module.asdict(cfg)))
    app_module._app_from_env()
    assert (seen["max_rows"], seen["max_decompressed_bytes"], seen["body_timeout"]) == (7, 12_345, 3.5)
    assert app_module.HeaderTimeoutH11Protocol.header_timeout == 4.5  # set for this worker process by the factory
    monkeypatch.setattr(app_module.HeaderTimeoutH11Protocol, "header_timeout", 30.0)
    opts = app_module.uvicorn_options(cfg)
    assert opts["timeout_keep_alive"] == 2.5 and opts["http"] is app_module.HeaderTimeoutH11Protocol
    assert app_module.HeaderTimeoutH11Protocol.header_timeout == 4.5
    with pytest.raises(ValueError, match="--max-rows"):
        app_module._check_limits(app_module.ServeConfig(models="m", max_rows=0))
    with pytest.raises(ValueError, match="--body-timeout"):
        app_module._check_limits(app_module.ServeConfig(models="m", body_timeout=0))
    d = app_module.ServeConfig(models="m")
    assert (d.max_rows, d.max_decompressed_bytes, d.body_timeout) == (100_000, 256 * 1024 * 1024, 30.0)
    assert (d.header_timeout, d.keep_alive_timeout) == (30.0, 5.0)


# --------------------------------------------------------------------------- 2. mixed time zones in a stream
def test_stream_mixed_naive_and_aware_timestamps_is_a_422_naming_the_row(models):
    c = client_for(create_app(models["cpu"], reload_interval=0))
    a, b = models["live"][:2]
    r = c.post("/v1/models/cpu/stream", json=[a, dict(b, time=b["time"] + "+00:00")])
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    # deepad stream says "line N: Cannot compare tz-naive and tz-aware timestamps" for the same rows
    assert d["loc"] == ["body", 1, "time"] and "Cannot compare tz-naive and tz-aware timestamps" in d["msg"]
    # nothing of that request was scored; the clock did not move
    r = c.post("/v1/models/cpu/stream", json=[a])
    assert r.status_code == 200 and r.json()["n_seen"] == 1
    r = c.post("/v1/models/cpu/stream", json=[dict(b, time="2024-01-02T10:05:00Z")])  # aware after naive
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 0, "time"]
    assert c.post("/v1/models/cpu/stream", json=[b]).json()["n_seen"] == 2


# --------------------------------------------------------------------------- 3. a 500 keeps the connection
def test_internal_error_leaves_the_keep_alive_connection_usable(models, monkeypatch):
    one = records(models["X"].iloc[:1])
    with running(create_app(models["fraud"], reload_interval=0)) as (url, port):
        with httpx.Client(base_url=url, timeout=30) as c:
            first = c.post("/v1/models/fraud/score", json=one)
            assert first.status_code == 200
            local = first.extensions["network_stream"].get_extra_info("socket").getsockname()
            with monkeypatch.context() as m:
                m.setattr(app_module, "_score_body", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom /etc")))
                r = c.post("/v1/models/fraud/score", json=one)
            assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
            assert r.headers.get("connection", "").lower() != "close"
            time.sleep(0.2)  # give a server that drops the connection time to do it
            again = c.post("/v1/models/fraud/score", json=one)
            assert again.status_code == 200, again.text
            # the same TCP connection served all three requests
            assert again.extensions["network_stream"].get_extra_info("socket").getsockname() == local
        # and on a raw socket: the next request on the connection is answered, not reset
        monkeypatch.setattr(app_module, "_score_body", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(http_request("/v1/models/fraud/score", json.dumps(one).encode()))
            assert recv_response(s).startswith(b"HTTP/1.1 500")
            time.sleep(0.2)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert recv_response(s).startswith(b"HTTP/1.1 200")


def test_500_is_documented(models):
    spec = client_for(create_app(models["fraud"], reload_interval=0)).get("/openapi.json").json()
    assert "500" in spec["paths"]["/v1/models/fraud/score"]["post"]["responses"]


# --------------------------------------------------------------------------- 4. wide CSV header
def test_csv_header_over_one_mib_is_read(models):
    X = models["X"].iloc[:10]
    wide = X.assign(**{"n" * ((1 << 20) + 500): 1.0})  # one extra column with a name over 1 MiB
    c = client_for(create_app(models["fraud"], reload_interval=0))
    r = c.post("/v1/models/fraud/score", content=wide.to_csv(index=False), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text[:500]
    assert np.array_equal([x["score"] for x in r.json()["results"]], models["model"].decision_function(X))
    assert "ignored 1 column(s)" in r.json()["notes"][0]
    # a value over 1 MiB in a data row too
    long = X.astype({"merchant_id": object}).assign(merchant_id="M" * ((1 << 20) + 500))
    r = c.post("/v1/models/fraud/score", content=long.to_csv(index=False), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text[:500]
    # an empty body is a clear error, not "Empty CSV file"
    r = c.post("/v1/models/fraud/score", content=b"", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "empty" in r.json()["detail"][0]["msg"]


# --------------------------------------------------------------------------- 5. no server paths to clients
def test_reload_errors_do_not_show_server_paths(models, tmp_path, caplog):
    root = tmp_path / "served"
    root.mkdir()
    shutil.copytree(models["fraud"], root / "fraud")
    c = client_for(create_app(root, reload_interval=0))
    (root / "fraud" / "model.json").write_text("{ damaged")
    with caplog.at_level(logging.INFO, logger="deepad.serve"):
        r = c.post("/v1/models/fraud/reload")
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    info = c.get("/v1/models/fraud").json()["last_reload_error"]
    for text in (detail, info):
        assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text and "/served/" not in text, text
        assert "fraud/model.json" in text or "fraud" in text
    assert "still serving version" in detail
    # the server log keeps the full text
    assert any(str(root) in rec.getMessage() or str(root.resolve()) in rec.getMessage() for rec in caplog.records)


def test_client_text_strips_every_absolute_path():
    from pathlib import Path

    text = app_module._client_text(
        "cannot read /srv/models/fraud/weights.safetensors: see /tmp/x/y.log and '/srv/models/fraud/model.json'",
        "fraud",
        Path("/srv/models/fraud"),
    )
    assert "/srv" not in text and "/tmp" not in text
    assert "fraud/weights.safetensors" in text and "y.log" in text and "'fraud/model.json'" in text


# --------------------------------------------------------------------------- 6. slow bodies and headers
def test_slow_body_gets_408_and_the_connection_is_closed(models):
    with running(create_app(models["fraud"], reload_interval=0, body_timeout=0.5)) as (_, port):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /v1/models/fraud/score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"amount"'
            )
            t0 = time.monotonic()
            answer = recv_all(s, timeout=5)
            took = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"body timeout" in answer and b"0.5 s" in answer
        assert b"connection: close" in answer.lower()
        assert took < 4


def test_slow_headers_and_idle_trickle_are_cut_off(models):
    protocol = type("FastHeaderTimeout", (app_module.HeaderTimeoutH11Protocol,), {"header_timeout": 0.5})
    app = create_app(models["fraud"], reload_interval=0)
    with running(app, http=protocol, timeout_keep_alive=5) as (_, port):
        with socket.create_connection(("127.0.0.1", port)) as s:  # half a request head, then nothing
            s.sendall(b"POST /v1/models/fraud/score HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            t0 = time.monotonic()
            assert recv_all(s, timeout=5) == b""  # closed by the server, no answer
            assert time.monotonic() - t0 < 4
        with socket.create_connection(("127.0.0.1", port)) as s:  # a head sent one byte at a time
            t0 = time.monotonic()
            s.settimeout(0.2)
            closed = False
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n":
                try:
                    s.sendall(bytes([byte]))
                    if s.recv(1) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            assert closed and time.monotonic() - t0 < 4
        with socket.create_connection(("127.0.0.1", port)) as s:  # after a full answer, the next head trickles
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert recv_response(s).startswith(b"HTTP/1.1 200")
            s.sendall(b"G")
            assert recv_all(s, timeout=5) == b""
        with socket.create_connection(("127.0.0.1", port)) as s:  # a prompt client is not affected
            for _ in range(3):
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert recv_response(s).startswith(b"HTTP/1.1 200")
                time.sleep(0.3)


# --------------------------------------------------------------------------- 7. disconnects log one line
def test_client_disconnect_is_one_log_line_without_traceback(models, caplog):
    caplog.set_level(logging.INFO)
    with running(create_app(models["fraud"], reload_interval=0)) as (_, port):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /v1/models/fraud/score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n[{"amount": 1'
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while not any("disconnected" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
        time.sleep(0.2)
    ours = [r for r in caplog.records if r.name.startswith("deepad")]
    gone = [r for r in ours if "disconnected" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno in (logging.INFO, logging.WARNING)
    assert "/v1/models/fraud/score" in gone[0].getMessage()
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records if r.exc_info]
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


# --------------------------------------------------------------------------- 8. blank API keys
@pytest.mark.parametrize("value", ["", "   ", " " * 20, "\t\n" * 10])
def test_blank_api_keys_are_refused(value, monkeypatch):
    monkeypatch.setenv("BLANK_KEY", value)
    with pytest.raises(ValueError, match="BLANK_KEY"):
        app_module._api_key("BLANK_KEY")
    with pytest.raises(ValueError, match="API key"):
        app_module.check_bind("0.0.0.0", value, False)


def test_keys_with_surrounding_whitespace_and_blank_keys_in_create_app(models, monkeypatch):
    monkeypatch.setenv("PADDED_KEY", f" {KEY} ")
    with pytest.raises(ValueError, match="whitespace"):
        app_module._api_key("PADDED_KEY")
    for bad in ("   ", "", f"{KEY}\n"):
        with pytest.raises(ValueError, match="API key"):
            create_app(models["fraud"], api_key=bad, reload_interval=0)


def test_cli_refuses_an_all_space_key_at_start_up(models, monkeypatch):
    from typer.testing import CliRunner

    from deepad.cli import app as cli

    def no_server(*args, **kwargs):
        raise AssertionError("the server started with a blank API key")

    monkeypatch.setattr(uvicorn, "run", no_server)
    monkeypatch.setenv("SPACES_KEY", " " * 24)
    result = CliRunner().invoke(cli, ["serve", str(models["fraud"]), "--api-key-env", "SPACES_KEY"])
    assert result.exit_code == 2, result.output
    assert "SPACES_KEY" in result.output and "whitespace" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------- 9. OpenAPI matches the answers
def test_openapi_documents_the_answers_schemathesis_flagged(models):
    """The ST202 cases (a schema-valid request rejected): explain on a model that cannot explain, free-text
    stream timestamps, an empty text/csv body.  Each answer's status is documented for its route, and the
    document no longer describes the request as valid."""
    c = client_for(create_app(models["root"], reload_interval=0))
    spec = c.get("/openapi.json").json()
    paths = spec["paths"]

    def documented(path: str, r) -> None:
        assert str(r.status_code) in paths[path]["post"]["responses"], (path, r.status_code, r.text)

    # explain on ConformalKNN (a series detector with no training record to explain against)
    r = c.post("/v1/models/cpu/score", params={"explain": "all"}, json=models["live"][:20])
    assert r.status_code == 422
    documented("/v1/models/cpu/score", r)
    param = next(p for p in paths["/v1/models/cpu/score"]["post"]["parameters"] if p["name"] == "explain")
    assert param["schema"]["enum"] == ["none"], param
    fraud = next(p for p in paths["/v1/models/fraud/score"]["post"]["parameters"] if p["name"] == "explain")
    assert set(fraud["schema"]["enum"]) == {"none", "anomalies", "all"}

    # a stream timestamp that is not a date
    r = c.post("/v1/models/cpu/stream", json=[{"time": "hello", "cpu": 0.5}])
    assert r.status_code == 422 and "not a date" in r.json()["detail"][0]["msg"]
    documented("/v1/models/cpu/stream", r)
    body = paths["/v1/models/cpu/stream"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    item = body["items"]
    if "$ref" in item:
        item = spec["components"]["schemas"][item["$ref"].rsplit("/", 1)[1]]
    ts = item["properties"]["time"]
    assert any(b.get("format") == "date-time" for b in ts.get("anyOf", [ts])), ts
    assert not any(b.get("type") == "string" and "format" not in b for b in ts.get("anyOf", [ts])), ts
    assert body.get("maxItems") == 100_000

    # an empty text/csv body
    for path in ("/v1/models/fraud/score", "/v1/models/cpu/score"):
        r = c.post(path, content=b"", headers={"content-type": "text/csv"})
        assert r.status_code == 422
        documented(path, r)
        csv = paths[path]["post"]["requestBody"]["content"]["text/csv"]["schema"]
        assert csv.get("minLength", 0) >= 1, csv
    # the limits' answers are documented too
    for code in ("408", "413", "415", "422", "500"):
        assert code in paths["/v1/models/fraud/score"]["post"]["responses"]
        assert code in paths["/v1/models/cpu/stream"]["post"]["responses"]


# --------------------------------------------------------------------------- 10. the CLI passes the limits on
def test_cli_serve_passes_the_limits_and_timeouts_to_the_server(models, monkeypatch):
    from typer.testing import CliRunner

    from deepad.cli import app as cli

    got = []
    # `deepad serve` imports `serve` from deepad.serve.app when it runs (as run_server): patch it there
    monkeypatch.setattr(app_module, "serve", got.append)
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            str(models["fraud"]),
            "--max-rows",
            "7",
            "--max-decompressed-mb",
            "1",
            "--body-timeout",
            "3",
            "--header-timeout",
            "4",
            "--keep-alive-timeout",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(got) == 1 and isinstance(got[0], app_module.ServeConfig)
    cfg = got[0]
    assert (cfg.max_rows, cfg.max_decompressed_bytes) == (7, 1_048_576)
    assert (cfg.body_timeout, cfg.header_timeout, cfg.keep_alive_timeout) == (3.0, 4.0, 2.0)
    assert cfg.models == str(models["fraud"])
