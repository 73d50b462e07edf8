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

Errors are JSON ``{"detail": ...}``: 401 (API key), 404, 408 (the body
did not arrive within ``body_timeout``), 409 (reload failed; old version
kept), 413 (body too large, more than ``max_rows`` rows, or a Parquet body
that decompresses to more than ``max_decompressed_bytes``), 415 (media
type), 422 (body does not fit the model's schema: ``detail`` lists
``loc``/``msg`` entries naming the row and field), 500 (``{"detail":
"internal server error"}``; the traceback goes to the log, never to the
client, and the connection stays usable).

Limits (defaults; ``docs/serving.md``): ``max_body_bytes`` 32 MiB,
``max_rows`` 100,000 rows per request, ``max_decompressed_bytes`` 256 MiB
(Parquet, checked from the file's metadata before its data is read),
``body_timeout`` 30 s to receive a body; for the connection (Uvicorn):
``header_timeout`` 30 s to receive a request head (:class:`HeaderTimeoutH11Protocol`)
and ``keep_alive_timeout`` 5 s for an idle keep-alive connection.
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
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

try:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field
    from starlette.requests import ClientDisconnect
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc

import deepad
from deepad.data.schema import DataValidationError
from deepad.serve.registry import LoadedModel, ModelRegistry, ReloadError
from deepad.serve.spec import BodyError, RowLimitError

__all__ = ["ServeConfig", "create_app", "serve", "check_bind", "uvicorn_options", "HeaderTimeoutH11Protocol",
           "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_ROWS", "DEFAULT_MAX_DECOMPRESSED_BYTES", "DEFAULT_BODY_TIMEOUT",
           "DEFAULT_HEADER_TIMEOUT", "DEFAULT_KEEP_ALIVE_TIMEOUT"]

log = logging.getLogger("deepad.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
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
    max_rows: int = DEFAULT_MAX_ROWS  # rows per request (JSON, CSV, Parquet; 413 above)
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES  # a Parquet body's decoded size (413 above)
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds to receive a request body (408 after)
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds to receive a request head (connection closed after)
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT  # an idle keep-alive connection is closed after this


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
    408: {"model": MessageResponse, "description": "The request body did not arrive within the body timeout "
                                                   "(default 30 s); the connection is closed."},
    413: {"model": MessageResponse, "description": "Request body too large: over the body size limit (default "
                                                   "32 MiB), more rows than max_rows (default 100,000), or a "
                                                   "Parquet body that decompresses to more than "
                                                   "max_decompressed_bytes (default 256 MiB)."},
    415: {"model": MessageResponse, "description": "Unsupported Content-Type."},
    422: {"model": ValidationErrorResponse, "description": "The body does not fit the model's input schema (or, "
                                                           "for a stream, a row is out of time order), or a "
                                                           "query parameter does not apply to this model."},
    500: {"model": MessageResponse, "description": "Internal server error (details in the server log)."},
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
    """Refuse to listen beyond the loopback interface without an API key, unless ``insecure``.

    An empty or all-whitespace key counts as no key (and is refused by :func:`_api_key` and :func:`create_app`).
    """
    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty or only whitespace: set a real key (at least 16 characters, e.g. "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))').")
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
    _check_key(key, f"the API key in {env}")
    return key


def _check_key(key: str, what: str = "the API key") -> None:
    """Refuse keys that are blank, padded with whitespace (HTTP strips it from header values: it could never
    match) or shorter than 16 characters."""
    if not key.strip():
        raise ValueError(f"{what} is empty or only whitespace ({len(key)} character(s)); set a real key "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))').")
    if key != key.strip():
        raise ValueError(f"{what} has leading or trailing whitespace, which HTTP strips from header values, so "
                         "no client could send it; remove the whitespace.")
    if len(key) < 16:
        raise ValueError(f"{what} is {len(key)} characters long; use at least 16 "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))').")


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


