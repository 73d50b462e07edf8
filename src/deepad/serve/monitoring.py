"""Monitoring of the scoring service: Prometheus ``GET /metrics`` and ``GET /v1/models/{name}/drift``.

:func:`install` wires both into an app (one call in :func:`~deepad.serve.app.create_app`).  A pure-ASGI
middleware times every request and counts it by model, endpoint and status; the scoring path
(:func:`~deepad.serve.scoring._answer`) hands the request's scores and flags to it through a context
variable (:func:`record`), so rows scored and rows flagged are counted with two array sums, never a loop
over rows.  Each app has its own :class:`prometheus_client.CollectorRegistry`, so many apps in one process
(tests, several services) never share or clash.

Drift: each model keeps a ring buffer of its last ``window`` scores (reset when a new version is swapped in:
its scores are not comparable).  ``GET .../drift`` runs :func:`deepad.drift.score_drift` -- Kolmogorov-Smirnov
of the window against the model's reference scores and Fisher's exact test of the flag rate at
``threshold_`` (docs/drift.md) -- and exports the p-value as the ``deepad_score_drift_p_value`` gauge.  Query
parameters: ``alpha`` (the verdict's level; the ``deepad_score_drift`` gauge is the verdict at the alpha of the last
request), ``tail_quantiles`` (comma-separated, checked by :func:`deepad.drift.check_tail_quantiles`) and ``rows``
(test only the most recent ``rows`` scores of the window).  A model whose reference scores are its training scores
(uncalibrated: in-sample or leave-one-out, neither held out) gets ``drift: null`` with the p-value and a ``detail`` (its test
raises false alarms, docs/drift.md), and the ``deepad_score_drift`` gauge NaN, unless ``score_in_verdict=true``.
``/metrics`` and ``/drift`` need the API key when one is set, like every path but the health probes.
"""

from __future__ import annotations

import contextvars
import time

import numpy as np

#: scores kept per model for the drift endpoint
DRIFT_WINDOW = 10_000
#: fewer window scores than this: the drift endpoint answers ``drift: null`` rather than a weak test
MIN_DRIFT_ROWS = 100
#: significance level of the drift verdict
DRIFT_ALPHA = 0.05

_SLOT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("deepad_serve_monitor_slot", default=None)


def record(name: str, version: str, scores: np.ndarray, flags: np.ndarray, window: bool = True) -> None:
    """Called by the scoring path with one request's scores and flags (a no-op outside a monitored app).

    ``window=False`` (live streams: smoothed scores against an adaptive threshold, not comparable with the
    model's reference scores): count the rows and alarms, keep the scores out of the drift window.
    """
    slot = _SLOT.get()
    if slot is not None:
        slot["scored"] = (name, version, scores, flags, window)


