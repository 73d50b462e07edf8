"""Where a 1,000-record request's CPU goes in `deepad serve` (issue 18, target 2): HTTP, the pool thread, the work.

For one body kind, three figures in one run, CPU milliseconds per request (``/proc`` and ``time.thread_time``, so
that other jobs on a shared machine move them less than wall time):

* the server process's whole CPU per request (a sequential client, loopback, keep-alive);
* inside it, the thread CPU of ``deepad.serve.scoring._score_body`` (body parsing and validation, preprocessing,
  the model, p-values, the JSON answer), measured by wrapping that function in the server process;
* the same ``_score_body`` on the same body called directly in this process, and ``model.decision_function`` on
  the same rows as a DataFrame (the target's denominator).

The gap between the first two is Uvicorn, h11, FastAPI and the event loop; the gap between the second and the
third is what running in a pool thread beside the event loop costs the same work.

    PYTHONPATH=src python benchmarks/serve_cpu_split.py --kind columns --requests 200
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Run by the server subprocess: deepad serve with _score_body wrapped to add up its thread CPU.
_SERVER = """
import atexit, sys, time
import deepad.serve.scoring as S
from deepad.serve.server import ServeConfig
inner, acc = S._score_body, [0, 0.0]
def timed(*a, **k):
    t = time.thread_time()
    try:
        return inner(*a, **k)
    finally:
        acc[0] += 1
        acc[1] += time.thread_time() - t
S._score_body = timed
from deepad.serve.app import serve  # after the wrap: the app binds _score_body when it is imported
atexit.register(lambda: sys.stderr.write(f"SCORE_BODY {acc[0]} {acc[1]}\\n"))
serve(ServeConfig(models=sys.argv[1], port=int(sys.argv[2]), insecure=True, log_level="warning"))
"""


#: --kind -> the body's name in serve_batch_path.request_bodies
KINDS = {"columns": "JSON columns", "records": "JSON records", "csv": "CSV", "parquet": "Parquet"}


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=list(KINDS), default="columns")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()

    import httpx

    import deepad
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.pipeline import TabularDetector
    from deepad.serve.bodies import _Limits
    from deepad.serve.registry import ModelRegistry
    from deepad.serve.scoring import _score_body

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_batch_path import request_bodies

    root = Path(tempfile.mkdtemp(prefix="deepad-cpu-split-"))
    train = make_fraud_frame(5000, seed=1).drop(columns=["is_fraud"])
    det = AutoEncoder(epochs=10, hidden_dims=(64, 32), latent_dim=8, random_state=0)
    TabularDetector(det, contamination=0.01).fit(train).save(root / "autoencoder")
    frame = make_fraud_frame(args.rows, seed=9, start_index=1_000_000).drop(columns=["is_fraud"])
    media, body = request_bodies(frame)[KINDS[args.kind]]

    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(root), str(args.port)], stderr=subprocess.PIPE, text=True
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=30)
        for _ in range(200):
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        post = dict(url="/v1/models/autoencoder/score", content=body, headers={"content-type": media})
        for _ in range(20):  # warm-up
            assert client.post(**post).status_code == 200
        c0 = _cpu(proc.pid)
        for _ in range(args.requests):
            client.post(**post)
        server_ms = (_cpu(proc.pid) - c0) / args.requests * 1e3
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    n, total = next(line.split()[1:] for line in err.splitlines() if line.startswith("SCORE_BODY"))
    if int(n) == 0:
        raise SystemExit(f"the server's _score_body was not the wrapped one (port {args.port} in use?):\n{err[-2000:]}")
    in_server_ms = float(total) / int(n) * 1e3  # warm-up included, as its calls are the same work

    model = deepad.load(root / "autoencoder")
    loaded = ModelRegistry.from_root(root).get("autoencoder")
    limits = _Limits()

    def per_call(f, repeats: int = 100) -> float:
        f()
        c0 = time.thread_time()
        for _ in range(repeats):
            f()
        return (time.thread_time() - c0) / repeats * 1e3

    direct_ms = per_call(lambda: _score_body(body, media, loaded, limits, "none", 3))
    model_ms = per_call(lambda: model.decision_function(frame))
    print(f"{args.rows:,}-record {args.kind} bodies ({len(body) // 1024} KiB), AutoEncoder, CPU ms per request:")
    print(f"  server process, whole          {server_ms:7.2f}   ratio to decision_function {model_ms / server_ms:.2f}")
    print(f"  _score_body in the server      {in_server_ms:7.2f}   (HTTP + loop: {server_ms - in_server_ms:.2f})")
    print(f"  _score_body called directly    {direct_ms:7.2f}   (pool thread costs: {in_server_ms - direct_ms:.2f})")
    print(f"  decision_function (DataFrame)  {model_ms:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
