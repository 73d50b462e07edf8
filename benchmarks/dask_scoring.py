"""Distributed batch scoring on Dask vs single-process scoring, on one large Parquet file.

1. Generates ``--rows`` rows of the synthetic card-transaction table
   (deepad.data.synthetic: 12 mixed-type columns: ids, timestamps, text
   categories, booleans, numbers with missing values) into one Parquet file,
   in row groups of ``--row-group`` rows (generated chunk by chunk, so memory
   stays flat).
2. Trains a TabularDetector(AutoEncoder) on a small sample (``--train-rows``).
3. Scores the file single-process (``deepad.scoring.score_file``, in a
   child process so its peak memory is its own) and on a LocalCluster of
   ``--workers`` single-threaded worker processes
   (``deepad.distributed.score_parquet``).
4. Runs a control without Dask: ``--workers`` independent processes, each
   scoring its share of the same partitions with the same function -- the
   parallel speed-up this machine allows at all.
5. Reports wall times and their ratio, peak resident memory per worker and
   of the single process, and checks that every score, p-value and flag is
   identical.

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/dask_scoring.py --rows 20000000
    .venv/bin/python benchmarks/dask_scoring.py --rows 2000000 --json results.json

Every process scores with one torch thread (``--single-threads`` changes
the single process's), so the comparison is one core against ``--workers``
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTROL = r"""
import json, pickle, resource, sys, time
from deepad.distributed import _model_fingerprint, _preload, _score_partition
from pathlib import Path
model, parts, out, read, ids, batch = pickle.loads(bytes.fromhex(sys.argv[1]))
fp = _model_fingerprint(Path(model))
_preload(model, fp, parts[0].file, read)  # as the Dask workers: imports and model load before the clock
t0 = time.perf_counter()
for p in parts:
    _score_partition(model, fp, p, out, read, ids, batch)
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

