"""1,000-record requests to `deepad serve` from two source trees side by side (issue 18, target 2: before/after).

Starts ``deepad serve --workers W`` once per variant -- a source tree (``PYTHONPATH``) plus extra ``deepad serve``
flags -- over the same model (AutoEncoder unless `--model`), then gives every variant turns of ``--requests`` requests per body kind
with 8 in flight from one load generator process (``benchmarks/load_test.py``'s client), and times in-process
``decision_function`` on the same rows right before and after (one thread; the mean of the two).  Prints rows/s,
the ratio to in-process, p99 and the server's CPU per request, per round: on a shared machine the ratios within
a round are what count.

    git worktree add /tmp/wt-base <commit before the change>
    PYTHONPATH=src python benchmarks/serve_ab.py --variant base=/tmp/wt-base/src --variant new=src \\
        --variant "new-c40=src --concurrency 40"
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_test as L  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=SRC [deepad serve flags...]")
    ap.add_argument("--kinds", default=",".join(L.BODY_KINDS))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=200, help="per variant and body kind, per round")
    ap.add_argument("--model", default="autoencoder", choices=["autoencoder", "default_dw0", "default_today"])
    ap.add_argument(
        "--models", type=Path, help="a directory holding the model (load_test's three trained into it unless there)"
    )
    args = ap.parse_args()
    load = argparse.Namespace(threads=int(os.environ["DEEPAD_NUM_THREADS"]), concurrency=8, batch_rows=1000)
    tmp = Path(tempfile.mkdtemp(prefix="deepad-serve-ab-"))
    models = args.models or tmp / "models"
    if not (models / args.model).exists():
        L.train_models(models, 5000)
    files, frames = L.make_bodies(tmp, load.batch_rows, 8)
    kinds = args.kinds.split(",")
    procs, servers = [], {}
    try:
        for spec in args.variant:
            name, _, rest = spec.partition("=")
            src, *flags = shlex.split(rest)
            port = L.free_port()
            cmd = [sys.executable, "-m", "deepad.cli", "serve", str(models), "--port", str(port)]
            cmd += ["--workers", str(args.workers), "--reload-interval", "0", "--keep-alive-timeout", "600", *flags]
            os.environ["PYTHONPATH"] = str(Path(src).resolve())  # the server's deepad (the client's does not matter)
            proc = L.start(cmd, f"http://127.0.0.1:{port}", load)
            procs.append(proc)
            servers[name] = (f"http://127.0.0.1:{port}", proc.pid, " ".join(flags))
        for spec in args.variant:
            print(f"variant {spec}")
        for i in range(args.rounds):
            before = L.in_process_rows_per_s(models / args.model, frames)
            targets = [
                dict(name=f"{name} {kind}", url=url, path=f"/v1/models/{args.model}/score", bodies=files[kind],
                     kind=kind, rows=load.batch_rows, pid=pid)
                for name, (url, pid, _) in servers.items()
                for kind in kinds
            ]  # fmt: skip
            out = L.run_client(tmp, targets, args.requests, 4, load.concurrency, load)
            after = L.in_process_rows_per_s(models / args.model, frames)
            ref = (before[0] + after[0]) / 2
            print(f"round {i + 1}: {args.model}, in-process decision_function {ref:,.0f} rows/s ({(before[1] + after[1]) / 2:.2f} "
                  f"CPU ms per 1,000 rows); --workers {args.workers}, 8 in flight")  # fmt: skip
            print(
                f"{'variant / body':28s} {'rows/s':>9s} {'x in-proc':>9s} {'p99 ms':>8s} {'srv CPU ms/req':>14s} failed"
            )
            for name, r in out.items():
                print(f"{name:28s} {r['rows_per_s']:9,.0f} {r['rows_per_s'] / ref:9.2f} {r['p99_ms']:8.1f} "
                      f"{r['server_cpu_ms_per_request']:14.2f} {r['failed']}")  # fmt: skip
    finally:
        for proc in procs:
            L.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