class ScoreWindow:
    """The last ``size`` scores of one model version, in a numpy ring buffer."""

    def __init__(self, size: int, version: str):
        self.buf = np.empty(int(size), dtype=np.float64)
        self.version = version
        self.n = 0  # scores ever added

    def add(self, scores: np.ndarray) -> None:
        s = np.asarray(scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        size = self.buf.size
        if s.size >= size:
            self.buf[:] = s[-size:]
            self.n += s.size
            self.buf = np.roll(self.buf, self.n % size)  # keep "position n % size is the oldest" true
            return
        start = self.n % size
        end = start + s.size
        if end <= size:
            self.buf[start:end] = s
        else:
            cut = size - start
            self.buf[start:] = s[:cut]
            self.buf[: s.size - cut] = s[cut:]
        self.n += s.size

    def values(self) -> np.ndarray:
        """The window's scores, oldest first (a copy)."""
        size = self.buf.size
        if self.n < size:
            return self.buf[: self.n].copy()
        start = self.n % size
        return np.concatenate([self.buf[start:], self.buf[:start]])


class Monitor:
    """Per-app Prometheus metrics and score windows."""

    def __init__(self, names, window: int = DRIFT_WINDOW):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.names = frozenset(names)
        self.only = next(iter(self.names)) if len(self.names) == 1 else None
        self.window = int(window)
        self.windows: dict[str, ScoreWindow] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "deepad_requests",
            "HTTP requests by model, endpoint and status.",
            ["model", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "deepad_request_duration_seconds",
            "Request latency (seconds, whole request) by model and endpoint.",
            ["model", "endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.rows = Counter("deepad_rows_scored", "Rows scored by model.", ["model"], registry=r)
        self.flagged = Counter("deepad_rows_flagged", "Rows flagged as anomalies by model.", ["model"], registry=r)
        self.p_value = Gauge(
            "deepad_score_drift_p_value",
            "Score-drift p-value of the last GET .../drift (its rows and tail_quantiles), by model.",
            ["model"],
            registry=r,
        )
        self.drift = Gauge(
            "deepad_score_drift",
            "1 if the last GET .../drift found drift at the alpha it asked for, else 0.",
            ["model"],
            registry=r,
        )

    def route(self, path: str) -> tuple[str, str]:
        """(model, endpoint) labels of a path; unknown names and paths get ``""``/``other`` (bounded labels)."""
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["v1", "models"]:
            model = parts[2] if parts[2] in self.names else ""
            return model, ("/".join(parts[3:]) or "info") if model else "other"
        if parts in (["v1", "score"], ["v1", "model"]) and self.only is not None:
            return self.only, "score" if parts[1] == "score" else "info"
        if parts in (["metrics"], ["v1", "models"], ["healthz"], ["readyz"]):
            return "", parts[-1]
        return "", "other"

    def observe(self, name: str, version: str, scores: np.ndarray, flags: np.ndarray, window: bool = True) -> None:
        self.rows.labels(name).inc(int(scores.size))
        self.flagged.labels(name).inc(int(np.count_nonzero(flags)))
        if not window:
            return
        w = self.windows.get(name)
        if w is None or w.version != version:
            w = self.windows[name] = ScoreWindow(self.window, version)
        w.add(scores)


class _MetricsMiddleware:
    """Times and counts each HTTP request; records the scores the scoring path handed over."""

    def __init__(self, app, monitor: Monitor):
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        slot: dict = {}
        token = _SLOT.set(slot)

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            _SLOT.reset(token)
            m = self.monitor
            model, endpoint = m.route(scope.get("path", ""))
            m.latency.labels(model, endpoint).observe(time.perf_counter() - start)
            m.requests.labels(model, endpoint, str(status["code"])).inc()
            scored = slot.get("scored")
            if scored is not None and status["code"] == 200:
                m.observe(*scored)


def _tail_quantiles(text: str | None) -> tuple[float, ...]:
    """The ``tail_quantiles`` query parameter (``"0.9,0.99"``) as a tuple; a 422 in FastAPI's detail shape if bad.

    Split on commas as ``deepad monitor --tail-quantiles`` does; the rule is :func:`deepad.drift.check_tail_quantiles`
    (text that is not a number fails it too).
    """
    if text is None:
        return ()
    from fastapi.exceptions import RequestValidationError

    from deepad.drift import check_tail_quantiles

    try:
        return check_tail_quantiles(text.split(","), what="tail_quantiles")
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "tail_quantiles"), "msg": str(exc), "input": text}]
        ) from None


