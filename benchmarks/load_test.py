"""Bounded load test of `deepad serve` on the loopback interface.

Starts the real command (`python -m deepad.cli serve MODEL --port P`) in a
subprocess, waits for /readyz, then sends a *fixed* number of requests with
a small asyncio httpx client (a few connections in flight) and reports, for
single-record and 1,000-record requests: throughput (requests/s and
rows/s), p50 / p99 latency, and failed requests (any non-200 answer or
transport error; the script exits 1 if there is one).

    .venv/bin/python benchmarks/load_test.py                  # trains a small model first
    .venv/bin/python benchmarks/load_test.py --model DIR --single 2000 --batch 100 --concurrency 8

Only 127.0.0.1 is ever contacted.  The model by default: TabularDetector
(AutoEncoder) on 5,000 rows of the synthetic card-transaction table of
deepad.data.synthetic (12 mixed-type columns).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def train_model(path: Path, rows: int) -> None:
    from deepad.data.synthetic import make_fraud_frame

    from deepad.detectors import AutoEncoder
    from deepad.pipeline import TabularDetector

    df = make_fraud_frame(rows, seed=1).drop(columns=["is_fraud"])
    model = TabularDetector(
        AutoEncoder(epochs=10, hidden_dims=(64, 32), latent_dim=8, random_state=0), contamination=0.01
    )
    model.fit(df)
    model.save(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def run_phase(
    url: str, bodies: list[bytes], n_requests: int, concurrency: int, rows_per_request: int, warmup: int
) -> dict:
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for i in range(warmup):
            r = await client.post("/v1/score", content=bodies[i % len(bodies)], headers=headers)
            r.raise_for_status()
        queue = iter(range(n_requests))

        async def worker():
            for i in queue:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/score", content=bodies[i % len(bodies)], headers=headers)
                    ok = r.status_code == 200 and r.json()["n"] == rows_per_request
                    if not ok:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                except Exception as exc:  # noqa: BLE001 - a failure to report, not to hide
                    failures.append(repr(exc))
                    continue
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "requests": n_requests,
        "rows_per_request": rows_per_request,
        "concurrency": concurrency,
        "failed": len(failures),
        "failures_sample": failures[:3],
        "wall_s": round(wall, 3),
        "requests_per_s": round(n_requests / wall, 1),
        "rows_per_s": round(n_requests * rows_per_request / wall, 0),
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="A saved model directory (default: train a small one).")
    ap.add_argument("--train-rows", type=int, default=5000)
    ap.add_argument("--single", type=int, default=2000, help="Single-record requests to send.")
    ap.add_argument("--batch", type=int, default=100, help="1,000-record requests to send.")
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8, help="Requests in flight.")
    ap.add_argument("--workers", type=int, default=1, help="Server worker processes.")
    ap.add_argument("--threads", default="1", help="DEEPAD_NUM_THREADS for the server (torch threads).")
    ap.add_argument("--json", help="Also write the results to this JSON file.")
    args = ap.parse_args()

    import httpx

    from deepad.data.synthetic import make_fraud_frame

    tmp = tempfile.TemporaryDirectory(prefix="deepad-load-")
    model_dir = Path(args.model) if args.model else Path(tmp.name) / "model"
    if not args.model:
        print(f"training a model on {args.train_rows:,} rows ...", flush=True)
        train_model(model_dir, args.train_rows)

    pool = make_fraud_frame(20_000, seed=9, start_index=1_000_000).drop(columns=["is_fraud"])
    records = json.loads(pool.to_json(orient="records"))
    singles = [json.dumps([r]).encode() for r in records[:1000]]
    batches = [
        json.dumps(records[i : i + args.batch_rows]).encode()
        for i in range(0, len(records) - args.batch_rows + 1, args.batch_rows)
    ]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DEEPAD_NUM_THREADS": str(args.threads), "DEEPAD_QUIET": "1"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepad.cli",
            "serve",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--reload-interval",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                print(server.communicate()[0])
                return 1
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                print("server did not become ready")
                return 1
            time.sleep(0.25)
        results = {
            "single_record": asyncio.run(run_phase(url, singles, args.single, args.concurrency, 1, warmup=20)),
            f"{args.batch_rows}_records": asyncio.run(
                run_phase(url, batches, args.batch, args.concurrency, args.batch_rows, warmup=3)
            ),
        }
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    meta = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "server_workers": args.workers,
        "server_torch_threads": args.threads,
        "body_bytes": {"single": len(singles[0]), "batch": len(batches[0])},
    }
    print(
        f"\nmachine: {meta['cpus']} CPUs, load average {meta['load_average'][0]:.1f}; server workers "
        f"{args.workers}, torch threads {args.threads}; {args.concurrency} requests in flight"
    )
    print(f"{'request':>14} {'requests':>8} {'failed':>6} {'req/s':>8} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(
            f"{name:>14} {r['requests']:>8} {r['failed']:>6} {r['requests_per_s']:>8.1f} {r['rows_per_s']:>9,.0f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    failed = sum(r["failed"] for r in results.values())
    if failed:
        print(f"{failed} failed requests, e.g. {[r['failures_sample'] for r in results.values()]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
