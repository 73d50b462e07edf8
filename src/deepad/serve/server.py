"""Running the scoring service under Uvicorn: its settings and the connection limits.

Holds :class:`ServeConfig` (the settings of ``deepad serve``, JSON-able so
that worker processes get them through the ``DEEPAD_SERVE_CONFIG``
environment variable), :func:`_check_limits` (the start-up check of its
limits and timeouts), :class:`HeaderTimeoutH11Protocol` (Uvicorn's h11
protocol plus a deadline for each request head, ``header_timeout``) and
:func:`uvicorn_options` (the keyword arguments of ``uvicorn.run``, with
``keep_alive_timeout`` for idle keep-alive connections).  Starting the
server itself, which builds the application, is
:func:`deepad.serve.app.serve`.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

try:
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc

from deepad.serve.bodies import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DEFAULT_MAX_ROWS,
)

log = logging.getLogger("deepad.serve")

DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
_ENV_CONFIG = "DEEPAD_SERVE_CONFIG"
#: the most CPU seconds a request's scoring may be expected to take to run on the event loop itself (ScoringPool)
INLINE_BUDGET = 0.02
#: bodies above this many bytes always go to a pool thread, whatever the estimate says
INLINE_MAX_BYTES = 1 << 20
#: the estimate is the median of this many last measurements: a cold first call (imports, caches) is forgotten
INLINE_SAMPLES = 5
#: seconds Uvicorn waits for a worker process to answer its health check (``--workers`` above 1) before it kills it
WORKER_HEALTHCHECK_TIMEOUT = 120


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
    threads: int | None = None  # compute threads per worker (torch, BLAS, OpenMP); None: DEEPAD_NUM_THREADS, else 1
    concurrency: int | None = None  # requests a worker scores at once; None: cores // threads (see ScoringPool)
    inline_ms: float = INLINE_BUDGET * 1000  # a request expected to score within this many ms runs on the event loop


#: the environment variables that size the compute thread pools of a process (read when each library loads)
THREAD_ENV = ("DEEPAD_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def compute_threads(threads: int | None) -> int:
    """Compute threads per worker process: ``threads``, else ``DEEPAD_NUM_THREADS``, else 1.

    Why 1: a scoring service runs many small requests side by side, and each
    pool thread (or worker process) that scores calls torch, BLAS and
    OpenMP (scikit-learn's neighbour search), each of which starts one
    thread per core by default.  With more threads than cores, OpenMP's
    threads wait for each other: on this project's 2-core machine under
    load, DEFAULT's neighbour search for one row took 398 ms with OpenMP's
    default 2 threads against 1.7 ms with one (``docs/serving.md``).  Scale
    with ``--workers`` instead, one thread each; raise ``--threads`` only
    for a few large requests on free cores.
    """
    if threads is None:
        env = os.environ.get("DEEPAD_NUM_THREADS")
        threads = int(env) if env and env.strip().isdigit() else 1
    return max(1, int(threads))


def set_thread_env(threads: int) -> None:
    """Size the thread pools of libraries loaded from now on, in this process and the worker processes it starts."""
    for var in THREAD_ENV:
        os.environ[var] = str(int(threads))


class ThreadLimiter:
    """Caps BLAS and OpenMP threads at ``threads`` in every thread that scores, once per thread.

    OpenMP's thread count is a per-thread setting: a limit set in the main
    thread (``threadpoolctl.threadpool_limits``) does not reach the pool
    threads that score requests, which start from the value
    ``OMP_NUM_THREADS`` had when the library loaded (default: one per
    core).  So each scoring thread applies the limit itself, the first time
    it scores (about 0.1 ms, once).
    """

    def __init__(self, threads: int):
        from threadpoolctl import ThreadpoolController

        self.threads = int(threads)
        self._controller = ThreadpoolController()  # the libraries loaded now (the models are)
        self._local = threading.local()

    def ensure(self) -> None:
        if not getattr(self._local, "done", False):
            self._controller.limit(limits=self.threads)
            try:
                import sys

                torch = sys.modules.get("torch")
                if torch is not None and torch.get_num_threads() != self.threads:
                    torch.set_num_threads(self.threads)
            except (AttributeError, RuntimeError):  # pragma: no cover - an odd torch build
                pass
            self._local.done = True


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def score_concurrency(concurrency: int | None, threads: int = 1) -> int:
    """Requests one worker process scores at once: ``concurrency``, else ``cores // threads``, at least 1 (see
    :class:`ScoringPool`).  Not divided by the workers: the connections a worker takes are not spread evenly,
    and a busy worker may use the cores an idle one leaves (DEFAULT, 2 workers on 2 cores, 1,000-row requests,
    ``benchmarks/serve_ab.py --model default_dw0 --workers 2``: 1.47x in-process with one request per worker at
    once, 1.60-1.63x with two)."""
    if concurrency is None:
        return max(1, available_cores() // max(1, int(threads)))
    return max(1, int(concurrency))


class ScoringPool:
    """Runs a request's scoring in a pool thread, at most ``concurrency`` requests of this process at once -- or,
    when it is cheap, on the event loop itself.

    Why a limit: Starlette's ``run_in_threadpool`` lets up to 40 requests
    score side by side, one thread each.  A scoring call is mostly Python
    and pandas, which hold the GIL, so with 8 requests in flight 8 threads
    took turns at it: the same work cost more CPU (GIL hand-overs, cold
    caches) and finished later.  Requests beyond ``concurrency`` now wait
    for a slot (on the event loop, costing nothing) instead.  1,000-row
    AutoEncoder requests, 8 in flight, one worker on 2 cores: with this
    pool and the column fast path, 1.45-1.6x the rows/s of the release
    before, server CPU 15.7-20.4 ms per request against 23.2-30.0;
    ``--concurrency 40`` gives most of it back (``python
    benchmarks/serve_ab.py``, ``benchmarks/results/throughput/serve_ab_session14.txt``).
    Each thread also applies ``threads`` (:class:`ThreadLimiter`) before it scores.

    Why inline: even one pool thread hands the GIL back and forth with the
    event loop while it scores (about 75 voluntary context switches per
    1,000-row request).  So :meth:`run` keeps, per ``cost_key`` (model
    version and body kind), the median of the scoring thread's CPU seconds
    per body byte over the last :data:`INLINE_SAMPLES` successful calls (a
    median, so that one cold first call does not keep the next ones in the
    pool, nor one cheap call send a costly kind inline).  A body whose
    expected cost (that median times its size) is at most
    ``inline_budget`` seconds, and which is at most :data:`INLINE_MAX_BYTES`,
    is scored on the event loop once a slot is free like any other; the
    loop serves nothing else meanwhile, so the budget bounds what another
    request waits.  A key with no measurement yet goes to the pool.
    DEFAULT's 1,000-row requests (about 100 ms, k-NN searches that release
    the GIL and run side by side in the pool) stay over the budget and keep
    their threads.  AutoEncoder, 1,000 rows, one worker, asyncio's loop:
    1.25-1.27x the rows/s of ``inline_budget=0`` for JSON columns,
    0.97-1.07x for CSV and Parquet, 1.7-4.3 ms less server CPU per request in
    every case (``benchmarks/results/throughput/serve_ab_session15.txt``).
    (The CPU time is the scoring thread's own: with ``threads`` above 1,
    work in torch's other threads is not counted.)
    """

    def __init__(self, concurrency: int, threads: ThreadLimiter | None = None, inline_budget: float = INLINE_BUDGET):
        if int(concurrency) < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
        if not float(inline_budget) >= 0:
            raise ValueError(f"inline_budget must be at least 0 seconds, got {inline_budget}.")
        self.concurrency = int(concurrency)
        self.threads = threads
        self.inline_budget = float(inline_budget)
        self._limiters: dict[int, Any] = {}  # per event loop (a test client runs one loop per client)
        self._per_byte: dict[Any, float] = {}  # cost_key -> median of its last measurements (CPU s per body byte)
        self._recent: dict[Any, Any] = {}  # cost_key -> its last INLINE_SAMPLES measurements

    def call(self, func, *args):
        """``func(*args)`` in this thread, with the compute-thread limit applied."""
        if self.threads is not None:
            self.threads.ensure()
        return func(*args)

    def inline(self, cost_key, size: int) -> bool:
        """Whether a ``size``-byte body of ``cost_key`` is expected to score within the inline budget."""
        per_byte = self._per_byte.get(cost_key)
        return per_byte is not None and size <= INLINE_MAX_BYTES and per_byte * size <= self.inline_budget

    def _measured(self, cost_key, size: int, func, *args):
        start = time.thread_time()
        out = self.call(func, *args)
        if size > 0:  # only successful calls: a rejected body costs little and says nothing of a valid one
            seconds = (time.thread_time() - start) / size
            recent = self._recent.get(cost_key)
            if recent is None:
                if len(self._recent) >= 256:  # keys of versions long replaced: start afresh
                    self._recent.clear()
                    self._per_byte.clear()
                recent = self._recent[cost_key] = collections.deque(maxlen=INLINE_SAMPLES)
            recent.append(seconds)
            self._per_byte[cost_key] = statistics.median(recent)
        return out

    async def run(self, func, *args, cost_key=None, size: int = 0):
        """``func(*args)``: on the event loop if ``cost_key``'s measured cost says it is cheap (see the class),
        else in a pool thread once a slot is free; ``size``: the body's bytes (0: not measured)."""
        import asyncio

        import anyio
        import anyio.to_thread

        loop = id(asyncio.get_running_loop())
        limiter = self._limiters.get(loop)
        if limiter is None:
            self._limiters = {loop: (limiter := anyio.CapacityLimiter(self.concurrency))}
        if cost_key is None:
            size = 0
        elif self.inline(cost_key, size):
            async with limiter:  # it takes a slot like any other: still at most ``concurrency`` at once
                return self._measured(cost_key, size, func, *args)
        return await anyio.to_thread.run_sync(self._measured, cost_key, size, func, *args, limiter=limiter)


class HeaderTimeoutH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a deadline for each request head: ``header_timeout`` seconds (class attribute).

    Why: Uvicorn times out only an *idle* keep-alive connection (``timeout_keep_alive``, reset by every byte that
    arrives), so a client that sends a request head a byte at a time, or half a head and then nothing, holds its
    connection for ever.  Here the clock starts when the connection opens and again when a response is complete,
    and is stopped only by a complete request head; when it runs out the connection is closed (no answer: the
    request never started).  Bodies have their own deadline (``body_timeout`` in
    :func:`~deepad.serve.app.create_app`).  Builds on Uvicorn's ``H11Protocol`` internals (``cycle``,
    ``handle_events``, ``on_response_complete``).
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
            log.info(
                "closing the connection from %s: no complete request head within %g s (header timeout)",
                who,
                self.header_timeout,
            )
            self.transport.close()