SINGLE = r"""
import json, resource, sys, time
import deepad
from deepad.scoring import score_file
model = deepad.load(sys.argv[1])
t0 = time.perf_counter()
s = score_file(model, sys.argv[2], sys.argv[3], batch_size=int(sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": s.rows, "flagged": s.flagged,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def generate(path: Path, rows: int, row_group: int) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deepad.data.synthetic import make_fraud_frame

    t0 = time.perf_counter()
    writer = None
    chunk = min(row_group, 1_000_000)
    for i, start in enumerate(range(0, rows, chunk)):
        df = make_fraud_frame(min(chunk, rows - start), seed=1000 + i, start_index=start).drop(columns=["is_fraud"])
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=row_group)
        print(f"\r  generated {start + len(df):,} / {rows:,} rows", end="", flush=True)
    writer.close()
    print()
    return time.perf_counter() - t0


def compare(single: Path, parts: Path) -> dict:
    """Column by column (bounded memory): are the single-process file and the Dask parts identical, in order?"""
    import pyarrow.parquet as pq

    out = {}
    for col in ("transaction_id", "score", "p_value", "is_anomaly"):
        a = pq.read_table(single, columns=[col])[col]
        b = pq.read_table(parts, columns=[col])[col]  # part-00000, part-00001, ...; _deepad_score.json skipped
        out[col] = bool(len(a) == len(b) and a.equals(b))
        out["rows_compared"] = len(a)
        del a, b
    out["identical"] = all(v for k, v in out.items() if k != "rows_compared")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--row-group", type=int, default=250_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--single-threads", type=int, default=1, help="torch threads of the single process (each Dask worker gets 1)."
    )
    ap.add_argument("--batch-rows", type=int, default=65_536)
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--dir", help="Working directory (default: a temporary one, removed at the end).")
    ap.add_argument("--json", help="Also write the results to this JSON file.")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import deepad
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.distributed import score_parquet
    from deepad.pipeline import TabularDetector

    tmp = tempfile.TemporaryDirectory(prefix="deepad-dask-") if not args.dir else None
    work = Path(args.dir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.parquet"
    result: dict = {"rows": args.rows, "workers": args.workers, "cpus": os.cpu_count()}
    print(f"1. generating {args.rows:,} rows -> {data}")
    result["generate_s"] = round(generate(data, args.rows, args.row_group), 1)
    result["file_mb"] = round(data.stat().st_size / 2**20, 1)

    print(f"2. training TabularDetector(AutoEncoder) on {args.train_rows:,} rows")
    train = make_fraud_frame(args.train_rows, seed=1).drop(columns=["is_fraud"])
    t0 = time.perf_counter()
    TabularDetector(AutoEncoder(epochs=10, random_state=0), contamination=0.01).fit(train).save(work / "model")
    result["train_s"] = round(time.perf_counter() - t0, 1)

    threads = args.single_threads
    print(f"3. single process ({threads} torch thread(s))")
    env = {**os.environ, "DEEPAD_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SINGLE,
            str(work / "model"),
            str(data),
            str(work / "single.parquet"),
            str(args.batch_rows),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    single = json.loads(proc.stdout.strip().splitlines()[-1])
    result["single"] = {
        "seconds": round(single["seconds"], 1),
        "rows_per_s": round(single["rows"] / single["seconds"]),
        "peak_rss_mb": round(single["peak_rss"] / 2**20),
    }
    print(f"   {single['seconds']:.1f} s, peak RSS {single['peak_rss'] / 2**20:.0f} MB")

    print(f"4. Dask LocalCluster, {args.workers} worker processes x 1 thread")
    t0 = time.perf_counter()
    one = {"DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=one,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        startup = time.perf_counter() - t0
        s = score_parquet(
            work / "model",
            data,
            work / "parts",
            client=client,
            batch_rows=args.batch_rows,
            partition_rows=args.partition_rows,
        )
    result["dask"] = {
        "seconds": round(s.seconds, 1),
        "cluster_startup_s": round(startup, 1),
        "model_load_on_workers_s": round(s.load_seconds, 1),
        "rows_per_s": round(s.rows_per_second),
        "partitions": s.partitions,
        "model_loads_per_worker": sorted(s.model_loads.values()),
        "peak_rss_mb_per_worker": sorted(round(v / 2**20) for v in s.peak_rss_bytes.values()),
    }
    result["speedup"] = round(single["seconds"] / s.seconds, 2)
    result["speedup_with_worker_startup"] = round(single["seconds"] / (s.seconds + s.load_seconds + startup), 2)
    print(
        f"   {s.seconds:.1f} s (+{startup:.1f} s cluster start, +{s.load_seconds:.1f} s loading the model on the "
        f"workers), {s.partitions} partitions, "
        f"peak RSS per worker {result['dask']['peak_rss_mb_per_worker']} MB"
    )

    print(
        f"5. control without Dask: {args.workers} independent processes, each scoring every "
        f"{args.workers}th partition with the same function"
    )
    import pickle

    from deepad.distributed import plan_partitions

    model = deepad.load(work / "model")
    schema = model.schema_
    read = [c for c in schema.names if schema.kinds[c] != "excluded"]
    parts = plan_partitions(data, args.partition_rows)
    (work / "control").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONTROL,
                pickle.dumps(
                    (
                        str(work / "model"),
                        parts[k :: args.workers],
                        str(work / "control"),
                        read,
                        schema.id_columns,
                        args.batch_rows,
                    )
                ).hex(),
            ],
            env={**os.environ, "DEEPAD_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(args.workers)
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    control = time.perf_counter() - t0
    result["control_no_dask"] = {
        "seconds_incl_startup": round(control, 1),
        "seconds_scoring": [round(o["seconds"], 1) for o in outs],
    }
    print(
        f"   {control:.1f} s including start-up (imports, model load); scoring only "
        f"{[round(o['seconds'], 1) for o in outs]} s"
    )

    print("6. comparing outputs")
    result["comparison"] = compare(work / "single.parquet", work / "parts")
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["comparison"]["identical"] and s.rows == single["rows"] == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
