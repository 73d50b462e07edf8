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
``GET /healthz``, ``GET /readyz``; ``GET /metrics``, ``GET /v1/models/{name}/drift``
    Liveness and readiness (no API key needed); Prometheus metrics, score drift (:mod:`deepad.serve.monitoring`).

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

The service is split along its seams; this module builds the application
(:func:`create_app`: its routes, the model watcher) and
runs it (:func:`serve`).  The rest lives in:

* :mod:`deepad.serve.bodies` -- receiving and reading request bodies (JSON,
  CSV, Parquet), the row and decompressed-size limits, the body timeout;
* :mod:`deepad.serve.security` -- API keys and :func:`check_bind`, the API
  key and internal-error middlewares, server paths kept out of answers;
* :mod:`deepad.serve.scoring` -- a table to the score answer, explanations,
  data errors as 422 entries;
* :mod:`deepad.serve.responses`, :mod:`deepad.serve.openapi` -- the response models and documented errors,
  and the OpenAPI document with each model's request bodies;
* :mod:`deepad.serve.server` -- :class:`ServeConfig`, its checks, the
  request-head timeout and the Uvicorn options;
* :mod:`deepad.serve.registry`, :mod:`deepad.serve.spec`, :mod:`deepad.serve.streams`,
  :mod:`deepad.serve.monitoring` -- models and versions, request schemas, live streams, metrics and drift.

The names tests and callers use from here (``ServeConfig``, ``check_bind``,
``uvicorn_options``, ``HeaderTimeoutH11Protocol``, the ``DEFAULT_*`` limits,
and the private helpers) are re-exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import asdict
from typing import Literal

try:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc

import deepad
from deepad.serve.bodies import (
    CSV_TYPES,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,  # noqa: F401
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DEFAULT_MAX_ROWS,
    JSON_TYPES,
    PARQUET_TYPES,
    _check_parquet_metadata,
    _decoded_nbytes,
    _first_line,
    _Limits,
    _media_type,
    _read_body,
    _read_csv,
    _read_parquet,
    _table,
    _too_big,
)
from deepad.serve.monitoring import install as install_monitoring
from deepad.serve.openapi import _openapi_hook
from deepad.serve.registry import LoadedModel, ModelRegistry, ReloadError, freeze_heap
from deepad.serve.responses import (
    _AUTH_ERROR,
    _ERRORS,
    Contribution,
    ErrorEntry,
    MessageResponse,  # noqa: F401
    ScoreResponse,
    ScoreResult,
    StreamResetResponse,
    StreamResponse,
    StreamResult,
    ValidationErrorResponse,
)
from deepad.serve.scoring import (
    INLINE_BODY_BYTES,
    _can_explain,
    _is_json,
    _score_body,
    _data_error,
    _explain_rows,
    _plain,
    _score,  # noqa: F401
    _score_records,  # noqa: F401
    is_series_detector,
)
from deepad.serve.security import (
    API_KEY_HEADER,
    OPEN_PATHS,
    _api_key,
    _APIKeyMiddleware,  # noqa: F401
    _check_app_key,
    _check_key,
    _client_text,
    _InternalErrors,
    _is_loopback,
    check_bind,
)
from deepad.serve.server import (
    _ENV_CONFIG,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,  # noqa: F401
    WORKER_HEALTHCHECK_TIMEOUT,
    HeaderTimeoutH11Protocol,
    INLINE_BUDGET,
    ScoringPool,
    ServeConfig,
    ThreadLimiter,
    _app_kwargs,
    _check_limits,
    compute_threads,
    score_concurrency,
    set_thread_env,
    uvicorn_options,
)
from deepad.serve.spec import BodyError, RowLimitError

__all__ = [
    "ServeConfig",
    "create_app",
    "serve",
    "check_bind",
    "uvicorn_options",
    "HeaderTimeoutH11Protocol",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
]

log = logging.getLogger("deepad.serve")