class _InternalErrors:
    """Pure ASGI: an unhandled exception becomes a logged, generic JSON 500 that keeps the connection usable.

    Why not ``@app.exception_handler(Exception)``: Starlette runs that handler in its outermost
    ``ServerErrorMiddleware``, which sends the 500 and then *re-raises*, so Uvicorn logs a second traceback and
    drops the connection without ``Connection: close``; a keep-alive client's next request on it then fails
    (ECONNRESET).  Here the exception ends with the answer.  If the answer had already started, nothing can be
    sent: the exception goes on to Uvicorn, which closes the connection.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = json.dumps({"detail": "internal server error"}).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- request bodies
async def _read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes (413 above), received within ``timeout`` seconds (408 after).

    A client that disconnects while sending is logged in one line (no traceback) and gets a 400 nobody reads.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request body is {int(length):,} bytes; the limit is {limit:,}")

    async def receive() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    where = f"{request.method} {request.url.path}"
    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    try:
        if timeout is not None and timeout > 0:
            return await asyncio.wait_for(receive(), timeout)
        return await receive()
    except asyncio.TimeoutError:
        log.info("%s: the body of %s did not arrive within %g s (body timeout); answered 408", client, where,
                 timeout)
        raise HTTPException(408, f"the request body did not arrive within {timeout:g} s (the body timeout)",
                            headers={"Connection": "close"}) from None
    except ClientDisconnect:
        log.info("%s disconnected while sending the body of %s", client, where)
        raise HTTPException(400, "the client disconnected while sending the body") from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


@dataclass(frozen=True)
class _Limits:
    """What one request may decode to (see :func:`create_app`)."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES


def _read_csv(body: bytes, loaded: LoadedModel, limits: _Limits = _Limits()) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from deepad.data.readers import _arrow_to_pandas, _csv_options

    if not body.strip():
        raise BodyError([{"loc": ["body"], "type": "csv_error",
                          "msg": "the body is empty: send a CSV header line and at least one row"}])
    # Schema columns as text: the preprocessor parses them with row-level error messages (as `deepad score`).
    text = [c.name for c in loaded.spec.columns] if loaded.spec.tabular else None
    read, parse, convert = _csv_options("csv", None, text, None)
    # One block for the whole body (at most max_body_bytes): Arrow's default 1 MiB blocks cannot hold a header
    # line (or a row) longer than that, and it then reports "Empty CSV file or block".
    read.block_size = int(min(max(len(body) + 2, 1 << 20), 2**31 - 1))
    if not body.endswith(b"\n"):
        body += b"\n"  # Arrow cannot read a last line, header or row, without its end of line
    try:
        table = pcsv.read_csv(pa.BufferReader(body), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError) as exc:
        msg = _first_line(exc)
        if "Empty CSV file" in msg:
            msg = "no header line"
        raise BodyError([{"loc": ["body"], "type": "csv_error",
                          "msg": f"cannot read the body as CSV: {msg}"}]) from None
    if table.num_rows > limits.max_rows:  # before the (larger) pandas copy and any scoring
        raise RowLimitError(table.num_rows, limits.max_rows)
    return _arrow_to_pandas(table)


# Bytes per value of each Parquet physical type once decoded (BYTE_ARRAY: the offsets; the bytes themselves are
# in the column chunk's uncompressed size, or, dictionary-encoded, checked after reading).
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8, "BYTE_ARRAY": 4}


def _too_big(size: int, limit: int) -> HTTPException:
    return HTTPException(413, f"the Parquet body decompresses to about {size:,} bytes; the limit is {limit:,} "
                              "bytes (max_decompressed_bytes): send fewer rows per request")


def _check_parquet_metadata(meta, schema, limits: _Limits) -> None:
    """Rows and decoded size of a Parquet body from its footer alone: 413 before any data is read."""
    import pyarrow.types as pat

    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    rows = max(int(meta.num_rows), sum(int(g.num_rows) for g in groups))
    if rows > limits.max_rows:
        raise RowLimitError(rows, limits.max_rows)
    nested = [f.name for f in schema if pat.is_nested(f.type)]
    if nested:
        raise BodyError([{"loc": ["body", nested[0]], "type": "parquet_error",
                          "msg": f"column {nested[0]!r} has a nested type ({schema.field(nested[0]).type}); "
                                 "the service scores flat tables"}])
    size = 0
    for g in groups:
        columns = 0
        for j in range(g.num_columns):
            c = g.column(j)
            width = _PARQUET_WIDTH.get(c.physical_type) or max(int(meta.schema.column(j).length or 0), 1)
            columns += max(int(c.total_uncompressed_size), int(c.num_values) * width)
        size += max(int(g.total_byte_size), columns)
    if size > limits.max_decompressed_bytes:
        raise _too_big(size, limits.max_decompressed_bytes)


