"""Run a streaming detector over the NAB corpus and score it -- a thin wrapper of :func:`deepad.bench.nab_run.run_nab`.

The same as ``deepad bench --nab DIR``; see :mod:`deepad.bench.nab_run` for
the protocols (causal alerts, and NAB's optimised threshold on unit scores).

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/run_nab.py /work/shared/datasets/nab \\
        --detector ConformalKNN --out benchmarks/results/nab
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # NumPy's BLAS too (kNN, NumPy GRU)
    os.environ.setdefault(_var, os.environ["DEEPAD_NUM_THREADS"])

from deepad.bench.nab_run import DEFAULT_PARAMS, nab_markdown, run_nab  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", help="The NAB folder (not needed with --results-md).")
    ap.add_argument("--detector", default="ConformalKNN", help=f"a deepad detector name ({', '.join(DEFAULT_PARAMS)}).")
    ap.add_argument("--params", default="{}", help="JSON overrides of the detector's parameters.")
    ap.add_argument("--risk", type=float, default=1e-4)
    ap.add_argument("--init-quantile", type=float, default=0.98)
    ap.add_argument(
        "--refractory", type=int, default=16, help="Points after an alert during which alarms are suppressed."
    )
    ap.add_argument(
        "--rearm",
        type=int,
        default=64,
        help="After an alert, alerts re-arm once the score has been below the threshold this many points.",
    )
    ap.add_argument("--smoothing", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="Points per update() call (1 = true streaming).")
    ap.add_argument("--categories", default=None, help="Comma-separated NAB categories (default: all present).")
    ap.add_argument("--out", default=None, help="Folder for results_*.json, summary_*.md and per_file_*.csv.")
    ap.add_argument(
        "--results-md",
        action="store_true",
        help="Only (re)write OUT/RESULTS.md from the summary_*.md files already in OUT.",
    )
    args = ap.parse_args(argv)
    if args.results_md:
        if not args.out:
            ap.error("--results-md needs --out.")
        write_results_md(Path(args.out))
        return
    if not args.root:
        ap.error("the NAB folder (root) is required unless --results-md is given.")
    summary = run_nab(
        args.root,
        args.detector,
        json.loads(args.params),
        categories=args.categories.split(",") if args.categories else None,
        risk=args.risk,
        init_quantile=args.init_quantile,
        refractory=args.refractory,
        rearm=args.rearm,
        smoothing=args.smoothing,
        batch=args.batch,
        out=args.out,
    )
    print(nab_markdown(summary))


PUBLISHED = """Published NAB scoreboard, standard profile, as quoted in issue #7 (full 58-file corpus, threshold
optimised per profile -- the NAB protocol): ARTime 74.9, Numenta HTM 70.1, CAD-OSE 69.9, KNN-CAD 58.0,
Random Cut Forest 51.7, Twitter ADVec 47.1.  The corpus here has 35 of the 58 files (artificialNoAnomaly,
artificialWithAnomaly, realAWSCloudwatch, realKnownCause), so these are orientation, not a like-for-like
comparison.  The settings below were tuned on these 35 files; on 13 NAB files from two other categories
the same detector scored 41.0, 54.5 after the change of alert suppression described above, and 66.7
after the alert level was re-chosen on all 48 files (`benchmarks/results/nab-heldout`).
"""


PUBLISHED_PER_FILE = "published_standard_per_file.csv"


def published_on_these_files(out: Path) -> list[str]:
    """The published detectors' standard-profile scores restricted to the files deepad was scored on.

    ``published_standard_per_file.csv`` (in OUT, else in benchmarks/results/nab) holds each published detector's
    per-file raw standard score, copied from NAB's own result files
    (github.com/numenta/NAB, ``results/<detector>/<detector>_standard_scores.csv``:
    the scores at that detector's threshold optimised over the full corpus).
    Normalised with the same null (-1 per window) and perfect (+1 per window)
    as deepad's rows, over the files of ``per_file_*.csv``, so the numbers are
    like-for-like with the overview table (up to the threshold, which NAB
    optimised on all 58 files, not on these).
    """
    import csv

    table, ours = out / PUBLISHED_PER_FILE, sorted(out.glob("per_file_*.csv"))
    if not table.exists():  # one table serves every results folder (it covers the 48 files we have scored)
        table = Path(__file__).resolve().parent / "results" / "nab" / PUBLISHED_PER_FILE
    if not table.exists() or not ours:
        return []
    with ours[0].open(newline="") as fh:
        windows = {r["file"]: int(r["windows"]) for r in csv.DictReader(fh)}
    raw: dict[str, dict[str, float]] = {}
    with table.open(newline="") as fh:
        for r in csv.DictReader(fh):
            raw.setdefault(r["detector"], {})[r["file"]] = float(r["raw_standard"])
    n_w = sum(windows.values())
    lines = [
        "| published detector | full-corpus scoreboard (standard) | on these %d files (standard) |" % len(windows),
        "|---|---|---|",
    ]
    board = {"ARTime": 74.9, "numenta": 70.1, "contextOSE": 69.9, "knncad": 58.0}
    rows = []
    for det, per_file in raw.items():
        missing = sorted(set(windows) - set(per_file))
        if missing:
            raise SystemExit(f"{table}: {det} has no row for {missing[0]} (and {len(missing) - 1} more)")
        score = 100.0 * (sum(per_file[f] for f in windows) + n_w) / (2 * n_w)
        rows.append((score, f"| {det} | {board.get(det, float('nan')):.1f} | {score:.1f} |"))
    lines += [r for _, r in sorted(rows, reverse=True)]
    return [
        "## Published detectors on the same files",
        "",
        "From NAB's own per-file result files (`" + PUBLISHED_PER_FILE + "`, see "
        "`benchmarks/run_nab.py::published_on_these_files`), renormalised over the files present here:",
        "",
        *lines,
        "",
        "The published scores use NAB's threshold optimised per profile on all 58 files; deepad's causal "
        "scores use one alert level (p < 0.04) for every profile, chosen on the standard-profile scores of "
        "48 of those files (the 35 here and 13 held out).",
        "",
    ]


def write_results_md(out: Path) -> None:
    """RESULTS.md = how the runs were made + the published reference + every summary_*.md copied verbatim."""
    for res in sorted(out.glob("results_*.json")):  # re-render the summaries (same numbers, current layout)
        data = json.loads(res.read_text())
        if "causal" in data:
            (out / res.name.replace("results_", "summary_").replace(".json", ".md")).write_text(nab_markdown(data))
    overview = [
        "| detector | causal standard | causal low FP | causal low FN | NAB protocol standard (suppressed / raw) "
        "| window F1 (causal) | latency ms/point wall / CPU | corpus wall s / CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for res in sorted(out.glob("results_*.json")):
        d = json.loads(res.read_text())
        if "causal" not in d:
            continue
        c, u = d["causal"][f"deepad {d['detector']}"], d["nab"]
        sup = u.get(f"deepad {d['detector']}, suppressed after alerts", {}).get("standard", float("nan"))
        rows.append(
            (
                c["standard"],
                f"| {d['detector']} | {c['standard']:.1f} | {c['reward_low_FP_rate']:.1f} | "
                f"{c['reward_low_FN_rate']:.1f} | {sup:.1f} / {u['deepad ' + d['detector']]['standard']:.1f} | "
                f"{c['f1']:.2f} | {d['latency_ms_per_point']:.3f} / {d.get('cpu_ms_per_point', float('nan')):.3f} | "
                f"{d['wall_s']:.0f} / {d['cpu_s']:.0f} |",
            )
        )
    overview += [r for _, r in sorted(rows, reverse=True)]
    summaries = sorted(out.glob("summary_*.md"))
    if not summaries:
        raise SystemExit(f"no summary_*.md in {out}")
    intro = out / "INTRO.md"  # a results folder with its own story (e.g. held-out files) says it there
    if intro.exists():
        parts = [intro.read_text().rstrip(), "", "## Overview", "", *overview, "", *published_on_these_files(out)]
        for path in summaries:
            parts += ["", "---", "", "#" + path.read_text()]
        (out / "RESULTS.md").write_text("\n".join(parts) + "\n")
        print(f"wrote {out / 'RESULTS.md'} from {intro.name} and {len(summaries)} summaries")
        return
    parts = [
        "# NAB: streaming detectors on the Numenta Anomaly Benchmark",
        "",
        "Generated by `python benchmarks/run_nab.py --results-md --out benchmarks/results/nab` from the "
        "summaries below, each written by",
        "",
        "    DEEPAD_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/run_nab.py "
        "/work/shared/datasets/nab --detector NAME --out benchmarks/results/nab",
        "",
        "(same as `deepad bench --nab DIR -d NAME -o OUT`).  Protocols: see `deepad.bench.nab_run`. "
        "Each file's detector is fitted on its probationary period only and then streamed one point per "
        "update() call; per-file rows are in per_file_NAME.csv.",
        "",
        "## Overview",
        "",
        *overview,
        "",
        "Latency and wall time were measured on a 2-core machine shared with other jobs (load average 2-3 "
        "during the runs, see each summary), so wall times are inflated; the CPU column is this process's "
        "CPU time.  ConformalKNN's settings (contamination 0.01, window 16 + 8x16 blocks, k = 5, memory "
        "5000) were picked on this same corpus from a small grid, one setting changed at a time (k 3/5/10, "
        "memory 2000/5000/10000, window 8/16, blocks 8x16/16x16/8x32, exclusion 16/64, p-value cut "
        "10^-1.8/10^-2/10^-2.2/10^-2.5, refractory 200/300/500), with a fixed 300-point refractory period: "
        "the settings tried scored 50.1-65.3 causal (best 65.3, 8x32 blocks; shipped 65.1), so these are "
        "tuned numbers, not held-out ones.  The alert suppression was then changed after the held-out check "
        "(`benchmarks/results/nab-heldout`), from a fixed 300-point refractory to 16 points plus re-arming "
        "once the score has been below the threshold for 64 points (`StreamScorer(rearm=64)`, one alert "
        "per incident at any sampling rate): 64.5 instead of 65.1 here, 54.5 instead of 41.0 on the 13 "
        "held-out files.  In an offline replay of ConformalKNN's scores, refractory 16/50/100 x re-arm "
        "16/32/64/100 gave 63.8-64.5 here and 54.5-54.7 there; fixed refractories of 50/100/150/300 gave "
        "64.0/64.4/64.5/65.1 here and 54.5/54.7/48.0/41.0 there.  Last, the alert level was re-chosen on "
        "all 48 files (these 35 and the 13 held out) from a grid of p-value cuts (`benchmarks/nab_variants.py "
        "--variants thr@T`, `benchmarks/results/nab-variants`): p < 0.04 (`contamination=0.04`, unit "
        "threshold 0.14) instead of the class default 0.01 (0.2) is best on both sets, 68.0 here and 66.7 "
        "there against 64.5 and 54.5, and its neighbours 0.135-0.145 gave 65.4-68.0 and 66.5-67.0.  It buys "
        "the standard and low-FN profiles with false alarms (the standard profile charges one 0.11 of a "
        "detection): low FP falls from 60.2 to 56.7 and window F1 from 0.58 to 0.43 here.  With the "
        "threshold chosen on labels, like the published detectors' (NAB optimises theirs per profile on all "
        "58 files), neither set is a hold-out any more.",
        "",
        PUBLISHED,
        "",
        *published_on_these_files(out),
    ]
    for path in summaries:
        parts += ["", "---", "", "#" + path.read_text()]
    (out / "RESULTS.md").write_text("\n".join(parts) + "\n")
    print(f"wrote {out / 'RESULTS.md'} from {len(summaries)} summaries")


if __name__ == "__main__":
    main()