# --------------------------------------------------------------------------- the application
def create_app(
    models: str | os.PathLike | ModelRegistry,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    reload_interval: float = 2.0,
    streams: bool = True,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    compute_threads: int | None = None,
    concurrency: int | None = None,
    inline_budget: float = INLINE_BUDGET,
) -> FastAPI:
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
    :func:`uvicorn_options`.  ``compute_threads``: torch/BLAS/OpenMP threads
    of each scoring thread; ``concurrency``: requests scored at once (default:
    the cores); ``inline_budget``: seconds of expected scoring CPU within which
    a request is scored on the event loop itself (0: never; both, see
    :class:`~deepad.serve.server.ScoringPool`).
    """
    from deepad.serve.streams import LiveStreams

    _check_app_key(api_key)
    if int(max_rows) < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}.")
    if int(max_decompressed_bytes) < 1:
        raise ValueError(f"max_decompressed_bytes must be at least 1, got {max_decompressed_bytes}.")
    limits = _Limits(int(max_rows), int(max_decompressed_bytes))
    registry = models if isinstance(models, ModelRegistry) else ModelRegistry.from_root(models)
    if compute_threads is not None and int(compute_threads) < 1:
        raise ValueError(f"compute_threads must be at least 1, got {compute_threads}.")
    threads = None if compute_threads is None else ThreadLimiter(int(compute_threads))  # after loading: libraries in
    pool = ScoringPool(score_concurrency(concurrency, threads=compute_threads or 1), threads, inline_budget)
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

    app = FastAPI(
        title="deepad scoring service",
        version=deepad.__version__,
        lifespan=lifespan,
        description="Anomaly scores from saved deepad models. Higher score = more anomalous.",
    )
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

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: every model is loaded.",
        responses={503: {"model": MessageResponse}},
    )
    async def readyz():
        if not app.state.ready:
            return JSONResponse({"detail": "not ready"}, status_code=503)
        return {"status": "ready", "models": {n: registry.get(n).version for n in names}}

    @app.get("/v1/models", tags=["models"], summary="The served models.", responses=secured)
    async def list_models():
        return {
            "models": [
                {
                    "name": n,
                    "version": registry.get(n).version,
                    "detector": type(getattr(registry.get(n).model, "detector_", registry.get(n).model)).__name__,
                    "score_url": f"/v1/models/{n}/score",
                }
                for n in names
            ]
        }

    app.state.score_paths = {}
    app.state.stream_paths = {}
    routes = dict(
        limits=limits,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        streams=streams,
        secured=secured,
        pool=pool,
    )
    for name in names:
        _add_model_routes(app, registry, live, name, f"/v1/models/{name}", **routes)
    if len(names) == 1:
        _add_model_routes(app, registry, live, names[0], "/v1", **routes)

    app.openapi = _openapi_hook(app, registry, limits, api_key)  # type: ignore[method-assign]
    app.add_middleware(_InternalErrors)
    install_monitoring(app, registry, secured)  # /metrics, .../drift; counts what _InternalErrors answers too
    if api_key:
        app.add_middleware(_APIKeyMiddleware, key=api_key)  # outermost: a 401 before anything else runs
    return app


def _add_model_routes(
    app: FastAPI,
    registry: ModelRegistry,
    live,
    name: str,
    prefix: str,
    *,
    limits: _Limits,
    max_body_bytes: int,
    body_timeout: float | None,
    streams: bool,
    secured: dict,
    pool: ScoringPool,
) -> None:
    """The routes of model ``name`` under ``prefix`` (``/v1/models/{name}``, or ``/v1`` for the only model):
    score, info, and for ``/v1/models/...`` reload and, for a time-series model, stream and stream/reset."""

    async def score(
        request: Request,
        explain: Literal["none", "anomalies", "all"] = Query(
            "none",
            description="Add each row's top contributing columns: for flagged rows (anomalies) or every row (all).",
        ),
        top: int = Query(3, ge=1, le=50, description="Columns listed per explained row."),
    ):
        loaded = registry.get(name)  # this request's version, whatever reloads happen meanwhile
        media = _media_type(request)
        if not (_is_json(media) or media in CSV_TYPES or media in PARQUET_TYPES):
            raise HTTPException(
                415,
                f"unsupported Content-Type {media!r}: send application/json, text/csv "
                "or application/vnd.apache.parquet",
            )
        body = await _read_body(request, max_body_bytes, body_timeout)

        work = (_score_body, body, media, loaded, limits, explain, top)
        if explain == "none" and loaded.rows is not None and len(body) <= INLINE_BODY_BYTES and _is_json(media):
            # A few records through the fast path take about a millisecond: scored here, without the two thread
            # hops (and the GIL hand-overs between the event loop and a pool thread) that cost as much again.
            return Response(pool.call(*work), media_type="application/json")
        cost_key = None if explain != "none" else (name, loaded.version, "json" if _is_json(media) else media)
        return Response(await pool.run(*work, cost_key=cost_key, size=len(body)), media_type="application/json")

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
            return JSONResponse(
                {
                    "detail": f"could not load the new version "
                    f"({_client_text(str(exc), name, registry.paths[name])}); still "
                    f"serving version {previous}"
                },
                status_code=409,
            )
        if reloaded:
            app.openapi_schema = None  # the input schema may have changed
        return {"reloaded": reloaded, "version": current.version, "previous_version": previous}

    def stream_ready(loaded: LoadedModel) -> None:
        if not streams:
            raise HTTPException(
                409, "streams keep their state in one server process: run deepad serve with --workers 1 to stream."
            )
        if not is_series_detector(loaded.model):
            raise HTTPException(
                409,
                f"model {name!r} ({type(loaded.model).__name__}) scores table rows, not a time series: use .../score.",
            )

    async def stream(request: Request):
        loaded = registry.get(name)
        stream_ready(loaded)
        media = _media_type(request)
        if not (media in JSON_TYPES or media.endswith("+json")):
            raise HTTPException(415, f"unsupported Content-Type {media!r}: send application/json records in time order")
        body = await _read_body(request, max_body_bytes, body_timeout)
        if body.lstrip()[:1] != b"[":
            raise BodyError(
                [{"loc": ["body"], "type": "list_type", "msg": "expected a JSON array of records, in time order"}]
            )

        def work() -> bytes:
            rows = loaded.spec.parse_json(body, max_rows=limits.max_rows)
            return json.dumps(live.update(loaded, rows), allow_nan=False, default=_plain).encode()

        return Response(await pool.run(work), media_type="application/json")

    async def stream_reset(
        refractory: int = Query(
            0, ge=0, le=1_000_000, description="Points after an alert during which alerts are suppressed."
        ),
        rearm: int = Query(
            0,
            ge=0,
            le=1_000_000,
            description="After an alert, alerts re-arm once the score has been below the threshold this many points.",
        ),
    ):
        loaded = registry.get(name)
        stream_ready(loaded)
        return live.reset(loaded, refractory, rearm)

    tag = f"model {name}"
    if prefix.startswith("/v1/models") and is_series_detector(registry.get(name).model):
        app.add_api_route(
            f"{prefix}/stream",
            stream,
            methods=["POST"],
            tags=[tag],
            response_model=StreamResponse,
            summary=f"Feed rows, in time order, to {name!r}'s live stream.",
            responses={409: {"model": MessageResponse}, **_ERRORS, **secured},
            operation_id=f"stream_{name}",
        )
        app.add_api_route(
            f"{prefix}/stream/reset",
            stream_reset,
            methods=["POST"],
            tags=[tag],
            response_model=StreamResetResponse,
            summary=f"Restart {name!r}'s live stream from its training state, with these alert settings.",
            responses={409: {"model": MessageResponse}, **secured},
            operation_id=f"stream_reset_{name}",
        )
        app.state.stream_paths[f"{prefix}/stream"] = name
    app.add_api_route(
        f"{prefix}/score",
        score,
        methods=["POST"],
        tags=[tag],
        response_model=ScoreResponse,
        summary=f"Score rows with model {name!r}.",
        responses={**_ERRORS, **secured},
        operation_id=f"score_{name}" + ("" if prefix.startswith("/v1/models") else "_default"),
    )
    app.add_api_route(
        prefix if prefix.startswith("/v1/models") else "/v1/model",
        info,
        methods=["GET"],
        tags=[tag],
        summary=f"Detector, schema, threshold and versions of {name!r}.",
        responses=secured,
        operation_id=f"info_{name}" + ("" if prefix.startswith("/v1/models") else "_default"),
    )
    if prefix.startswith("/v1/models"):
        app.add_api_route(
            f"{prefix}/reload",
            reload,
            methods=["POST"],
            tags=[tag],
            summary=f"Load a new version of {name!r} and swap it in atomically.",
            responses={409: {"model": MessageResponse}, **secured},
            operation_id=f"reload_{name}",
        )
    app.state.score_paths[f"{prefix}/score"] = name


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
def _app_from_env() -> FastAPI:
    """Factory for worker processes (``--workers N``): the config travels in an environment variable."""
    cfg = ServeConfig(**json.loads(os.environ[_ENV_CONFIG]))
    HeaderTimeoutH11Protocol.header_timeout = float(cfg.header_timeout)  # this worker's connections
    app = create_app(cfg.models, api_key=_api_key(cfg.api_key_env), streams=cfg.workers == 1, **_app_kwargs(cfg))
    freeze_heap()  # the models are loaded: out of the garbage collector's full passes
    return app


def serve(cfg: ServeConfig) -> None:
    """Check the settings, load the model(s) and run Uvicorn until interrupted."""
    import uvicorn

    key = _api_key(cfg.api_key_env)
    check_bind(cfg.host, key, cfg.insecure)
    _check_limits(cfg)
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    common = uvicorn_options(cfg)
    set_thread_env(compute_threads(cfg.threads))  # for what loads from now on, and for the worker processes
    if cfg.workers > 1:
        # Each worker process loads the models itself and watches their directories.
        from deepad.serve.registry import discover_models

        discover_models(cfg.models)  # fail here, not in every worker
        os.environ[_ENV_CONFIG] = json.dumps(asdict(cfg))
        # Uvicorn's default 5 s health check killed and restarted workers still starting up, for ever, under load.
        uvicorn.run(
            "deepad.serve.app:_app_from_env",
            factory=True,
            workers=cfg.workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
            **common,
        )
    else:
        app = create_app(cfg.models, api_key=key, **_app_kwargs(cfg))
        freeze_heap()  # the models are loaded: out of the garbage collector's full passes
        uvicorn.run(app, **common)
