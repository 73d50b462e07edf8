"""Bounded load test of `deepad serve` against a bare FastAPI app, side by side in one run (issue 18, targets 1-2).

What one run does, on the loopback interface only (127.0.0.1):

1. trains three models on the synthetic card-transaction table of
   ``deepad.data.synthetic.make_fraud_frame`` (12 mixed-type columns): DEFAULT as
   ``LocalGlobalEnsemble(deep_weight=0)`` (no Deep Isolation Forest view), today's DEFAULT
   (``deep_weight=0.25``) and ``AutoEncoder(64, 32; latent 8)``, each in a TabularDetector;
2. starts, each in its own process and on the same Uvicorn with the same h11 protocol and no
   access log, and all at once (an idle server costs nothing): a **bare FastAPI app** whose one
   route reads the body, parses it with ``json.loads`` and answers ``{"n": rows}``; ``deepad serve``
   with one worker; ``deepad serve --workers 2``;
3. drives them with one **bounded asyncio httpx client** (``--concurrency`` requests in flight, 8 by
   default; a fixed number of requests), run in a process of its own so that it does not share an
   interpreter with a server (it still shares the machine's cores with them).  The targets take
   turns (``--chunks`` turns of ``--single / --chunks`` requests each), so that all of them see the
   same machine load, which on a shared machine changes by the minute;
4. prints, for single-record JSON requests: requests/s, p50, p99, failed requests, and the ratios
   to the bare app's (targets: throughput >= 0.40, p99 <= 4x, 0 failures); and for 1,000-record
   requests as JSON records, JSON column arrays, CSV and Parquet bodies: rows/s and the ratio to
   in-process ``decision_function`` on the same rows of the same model (target >= 0.50), that
   reference timed in this process on the same DataFrames with one thread, right before and right
   after the service's turn (the mean of the two), while the servers are idle.

Everything is repeated ``--rounds`` times (default 2), each round printed on its own: on a shared
machine one round's numbers can be off by a factor, the ratios within a round are what count.
Every process gets ``DEEPAD_NUM_THREADS=1`` unless ``--threads`` says otherwise.  The script exits 1
if any request failed.

    python benchmarks/load_test.py                            # ~10 minutes on a loaded 2-core machine
    python benchmarks/load_test.py --single 600 --batch 10 --rounds 1 --json load.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BARE_APP = """
import json
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/score")
async def score(request: Request):
    data = json.loads(await request.body())
    n = len(data) if isinstance(data, list) else len(next(iter(data["columns"].values())))
    return Response(json.dumps({"n": n}).encode(), media_type="application/json")
"""

SINGLE_MODELS = ("default_dw0", "default_today", "autoencoder")
BATCH_MODELS = ("default_dw0", "autoencoder")
BODY_KINDS = ("json_records", "json_columns", "csv", "parquet")
CONTENT_TYPES = {
    "json_records": "application/json",
    "json_columns": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


# --------------------------------------------------------------------------- the load generator (its own process)
def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc``; uvicorn's ``--workers`` are children of the server)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds used so far by ``pid`` and its descendants (0 where ``/proc`` cannot say)."""
    if pid is None:
        return 0.0
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