def _decoded_nbytes(table) -> int:
    """Arrow bytes of ``table`` with its dictionary columns decoded, computed without decoding them."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    total = 0
    for col in table.columns:
        if not pat.is_dictionary(col.type):
            total += col.nbytes
            continue
        for chunk in col.chunks:
            values = chunk.dictionary
            if pat.is_string(values.type) or pat.is_large_string(values.type) or pat.is_binary(values.type) \
                    or pat.is_large_binary(values.type):
                lengths = pc.take(pc.binary_length(values), chunk.indices)
                total += int(pc.sum(lengths).as_py() or 0) + 8 * len(chunk)
            else:
                total += (values.nbytes // max(len(values), 1) + 1) * len(chunk)
    return total


def _read_parquet(body: bytes, limits: _Limits = _Limits()) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    from deepad.data.readers import _arrow_to_pandas

    if body[:4] != b"PAR1":
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": "the body is not a Parquet file (no PAR1 magic bytes)"}])
    try:
        footer = pq.ParquetFile(pa.BufferReader(body))
        meta, schema = footer.metadata, footer.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]) from None
    _check_parquet_metadata(meta, schema, limits)
    # Text columns are read dictionary-encoded, as stored: one long value repeated in every row is a few bytes in
    # the file and in the footer's sizes; its decoded size is checked before it is expanded.
    text = [f.name for f in schema if pat.is_string(f.type) or pat.is_large_string(f.type) or pat.is_binary(f.type)
            or pat.is_large_binary(f.type)]
    try:
        table = pq.read_table(pa.BufferReader(body), read_dictionary=text or None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]) from None
    if table.num_rows > limits.max_rows:  # the footer said otherwise
        raise RowLimitError(table.num_rows, limits.max_rows)
    size = _decoded_nbytes(table)
    if size > limits.max_decompressed_bytes:
        raise _too_big(size, limits.max_decompressed_bytes)
    for i, f in enumerate(table.schema):  # back to the stored types (what reading without read_dictionary gives)
        if pat.is_dictionary(f.type) and i < len(schema) and schema.field(i).name == f.name \
                and not pat.is_dictionary(schema.field(i).type):
            table = table.set_column(i, schema.field(i), table.column(i).cast(schema.field(i).type))
    try:
        return _arrow_to_pandas(table)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError([{"loc": ["body"], "type": "parquet_error",
                          "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _table(body: bytes, media: str, loaded: LoadedModel, limits: _Limits = _Limits()) -> tuple[pd.DataFrame, str]:
    if media in JSON_TYPES or media.endswith("+json"):
        return (loaded.spec.parse_json(body, max_rows=limits.max_rows),
                "columns" if body.lstrip()[:1] == b"{" else "records")
    if media in CSV_TYPES:
        return _read_csv(body, loaded, limits), "file"
    if media in PARQUET_TYPES:
        return _read_parquet(body, limits), "file"
    raise HTTPException(415, f"unsupported Content-Type {media!r}: send application/json, text/csv or "
                             "application/vnd.apache.parquet")


_ABSOLUTE_DIRS = re.compile(r"(?<![\w.~/-])(?:/[^/\s'\"(),;:]+)+/(?=[^/\s'\"(),;:])")


def _client_text(text: str, name: str, path: str | os.PathLike) -> str:
    """``text`` (an error message) without the server's directories: the model directory becomes the model's name,
    any other absolute path its last component.  The log keeps the full text."""
    path = Path(path)
    dirs = {str(path), str(path.absolute()), os.path.realpath(path)}
    for d in sorted((d.rstrip("/") for d in dirs), key=len, reverse=True):
        if d and d not in (".", "/"):
            text = text.replace(d, name)
    return _ABSOLUTE_DIRS.sub("", text)


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
               streams: bool = True, max_rows: int = DEFAULT_MAX_ROWS,
               max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
               body_timeout: float | None = DEFAULT_BODY_TIMEOUT) -> FastAPI:
    """The ASGI app serving the model(s) in ``models`` (a model directory or a directory of them).

    ``api_key``: required in the ``X-API-Key`` header on every path except
    ``/healthz`` and ``/readyz``.  ``reload_interval``: seconds between
    checks of the model directories for a new version (0: only
    ``POST .../reload``).  ``streams``: serve ``POST .../stream`` for
    time-series models (live state in this process; off with several
    worker processes, see :mod:`deepad.serve.streams`).

    Limits per request (413 above them): ``max_body_bytes`` on the wire,
    ``max_rows`` rows (JSON, CSV and Parquet bodies, streams too), and
    ``max_decompressed_bytes``, the decoded size of a Parquet body, checked
    from its metadata before its data is read.  ``body_timeout``: seconds
    to receive the whole body (408 after; ``None`` or 0: no limit).  The
    limits on request heads and idle connections belong to the server: see
    :func:`uvicorn_options`.
    """
    from deepad.report.series import is_series_detector
    from deepad.serve.streams import LiveStreams

    if api_key is not None:
        if not api_key.strip():
            raise ValueError("the API key is empty or only whitespace; set a real key or none.")
        if api_key != api_key.strip():
            raise ValueError("the API key has leading or trailing whitespace, which HTTP strips from header "
                             "values, so no client could send it.")
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}.")
    if int(max_decompressed_bytes) < 1:
        raise ValueError(f"max_decompressed_bytes must be at least 1, got {max_decompressed_bytes}.")
    limits = _Limits(int(max_rows), int(max_decompressed_bytes))
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

    @app.exception_handler(BodyError)
    async def _body_error(request: Request, exc: BodyError):
        return JSONResponse({"detail": exc.detail}, status_code=422)

    @app.exception_handler(RowLimitError)
    async def _row_limit(request: Request, exc: RowLimitError):
        return JSONResponse({"detail": str(exc)}, status_code=413)

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
            body = await _read_body(request, max_body_bytes, body_timeout)

            def work() -> bytes:
                df, shape = _table(body, media, loaded, limits)
                return _score(loaded, df, shape, explain, top)

            return Response(await run_in_threadpool(work), media_type="application/json")

        async def info():
            out = registry.get(name).info()
            error = registry.last_error.get(name)
            out["last_reload_error"] = None if error is None else _client_text(error, name, registry.paths[name])
            return out

        async def reload(force: bool = Query(False, description="Reload even if the directory looks unchanged.")):
            previous = registry.get(name).version
            try:
                reloaded, current = await run_in_threadpool(registry.reload, name, force=force)
            except ReloadError as exc:  # the registry logged the full text; the client sees no server paths
                return JSONResponse({"detail": f"could not load the new version "
                                               f"({_client_text(str(exc), name, registry.paths[name])}); still "
                                               f"serving version {previous}"}, status_code=409)
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
            body = await _read_body(request, max_body_bytes, body_timeout)
            if body.lstrip()[:1] != b"[":
                raise BodyError([{"loc": ["body"], "type": "list_type",
                                  "msg": "expected a JSON array of records, in time order"}])

            def work() -> bytes:
                rows = loaded.spec.parse_json(body, max_rows=limits.max_rows)
                return json.dumps(live.update(loaded, rows), allow_nan=False, default=_plain).encode()

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
        rows = f"at most {limits.max_rows:,} rows"
        for path, name in app.state.score_paths.items():
            loaded = registry.get(name)
            body, defs = loaded.spec.openapi_body(max_rows=limits.max_rows)
            components.update(defs)
            op = schema["paths"][path]["post"]
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": body},
                "text/csv": {"schema": {"type": "string", "minLength": 1, "description": "CSV with a header line "
                                        f"and at least one row ({rows}); an empty body is a 422"}},
                "application/vnd.apache.parquet": {"schema": {
                    "type": "string", "format": "binary", "minLength": 1,
                    "description": f"a Parquet file ({rows}, decoding to at most "
                                   f"{limits.max_decompressed_bytes:,} bytes; flat columns)"}},
            }}
            if not _can_explain(loaded.model):
                for param in op.get("parameters", []):
                    if param.get("name") == "explain" and param.get("in") == "query":
                        param["schema"] = {"type": "string", "enum": ["none"], "default": "none", "title": "Explain"}
                        param["description"] = (f"{type(loaded.model).__name__} cannot explain its scores (it keeps "
                                                "no training data to compare a row with): only none (other values "
                                                "are a 422).")
        for path, name in app.state.stream_paths.items():
            loaded = registry.get(name)
            timestamp = (getattr(loaded.model, "series_input_", None) or {}).get("timestamp")
            records, defs = loaded.spec.openapi_stream_body(timestamp, max_rows=limits.max_rows)
            components.update(defs)
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
    app.add_middleware(_InternalErrors)
    if api_key:
        app.add_middleware(_APIKeyMiddleware, key=api_key)  # outermost: a 401 before anything else runs
    return app


def _can_explain(model) -> bool:
    """Whether ``?explain=`` can work for ``model`` (a bare detector that keeps no training data cannot)."""
    from deepad.explain import _detector_baseline, explanation_method
    from deepad.pipeline import TabularDetector

    try:
        method = explanation_method(model)
    except (ValueError, TypeError):
        return False
    if isinstance(model, TabularDetector) or method not in ("integrated_gradients", "occlusion"):
        return True
    return _detector_baseline(model) is not None


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


class HeaderTimeoutH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a deadline for each request head: ``header_timeout`` seconds (class attribute).

    Why: Uvicorn times out only an *idle* keep-alive connection (``timeout_keep_alive``, reset by every byte that
    arrives), so a client that sends a request head a byte at a time, or half a head and then nothing, holds its
    connection for ever.  Here the clock starts when the connection opens and again when a response is complete,
    and is stopped only by a complete request head; when it runs out the connection is closed (no answer: the
    request never started).  Bodies have their own deadline (``body_timeout`` in :func:`create_app`).  Builds on
    Uvicorn's ``H11Protocol`` internals (``cycle``, ``handle_events``, ``on_response_complete``).
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._head_timer = None
        self._head_cycle = None
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if self.header_timeout and self.header_timeout > 0:
            self._head_cycle = self.cycle
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def handle_events(self) -> None:
        super().handle_events()
        if getattr(self, "_head_timer", None) is not None and self.cycle is not self._head_cycle:
            self._cancel_head_timer()  # a request head arrived: its body has body_timeout

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_head_timer()  # before super(): a pipelined request it starts stops the clock again
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is self._head_cycle and not self.transport.is_closing():
            who = "%s:%d" % self.client if self.client else "a client"
            log.info("closing the connection from %s: no complete request head within %g s (header timeout)",
                     who, self.header_timeout)
            self.transport.close()


def uvicorn_options(cfg: ServeConfig) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for ``cfg``: address, logging and the connection
    limits (``timeout_keep_alive``; the request-head deadline through :class:`HeaderTimeoutH11Protocol`, whose
    ``header_timeout`` this sets for the process).  Request heads are also limited to 16 KiB by Uvicorn's h11
    default (``h11_max_incomplete_event_size``; 400 above it)."""
    HeaderTimeoutH11Protocol.header_timeout = float(cfg.header_timeout)
    return dict(host=cfg.host, port=cfg.port, log_level=cfg.log_level, server_header=False, access_log=False,
                timeout_keep_alive=float(cfg.keep_alive_timeout), http=HeaderTimeoutH11Protocol)


