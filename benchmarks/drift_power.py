"""Drift detection on ADBench: false alarms, power per shift kind, rows needed; deepad.drift vs Alibi Detect.

Protocol, per data set (``/work/shared/datasets/adbench/*.npz``, normal rows only):

* shuffle (seed 0); the first half (at most 3,000 rows) is the *reference*:
  a ``TabularDetector(IsolationForest)`` is fitted on 70 % of it; at each
  trial, as many rows as the other 30 % are drawn afresh from the rows
  held out of training to calibrate it (threshold at a conformal
  false-positive rate of 5 %), and the trial's test rows from the rest --
  the conformal guarantee is over the calibration draw, and so is the
  measured false-alarm rate.  A numeric column is also
  discretised into 5 quantile bins of the reference and added as a
  categorical column ``cat`` (so there is a categorical column to shift);
* each trial draws ``m = min(500, pool / 2)`` test rows and applies one
  shift to a random (non-constant) column: none; mean shift of
  ``MEAN_SHIFT`` standard deviations; scale change by ``SCALE`` around the
  median; ``CAT_SHARE`` of the rows moved to category ``b0``; ``MISSING``
  of the values made missing; two columns swapped;
* deepad: ``detect_drift(model, rows)`` (its verdict, and each section
  alone); Alibi Detect: ``KSDrift`` (Bonferroni) and ``MMDDrift``
  (pytorch backend, 100 permutations) with the same reference rows the
  model was fitted on (MMD: the first 500 of them, as deepad's MMD uses
  500 per side), standardised by their mean/std, ``cat`` as its bin
  number, missing values imputed with the reference median (Alibi's
  detectors take no NaN);
* rows needed: two shifts that double the model's flag rate -- a mean
  shift of one column sized by bisection on the pool, and the data set's
  own anomalies mixed in at the share that doubles it (the anomaly rate
  itself rises) -- tested at growing ``n``; the smallest ``n`` at which
  the score section alone, and the feature section alone, detect it in at
  least 80 % of the trials.

Run (quick: 6 sets; ``--all``: the 28)::

    PYTHONPATH=src:/work/alibi-site:/work/alibi-stubs DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/drift_power.py [--all] [--trials 10] [--out benchmarks/results/drift_power.json]

``/work/alibi-stubs`` holds an empty ``transformers`` module: alibi-detect
imports it at import time for text embeddings, which this benchmark never
uses.  Without alibi-detect the deepad columns are still measured.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from deepad.data.reference import reference_frame
from deepad.detectors import IsolationForest
from deepad.drift import c2st_test, detect_drift, mmd_test, recalibrate, score_drift
from deepad.pipeline import TabularDetector

DATA = Path("/work/shared/datasets/adbench")
QUICK = ["4_breastw", "6_cardio", "23_mammography", "28_pendigits", "38_thyroid", "19_landsat"]
KINDS = ["none", "mean", "scale", "category", "missing", "swap"]
MEAN_SHIFT, SCALE, CAT_SHARE, MISSING = 0.25, 1.25, 0.15, 0.10
ALPHA = 0.05
GRID = [10, 15, 25, 50, 100, 200, 400, 800]
MMD_ROWS = 500
#: rows of a set's normal data kept for the held-out pool (donors, http, skin, ... have 10^5-10^6)
POOL_CAP = 6000
#: recalibration study: a mean shift of RECAL_SHIFT sd on RECAL_COLUMNS of the columns, RECAL_TRIALS draws
RECAL_SHIFT, RECAL_COLUMNS, RECAL_TRIALS = 0.5, 0.3, 20


def _frame(X: np.ndarray, cat: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["cat"] = pd.Series(np.char.add("b", cat.astype(str)), dtype=object)
    return df


class Setup:
    """One data set: the model, the reference rows, the test pool, and Alibi's view of both."""

    def __init__(self, name: str, seed: int = 0, alibi: bool = True):
        d = np.load(DATA / f"{name}.npz")
        X = np.asarray(d["X"], dtype=np.float64)[np.asarray(d["y"]) == 0]
        self.anomalies = np.asarray(d["X"], dtype=np.float64)[np.asarray(d["y"]) == 1]
        rng = np.random.default_rng(seed)
        X = X[rng.permutation(len(X))]
        n_ref = min(len(X) // 2, 3000)
        self.name, self.rng = name, rng
        ref = X[:n_ref]
        std = ref.std(axis=0)
        self.columns = np.flatnonzero(std > 0)
        self.cat_source = int(self.columns[np.argmax(std[self.columns] > 0)])  # first non-constant column
        self.edges = np.unique(np.quantile(ref[:, self.cat_source], [0.2, 0.4, 0.6, 0.8]))
        n_fit = int(0.7 * n_ref)
        fit = ref[:n_fit]
        # Held out of training: the calibration rows and the test pool, re-split at every trial (see _draw)
        self.pool = X[n_fit : n_ref + POOL_CAP]
        self.n_cal = n_ref - n_fit if n_ref - n_fit >= 19 else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = TabularDetector(
                IsolationForest(n_estimators=100, random_state=seed), contamination=0.05, random_state=seed
            )
            self.model.fit(self._df(fit))
        self.fit_rows = fit
        self.mean, self.std = fit.mean(axis=0), np.where(fit.std(axis=0) > 0, fit.std(axis=0), 1.0)
        self.median = np.median(fit, axis=0)
        self.m = int(min(500, (len(self.pool) - self.n_cal) // 2))
        self._draw(0)
        # Alibi's KS gets every fitted row; its MMD the first 500 (deepad's MMD subsamples 500 per side too:
        # same data budget, and Alibi's MMD on 1,300 reference rows took 13 s a test here)
        view = self._alibi_view(self._df(fit))
        self.alibi = _alibi(view, view[:MMD_ROWS]) if alibi else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = self.model.drift_reference_
            self.Z_ref = self.model.transform(reference_frame(self.model.preprocessor.columns_, ref))

    def _df(self, X: np.ndarray) -> pd.DataFrame:
        return _frame(X, np.searchsorted(self.edges, X[:, self.cat_source], side="right"))

    def _alibi_view(self, df: pd.DataFrame) -> np.ndarray:
        X = df[[f"x{j}" for j in range(self.pool.shape[1])]].to_numpy(dtype=np.float64)
        X = np.where(np.isnan(X), self.median, X)
        cat = df["cat"].str[1:].astype(float).to_numpy()[:, None]
        mean = getattr(self, "mean", X.mean(axis=0))
        std = getattr(self, "std", np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0))
        return np.hstack([(X - mean) / std, cat]).astype(np.float32)

    def _draw(self, n: int) -> np.ndarray:
        """``n`` test rows from the held-out rows, after re-calibrating the model on others of them.

        A fresh calibration split per trial: the conformal guarantee (and so the score section's false-alarm
        rate) is over the draw of the calibration rows; with one fixed calibration set of a few dozen rows
        the rate conditional on that set can be far from 5 % (see docs/drift.md).
        """
        order = self.rng.permutation(len(self.pool))
        if self.n_cal:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model.calibrate(self._df(self.pool[order[: self.n_cal]]))
                self.model.set_threshold(fpr=ALPHA)
        return self.pool[order[self.n_cal : self.n_cal + n]].copy()

    def sample(self, kind: str) -> pd.DataFrame:
        X = self._draw(self.m)
        j = int(self.rng.choice(self.columns))
        if kind == "mean":
            X[:, j] += MEAN_SHIFT * self.std[j]
        elif kind == "scale":
            X[:, j] = self.median[j] + SCALE * (X[:, j] - self.median[j])
        elif kind == "swap" and len(self.columns) > 1:
            k = int(self.rng.choice(self.columns[self.columns != j]))
            X[:, [j, k]] = X[:, [k, j]]
        df = self._df(X)
        if kind == "category":
            rows = self.rng.random(len(df)) < CAT_SHARE
            df.loc[rows, "cat"] = "b0"
        elif kind == "missing":
            rows = self.rng.random(len(df)) < MISSING
            df.loc[rows, f"x{j}"] = np.nan
        return df


def _alibi(x_ref: np.ndarray, x_ref_mmd: np.ndarray):
    try:
        from alibi_detect.cd import KSDrift, MMDDrift
    except ImportError as exc:
        print(f"alibi-detect not importable ({exc}); measuring deepad only")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "ks": KSDrift(x_ref, p_val=ALPHA, correction="bonferroni"),
            "mmd": MMDDrift(x_ref_mmd, backend="pytorch", p_val=ALPHA, n_permutations=100, device="cpu"),
        }


#: the per-column numeric tests and the score section's tail cuts every trial records (the tables combine them)
NUMERIC = ("ks", "lepage", "ks+lepage", "ks+mood")
TAILS = (0.9, 0.99)
#: the cheaper C2ST the trials also record: fewer trees, a larger step
C2ST_FAST = {"n_trees": 20, "learning_rate": 0.25}


def _components(r) -> dict:
    """The p-values a report's feature and score sections are built from, and the feature section per numeric test.

    ``p_features_<test>``: Holm's family p-value (Bonferroni's ``m min p``)
    with each numeric column tested by ``<test>`` (``NUMERIC``); the other
    feature tests (categorical, boolean, missing rate) as they are.
    ``p_score_ks``, ``p_flag``, ``p_tail<q>``: the score section's tests.
    """
    out = {}
    tested = [f for f in r.features if f.get("p_value") is not None]
    for test in NUMERIC:
        ps = []
        for f in tested:
            if "p_ks" in f and f["kind"] == "numeric":
                ks, lep, mood = f["p_ks"], f["p_lepage"], f["p_mood"]
                ps.append({"ks": ks, "lepage": lep, "ks+lepage": 2 * min(ks, lep), "ks+mood": 2 * min(ks, mood)}[test])
            else:
                ps.append(f["p_value"])
        out[f"p_features_{test}"] = float(min(1.0, len(ps) * min(ps))) if ps else 1.0
    sc = r.score
    out["p_score_ks"] = sc["distribution"]["p_value"]
    out["p_flag"] = sc["flag_rate"]["p_value"]
    for t in sc["tails"]:
        out[f"p_tail{round(100 * t['quantile'])}"] = t["p_value"]
    return out


def _trial(s: Setup, df: pd.DataFrame, recorded: dict | None = None) -> dict:
    """One trial: every p-value (deepad's sections and their parts, MMD and C2ST apart; Alibi's) and each part's time.

    ``recorded``: the same trial of an earlier run (same seed, same rows):
    its Alibi verdicts are reused instead of running Alibi again, and its
    MMD / C2ST / KS-feature p-values are kept to check the rows are the same.
    """
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        r = detect_drift(s.model, df, alpha=ALPHA, multivariate=False, tail_quantiles=TAILS)
        out["deepad_base_s"] = time.perf_counter() - t
        out.update({f"{k}_s": v for k, v in r.seconds.items()})
        Z = s.model.transform(df)
        t = time.perf_counter()
        out["p_mmd"] = mmd_test(s.Z_ref, Z, max_rows=MMD_ROWS)["p_value"]
        out["mmd_s"] = time.perf_counter() - t
        t = time.perf_counter()
        out["p_c2st"] = c2st_test(s.Z_ref, Z, max_rows=MMD_ROWS)["p_value"]
        out["c2st_s"] = time.perf_counter() - t
        t = time.perf_counter()
        out["p_c2st_fast"] = c2st_test(s.Z_ref, Z, max_rows=MMD_ROWS, **C2ST_FAST)["p_value"]
        out["c2st_fast_s"] = time.perf_counter() - t
    out.update(_components(r))
    out["p_features"] = out["p_features_ks"]  # the feature section as the old rule had it (KS per column)
    out["p_score"] = min(1.0, 2 * min(out["p_score_ks"], out["p_flag"]))  # and the old score section
    out["deepad_s"] = out["deepad_base_s"] + out["mmd_s"]  # the report with MMD
    if recorded is not None:
        for k in ("alibi_ks", "alibi_mmd", "alibi_ks_s", "alibi_mmd_s"):
            if k in recorded:
                out[k if not k.endswith("_s") else f"recorded_{k}"] = recorded[k]
        out["recorded"] = {k: recorded.get(k) for k in ("p_mmd", "p_c2st", "p_features", "p_score")}
    elif s.alibi is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            default = detect_drift(s.model, df, alpha=ALPHA)  # the library's default report, as one call
            out["deepad_default_s"] = time.perf_counter() - t
            out["p_default"], out["deepad_default"] = default.p_value, bool(default.drift)
            out["default_sections"] = dict(default.sections)
            out["score_held_out"] = bool(default.score["held_out"])  # in the default verdict only then
        x = s._alibi_view(df)
        for k, det in s.alibi.items():
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = det.predict(x)["data"]
            out[f"alibi_{k}"] = bool(pred["is_drift"])
            out[f"alibi_{k}_s"] = time.perf_counter() - t
    return out


def _recalibration(s: Setup, trials: int) -> dict:
    """Flag rate on shifted clean rows before and after ``recalibrate`` on other shifted clean rows.

    A mean shift of ``RECAL_SHIFT`` sd on a random ``RECAL_COLUMNS`` share
    of the columns (the same columns in a trial's calibration and test
    rows); ``recalibrate`` on ``n_cal`` shifted rows (the set's calibration
    size) at fpr 5 %; then the flag rate on ``m`` further shifted rows, and
    the score section's verdict on them (the false alarm after adapting).
    """
    if s.n_cal < 19:
        return {"skipped": f"{s.n_cal} calibration rows: too few for a 5 % rate"}
    before, after, alarms = [], [], []
    for _ in range(trials):
        order = s.rng.permutation(len(s.pool))
        X = s.pool[order[: s.n_cal + s.m]].copy()
        cols = s.rng.choice(s.columns, size=max(1, int(round(RECAL_COLUMNS * len(s.columns)))), replace=False)
        X[:, cols] += RECAL_SHIFT * s.std[cols]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s._draw(0)  # the model calibrated on unshifted rows, as it was before the shift
            test = s._df(X[s.n_cal :])
            before.append(float(s.model.predict(test).mean()))
            recalibrate(s.model, s._df(X[: s.n_cal]), fpr=ALPHA)
            scores = s.model.decision_function(test)
            after.append(float(np.mean(scores > s.model.threshold_)))
            alarms.append(bool(score_drift(s.model, scores)["p_value"] <= ALPHA))
    s._draw(0)
    return {
        "calibration_rows": s.n_cal,
        "test_rows": s.m,
        "before": before,
        "after": after,
        "score_alarm_after": alarms,
    }


def _doubling_shift(s: Setup) -> tuple[int, float] | None:
    """A column and a mean shift (in sd) that doubles the model's flag rate on the pool, or None."""
    pool = s._df(s.pool)
    base = float(s.model.predict(pool).mean())
    for j in s.rng.permutation(s.columns)[:6]:

        def rate(delta):
            X = s.pool.copy()
            X[:, j] += delta * s.std[j]
            return float(s.model.predict(s._df(X)).mean())

        if rate(8.0) < 2 * base:
            continue
        lo, hi = 0.0, 8.0
        for _ in range(12):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if rate(mid) < 2 * base else (lo, mid)
        return int(j), hi
    return None


def _power(s: Setup, trials: int, make) -> dict:
    """Detection rate of the score section and of the feature section alone, per ``n`` of ``GRID``."""
    out = {"power": {}, "trials": {}}
    for n in [n for n in GRID if n <= (len(s.pool) - s.n_cal) // 2]:
        hits = {"score": 0, "features": 0}
        out["trials"][n] = []
        for _ in range(trials):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = detect_drift(s.model, make(n), alpha=ALPHA, multivariate=False, tail_quantiles=TAILS)
            c = _components(r)
            out["trials"][n].append(c)
            # the old sections: KS per column, score = 2 min(KS, flag rate); the tables recompute the others
            hits["score"] += min(1.0, 2 * min(c["p_score_ks"], c["p_flag"])) <= ALPHA
            hits["features"] += c["p_features_ks"] <= ALPHA
        out["power"][n] = {k: v / trials for k, v in hits.items()}
    for k in ("score", "features"):
        ok = [n for n, p in out["power"].items() if p[k] >= 0.8]
        out[f"rows_{k}"] = min(ok) if ok else None
    return out


def _rows_needed(s: Setup, trials: int) -> dict:
    """Rows each section needs for 80 % power, for two shifts that double the flag rate."""
    out = {}
    found = _doubling_shift(s)
    if found is None:
        out["mean"] = {"skipped": "no single-column shift doubles the flag rate"}
    else:
        j, delta = found

        def shifted(n):
            X = s._draw(n)
            X[:, j] += delta * s.std[j]
            return s._df(X)

        out["mean"] = {"column": j, "shift": delta, **_power(s, trials, shifted)}
    # the anomaly rate itself rises: a share of the data set's own anomalies mixed in (a fraud wave)
    r0 = float(s.model.predict(s._df(s.pool)).mean())
    ra = float(s.model.predict(s._df(s.anomalies)).mean()) if len(s.anomalies) else 0.0
    if ra <= 2 * r0 or len(s.anomalies) < 10:
        out["mixture"] = {
            "skipped": f"the model flags {ra:.0%} of the anomalies: mixing them in cannot double {r0:.1%}"
        }
    else:
        share = r0 / (ra - r0)

        def mixed(n):
            k = int(s.rng.binomial(n, share))
            X = s._draw(n - k)
            A = s.anomalies[s.rng.choice(len(s.anomalies), size=k, replace=True)]
            return s._df(np.vstack([X, A]))

        out["mixture"] = {"share": share, **_power(s, trials, mixed)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="all 28 ADBench sets (default: 6)")
    parser.add_argument("--sets", nargs="*", help="these sets (names without .npz)")
    parser.add_argument("--trials", type=int, default=10, help="trials per shift kind (no-shift: twice as many)")
    parser.add_argument("--rows-trials", type=int, default=10, help="trials per n in the rows-needed study (0: skip)")
    parser.add_argument("--grid", type=int, nargs="*", default=GRID, help="n of the rows-needed study")
    parser.add_argument("--out", default="benchmarks/results/drift_power.json")
    parser.add_argument(
        "--reuse-alibi",
        nargs="*",
        default=None,
        help="part files of an earlier run with the same seed: reuse their Alibi verdicts (same rows) instead of "
        "running Alibi, and keep their MMD / C2ST / feature p-values to check the rows are the same",
    )
    parser.add_argument("--no-recalibration", action="store_true", help="skip the recalibration study")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of a set's split, model and trials (another seed: fresh trials, independent of seed 0's)",
    )
    args = parser.parse_args()
    recorded_all = {}
    for p in args.reuse_alibi or []:
        recorded_all.update(json.loads(Path(p).read_text()))
    GRID[:] = args.grid
    names = args.sets or (sorted(p.stem for p in DATA.glob("*.npz")) if args.all else QUICK)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}  # checkpointed per set: a rerun resumes
    for name in names:
        if name in results:
            continue
        t0 = time.perf_counter()
        recorded = recorded_all.get(name) if args.reuse_alibi is not None else None
        if args.reuse_alibi is not None and recorded is None:
            print(f"{name}: not in the --reuse-alibi files, skipped", flush=True)
            continue
        s = Setup(name, seed=args.seed, alibi=args.reuse_alibi is None)
        res = {"rows_per_trial": s.m, "features": int(s.pool.shape[1]), "seed": args.seed, "kinds": {}}
        for kind in KINDS:
            n = args.trials * (2 if kind == "none" else 1)
            old = recorded["kinds"][kind] if recorded else [None] * n
            res["kinds"][kind] = [_trial(s, s.sample(kind), old[i]) for i in range(n)]
        if recorded:
            res["alibi_reused"] = True
        if not args.no_recalibration:
            res["recalibration"] = _recalibration(s, RECAL_TRIALS)
        res["rows_needed"] = _rows_needed(s, args.rows_trials) if args.rows_trials else {}
        res["seconds"] = time.perf_counter() - t0
        results[name] = res
        print(f"{name}: {res['seconds']:.0f} s", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        tmp.replace(out)


def table(results: dict) -> str:
    """The markdown tables: false alarms / power per method and shift kind, times, rows needed."""
    methods = ["deepad", "deepad_features", "deepad_multivariate", "deepad_score", "alibi_ks", "alibi_mmd"]
    lines = ["| shift | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for kind in KINDS:
        trials = [t for r in results.values() for t in r["kinds"][kind]]
        cells = []
        for m in methods:
            v = [t[m] for t in trials if m in t]
            cells.append(f"{np.mean(v):.1%} ({len(v)})" if v else "-")
        label = "none (false alarms)" if kind == "none" else kind
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    trials = [t for r in results.values() for k in r["kinds"].values() for t in k]
    lines.append("| time per test (median) | deepad (all sections) | alibi KSDrift | alibi MMDDrift |")
    lines.append("|---|---|---|---|")
    med = [
        np.median([t[k] for t in trials if k in t]) if any(k in t for t in trials) else float("nan")
        for k in ("deepad_s", "alibi_ks_s", "alibi_mmd_s")
    ]
    lines.append("| seconds | " + " | ".join(f"{v:.3f}" for v in med) + " |")
    lines.append("")
    lines.append(
        "| data set | mean shift doubling the flag rate | rows: score | rows: features "
        "| anomalies mixed in, doubling it | rows: score | rows: features |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = []
        for study in ("mean", "mixture"):
            rn = r["rows_needed"][study]
            if "skipped" in rn:
                cells += [rn["skipped"], "-", "-"]
                continue
            top = f"> {max(rn['power'], key=int)}" if rn["power"] else "-"
            what = f"x{rn['column']} +{rn['shift']:.2f} sd" if study == "mean" else f"{rn['share']:.1%} of rows"
            cells += [what, str(rn["rows_score"] or top), str(rn["rows_features"] or top)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