async def _drive(spec: dict) -> dict:
    """Each target gets its warm-up, then the targets take turns, ``chunks`` times, each sending ``requests /
    chunks`` requests with ``concurrency`` in flight: every target sees the same machine load, in turn."""
    import httpx

    targets = spec["targets"]
    bodies = {}
    for t in targets:
        if t["bodies"] not in bodies:
            with open(t["bodies"], "rb") as fh:
                bodies[t["bodies"]] = pickle.load(fh)
    concurrency = spec["concurrency"]
    stats = {
        t["name"]: {"latencies": [], "failures": [], "wall": 0.0, "requests": 0, "server_cpu": 0.0, "client_cpu": 0.0}
        for t in targets
    }
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = {t["name"]: httpx.AsyncClient(base_url=t["url"], timeout=120, limits=limits) for t in targets}
    try:

        async def burst(t: dict, n: int, record: bool) -> None:
            st, client, body = stats[t["name"]], clients[t["name"]], bodies[t["bodies"]]
            headers = {"content-type": t["content_type"]}
            queue = iter(range(st["requests"], st["requests"] + n))

            async def worker() -> None:
                for i in queue:
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(t["path"], content=body[i % len(body)], headers=headers)
                        if r.status_code != 200 or r.json()["n"] != t["rows"]:
                            st["failures"].append(f"{r.status_code}: {r.text[:200]}")
                            continue
                    except Exception as exc:  # noqa: BLE001 - a failure to report, not to hide
                        st["failures"].append(repr(exc))
                        continue
                    if record:
                        st["latencies"].append(time.perf_counter() - t0)

            s0, c0 = _cpu_seconds(t.get("pid")), time.process_time()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            if record:
                st["wall"] += time.perf_counter() - t0
                st["requests"] += n
                st["client_cpu"] += time.process_time() - c0  # the load generator's own CPU for this turn
                st["server_cpu"] += _cpu_seconds(t.get("pid")) - s0  # the server's (all its processes)

        for t in targets:  # warm-up (its failures count too)
            await burst(t, spec["warmup"], False)
        per_chunk = max(1, spec["requests"] // spec["chunks"])
        for _ in range(spec["chunks"]):
            for t in targets:
                await burst(t, per_chunk, True)
    finally:
        for c in clients.values():
            await c.aclose()
    out = {}
    for t in targets:
        st = stats[t["name"]]
        lat, n = st["latencies"], st["requests"]
        out[t["name"]] = {
            "requests": n,
            "failed": len(st["failures"]),
            "failures_sample": st["failures"][:3],
            "wall_s": round(st["wall"], 3),
            "requests_per_s": round(n / st["wall"], 1),
            "rows_per_s": round(n * t["rows"] / st["wall"], 0),
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 2) if lat else None,
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 2) if lat else None,
            "server_cpu_ms_per_request": round(1000 * st["server_cpu"] / max(n, 1), 3),
            "client_cpu_ms_per_request": round(1000 * st["client_cpu"] / max(n, 1), 3),
        }
    return out


def client_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps(asyncio.run(_drive(spec))))


def run_client(tmp: Path, targets: list[dict], requests: int, chunks: int, warmup: int, args) -> dict:
    """Run the load generator in a process of its own over ``targets`` (name, url, path, bodies, kind, rows)."""
    for t in targets:
        t["content_type"] = CONTENT_TYPES[t.pop("kind")]
        t["bodies"] = str(t["bodies"])
    spec = {"targets": targets, "requests": requests, "chunks": chunks, "warmup": warmup}
    spec["concurrency"] = args.concurrency
    spec_file = tmp / "client.json"
    spec_file.write_text(json.dumps(spec))
    out = subprocess.run(
        [sys.executable, __file__, "--client", str(spec_file)], capture_output=True, text=True, env=_env(args)
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- servers
def _env(args) -> dict:
    return {**os.environ, "DEEPAD_NUM_THREADS": str(args.threads), "DEEPAD_QUIET": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, args, cwd: Path | None = None) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, env=_env(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    probe = f"{url}/readyz" if "deepad.cli" in cmd else f"{url}/docs"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.communicate()[0][-3000:]}")
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"server did not become ready: {cmd}")
        time.sleep(0.25)


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def bare_server(tmp: Path, args) -> tuple[subprocess.Popen, str]:
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "h11",
        "--timeout-keep-alive",
        "600",  # connections wait idle while the other targets take their turns (deepad: the same, below)
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    url = f"http://127.0.0.1:{port}"
    return start(cmd, url, args, cwd=tmp), url


def deepad_server(models: Path, workers: int, args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "deepad.cli", "serve", str(models), "--port", str(port), "--workers", str(workers)]
    cmd += ["--reload-interval", "0", "--keep-alive-timeout", "600"]
    url = f"http://127.0.0.1:{port}"
    return start(cmd, url, args), url


