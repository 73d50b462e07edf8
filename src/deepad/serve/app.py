"""The scoring service: a FastAPI application over a :class:`~deepad.serve.registry.ModelRegistry`.

Endpoints (``{name}`` is a served model; see ``docs/serving.md``):

``POST /v1/models/{name}/score``
    Score rows.  Body: a JSON array of records, a JSON object
    ``{"columns": {column: [values]}}``, CSV (``text/csv``, header line
    first) or Parquet (``application/vnd.apache.parquet`` or
    ``application/octet-stream``).  Answer: one result per row, in order,
    with ``score`` (higher = more anomalous), ``p_value`` (conformal, against
    the training scores) and ``is_anomaly`` (score above the model's
    threshold), plus ``ids`` when the model has id columns and the request
    sends them.
``POST /v1/models/{name}/stream``, ``POST /v1/models/{name}/stream/reset``
    Time-series models only: feed JSON records, in time order, to the
    model's live stream (the history carries over between requests); the
    answer per row is ``score``, ``threshold``, ``alarm`` and ``alert``, as
    ``deepad stream`` prints them.  ``reset`` restarts it (``?refractory=``,
    ``?rearm=``).  See :mod:`deepad.serve.streams`.
``GET /v1/models/{name}``, ``GET /v1/models``
    Detector, parameters, input schema, threshold, versions.
``POST /v1/models/{name}/reload``
    Load the model directory again if it changed (``?force=true``: always)
    and swap the new version in atomically.
``POST /v1/score``, ``GET /v1/model``
    The same for the only model, when exactly one is served.
``GET /healthz``, ``GET /readyz``
    Liveness and readiness (no API key needed).

Errors are JSON ``{"detail": ...}``: 401 (API key), 404, 409 (reload
failed; old version kept), 413 (body too large), 415 (media type), 422
(body does not fit the model's schema: ``detail`` lists ``loc``/``msg``
entries naming the row and field), 500 (``{"detail": "internal server
error"}``; the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

try:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc

import deepad
from deepad.data.schema import DataValidationError
from deepad.serve.registry import LoadedModel, ModelRegistry, ReloadError
from deepad.serve.spec import BodyError

__all__ = ["ServeConfig", "create_app", "serve", "check_bind", "DEFAULT_MAX_BODY_BYTES"]

log = logging.getLogger("deepad.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet", "application/parquet",
                 "application/octet-stream")


@dataclass
class ServeConfig:
    """Settings of ``deepad serve`` (JSON-able: passed to worker processes through the environment)."""

    models: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    api_key_env: str | None = None
    insecure: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    reload_interval: float = 2.0
    log_level: str = "info"


# --------------------------------------------------------------------------- response models (OpenAPI docs)
class Contribution(BaseModel):
    column: str
    attribution: float | None = Field(description="How much this column raised the score (see deepad.explain).")


class ScoreResult(BaseModel):
    score: float | None = Field(description="Anomaly score, higher = more anomalous (null if not a finite number).")
    p_value: float = Field(description="Conformal p-value against the training scores: small = unusual.")
    is_anomaly: bool = Field(description="score > threshold.")
    ids: dict[str, Any] | None = Field(None, description="The row's id columns, when the model has them.")
    top_features: list[Contribution] | None = Field(
        None, description="With ?explain=anomalies (flagged rows) or ?explain=all: the columns that contributed "
                          "most to the score, largest first.")


class ScoreResponse(BaseModel):
    model: str
    version: str
    threshold: float
    n: int
    n_anomalies: int
    results: list[ScoreResult]
    notes: list[str] = []
    explanation_method: str | None = None


class StreamResult(BaseModel):
    timestamp: str | int | None = None
    score: float | None
    threshold: float | None
    alarm: bool
    alert: bool


class StreamResponse(BaseModel):
    model: str
    version: str
    n: int
    n_seen: int
    n_alerts: int
    refractory: int
    rearm: int
    results: list[StreamResult]
    notes: list[str] = []


class StreamResetResponse(BaseModel):
    model: str
    version: str
    reset: bool
    refractory: int
    rearm: int


class ErrorEntry(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorEntry]


class MessageResponse(BaseModel):
    detail: str


_ERRORS = {
    413: {"model": MessageResponse, "description": "Request body too large."},
    415: {"model": MessageResponse, "description": "Unsupported Content-Type."},
    422: {"model": ValidationErrorResponse, "description": "The body does not fit the model's input schema."},
}
_AUTH_ERROR = {401: {"model": MessageResponse, "description": "Missing or wrong X-API-Key header."}}


# --------------------------------------------------------------------------- security
def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen beyond the loopback interface without an API key, unless ``insecure``."""
    if api_key is None and not insecure and not _is_loopback(host):
        raise ValueError(f"refusing to serve on {host} without an API key: anyone who can reach this host could "
                         "score data and read the model's schema. Set a key with --api-key-env VAR, bind to "
                         "127.0.0.1, or pass --insecure if a proxy in front of this service authenticates.")


