"""Write ``benchmarks/results/nab-v2/RESULTS.md``: each detector's NAB scores on the design part, the check part and
all 35 files, next to the published detectors renormalised over the same files (issue 21).

Reads the ``results_<detector>.json`` files that ``benchmarks/run_nab.py --out benchmarks/results/nab-v2`` wrote
(their per-file raw scores per profile) and ``INTRO.md`` of that folder (how the settings were chosen):

    python benchmarks/nab_v2_report.py benchmarks/results/nab-v2
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

DESIGN = ("artificialWithAnomaly", "realAWSCloudwatch")
CHECK = ("realKnownCause", "artificialNoAnomaly")
PARTS = {"design": DESIGN, "check": CHECK, "all 35": DESIGN + CHECK}
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PUBLISHED = Path(__file__).resolve().parent / "results" / "nab" / "published_standard_per_file.csv"
ORDER = ("ConformalKNN", "LikelihoodKNN", "OnlineForecaster", "LikelihoodEnsemble")


def part_scores(per_file: list[dict], cats) -> dict:
    rows = [r for r in per_file if r["file"].split("/")[0] in cats]
    out = {}
    for prof in PROFILES:
        raw = sum(r[f"raw_{prof}"] for r in rows)
        null = sum(r[f"null_{prof}"] for r in rows)
        perfect = sum(r["windows"] for r in rows)  # a_tp = 1 per window in every profile
        out[prof] = 100.0 * (raw - null) / (perfect - null)
    for k in ("tp", "fp", "fn", "windows"):
        out[k] = sum(int(r[k]) for r in rows)
    out["files"] = len(rows)
    return out


def published(cats) -> dict[str, float]:
    raw: dict[str, dict[str, float]] = {}
    with PUBLISHED.open(newline="") as fh:
        for r in csv.DictReader(fh):
            raw.setdefault(r["detector"], {})[r["file"]] = float(r["raw_standard"])
    return raw


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    folder = Path(ap.parse_args(argv).folder)
    summaries = {}
    for p in folder.glob("results_*.json"):
        s = json.loads(p.read_text())
        summaries[s["detector"]] = s
    names = sorted(summaries, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
    intro = (folder / "INTRO.md").read_text() if (folder / "INTRO.md").exists() else ""
    lines = [intro.rstrip(), "", "## Scores by part (causal alerts: what a deployed stream raises)", ""]
    lines += [
        "| detector | part | files | windows | standard | low FP | low FN | TP | FP | FN | FP per TP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    any_per_file = None
    for name in names:
        pf = summaries[name]["per_file"]
        any_per_file = pf
        for part, cats in PARTS.items():
            r = part_scores(pf, cats)
            ratio = r["fp"] / r["tp"] if r["tp"] else float("inf")
            lines.append(
                f"| {name} | {part} | {r['files']} | {r['windows']} | {r['standard']:.1f} | "
                f"{r['reward_low_FP_rate']:.1f} | {r['reward_low_FN_rate']:.1f} | {r['tp']} | {r['fp']} | {r['fn']} | "
                f"{ratio:.2f} |"
            )
    if any_per_file is not None:
        pub = published(None)
        windows = {r["file"]: int(r["windows"]) for r in any_per_file}
        lines += [
            "",
            "## Published detectors on the same files (standard profile, renormalised per part)",
            "",
            "From NAB's own per-file result files (`benchmarks/results/nab/published_standard_per_file.csv`); their "
            "threshold was optimised per profile on all 58 files with the labels, so they are not causal one-setting "
            "numbers like the rows above.",
            "",
            "| published detector | design | check | all 35 |",
            "|---|---|---|---|",
        ]
        for det, per_file in pub.items():
            cells = []
            for cats in PARTS.values():
                keys = [k for k in windows if k.split("/")[0] in cats]
                n_w = sum(windows[k] for k in keys)
                raw = sum(per_file[k] for k in keys)
                cells.append(f"{100.0 * (raw + n_w) / (2 * n_w):.1f}")
            lines.append(f"| {det} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Speed (one process, one thread; the machine was shared, see the load)",
        "",
        "| detector | stream settings | corpus wall s / CPU s | latency ms/point wall / CPU | load average at the end |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        s = summaries[name]
        lines.append(
            f"| {name} | {s['stream']} | {s['wall_s']:.0f} / {s['cpu_s']:.0f} | "
            f"{s['latency_ms_per_point']:.3f} / {s['cpu_ms_per_point']:.3f} | {s['load_average']} |"
        )
    lines += ["", "Parameters:", ""]
    lines += [f"* {name}: `{summaries[name]['params']}`" for name in names]
    (folder / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
