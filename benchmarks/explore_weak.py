"""Offline study of how BoostedDetector should combine its members (issue #5).

Reproduces ``deepad bench --setting weak`` in-process: the same data sets,
subsample, split, min-max scaling and labelled anomalies (deepad.bench.protocol),
the same member classifiers as :class:`deepad.detectors.BoostedDetector`
(``random_seed=seed`` for the plain member, ``seed + 1`` for the augmented one,
``thread_count=1``).  Each member's training and test predictions are cached per
(data set, seed, labelled) under ``--cache`` so combination rules can be
evaluated offline, without refitting::

    # fit and cache (one process, one thread)
    DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/explore_weak.py fit \
        --seeds 0,1 --labelled 0.05,0.1 --members plain,augmented
    # evaluate every rule on what is cached
    .venv/bin/python benchmarks/explore_weak.py eval

Members: ``plain`` (features), ``augmented`` (features + the ensemble's
local view, global view and score, leave-one-out on the training rows),
``unsup1`` (features + the ensemble's score only), and ``plain_oof`` /
``augmented_oof`` (out-of-fold predictions of the unlabelled training rows:
K folds of them, each model fitted on every labelled anomaly plus the other
folds -- a rank reference distributed like new rows).  The test labels are used only to
compute ROC-AUC at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from deepad.bench.protocol import LabelledSpec, find_datasets, load_dataset, make_split, weak_labels
from deepad.detectors import BoostedDetector
from deepad.detectors.ensemble import LocalGlobalEnsemble

DATA = Path("/work/shared/datasets/adbench")
CACHE = Path("/tmp/explore_weak/v2")


def _catboost(seed: int):
    return BoostedDetector(n_threads=1)._classifier(seed)


def _members_of(X_tr, X_te, views_tr, unsup_tr, views_te, unsup_te):
    return {
        "plain": (X_tr, X_te, 0),
        "augmented": (np.column_stack([X_tr, views_tr, unsup_tr]), np.column_stack([X_te, views_te, unsup_te]), 1),
        "unsup1": (np.column_stack([X_tr, unsup_tr]), np.column_stack([X_te, unsup_te]), 1),
    }


def fit_cmd(args) -> None:
    refs = find_datasets(DATA)
    if args.sets:
        keep = set(args.sets.split(","))
        refs = [r for r in refs if r.name in keep]
    specs = [LabelledSpec.parse(f if "=" in f else f"frac={f}") for f in args.labelled.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    members = args.members.split(",")
    for seed in seeds:
        for ref in refs:
            X, y = load_dataset(ref)
            sp = make_split(X, y, ref.name, seed)
            ens = None
            for spec in specs:
                path = args.cache / f"{ref.name}__seed{seed}__{spec}.npz"
                old = dict(np.load(path)) if path.exists() else {}
                todo = [m for m in members if f"{m}_test" not in old]
                if not todo:
                    continue
                t0 = time.perf_counter()
                if ens is None:
                    ens = LocalGlobalEnsemble()  # BoostedDetector's defaults
                    t_ens = time.perf_counter()
                    ens.fit(sp.X_train)
                    t_ens = time.perf_counter() - t_ens
                    views_tr, unsup_tr = ens.pop_training_views(), ens.decision_scores_
                    views_te = ens._calibrated(ens._views(ens._member_raw(sp.X_test)))
                    unsup_te = ens._combine(views_te)
                yw = weak_labels(sp.y_train, spec, sp.label_seed)
                target = (yw == 1).astype(np.int64)
                out = dict(
                    old,
                    t_ens=t_ens,
                    y_train=sp.y_train,
                    y_test=sp.y_test,
                    y_weak=yw,
                    unsup_train=unsup_tr,
                    unsup_test=unsup_te,
                )
                feats = _members_of(sp.X_train, sp.X_test, views_tr, unsup_tr, views_te, unsup_te)
                for m in todo:
                    base, oof = (m[:-4], True) if m.endswith("_oof") else (m, False)
                    Xtr, Xte, off = feats[base]
                    if not oof:
                        t_fit = time.perf_counter()
                        clf = _catboost(seed + off).fit(Xtr, target)
                        out[f"t_{m}"] = time.perf_counter() - t_fit
                        out[f"{m}_train"] = clf.predict(Xtr, prediction_type="RawFormulaVal")
                        out[f"{m}_test"] = clf.predict(Xte, prediction_type="RawFormulaVal")
                    else:  # out-of-fold raw scores of the unlabelled rows: K folds of them, each model fitted
                        # on every labelled anomaly plus the other folds (the reference is over unlabelled rows only)
                        from sklearn.model_selection import KFold

                        oof_raw = np.full(len(target), np.nan)
                        unl_idx, lab_idx = np.flatnonzero(target == 0), np.flatnonzero(target == 1)
                        for tr, va in KFold(n_splits=args.folds, shuffle=True, random_state=seed).split(unl_idx):
                            fit_rows = np.r_[unl_idx[tr], lab_idx]
                            clf = _catboost(seed + off).fit(Xtr[fit_rows], target[fit_rows])
                            oof_raw[unl_idx[va]] = clf.predict(Xtr[unl_idx[va]], prediction_type="RawFormulaVal")
                        out[f"{m}_train"] = oof_raw
                        out[f"{m}_test"] = np.zeros(0)
                np.savez(path, **out)
                print(f"{ref.name} seed={seed} {spec} {todo} {time.perf_counter() - t0:.1f}s", flush=True)


# ---------------------------------------------------------------------------- evaluation
def _ecdf(ref, v):
    ref = np.sort(ref)
    return np.searchsorted(ref, v, side="right") / len(ref)


def _tiebreak(u_ref, u):
    med = np.median(u_ref)
    q25, q75 = np.percentile(u_ref, [25, 75])
    s = q75 - q25 if q75 - q25 > 1e-12 else 1.0
    return 0.5 + np.arctan((u - med) / s) / np.pi


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def rules(d) -> dict[str, np.ndarray]:
    lab = d["y_weak"] == 1
    unl = ~lab
    n_ref = int(unl.sum())
    u_tr, u_te = d["unsup_train"], d["unsup_test"]
    tb = _tiebreak(u_tr[unl], u_te)
    out = {"unsup": u_te}
    has = lambda m: f"{m}_test" in d  # noqa: E731
    P, A = d["plain_test"], d["augmented_test"]
    out["plain"] = P
    out["augmented"] = A
    # the current rule: mean ECDF rank among unlabelled training rows (in-sample) + unsup tie-breaker
    rank = 0.5 * (_ecdf(d["plain_train"][unl], P) + _ecdf(d["augmented_train"][unl], A))
    out["current_rank"] = rank + 0.25 / n_ref * tb
    out["rank_no_tb"] = rank
    # the detector's label_pseudocount blend with the unsupervised rank
    n_lab = int(lab.sum())
    for c in (0.5, 2.0):
        w = n_lab / (n_lab + c)
        out[f"pseudocount{c:g}"] = (1 - w) * _ecdf(u_tr[unl], u_te) + w * rank + 0.25 / n_ref * tb
    out["mean_logodds"] = 0.5 * (P + A)
    out["mean_proba"] = 0.5 * (_sig(P) + _sig(A))

    # standardised log-odds (centre/scale over the unlabelled training rows, in-sample)
    def std(m, v):
        r = d[f"{m}_train"][unl]
        q25, med, q75 = np.percentile(r, [25, 50, 75])
        return (v - med) / max(q75 - q25, 1e-12)

    out["mean_std_logodds"] = 0.5 * (std("plain", P) + std("augmented", A))
    # ranks, ties broken by the members' own mean (standardised) log-odds instead of the unsupervised score
    out["rank_tb_logodds"] = rank + 0.25 / n_ref * _sig(0.5 * (P + A))
    out["rank_tb_stdlogodds"] = rank + 0.25 / n_ref * (0.5 + np.arctan(out["mean_std_logodds"]) / np.pi)
    # label gate: how highly the labelled anomalies rank under the unsupervised score (LOO on train)
    pct = _ecdf(u_tr[unl], u_tr[lab]).mean()
    for thr in (0.8, 0.9, 0.95):
        out[f"gate{thr}_logodds"] = 0.5 * (P + A) if pct >= thr else P
    # continuous gate: weight of the augmented member = its labelled anomalies' mean percentile, rescaled
    w = float(np.clip((pct - 0.5) / 0.5, 0, 1))
    out["wgate_logodds"] = (1 - w) * P + w * 0.5 * (P + A)
    out["wgate_aug_logodds"] = (1 - w) * P + w * A
    if has("unsup1"):
        U1 = d["unsup1_test"]
        out["unsup1"] = U1
        out["mean_logodds_P_U1"] = 0.5 * (P + U1)
        out["mean_logodds_3"] = (P + A + U1) / 3
    if "plain_oof_train" in d and "augmented_oof_train" in d:
        rank = 0.5 * (_ecdf(d["plain_oof_train"][unl], P) + _ecdf(d["augmented_oof_train"][unl], A))
        out["oof_rank"] = rank + 0.25 / n_ref * tb
    return out


def eval_cmd(args) -> None:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    rows = []
    for path in sorted(args.cache.glob("*.npz")):
        name, seed, spec = path.stem.split("__")
        d = dict(np.load(path))
        if "plain_test" not in d or "augmented_test" not in d:
            continue
        for rule, s in rules(d).items():
            rows.append(
                dict(
                    dataset=name,
                    seed=int(seed[4:]),
                    labelled=spec,
                    rule=rule,
                    roc_auc=100 * roc_auc_score(d["y_test"], s),
                )
            )
    df = pd.DataFrame(rows)
    # only (set, seed, labelled) cells that have every rule, so means are paired
    n_rules = df.groupby(["dataset", "seed", "labelled"]).rule.transform("nunique")
    df = df[n_rules == n_rules.max()] if args.paired else df
    if args.ref:
        ref = pd.read_csv(args.ref)
        ref = ref[ref.detector.isin(["catboost.CatBoostClassifier", "BoostedDetector", "xgboost.XGBClassifier"])]
        ref = ref.assign(rule="csv:" + ref.detector.str.split(".").str[-1], roc_auc=100 * ref.roc_auc)
        keys = set(map(tuple, df[["dataset", "seed", "labelled"]].drop_duplicates().values))
        ref = ref[[tuple(k) in keys for k in ref[["dataset", "seed", "labelled"]].values]]
        df = pd.concat([df, ref[["dataset", "seed", "labelled", "rule", "roc_auc"]]])
    cells = df.groupby("labelled")[["dataset", "seed"]].apply(lambda g: len(g.drop_duplicates()))
    print("cells per labelled:", cells.to_dict())
    tab = df.pivot_table(index="rule", columns="labelled", values="roc_auc", aggfunc="mean")
    base = df[df.rule == args.baseline].set_index(["dataset", "seed", "labelled"]).roc_auc
    wins = df.assign(diff=df.roc_auc - df.set_index(["dataset", "seed", "labelled"]).index.map(base).values)
    per_set = wins.groupby(["rule", "labelled", "dataset"])["diff"].mean()
    tab_w = per_set.groupby(["rule", "labelled"]).apply(lambda s: f"{(s > 0).sum()}/{(s < 0).sum()}").unstack()
    print(tab.round(2).join(tab_w, rsuffix=f" W/L vs {args.baseline}").sort_values(tab.columns[0]).to_string())
    if args.per_set:
        print(
            wins.pivot_table(index="dataset", columns=["labelled", "rule"], values="diff")
            .round(1)
            .loc[:, (slice(None), args.per_set.split(","))]
            .to_string()
        )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--seeds", default="0,1")
    f.add_argument("--labelled", default="0.05,0.1")
    f.add_argument("--members", default="plain,augmented")
    f.add_argument("--sets", default="")
    f.add_argument("--folds", type=int, default=5)
    f.add_argument("--cache", type=Path, default=CACHE)
    e = sub.add_parser("eval")
    e.add_argument("--cache", type=Path, default=CACHE)
    e.add_argument("--ref", default="benchmarks/results/weak/results.csv")
    e.add_argument("--baseline", default="plain")
    e.add_argument(
        "--unpaired",
        dest="paired",
        action="store_false",
        help="also cells that lack a member some rule needs (means then mix cell sets)",
    )
    e.add_argument("--per-set", default="")
    args = p.parse_args(argv)
    if args.cmd == "fit":
        args.cache.mkdir(parents=True, exist_ok=True)
    (fit_cmd if args.cmd == "fit" else eval_cmd)(args)


if __name__ == "__main__":
    sys.exit(main())