def _api_key(env: str | None) -> str | None:
    if not env:
        return None
    key = os.environ.get(env)
    if not key:
        raise ValueError(f"--api-key-env {env}: the environment variable {env} is not set or empty.")
    if len(key) < 16:
        raise ValueError(f"the API key in {env} is {len(key)} characters long; use at least 16 "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))').")
    return key


class _APIKeyMiddleware:
    """Pure ASGI: every HTTP path but the health probes needs ``X-API-Key`` (compared in constant time)."""

    def __init__(self, app, key: str):
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            got = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
            if got is None or not hmac.compare_digest(got, self.key):
                body = json.dumps({"detail": f"missing or wrong {API_KEY_HEADER} header"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b"APIKey")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------- request bodies
async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request body is {int(length):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


def _read_csv(body: bytes, loaded: LoadedModel) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from deepad.data.readers import _arrow_to_pandas, _csv_options

    # Schema columns as text: the preprocessor parses them with row-level error messages (as `deepad score`).
    text = [c.name for c in loaded.spec.columns] if loaded.spec.tabular else None
    read, parse, convert = _csv_options("csv", None, text, None)
    try:
        table = pcsv.read_csv(pa.BufferReader(body), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError) as exc:
        raise BodyError([{"loc": ["body"], "type": "csv_error",
                          "msg": f"cannot read the body as CSV: {_first_line(exc)}"}]) from None
    return _arrow_to_pandas(table)


def _read_parquet(body: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepad.data.readers import _arrow_to_pandas

    if body[:4] != b"PAR1":
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": "the body is not a Parquet file (no PAR1 magic bytes)"}])
    try:
        table = pq.read_table(pa.BufferReader(body))
        return _arrow_to_pandas(table)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _table(body: bytes, media: str, loaded: LoadedModel) -> tuple[pd.DataFrame, str]:
    if media in JSON_TYPES or media.endswith("+json"):
        return loaded.spec.parse_json(body), ("columns" if body.lstrip()[:1] == b"{" else "records")
    if media in CSV_TYPES:
        return _read_csv(body, loaded), "file"
    if media in PARQUET_TYPES:
        return _read_parquet(body), "file"
    raise HTTPException(415, f"unsupported Content-Type {media!r}: send application/json, text/csv or "
                             "application/vnd.apache.parquet")


# --------------------------------------------------------------------------- scoring
def _score(loaded: LoadedModel, df: pd.DataFrame, shape: str, explain: str = "none", top: int = 3) -> bytes:
    from deepad import thresholds as thr
    from deepad.data.preprocessing import ScoringReport
    from deepad.report.series import is_series_detector

    model, spec = loaded.model, loaded.spec
    notes: list[str] = []
    X = None
    if len(df) == 0:
        raise BodyError([{"loc": ["body"], "msg": "no rows to score", "type": "too_short"}])
    try:
        if spec.tabular:
            report = ScoringReport()
            if shape == "file":
                _, extra = model.preprocessor.check_columns(df.columns)
                if extra:
                    notes.append(f"ignored {len(extra)} column(s) the model was not trained on: {extra[:8]}")
            scores = model.score_frame(df, report=report, warn_extra=False)
            notes.extend(report.notes())
        else:
            names = spec.feature_columns
            missing = [c for c in names if c not in df.columns]
            if missing:
                raise DataValidationError(f"missing column(s) {missing}, which the model was trained on.",
                                          column=missing[0])
            try:
                X = df[names].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataValidationError(f"columns must be numbers: {exc}") from None
            scores = np.asarray(model.decision_function(X), dtype=np.float64)
            if is_series_detector(model):
                notes.append("a time-series model: the rows were scored as one series in request order, starting "
                             "afresh; for points that arrive over time use .../stream, which keeps the history.")
    except DataValidationError as exc:
        raise BodyError([_data_error(exc, shape)]) from None
    except (ValueError, TypeError) as exc:  # e.g. encoded values out of range
        raise BodyError([{"loc": ["body"], "msg": " ".join(str(exc).split()), "type": "value_error"}]) from None
    p = thr.conformal_p_values(model._p_value_reference, scores)
    threshold = float(model.threshold_)
    # A score that is not a number comes from inputs far outside anything seen in training (e.g. values that
    # overflow the network's float32): flag it rather than call it normal.
    broken = ~np.isfinite(scores)
    flags = (scores > threshold) | broken
    if broken.any():
        notes.append(f"{int(broken.sum())} row(s) got a non-finite score (values far outside the training range); "
                     "their score is null and they are flagged as anomalies.")
    ids = [c for c in spec.id_columns if c in df.columns]
    id_values = {c: df[c].astype(object).where(df[c].notna(), None).tolist() for c in ids}
    results = []
    for i, (s, pv, f) in enumerate(zip(scores.tolist(), p.tolist(), flags.tolist())):
        r = {"score": s if math.isfinite(s) else None, "p_value": pv, "is_anomaly": f}
        if ids:
            r["ids"] = {c: _plain(id_values[c][i]) for c in ids}
        results.append(r)
    out = {"model": loaded.name, "version": loaded.version, "threshold": threshold, "n": len(results),
           "n_anomalies": int(flags.sum()), "results": results, "notes": notes}
    if explain != "none":
        rows = np.flatnonzero(flags) if explain == "anomalies" else np.arange(len(df))
        for r in results:
            r["top_features"] = None
        out["explanation_method"] = _explain_rows(model, df if spec.tabular else X, rows, top, results)
    return json.dumps(out, allow_nan=False, default=_plain).encode()


def _explain_rows(model, data, rows: np.ndarray, top: int, results: list[dict]) -> str | None:
    """Add ``top_features`` to ``results[i]`` for ``i`` in ``rows`` of ``data`` (the table, or a plain detector's
    matrix); returns the method's name (see deepad.explain)."""
    from deepad.explain import explain, explanation_method, top_feature_table

    try:
        method = explanation_method(model)
        if not len(rows):
            return method
        sub = data.iloc[rows] if isinstance(data, pd.DataFrame) else data[rows]
        with np.errstate(all="ignore"):
            attributions = explain(model, sub, top_k=top)
    except (ValueError, TypeError) as exc:
        raise BodyError([{"loc": ["query", "explain"], "type": "value_error",
                          "msg": f"this model cannot explain its scores: {' '.join(str(exc).split())}"}]) from None
    for i, pairs in zip(rows.tolist(), top_feature_table(attributions, top)):
        results[i]["top_features"] = [{"column": c, "attribution": a if math.isfinite(a) else None} for c, a in pairs]
    return attributions.attrs.get("method", method)


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return v


def _data_error(exc: DataValidationError, shape: str) -> dict[str, Any]:
    column = getattr(exc, "column", None)
    rows = getattr(exc, "rows", None) or []
    loc: list[Any] = ["body"]
    if shape == "columns":
        loc += ["columns"] + ([column] if column else []) + rows[:1]
    else:
        loc += rows[:1] + ([column] if column else [])
    return {"loc": loc, "msg": " ".join(str(exc).split()), "type": "value_error"}


# --------------------------------------------------------------------------- the application
def create_app(models: str | os.PathLike | ModelRegistry, *, api_key: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, reload_interval: float = 2.0,
               streams: bool = True) -> FastAPI:
    """The ASGI app serving the model(s) in ``models`` (a model directory or a directory of them).

    ``api_key``: required in the ``X-API-Key`` header on every path except
    ``/healthz`` and ``/readyz``.  ``reload_interval``: seconds between
    checks of the model directories for a new version (0: only
    ``POST .../reload``).  ``streams``: serve ``POST .../stream`` for
    time-series models (live state in this process; off with several
    worker processes, see :mod:`deepad.serve.streams`).
    """
    from deepad.report.series import is_series_detector
    from deepad.serve.streams import LiveStreams

    registry = models if isinstance(models, ModelRegistry) else ModelRegistry.from_root(models)
    names = registry.names
    watch_task: dict[str, asyncio.Task] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if reload_interval and reload_interval > 0:
            watch_task["t"] = asyncio.create_task(_watch(app, registry, float(reload_interval)))
        try:
            yield
        finally:
            task = watch_task.pop("t", None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="deepad scoring service", version=deepad.__version__, lifespan=lifespan,
                  description="Anomaly scores from saved deepad models. Higher score = more anomalous.")
    app.state.registry = registry
    app.state.ready = True
    live = LiveStreams()
    secured = _AUTH_ERROR if api_key else {}

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    @app.exception_handler(BodyError)
    async def _body_error(request: Request, exc: BodyError):
        return JSONResponse({"detail": exc.detail}, status_code=422)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers.")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: every model is loaded.",
             responses={503: {"model": MessageResponse}})
    async def readyz():
        if not app.state.ready:
            return JSONResponse({"detail": "not ready"}, status_code=503)
        return {"status": "ready", "models": {n: registry.get(n).version for n in names}}

    @app.get("/v1/models", tags=["models"], summary="The served models.", responses=secured)
    async def list_models():
        return {"models": [{"name": n, "version": registry.get(n).version,
                            "detector": type(getattr(registry.get(n).model, "detector_", registry.get(n).model)).__name__,
                            "score_url": f"/v1/models/{n}/score"} for n in names]}

    def add_model_routes(name: str, prefix: str) -> None:
        async def score(request: Request,
                        explain: Literal["none", "anomalies", "all"] = Query(
                            "none", description="Add each row's top contributing columns: for flagged rows "
                                                "(anomalies) or every row (all)."),
                        top: int = Query(3, ge=1, le=50, description="Columns listed per explained row.")):
            loaded = registry.get(name)  # this request's version, whatever reloads happen meanwhile
            media = _media_type(request)
            if not (media in JSON_TYPES or media.endswith("+json") or media in CSV_TYPES or media in PARQUET_TYPES):
                raise HTTPException(415, f"unsupported Content-Type {media!r}: send application/json, text/csv "
                                         "or application/vnd.apache.parquet")
            body = await _read_body(request, max_body_bytes)

            def work() -> bytes:
                df, shape = _table(body, media, loaded)
                return _score(loaded, df, shape, explain, top)

            return Response(await run_in_threadpool(work), media_type="application/json")

        async def info():
            out = registry.get(name).info()
            out["last_reload_error"] = registry.last_error.get(name)
            return out

        async def reload(force: bool = Query(False, description="Reload even if the directory looks unchanged.")):
            previous = registry.get(name).version
            try:
                reloaded, current = await run_in_threadpool(registry.reload, name, force=force)
            except ReloadError as exc:
                return JSONResponse({"detail": f"could not load the new version ({exc}); still serving "
                                               f"version {previous}"}, status_code=409)
            if reloaded:
                app.openapi_schema = None  # the input schema may have changed
            return {"reloaded": reloaded, "version": current.version, "previous_version": previous}

        def stream_ready(loaded: LoadedModel) -> None:
            if not streams:
                raise HTTPException(409, "streams keep their state in one server process: run deepad serve with "
                                         "--workers 1 to stream.")
            if not is_series_detector(loaded.model):
                raise HTTPException(409, f"model {name!r} ({type(loaded.model).__name__}) scores table rows, not a "
                                         "time series: use .../score.")

        async def stream(request: Request):
            loaded = registry.get(name)
            stream_ready(loaded)
            media = _media_type(request)
            if not (media in JSON_TYPES or media.endswith("+json")):
                raise HTTPException(415, f"unsupported Content-Type {media!r}: send application/json records "
                                         "in time order")
            body = await _read_body(request, max_body_bytes)
            if body.lstrip()[:1] != b"[":
                raise BodyError([{"loc": ["body"], "type": "list_type",
                                  "msg": "expected a JSON array of records, in time order"}])

            def work() -> bytes:
                return json.dumps(live.update(loaded, loaded.spec.parse_json(body)), allow_nan=False,
                                  default=_plain).encode()

            return Response(await run_in_threadpool(work), media_type="application/json")

        async def stream_reset(refractory: int = Query(0, ge=0, le=1_000_000, description="Points after an alert "
                                                       "during which alerts are suppressed."),
                               rearm: int = Query(0, ge=0, le=1_000_000, description="After an alert, alerts re-arm "
                                                  "once the score has been below the threshold this many points.")):
            loaded = registry.get(name)
            stream_ready(loaded)
            return live.reset(loaded, refractory, rearm)

        tag = f"model {name}"
        if prefix.startswith("/v1/models") and is_series_detector(registry.get(name).model):
            app.add_api_route(f"{prefix}/stream", stream, methods=["POST"], tags=[tag], response_model=StreamResponse,
                              summary=f"Feed rows, in time order, to {name!r}'s live stream.",
                              responses={409: {"model": MessageResponse}, **_ERRORS, **secured},
                              operation_id=f"stream_{name}")
            app.add_api_route(f"{prefix}/stream/reset", stream_reset, methods=["POST"], tags=[tag],
                              response_model=StreamResetResponse, summary=f"Restart {name!r}'s live stream "
                              "from its training state, with these alert settings.",
                              responses={409: {"model": MessageResponse}, **secured},
                              operation_id=f"stream_reset_{name}")
            app.state.stream_paths[f"{prefix}/stream"] = name
        app.add_api_route(f"{prefix}/score", score, methods=["POST"], tags=[tag], response_model=ScoreResponse,
                          summary=f"Score rows with model {name!r}.", responses={**_ERRORS, **secured},
                          operation_id=f"score_{name}" + ("" if prefix.startswith("/v1/models") else "_default"))
        app.add_api_route(prefix if prefix.startswith("/v1/models") else "/v1/model", info, methods=["GET"],
                          tags=[tag], summary=f"Detector, schema, threshold and versions of {name!r}.",
                          responses=secured,
                          operation_id=f"info_{name}" + ("" if prefix.startswith("/v1/models") else "_default"))
        if prefix.startswith("/v1/models"):
            app.add_api_route(f"{prefix}/reload", reload, methods=["POST"], tags=[tag],
                              summary=f"Load a new version of {name!r} and swap it in atomically.",
                              responses={409: {"model": MessageResponse}, **secured}, operation_id=f"reload_{name}")
        app.state.score_paths[f"{prefix}/score"] = name

    app.state.score_paths = {}
    app.state.stream_paths = {}
    for name in names:
        add_model_routes(name, f"/v1/models/{name}")
    if len(names) == 1:
        add_model_routes(names[0], "/v1")

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, name in app.state.score_paths.items():
            body, defs = registry.get(name).spec.openapi_body()
            components.update(defs)
            schema["paths"][path]["post"]["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": body},
                "text/csv": {"schema": {"type": "string", "description": "CSV with a header line"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            }}
        for path, name in app.state.stream_paths.items():
            body, defs = registry.get(name).spec.openapi_body()
            components.update(defs)
            records = next((b for b in body.get("oneOf", body.get("anyOf", [])) if b.get("type") == "array"), body)
            schema["paths"][path]["post"]["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": records}}}
        if api_key:
            schema["components"]["securitySchemes"] = {"APIKey": {"type": "apiKey", "in": "header",
                                                                  "name": API_KEY_HEADER}}
            for path, ops in schema["paths"].items():
                if path not in OPEN_PATHS:
                    for op in ops.values():
                        op["security"] = [{"APIKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    if api_key:
        app.add_middleware(_APIKeyMiddleware, key=api_key)
    return app


async def _watch(app: FastAPI, registry: ModelRegistry, interval: float) -> None:
    """Poll the model directories; load a changed one in a worker thread and swap it in."""
    while True:
        await asyncio.sleep(interval)
        for name in registry.names:
            try:
                if await run_in_threadpool(registry.changed, name):
                    reloaded, _ = await run_in_threadpool(registry.reload, name)
                    if reloaded:
                        app.openapi_schema = None
            except ReloadError:
                pass  # logged by the registry; the old version stays
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("model watcher: unexpected error for %r", name)


# --------------------------------------------------------------------------- running it
_ENV_CONFIG = "DEEPAD_SERVE_CONFIG"


def _app_from_env() -> FastAPI:
    """Factory for worker processes (``--workers N``): the config travels in an environment variable."""
    cfg = ServeConfig(**json.loads(os.environ[_ENV_CONFIG]))
    return create_app(cfg.models, api_key=_api_key(cfg.api_key_env), max_body_bytes=cfg.max_body_bytes,
                      reload_interval=cfg.reload_interval, streams=cfg.workers == 1)


def serve(cfg: ServeConfig) -> None:
    """Check the settings, load the model(s) and run Uvicorn until interrupted."""
    import uvicorn

    key = _api_key(cfg.api_key_env)
    check_bind(cfg.host, key, cfg.insecure)
    if cfg.max_body_bytes < 1:
        raise ValueError("the body size limit must be positive.")
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common = dict(host=cfg.host, port=cfg.port, log_level=cfg.log_level, server_header=False, access_log=False)
    if cfg.workers > 1:
        # Each worker process loads the models itself and watches their directories.
        from deepad.serve.registry import discover_models

        discover_models(cfg.models)  # fail here, not in every worker
        os.environ[_ENV_CONFIG] = json.dumps(asdict(cfg))
        uvicorn.run("deepad.serve.app:_app_from_env", factory=True, workers=cfg.workers, **common)
    else:
        app = create_app(cfg.models, api_key=key, max_body_bytes=cfg.max_body_bytes,
                         reload_interval=cfg.reload_interval)
        uvicorn.run(app, **common)