def uvicorn_options(cfg: ServeConfig) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for ``cfg``: address, logging and the connection
    limits (``timeout_keep_alive``; the request-head deadline through :class:`HeaderTimeoutH11Protocol`, whose
    ``header_timeout`` this sets for the process).  Request heads are also limited to 16 KiB by Uvicorn's h11
    default (``h11_max_incomplete_event_size``; 400 above it)."""
    HeaderTimeoutH11Protocol.header_timeout = float(cfg.header_timeout)
    return dict(
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        server_header=False,
        access_log=False,
        timeout_keep_alive=float(cfg.keep_alive_timeout),
        http=HeaderTimeoutH11Protocol,
    )


def _app_kwargs(cfg: ServeConfig) -> dict[str, Any]:
    return dict(
        compute_threads=compute_threads(cfg.threads),
        concurrency=score_concurrency(cfg.concurrency, compute_threads(cfg.threads)),
        inline_budget=float(cfg.inline_ms) / 1000,
        max_body_bytes=cfg.max_body_bytes,
        reload_interval=cfg.reload_interval,
        max_rows=cfg.max_rows,
        max_decompressed_bytes=cfg.max_decompressed_bytes,
        body_timeout=cfg.body_timeout,
    )


def _check_limits(cfg: ServeConfig) -> None:
    if cfg.max_body_bytes < 1:
        raise ValueError("the body size limit must be positive.")
    if cfg.max_rows < 1:
        raise ValueError(f"--max-rows must be at least 1, got {cfg.max_rows}.")
    if cfg.max_decompressed_bytes < 1:
        raise ValueError("the decompressed size limit must be positive.")
    if cfg.threads is not None and (isinstance(cfg.threads, bool) or int(cfg.threads) < 1):
        raise ValueError(f"--threads must be at least 1, got {cfg.threads}.")
    if cfg.concurrency is not None and (isinstance(cfg.concurrency, bool) or int(cfg.concurrency) < 1):
        raise ValueError(f"--concurrency must be at least 1, got {cfg.concurrency}.")
    if isinstance(cfg.inline_ms, bool) or not 0 <= float(cfg.inline_ms) <= 10_000:
        raise ValueError(f"--inline-ms must be between 0 and 10000, got {cfg.inline_ms}.")
    for flag, value in (
        ("--body-timeout", cfg.body_timeout),
        ("--header-timeout", cfg.header_timeout),
        ("--keep-alive-timeout", cfg.keep_alive_timeout),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a positive number of seconds, got {value!r}.")