def _app_kwargs(cfg: ServeConfig) -> dict[str, Any]:
    return dict(max_body_bytes=cfg.max_body_bytes, reload_interval=cfg.reload_interval, max_rows=cfg.max_rows,
                max_decompressed_bytes=cfg.max_decompressed_bytes, body_timeout=cfg.body_timeout)


def _app_from_env() -> FastAPI:
    """Factory for worker processes (``--workers N``): the config travels in an environment variable."""
    cfg = ServeConfig(**json.loads(os.environ[_ENV_CONFIG]))
    HeaderTimeoutH11Protocol.header_timeout = float(cfg.header_timeout)  # this worker's connections
    return create_app(cfg.models, api_key=_api_key(cfg.api_key_env), streams=cfg.workers == 1, **_app_kwargs(cfg))


def _check_limits(cfg: ServeConfig) -> None:
    if cfg.max_body_bytes < 1:
        raise ValueError("the body size limit must be positive.")
    if cfg.max_rows < 1:
        raise ValueError(f"--max-rows must be at least 1, got {cfg.max_rows}.")
    if cfg.max_decompressed_bytes < 1:
        raise ValueError("the decompressed size limit must be positive.")
    for flag, value in (("--body-timeout", cfg.body_timeout), ("--header-timeout", cfg.header_timeout),
                        ("--keep-alive-timeout", cfg.keep_alive_timeout)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a positive number of seconds, got {value!r}.")


def serve(cfg: ServeConfig) -> None:
    """Check the settings, load the model(s) and run Uvicorn until interrupted."""
    import uvicorn

    key = _api_key(cfg.api_key_env)
    check_bind(cfg.host, key, cfg.insecure)
    _check_limits(cfg)
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common = uvicorn_options(cfg)
    if cfg.workers > 1:
        # Each worker process loads the models itself and watches their directories.
        from deepad.serve.registry import discover_models

        discover_models(cfg.models)  # fail here, not in every worker
        os.environ[_ENV_CONFIG] = json.dumps(asdict(cfg))
        uvicorn.run("deepad.serve.app:_app_from_env", factory=True, workers=cfg.workers, **common)
    else:
        app = create_app(cfg.models, api_key=key, **_app_kwargs(cfg))
        uvicorn.run(app, **common)
