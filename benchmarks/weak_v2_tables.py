"""Issue 22's tables in ``benchmarks/results/weak-v2/RESULTS.md``, from runs already made: nothing is refitted here.

Sources (all on the protocol of ``deepad.bench.protocol``: 10,000 rows at most, stratified 70/30 split,
min-max scaling, labelled anomalies from the seed and the set's name):

* the score caches of ``benchmarks/explore_weak.py fit --members plain`` (``--cache``, one folder per half):
  per (set, seed, budget) plain CatBoost's log-odds -- the model ``deepad bench``'s
  ``catboost.CatBoostClassifier`` is, bit for bit (its ROC-AUC and AUC-PR equal the rows of
  ``benchmarks/results/weak/results.csv`` to the 6 digits stored) -- and DEFAULT's scores.  The new
  ``BoostedDetector``'s test scores are its rule applied to them (``benchmarks/weak_rules.py``, rule
  ``ginistd0.5``), which is what ``BoostedDetector().decision_function`` returns (checked: identical, max
  difference 0.0, on 4 cells); ``collect`` writes the per-cell metrics to ``cells.csv``;
* ``deep.csv`` (``benchmarks/weak_v2.py --detectors DeepSAD,DevNet,XGBoost``): fitted in one warm process;
* ``timing.csv`` (``benchmarks/weak_v2.py --detectors Boosted,CatBoost``): both fitted on the same cell one
  after the other, so their fit-time ratio is measured side by side;
* ``benchmarks/results/weak/results.csv``: the BoostedDetector before issue 22 (``deepad bench``, 2026-11-29).

    PYTHONPATH=src:benchmarks python benchmarks/weak_v2_tables.py collect --cache /tmp/explore_weak/v3 /tmp/explore_weak/v3c
    PYTHONPATH=src:benchmarks python benchmarks/weak_v2_tables.py tables
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from weak_rules import CONFIRM, DESIGN, rules

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "weak-v2"
OLD = HERE / "results" / "weak" / "results.csv"
BUDGETS = ["frac=0.05", "frac=0.1", "count=5"]
NAMES = {
    "catboost": "CatBoost (defaults)",
    "ginistd0.5": "BoostedDetector (issue 22)",
    "unsup": "DEFAULT (no labels)",
}


def collect(caches: list[Path]) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = []
    for cache in caches:
        for path in sorted(cache.glob("*.npz")):
            name, seed, spec = path.stem.split("__")
            d = dict(np.load(path))
            if "plain_test" not in d:
                continue
            r = rules(d)
            for key, label in NAMES.items():
                s = r[key]
                rows.append(
                    dict(
                        dataset=name,
                        seed=int(seed[4:]),
                        labelled=spec,
                        detector=label,
                        roc_auc=round(float(roc_auc_score(d["y_test"], s)), 6),
                        auc_pr=round(float(average_precision_score(d["y_test"], s)), 6),
                        fit_s=float(d["t_plain"]) if key == "catboost" and "t_plain" in d else np.nan,
                    )
                )
    df = pd.DataFrame(rows).sort_values(["labelled", "seed", "dataset", "detector"])
    df.to_csv(OUT / "cells.csv", index=False)
    print(f"{len(df)} rows -> {OUT / 'cells.csv'}")


def _md(table: pd.DataFrame, digits: int = 2) -> str:
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if pd.isna(v) else f"{v:.{digits}f}"
        return str(v)

    head = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def _load() -> pd.DataFrame:
    parts = [pd.read_csv(OUT / "cells.csv")]
    if (OUT / "deep.csv").exists():
        deep = pd.read_csv(OUT / "deep.csv")
        parts.append(deep[["dataset", "seed", "labelled", "detector", "roc_auc", "auc_pr", "fit_s"]])
    old = pd.read_csv(OLD)
    old = old[(old.detector == "BoostedDetector") & (old.status == "ok")].assign(
        detector="BoostedDetector (before issue 22)"
    )
    parts.append(old[["dataset", "seed", "labelled", "detector", "roc_auc", "auc_pr", "fit_s"]])
    df = pd.concat(parts, ignore_index=True)
    df["half"] = np.where(df.dataset.isin(DESIGN), "design", np.where(df.dataset.isin(CONFIRM), "confirm", "?"))
    return df


def _paired(df: pd.DataFrame, detectors: list[str]) -> pd.DataFrame:
    """Only the (set, seed, budget) cells every one of ``detectors`` has, so the means compare like with like."""
    part = df[df.detector.isin(detectors)]
    n = part.groupby(["dataset", "seed", "labelled"]).detector.transform("nunique")
    return part[n == len(detectors)]


def _means(part: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    g = part.groupby("detector")
    t = pd.DataFrame(
        {
            "mean ROC-AUC": 100 * g.roc_auc.mean(),
            "mean AUC-PR": 100 * g.auc_pr.mean(),
            "cells": g.roc_auc.count(),
            "sets": g.dataset.nunique(),
        }
    ).reindex([o for o in order if o in g.groups])
    t.index.name = "detector"
    return t


def tables() -> str:
    df = _load()
    target = [
        "BoostedDetector (issue 22)",
        "CatBoost (defaults)",
        "DEFAULT (no labels)",
        "BoostedDetector (before issue 22)",
    ]
    out = [
        "# Weak supervision, issue 22: BoostedDetector's new rule, CatBoost, DEFAULT, DeepSAD, DevNet, XGBoost",
        "",
        "Generated by `PYTHONPATH=src:benchmarks python benchmarks/weak_v2_tables.py tables` from `cells.csv`, "
        "`deep.csv` and `timing.csv` in this folder. Do not edit by hand. They were made by (full commands, "
        "start times and checks: `PROVENANCE.md`):",
        "",
        "    PYTHONPATH=src python benchmarks/explore_weak.py fit --seeds 0,1,2 --labelled frac=0.05,frac=0.1,count=5 "
        "--members plain --sets <half> --cache <folder>   # CatBoost and DEFAULT scores; BoostedDetector's rule on them",
        "    PYTHONPATH=src:benchmarks python benchmarks/weak_v2_tables.py collect --cache <design folder> <confirm folder>",
        "    PYTHONPATH=src python benchmarks/weak_v2.py --detectors DeepSAD,DevNet,XGBoost --seeds 0,1,2 --out deep.csv",
        "    PYTHONPATH=src python benchmarks/weak_v2.py --detectors Boosted,CatBoost --seeds 0 --budgets frac=0.05 --out timing.csv",
        "",
        "One thread per process on a shared 2-core machine (load average 5-12): compare fit times only within a table.",
        "",
        "ROC-AUC and AUC-PR x 100 on the test part; means over the (data set, seed) cells each detector of the "
        "table has (paired). Design half = the 14 sets the rule was chosen on, confirmation half = the other 14 "
        "(issue 11's protocol; `benchmarks/weak_rules.py`).",
        "",
        "## 1. The targets: BoostedDetector vs CatBoost and DEFAULT",
        "",
    ]
    for budget in BUDGETS:
        b = _paired(df[df.labelled == budget], target)
        out.append(f"### {budget}")
        out.append("")
        for half in ("design", "confirm", "all"):
            part = b if half == "all" else b[b.half == half]
            if part.empty:
                continue
            t = _means(part, target)
            cb = t.loc["CatBoost (defaults)"]
            t["vs CatBoost ROC"] = t["mean ROC-AUC"] - cb["mean ROC-AUC"]
            t["vs CatBoost AUC-PR"] = t["mean AUC-PR"] - cb["mean AUC-PR"]
            out += [
                f"{half} ({part.dataset.nunique()} sets, seeds {sorted(part.seed.unique().tolist())}):",
                "",
                _md(t),
                "",
            ]
    # --- fit time, side by side
    if (OUT / "timing.csv").exists():
        tm = pd.read_csv(OUT / "timing.csv").pivot_table(
            index=["dataset", "seed", "labelled"], columns="detector", values="fit_s"
        )
        tm = tm.dropna() if {"Boosted", "CatBoost"} <= set(tm.columns) else tm.iloc[:0]
        if len(tm):
            ratio = tm["Boosted"] / tm["CatBoost"]
            out += [
                "## 2. Fit time, BoostedDetector vs CatBoost fitted one after the other on the same cell",
                "",
                f"{len(tm)} cells ({', '.join(sorted({k[2] for k in tm.index}))}, seed(s) "
                f"{sorted({k[1] for k in tm.index})}): total {tm['Boosted'].sum():.1f} s vs {tm['CatBoost'].sum():.1f} s "
                f"= **{tm['Boosted'].sum() / tm['CatBoost'].sum():.2f}x**; per cell median {ratio.median():.2f}x, "
                f"max {ratio.max():.2f}x ({ratio.idxmax()[0]}). One thread each, on the shared 2-core machine "
                "(load in PROVENANCE.md).",
                "",
                _md(tm.assign(ratio=ratio).reset_index().set_index("dataset")[["Boosted", "CatBoost", "ratio"]]),
                "",
            ]
    # --- the full comparison where the deep detectors ran
    full = ["BoostedDetector (issue 22)", "CatBoost (defaults)", "XGBoost", "DeepSAD", "DevNet", "DEFAULT (no labels)"]
    out += ["## 3. All six detectors, on the cells the deep detectors finished", ""]
    for budget in BUDGETS:
        b = _paired(df[df.labelled == budget], full)
        if b.empty:
            continue
        t = _means(b, full)
        fit = b.groupby("detector").fit_s.median()
        t["median fit s"] = fit.reindex(t.index)
        out += [f"### {budget}: {b.dataset.nunique()} sets, seeds {sorted(b.seed.unique().tolist())}", "", _md(t), ""]
    # --- where a deep detector beats CatBoost on AUC-PR
    b = _paired(df, full)
    if not b.empty:
        per = 100 * b.pivot_table(index=["dataset", "labelled"], columns="detector", values="auc_pr", aggfunc="mean")
        deep = pd.read_csv(OUT / "deep.csv")
        per["labelled anomalies"] = deep.groupby(["dataset", "labelled"]).n_labelled.mean().reindex(per.index)
        per["train rows"] = deep.groupby(["dataset", "labelled"]).n_train.mean().reindex(per.index)
        wins = per[(per["DeepSAD"] > per["CatBoost (defaults)"]) | (per["DevNet"] > per["CatBoost (defaults)"])]
        out += [
            "## 4. Where DeepSAD or DevNet beats CatBoost on AUC-PR (mean over the seeds run)",
            "",
            f"{len(wins)} of {len(per)} (set, budget) pairs:",
            "",
            _md(
                wins[
                    [
                        "labelled anomalies",
                        "train rows",
                        "CatBoost (defaults)",
                        "BoostedDetector (issue 22)",
                        "DeepSAD",
                        "DevNet",
                        "DEFAULT (no labels)",
                    ]
                ]
                .reset_index()
                .set_index("dataset"),
                1,
            ),
            "",
        ]
    text = "\n".join(out) + "\n"
    (OUT / "RESULTS.md").write_text(text)
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--cache", type=Path, nargs="+", required=True)
    sub.add_parser("tables")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        collect(args.cache)
    else:
        print(tables())


if __name__ == "__main__":
    sys.exit(main())