def install(app, registry, secured: dict) -> Monitor:
    """Add ``GET /metrics``, ``GET /v1/models/{name}/drift`` and the counting middleware to ``app``."""
    from fastapi import APIRouter, Query
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    monitor = Monitor(registry.names)
    router = APIRouter()

    @router.get("/metrics", tags=["monitoring"], summary="Prometheus metrics of this process.", responses=secured)
    async def metrics():
        return Response(generate_latest(monitor.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/v1/models/{name}/drift",
        tags=["monitoring"],
        summary="Score drift of the model's last scored rows against its reference scores.",
        responses={404: {"description": "no such model"}, **secured},
    )
    async def drift(
        name: str,
        alpha: float = Query(
            DRIFT_ALPHA,
            gt=0.0,
            lt=1.0,
            description="Level of the verdict: `drift` is `p_value < alpha` (strictly between 0 and 1). The "
            "`deepad_score_drift` gauge is the verdict at the alpha of the last request.",
        ),
        tail_quantiles: str | None = Query(
            None,
            description="Comma-separated reference quantiles such as `0.9,0.99`, each strictly between 0 and 1, none "
            "twice: add a one-sided test of an excess of scores above each (as `deepad monitor --tail-quantiles`). "
            "Default: none.",
            examples=["0.9,0.99"],
        ),
        rows: int | None = Query(
            None,
            ge=MIN_DRIFT_ROWS,
            le=monitor.window,
            description=f"Test only the most recent `rows` scores of the window ({MIN_DRIFT_ROWS} to "
            f"{monitor.window}); default: the whole window. With fewer in the window, the test runs on those it "
            f"holds (if at least {MIN_DRIFT_ROWS}) and a `detail` says so.",
        ),
        score_in_verdict: bool | None = Query(
            None,
            description="Give a verdict even when the model's reference scores are its training scores, not "
            "held-out calibration scores (`true`). Default: `drift` is `null` then (the p-value is still given): new "
            "normal rows do not score like the rows the model learned from, so the test raises false alarms; "
            "recalibrate the model on held-out clean rows for a valid verdict.",
        ),
    ):
        tails = _tail_quantiles(tail_quantiles)
        if name not in monitor.names:
            served = ", ".join(sorted(monitor.names))
            return JSONResponse({"detail": f"no model named {name!r}; served: {served}"}, status_code=404)
        loaded = registry.get(name)
        w = monitor.windows.get(name)
        scores = w.values() if w is not None and w.version == loaded.version else np.empty(0)
        held = int(scores.size)
        out = {"model": name, "version": loaded.version, "window": monitor.window, "n_rows": held}
        if held < MIN_DRIFT_ROWS:
            return {
                **out,
                "drift": None,
                "p_value": None,
                "min_rows": MIN_DRIFT_ROWS,
                "detail": f"only {held} row(s) scored by version {loaded.version} so far; the drift test "
                f"needs at least {MIN_DRIFT_ROWS}: score more rows and ask again (rows fed to .../stream do not count: "
                "their smoothed scores are not comparable with the model's reference scores).",
            }
        if rows is not None:
            scores = scores[-rows:]
        from deepad.drift import score_drift

        section = await run_in_threadpool(score_drift, loaded.model, scores, tails)
        p = float(section["p_value"])
        valid = section["held_out"] if score_in_verdict is None else bool(score_in_verdict)
        monitor.p_value.labels(name).set(p)
        monitor.drift.labels(name).set(float(p < alpha) if valid else float("nan"))
        answer = {
            **out,
            "n_rows": int(scores.size),
            "window_rows": held,
            "drift": bool(p < alpha) if valid else None,
            "p_value": p,
            "alpha": alpha,
            "flag_rate": section["flag_rate"]["new_rate"],
            "expected_flag_rate": section["flag_rate"]["expected_rate"],
            "score": section,
        }
        if not valid:
            answer["detail"] = (
                f"no verdict: the reference is the {section['reference']} of {type(loaded.model).__name__}, not held "
                "out of training, so new normal rows do not score like them and the test raises false alarms; "
                "recalibrate the model "
                "on held-out clean rows (deepad.drift.recalibrate, deepad train --calibration-fraction), or ask with "
                "score_in_verdict=true for a verdict anyway."
            )
        elif rows is not None and held < rows:
            answer["detail"] = (
                f"rows={rows} asked for, but the window holds {held} score(s) of version {loaded.version}: "
                f"tested those {held}."
            )
        return answer

    app.include_router(router)
    app.add_middleware(_MetricsMiddleware, monitor=monitor)
    app.state.monitor = monitor
    return monitor