# --------------------------------------------------------------------------- models and bodies
def train_models(root: Path, rows: int) -> None:
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.detectors.ensemble import LocalGlobalEnsemble
    from deepad.pipeline import TabularDetector

    df = make_fraud_frame(rows, seed=1).drop(columns=["is_fraud"])
    detectors = {
        "default_dw0": LocalGlobalEnsemble(deep_weight=0),
        "default_today": LocalGlobalEnsemble(deep_weight=0.25),
        "autoencoder": AutoEncoder(epochs=10, hidden_dims=(64, 32), latent_dim=8, random_state=0),
    }
    for name, det in detectors.items():
        t0 = time.perf_counter()
        TabularDetector(det, contamination=0.01).fit(df).save(root / name)
        print(f"  trained {name} on {rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)


def make_bodies(tmp: Path, batch_rows: int, n_batches: int) -> tuple[dict[str, Path], list]:
    from deepad.data.synthetic import make_fraud_frame

    pool = make_fraud_frame(max(1000, batch_rows * n_batches), seed=9, start_index=1_000_000).drop(columns=["is_fraud"])
    records = json.loads(pool.to_json(orient="records"))
    files: dict[str, Path] = {}

    def save(name: str, bodies: list[bytes]) -> None:
        files[name] = tmp / f"{name}.pkl"
        with open(files[name], "wb") as fh:
            pickle.dump(bodies, fh)

    save("single", [json.dumps([r]).encode() for r in records[:1000]])
    frames = [pool.iloc[i * batch_rows : (i + 1) * batch_rows].reset_index(drop=True) for i in range(n_batches)]
    save(
        "json_records", [json.dumps(records[i * batch_rows : (i + 1) * batch_rows]).encode() for i in range(n_batches)]
    )
    columns = []
    for i in range(n_batches):
        chunk = records[i * batch_rows : (i + 1) * batch_rows]
        columns.append(json.dumps({"columns": {c: [r[c] for r in chunk] for c in chunk[0]}}).encode())
    save("json_columns", columns)
    save("csv", [f.to_csv(index=False).encode() for f in frames])
    parquet = []
    for f in frames:
        buf = io.BytesIO()
        f.to_parquet(buf, index=False)
        parquet.append(buf.getvalue())
    save("parquet", parquet)
    return files, frames  # the same rows, as the DataFrames an in-process user scores


def in_process_rows_per_s(model_dir: Path, frames: list, repeats: int = 3) -> tuple[float, float]:
    """Rows/s of ``model.decision_function`` on the DataFrames (median over the frames and repeats), and its CPU
    milliseconds per frame (median)."""
    from threadpoolctl import threadpool_limits

    import deepad

    model = deepad.load(model_dir)
    with threadpool_limits(int(os.environ["DEEPAD_NUM_THREADS"])):  # BLAS and OpenMP as the servers have them
        model.decision_function(frames[0])  # warm-up
        times, cpu = [], []
        for _ in range(repeats):
            for f in frames:
                t0, c0 = time.perf_counter(), time.process_time()
                model.decision_function(f)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    return len(frames[0]) / float(np.median(times)), 1000 * float(np.median(cpu))


# --------------------------------------------------------------------------- one round
def one_round(tmp: Path, models: Path, files: dict, frames: list, args) -> dict:
    """All servers up at once (an idle one costs nothing); the load generator takes them in turns."""
    out: dict = {"single": {}, "batch": {}, "in_process_rows_per_s": {}, "in_process_cpu_ms": {}}
    procs = []
    try:
        proc, bare_url = bare_server(tmp, args)
        procs.append(proc)
        bare_pid = proc.pid
        urls, pids = {}, {}
        for workers in args.workers:
            proc, urls[workers] = deepad_server(models, workers, args)
            procs.append(proc)
            pids[workers] = proc.pid
        targets = [
            dict(
                name="bare",
                url=bare_url,
                path="/score",
                bodies=files["single"],
                kind="json_records",
                rows=1,
                pid=bare_pid,
            )
        ]
        for workers, url in urls.items():
            for name in SINGLE_MODELS:
                path = f"/v1/models/{name}/score"
                targets.append(
                    dict(
                        name=f"{name} w{workers}",
                        url=url,
                        path=path,
                        bodies=files["single"],
                        kind="json_records",
                        rows=1,
                        pid=pids[workers],
                    )
                )
        warmup = max(2 * args.concurrency, 10)
        out["single"] = run_client(tmp, targets, args.single, args.chunks, warmup, args)
        print("    single-record requests done", flush=True)
        for name in BATCH_MODELS:
            before = in_process_rows_per_s(models / name, frames)
            targets = [
                dict(
                    name=f"{name} {kind} w{workers}",
                    url=url,
                    path=f"/v1/models/{name}/score",
                    bodies=files[kind],
                    kind=kind,
                    rows=args.batch_rows,
                    pid=pids[workers],
                )
                for workers, url in urls.items()
                for kind in BODY_KINDS
            ]
            out["batch"].update(run_client(tmp, targets, args.batch, 2, args.concurrency, args))
            after = in_process_rows_per_s(models / name, frames)
            out["in_process_rows_per_s"][name] = round((before[0] + after[0]) / 2, 0)  # before and after the service
            out["in_process_cpu_ms"][name] = round((before[1] + after[1]) / 2, 3)
            print(f"    {args.batch_rows:,}-record requests done for {name}", flush=True)
    finally:
        for proc in procs:
            log = stop(proc)
            if "Traceback" in log:
                print(log[-3000:])
    return out


def report(i: int, res: dict, args) -> None:
    bare = res["single"]["bare"]
    print(f"\nround {i}: single-record JSON requests, {args.concurrency} in flight")
    head = f"{'server / model':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} {'x bare req/s':>12} {'x bare p99':>10}"
    print(head + f" {'server CPU ms/req':>17} {'client CPU ms/req':>17}")
    for name, r in res["single"].items():
        tput = r["requests_per_s"] / bare["requests_per_s"]
        p99 = r["p99_ms"] / bare["p99_ms"] if r["p99_ms"] and bare["p99_ms"] else float("nan")
        ok = "" if name == "bare" else ("  ok" if tput >= 0.40 and p99 <= 4 and r["failed"] == 0 else "  MISSED")
        print(
            f"{name:<28} {r['requests_per_s']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['failed']:>6} "
            f"{tput:>12.2f} {p99:>10.2f} {r['server_cpu_ms_per_request']:>17.2f} "
            f"{r['client_cpu_ms_per_request']:>17.2f}{ok}"
        )
    print(f"\nround {i}: {args.batch_rows:,}-record requests, {args.concurrency} in flight")
    print(
        f"{'model / body / workers':<36} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} {'x in-process':>12} "
        f"{'server CPU ms/req':>17} {'client CPU ms/req':>17}"
    )
    for name, ref in res["in_process_rows_per_s"].items():
        cpu = res.get("in_process_cpu_ms", {}).get(name, float("nan"))
        print(
            f"{name + ' in-process decision_function':<36} {ref:>9,.0f} {'':>8} {'':>8} {'':>6} {'':>12} {cpu:>17.2f}"
        )
    for key, r in res["batch"].items():
        ratio = r["rows_per_s"] / res["in_process_rows_per_s"][key.split()[0]]
        ok = "  ok" if ratio >= 0.50 and r["failed"] == 0 else "  MISSED"
        print(
            f"{key:<36} {r['rows_per_s']:>9,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['failed']:>6} "
            f"{ratio:>12.2f} {r['server_cpu_ms_per_request']:>17.2f} {r['client_cpu_ms_per_request']:>17.2f}{ok}"
        )
    print(
        "(CPU ms/req: user+system CPU of the server's processes, and of the load generator, per request during the "
        "timed turns; in-process: CPU ms of one decision_function call on the same rows)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", help=argparse.SUPPRESS)  # the load generator's own process
    ap.add_argument(
        "--models", help="A directory for the three models (trained into it unless there; default: a temporary one)."
    )
    ap.add_argument("--train-rows", type=int, default=5000)
    ap.add_argument("--single", type=int, default=1000, help="Single-record requests per server and model.")
    ap.add_argument("--batch", type=int, default=16, help="Requests per model and body kind.")
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8, help="Requests in flight.")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="deepad serve --workers to run.")
    ap.add_argument("--threads", default="1", help="DEEPAD_NUM_THREADS of every process.")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=5, help="Turns the single-record targets take.")
    ap.add_argument("--json", help="Also write the results to this JSON file.")
    args = ap.parse_args()
    if args.client:
        client_main(args.client)
        return 0
    os.environ["DEEPAD_NUM_THREADS"] = str(args.threads)
    tmp_dir = tempfile.TemporaryDirectory(prefix="deepad-load-")
    tmp = Path(tmp_dir.name)
    models = Path(args.models) if args.models else tmp / "models"
    if not all((models / name / "model.json").is_file() for name in SINGLE_MODELS):
        print(f"training the models on {args.train_rows:,} rows ...", flush=True)
        train_models(models, args.train_rows)
    files, frames = make_bodies(tmp, args.batch_rows, max(4, min(args.batch, 8)))
    rounds = []
    for i in range(1, args.rounds + 1):
        print(f"round {i} ...", flush=True)
        rounds.append(one_round(tmp, models, files, frames, args))
    meta = {
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "python": platform.python_version(),
        "threads": args.threads,
        "concurrency": args.concurrency,
    }
    print(
        f"\nmachine: {meta['cpus']} CPUs, load average {meta['load_average_end'][0]:.1f} at the end; "
        f"DEEPAD_NUM_THREADS={args.threads}; {args.concurrency} requests in flight; targets: single >= 0.40 x bare "
        f"req/s, p99 <= 4 x bare, 0 failed; {args.batch_rows:,} rows >= 0.50 x in-process"
    )
    for i, res in enumerate(rounds, 1):
        report(i, res, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rounds": rounds}, indent=2))
    failed = sum(r["failed"] for res in rounds for part in ("single", "batch") for r in res[part].values())
    if failed:
        print(f"\n{failed} failed requests")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
