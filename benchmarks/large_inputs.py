"""Issue 19, item 6: model folder size, `deepad info` time and DEFAULT's fit time / peak memory on large tables.

    python benchmarks/large_inputs.py folder [--rows 200000] [--features 30]
    python benchmarks/large_inputs.py default --rows 20000 50000 [--features 30]

``folder`` writes a standard-normal ``rows x features`` CSV, trains an
AutoEncoder (one epoch: the size does not depend on the epochs) with
``deepad train``, and prints the model folder's size per file and the wall
time and peak memory of ``deepad info`` on it (three runs).  ``default``
fits ``DEFAULT()`` on standard-normal arrays in a fresh process per size and
prints its fit wall time and peak resident memory.  Results and the machine
they were measured on: ``benchmarks/large_inputs.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> tuple[float, int, str]:
    """Wall seconds, peak KB of the child and its output of ``python -m deepad.cli ARGS``."""
    code = (
        "import resource, sys, runpy; sys.argv = ['deepad', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('deepad.cli', run_name='__main__')\n"
        "finally:\n    print(f'PEAK_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    peak = int(out.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return wall, peak, out.stdout


def folder(rows: int, features: int) -> None:
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        data, model = Path(tmp) / "t.csv", Path(tmp) / "m"
        X = np.random.default_rng(0).normal(size=(rows, features)).astype(np.float32)
        pd.DataFrame(X, columns=[f"f{i}" for i in range(features)]).to_csv(data, index=False)
        wall, peak, _ = _cli("-q", "train", str(data), "-o", str(model), "-d", "AutoEncoder", "-p", '{"epochs": 1}')
        print(f"deepad train AutoEncoder on {rows:,} x {features}: {wall:.1f} s, peak {peak / 1024:.0f} MB")
        total = 0
        for file in sorted(p for p in model.rglob("*") if p.is_file()):
            total += file.stat().st_size
            print(f"  {file.relative_to(model)}: {file.stat().st_size:,} bytes")
        print(f"model folder: {total:,} bytes")
        for _ in range(3):
            wall, peak, _ = _cli("info", str(model))
            print(f"deepad info: {wall:.2f} s, peak {peak / 1024:.0f} MB")


def default(sizes: list[int], features: int) -> None:
    code = (
        "import resource, sys, time, numpy as np\nfrom deepad.detectors import DEFAULT\n"
        "n, d = int(sys.argv[1]), int(sys.argv[2])\nX = np.random.default_rng(0).normal(size=(n, d))\n"
        "t0 = time.perf_counter(); DEFAULT().fit(X); wall = time.perf_counter() - t0\n"
        "print(f'{wall:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')"
    )
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", code, str(n), str(features)], capture_output=True, text=True, env=ENV
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        wall, peak = out.stdout.split()
        print(f"DEFAULT().fit on {n:,} x {features}: {float(wall):.1f} s, peak {int(peak) / 1024:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["folder", "default"])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000])
    ap.add_argument("--features", type=int, default=30)
    args = ap.parse_args()
    if args.what == "folder":
        folder(args.rows[0], args.features)
    else:
        default(args.rows, args.features)


if __name__ == "__main__":
    main()
