"""Run a streaming detector over the NAB corpus and score it -- a thin wrapper of :func:`deepad.bench.nab_run.run_nab`.

The same as ``deepad bench --nab DIR``; see :mod:`deepad.bench.nab_run` for
the protocols (causal alerts, and NAB's optimised threshold on unit scores).

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/run_nab.py /work/shared/datasets/nab \\
        --detector GRUForecaster --out benchmarks/results/nab
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")

from deepad.bench.nab_run import DEFAULT_PARAMS, nab_markdown, run_nab  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--detector", default="GRUForecaster", help=f"a deepad detector name ({', '.join(DEFAULT_PARAMS)}).")
    ap.add_argument("--params", default="{}", help="JSON overrides of the detector's parameters.")
    ap.add_argument("--risk", type=float, default=1e-4)
    ap.add_argument("--init-quantile", type=float, default=0.98)
    ap.add_argument("--refractory", type=int, default=300)
    ap.add_argument("--smoothing", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="Points per update() call (1 = true streaming).")
    ap.add_argument("--categories", default=None, help="Comma-separated NAB categories (default: all present).")
    ap.add_argument("--out", default=None, help="Folder for results_*.json, summary_*.md and per_file_*.csv.")
    args = ap.parse_args(argv)
    summary = run_nab(args.root, args.detector, json.loads(args.params),
                      categories=args.categories.split(",") if args.categories else None, risk=args.risk,
                      init_quantile=args.init_quantile, refractory=args.refractory, smoothing=args.smoothing,
                      batch=args.batch, out=args.out)
    print(nab_markdown(summary))


if __name__ == "__main__":
    main()
