"""Peak memory and throughput of chunked scoring: ``deepad score`` on a large mixed-type Parquet file.

Steps:

1. write a ``--rows``-row Parquet file of fraud-like card transactions
   (tests/data_fraud.py: text ids, timestamps, amounts, a 40-level and a
   ~3000-level categorical, booleans, missing values), generated and
   written chunk by chunk;
2. train a ``TabularDetector(AutoEncoder)`` on ``--train-rows`` separate rows
   and save it;
3. run ``deepad score MODEL DATA -o OUT.parquet`` in a fresh process and
   read its peak resident memory (``ru_maxrss`` from ``wait4``) and wall time;
   the baseline RSS of a process that only imports deepad's CLI and torch is
   measured the same way for comparison.

Usage::

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/score_memory.py --rows 5000000

Target: peak RSS under 1 GiB for 5 million rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from data_fraud import make_fraud_frame  # noqa: E402


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet keeps types: timestamps as datetime64, flags as bool."""
    df = df.copy()
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def write_parquet(path: Path, rows: int, chunk: int = 250_000) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    tmp = path.with_suffix(".part")
    writer = None
    for i, start in enumerate(range(0, rows, chunk)):
        df = typed(make_fraud_frame(min(chunk, rows - start), seed=1000 + i, start_index=start))
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=131_072)
    writer.close()
    os.replace(tmp, path)
    return time.perf_counter() - t0


def run_measured(cmd: list[str]) -> tuple[int, float, int, str]:
    """(exit code, wall seconds, peak RSS bytes, stderr tail) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() + proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, int(usage.ru_maxrss) * 1024, out[-2000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--batch-rows", type=int, default=65_536)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workdir", default="/tmp/deepad_score_memory")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and output")
    args = ap.parse_args()

    from deepad.detectors import AutoEncoder
    from deepad.pipeline import TabularDetector

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"transactions_{args.rows}.parquet"
    if not data.exists():
        gen_s = write_parquet(data, args.rows)
        print(f"generated {data} ({data.stat().st_size / 2**20:.0f} MiB) in {gen_s:.0f} s", flush=True)
    model_dir = work / "model"
    train = typed(make_fraud_frame(args.train_rows, seed=7, start_index=10**9))
    t0 = time.perf_counter()
    model = TabularDetector(
        AutoEncoder(epochs=args.epochs, hidden_dims=(64, 32), latent_dim=8, random_state=0),
        exclude=["is_fraud"],
        contamination=0.01,
    ).fit(train)
    model.save(model_dir)
    print(
        f"trained on {args.train_rows} rows ({model.n_features_out_} encoded features) in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )

    out = work / "scores.parquet"
    py = sys.executable
    code, base_wall, base_rss, _ = run_measured(
        [py, "-c", "import torch, deepad.cli, deepad.pipeline, deepad.detectors"]
    )
    assert code == 0
    code, wall, rss, log = run_measured(
        [
            py,
            "-m",
            "deepad.cli",
            "-q",
            "score",
            str(model_dir),
            str(data),
            "-o",
            str(out),
            "--batch-rows",
            str(args.batch_rows),
        ]
    )
    if code != 0:
        raise SystemExit(f"deepad score failed ({code}):\n{log}")
    import pyarrow.parquet as pq

    n_out = pq.ParquetFile(out).metadata.num_rows
    assert n_out == args.rows, (n_out, args.rows)
    flagged = int(pq.read_table(out, columns=["is_anomaly"]).column(0).to_numpy().sum())
    result = {
        "rows": args.rows,
        "batch_rows": args.batch_rows,
        "encoded_features": model.n_features_out_,
        "threads": os.environ.get("DEEPAD_NUM_THREADS", "default"),
        "score_wall_s": round(wall, 1),
        "rows_per_s": round(args.rows / wall),
        "peak_rss_mib": round(rss / 2**20),
        "baseline_import_rss_mib": round(base_rss / 2**20),
        "flagged": flagged,
        "input_mib": round(data.stat().st_size / 2**20),
        "output_mib": round(out.stat().st_size / 2**20),
    }
    print(json.dumps(result, indent=2))
    print(
        f"peak RSS {result['peak_rss_mib']} MiB ({'under' if rss < 2**30 else 'OVER'} the 1 GiB target); "
        f"{result['rows_per_s']:,} rows/s including process start-up and model loading"
    )
    if not args.keep:
        data.unlink()
        out.unlink()


if __name__ == "__main__":
    main()
