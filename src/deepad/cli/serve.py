"""``deepad serve``: the HTTP scoring service (deepad.serve)."""

from __future__ import annotations

import os

import typer

from deepad.cli._common import _UserErrors, _quiet, fail

__all__ = ["serve"]


def serve(
    models: str = typer.Argument(..., help="A model directory, or a directory whose sub-directories are models."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to listen on. Beyond loopback an API key (--api-key-env) or --insecure is required.",
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each loads the models)."),
    api_key_env: str = typer.Option(
        None,
        "--api-key-env",
        help="Name of the environment variable holding the API key clients must send as X-API-Key.",
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --host without an API key."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.001, help="Largest request body (413 above)."),
    reload_interval: float = typer.Option(
        2.0, "--reload-interval", min=0.0, help="Seconds between checks for a new model version (0: off)."
    ),
    max_rows: int = typer.Option(
        100_000, "--max-rows", min=1, help="Most rows per request (JSON, CSV, Parquet, streams); 413 above."
    ),
    max_decompressed_mb: float = typer.Option(
        256.0,
        "--max-decompressed-mb",
        min=0.001,
        help="Largest decoded size of a Parquet body, checked from its metadata before reading (413 above).",
    ),
    body_timeout: float = typer.Option(
        30.0, "--body-timeout", min=0.001, help="Seconds to receive a request body (408 after)."
    ),
    header_timeout: float = typer.Option(
        30.0, "--header-timeout", min=0.001, help="Seconds to receive a request head (the connection is closed after)."
    ),
    keep_alive_timeout: float = typer.Option(
        5.0, "--keep-alive-timeout", min=0.001, help="Seconds an idle keep-alive connection stays open."
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="Compute threads (torch, BLAS, OpenMP) per worker process. Default: DEEPAD_NUM_THREADS, else 1. "
        "Scale with --workers; keep workers x threads at most the cores.",
    ),
    concurrency: int = typer.Option(
        None,
        "--concurrency",
        min=1,
        help="Requests each worker scores at once (more wait their turn). Default: cores // threads, at least 1.",
    ),
    inline_ms: float = typer.Option(
        20.0,
        "--inline-ms",
        min=0.0,
        max=10_000.0,
        help="Score a request on the event loop itself, without a thread hand-over, when its measured cost per "
        "byte says it takes at most this many CPU ms (the loop serves nothing else meanwhile). 0: never.",
    ),
) -> None:
    """Serve saved models over HTTP (FastAPI/Uvicorn): POST /v1/score, GET /v1/model, /healthz, /readyz.

    See docs/serving.md.  Needs the serve extra: pip install 'deepad[serve]'.
    """
    # Before the libraries load (OpenMP reads its thread count once, when it loads): see docs/serving.md.
    n = threads if threads is not None else os.environ.get("DEEPAD_NUM_THREADS", "").strip()
    n = int(n) if str(n).isdigit() and int(n) >= 1 else 1
    for var in ("DEEPAD_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from deepad.serve.app import ServeConfig, serve as run_server
    except ImportError:
        fail("deepad serve needs the serve extra: pip install 'deepad[serve]'")
    cfg = ServeConfig(
        models=models,
        host=host,
        port=port,
        workers=workers,
        api_key_env=api_key_env,
        insecure=insecure,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        reload_interval=reload_interval,
        log_level="warning" if _quiet() else "info",
        max_rows=max_rows,
        max_decompressed_bytes=int(max_decompressed_mb * 1024 * 1024),
        body_timeout=body_timeout,
        header_timeout=header_timeout,
        keep_alive_timeout=keep_alive_timeout,
        threads=n,
        concurrency=concurrency,
        inline_ms=inline_ms,
    )
    with _UserErrors():
        run_server(cfg)
