"""Issue 22: which rule should combine CatBoost with the unsupervised DEFAULT?  Offline, on cached scores.

Reads the cache ``benchmarks/explore_weak.py fit --members plain`` writes (per data set, seed and
labelled budget: plain CatBoost's raw log-odds on the train and test rows -- the very model
``catboost.CatBoostClassifier`` is in ``deepad bench``, same seed, one thread -- and the unsupervised
DEFAULT's leave-one-out training scores and test scores), evaluates every candidate rule on it and prints
mean ROC-AUC and mean AUC-PR (x 100) per budget, with per-set wins / losses against CatBoost.  No
detector is refitted, so a rule costs nothing to try; the test labels are used only for the metrics.

Protocol (issue 11): rules are *chosen* on the design half of the 28 sets and *confirmed* on the other
half (``--half design`` / ``--half confirm``; the halves are those of ``benchmarks/default_v2_tables.py``)::

    # fit and cache (one process, one thread), the design half first
    PYTHONPATH=src DEEPAD_NUM_THREADS=1 python benchmarks/explore_weak.py fit --seeds 0,1,2 \\
        --labelled frac=0.05,frac=0.1,count=5 --members plain --sets <design half> --cache /tmp/explore_weak/v3
    PYTHONPATH=src:benchmarks python benchmarks/weak_rules.py --cache /tmp/explore_weak/v3 --half design

Rules (``z`` = the unsupervised score standardised by the median and IQR of the unlabelled training rows;
``L`` = CatBoost's log-odds):

* ``catboost``           -- ``L``: plain CatBoost.
* ``bulk{lam}``          -- ``L + lam * atan(z)``: the classifier orders the list; the unsupervised score
  (bounded, so it can move a row by at most ``lam * pi / 2`` log-odds) orders the rows the classifier
  cannot tell apart -- the bulk of unlabelled-looking rows, where CatBoost's log-odds barely differ.
* ``bulkn{c}``           -- the same with ``lam = c / sqrt(n)`` (n labelled anomalies): more weight on the
  unsupervised score the fewer the labels.
* ``rank{w}``            -- the old kind of rule: ``(1 - w) F_u + w F_c``, CDFs over the unlabelled
  training rows (in-sample for the classifier, so its ranks saturate at the top).
* ``tiebreak``           -- ``L`` plus the unsupervised score below CatBoost's resolution (ties only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DESIGN = (
    "1_ALOI 5_campaign 8_celeba 12_fault 16_http 19_landsat 23_mammography 26_optdigits 30_satellite 33_skin "
    "37_Stamps 39_vertebral 42_WBC 45_wine"
).split()
CONFIRM = (
    "4_breastw 6_cardio 11_donors 15_Hepatitis 17_InternetAds 21_Lymphography 24_mnist 28_pendigits 32_shuttle "
    "35_SpamBase 38_thyroid 41_Waveform 43_WDBC 46_WPBC"
).split()


def _ecdf(ref, v):
    ref = np.sort(ref)
    return np.searchsorted(ref, v, side="right") / len(ref)


def _robust_z(ref, v):
    q25, med, q75 = np.percentile(ref, [25, 50, 75])
    return (v - med) / (q75 - q25 if q75 - q25 > 1e-12 else 1.0)


def rules(d) -> dict[str, np.ndarray]:
    lab = d["y_weak"] == 1
    unl = ~lab
    n = max(int(lab.sum()), 1)
    L, u_tr, u_te = d["plain_test"], d["unsup_train"], d["unsup_test"]
    a = np.arctan(_robust_z(u_tr[unl], u_te))
    out = {"catboost": L, "unsup": u_te, "tiebreak": L + 1e-9 * a}
    for lam in (0.25, 0.5, 1.0, 2.0, 3.0, 5.0):
        out[f"bulk{lam:g}"] = L + lam * a
    for c in (1.0, 2.0, 4.0, 8.0):
        out[f"bulkn{c:g}"] = L + c / np.sqrt(n) * a
    Lu = d["plain_train"][unl]
    q25, q75 = np.percentile(Lu, [25, 75])
    for lam in (0.5, 1.0, 2.0, 4.0):
        out[f"bulkiqr{lam:g}"] = L + lam * max(q75 - q25, 1e-12) * a
    for lam in (0.1, 0.25, 0.5, 1.0):
        out[f"bulkstd{lam:g}"] = L + lam * max(Lu.std(), 1e-12) * a
    # how well the unsupervised score alone finds the labelled anomalies (it never saw a label): the AUC of the
    # labelled anomalies' leave-one-out scores against the unlabelled rows', as a Gini in [0, 1]
    auc_u = _ecdf(u_tr[unl], u_tr[lab]).mean() if lab.any() else 0.5
    gini = float(np.clip(2 * auc_u - 1, 0, 1))
    for lam in (0.5, 1.0, 2.0):
        out[f"gini{lam:g}"] = L + lam * gini * a
        out[f"ginisq{lam:g}"] = L + lam * gini**2 * a
    for lam in (0.25, 0.5, 1.0):  # ginistd0.5 is BoostedDetector's rule (combine="bulk", unsup_weight=0.5)
        out[f"ginistd{lam:g}"] = L + lam * gini * max(Lu.std(), 1e-12) * a
        out[f"ginisqstd{lam:g}"] = L + lam * gini**2 * max(Lu.std(), 1e-12) * a
    for thr in (0.8, 0.9):
        out[f"gate{thr:g}std0.5"] = L + (0.5 * max(Lu.std(), 1e-12) * a if auc_u >= thr else 0)
    Fu, Fc = _ecdf(u_tr[unl], u_te), _ecdf(d["plain_train"][unl], L)
    for w in (0.5, 0.8, 1.0):
        out[f"rank{w:g}"] = (1 - w) * Fu + w * Fc + 1e-6 * a
    return out


def evaluate(cache: Path, sets: list[str] | None):
    import pandas as pd
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = []
    for path in sorted(cache.glob("*.npz")):
        name, seed, spec = path.stem.split("__")
        if sets is not None and name not in sets:
            continue
        d = dict(np.load(path))
        if "plain_test" not in d:
            continue
        for rule, s in rules(d).items():
            rows.append(
                dict(
                    dataset=name,
                    seed=int(seed[4:]),
                    labelled=spec,
                    rule=rule,
                    roc_auc=100 * roc_auc_score(d["y_test"], s),
                    auc_pr=100 * average_precision_score(d["y_test"], s),
                )
            )
    return pd.DataFrame(rows)


def summary(df):
    import pandas as pd

    base = df[df.rule == "catboost"].set_index(["dataset", "seed", "labelled"])
    out = []
    for (rule, lab), g in df.groupby(["rule", "labelled"]):
        b = base.loc[[tuple(k) for k in g[["dataset", "seed", "labelled"]].values]]
        diff = g.set_index(["dataset", "seed", "labelled"])[["roc_auc", "auc_pr"]] - b[["roc_auc", "auc_pr"]]
        per_set = diff.groupby(level="dataset").mean()
        out.append(
            dict(
                rule=rule,
                labelled=lab,
                cells=len(g),
                roc=g.roc_auc.mean(),
                ap=g.auc_pr.mean(),
                d_roc=diff.roc_auc.mean(),
                d_ap=diff.auc_pr.mean(),
                roc_wl=f"{(per_set.roc_auc > 0).sum()}/{(per_set.roc_auc < 0).sum()}",
                ap_wl=f"{(per_set.auc_pr > 0).sum()}/{(per_set.auc_pr < 0).sum()}",
            )
        )
    return pd.DataFrame(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=Path("/tmp/explore_weak/v3"))
    p.add_argument("--half", choices=("design", "confirm", "all"), default="design")
    p.add_argument("--per-set", default="", help="a rule: print its per-set differences to CatBoost")
    args = p.parse_args(argv)
    sets = {"design": DESIGN, "confirm": CONFIRM, "all": None}[args.half]
    df = evaluate(args.cache, sets)
    s = summary(df)
    import pandas as pd

    pd.set_option("display.width", 200)
    print(f"{args.half} half: {df[['dataset', 'seed']].drop_duplicates().shape[0]} (set, seed) cells")
    print(s.pivot(index="rule", columns="labelled", values=["d_roc", "d_ap"]).round(2).to_string())
    print(s.pivot(index="rule", columns="labelled", values=["roc", "ap"]).round(2).to_string())
    print(s.pivot(index="rule", columns="labelled", values=["roc_wl", "ap_wl", "cells"]).to_string())
    if args.per_set:
        base = df[df.rule == "catboost"].set_index(["dataset", "seed", "labelled"])[["roc_auc", "auc_pr"]]
        g = df[df.rule == args.per_set].set_index(["dataset", "seed", "labelled"])[["roc_auc", "auc_pr"]]
        print((g - base).groupby(level=["dataset", "labelled"]).mean().unstack().round(2).to_string())


if __name__ == "__main__":
    sys.exit(main())
