"""Run the deepad comparison on the ADBench classical data sets and write benchmarks/RESULTS.md.

Examples (from the repository root)::

    # the full comparison for one setting (all data sets in --data-dir, 3 seeds)
    python benchmarks/run_adbench.py --setting oneclass

    # a quick check: 3 small data sets, 1 seed, 3 detectors, results elsewhere
    python benchmarks/run_adbench.py --setting oneclass --seeds 1 \
        --datasets 4_breastw,42_WBC,39_vertebral \
        --detectors AutoEncoder,pyod.models.iforest.IForest,pyod.models.knn.KNN \
        --out /tmp/bench-smoke --results-md /tmp/bench-smoke/RESULTS.md

Results go to ``--out`` (``results.csv``, ``summary.md``, plots); a second run
with the same ``--out`` resumes.  RESULTS.md is generated from the runs of
this request only, with the command line that produced it -- never edit it
by hand.  The protocol is documented in ``deepad.bench.protocol``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets" / "adbench"
PYOD_BASELINES = [
    "pyod.models.iforest.IForest",
    "pyod.models.knn.KNN",
    "pyod.models.lof.LOF",
    "pyod.models.ecod.ECOD",
    "pyod.models.ocsvm.OCSVM",
]


def default_detectors(setting: str) -> list[str]:
    """Every deepad detector (except adapters that need a wrapped model), plus PyOD baselines and, for the
    weak setting, XGBoost as a supervised peer -- where those optional packages are installed."""
    import deepad.detectors as D

    names = [n for n in D.__all__ if n != "DEFAULT" and not getattr(getattr(D, n), "_needs_wrapped", False)]
    if importlib.util.find_spec("pyod") is not None:
        names += PYOD_BASELINES
    if setting == "weak" and importlib.util.find_spec("xgboost") is not None:
        names.append("xgboost.XGBClassifier")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setting", required=True, choices=["unsupervised", "oneclass", "weak"])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder of ADBench .npz files (default: %(default)s)")
    ap.add_argument(
        "--datasets",
        default=None,
        help="comma-separated data-set names (file stems, e.g. 4_breastw,6_cardio); default: all",
    )
    ap.add_argument(
        "--detectors",
        default=None,
        help="comma-separated detector specs (see `deepad bench --help`); default: every deepad "
        "detector plus PyOD baselines (and XGBoost for weak) where installed",
    )
    ap.add_argument("--seeds", default="3", help="count (3 = 0,1,2) or list (default: %(default)s)")
    ap.add_argument("--out", default=None, help="results folder (default: benchmarks/results/<setting>)")
    ap.add_argument("--results-md", default=str(HERE / "RESULTS.md"), help="markdown to write (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per run (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (default: %(default)s)")
    ap.add_argument("--max-rows", type=int, default=10000, help="subsample larger data sets (default: %(default)s)")
    ap.add_argument("--labelled", default=None, help="weak: fractions of train anomalies labelled, e.g. 0.01,0.05")
    ap.add_argument("--labelled-count", default=None, help="weak: numbers of train anomalies labelled, e.g. 5,10")
    ap.add_argument("--retry-errors", action="store_true", help="re-run runs recorded as errors or time-outs")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    from deepad.bench import BenchmarkError, run_benchmark, write_report

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        print(f"error: data folder {data_dir} does not exist", file=sys.stderr)
        return 2
    files = sorted(data_dir.glob("*.npz"))
    if args.datasets:
        wanted = [w.strip() for w in args.datasets.split(",") if w.strip()]
        by_name = {f.stem: f for f in files}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            print(f"error: no data set(s) {missing} in {data_dir}; available: {sorted(by_name)}", file=sys.stderr)
            return 2
        files = [by_name[w] for w in wanted]
    detectors = args.detectors or ",".join(default_detectors(args.setting))
    out = Path(args.out) if args.out else HERE / "results" / args.setting
    try:
        df = run_benchmark(
            [str(f) for f in files],
            detectors,
            setting=args.setting,
            seeds=args.seeds,
            out=out,
            labelled=args.labelled,
            labelled_count=args.labelled_count,
            max_rows=args.max_rows,
            timeout=args.timeout,
            threads=args.threads,
            jobs=args.jobs,
            retry_errors=args.retry_errors,
            quiet=args.quiet,
        )
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python benchmarks/run_adbench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    header = (
        f"Generated by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from "
        f"{len(files)} ADBench data set(s) in `{data_dir}`; raw results in `{os.path.relpath(out, Path(args.results_md).parent)}/results.csv`. "
        "Do not edit by hand: re-run the command."
    )
    md = write_report(
        df,
        out,
        md_path=args.results_md,
        title=f"deepad benchmark: {args.setting} setting",
        header=header,
        max_rows=args.max_rows,
        plot_prefix="results_plot_",
    )
    n_ok = int((df["status"] == "ok").sum())
    print(f"{len(df)} runs ({n_ok} ok). Wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
