"""Issue 21 study: replay post-processing rules (anomaly likelihood, ensembles) on cached NAB raw scores.

Step 1 (``cache``): per NAB file, fit a detector on the probationary period exactly as ``deepad bench --nab`` does
and stream the rest, keeping the raw per-point outputs (for ConformalKNN: the nonconformity ``alpha`` and the
conformal unit score) and the training reference -- a detector's raw scores do not depend on what is done with
them afterwards, so they are computed once.  Step 2 (``replay``): feed them through
:class:`deepad.detectors.series_likelihood.AnomalyLikelihood` and the stream's alert suppression (refractory 16,
re-arm 64) under a grid of settings, and score each part of the fixed split (``benchmarks/results/nab-v2/SPLIT.md``)
with :mod:`deepad.bench.nab`.

    PYTHONPATH=src python benchmarks/nab_v2_study.py cache /work/shared/datasets/nab --config knn16
    PYTHONPATH=src python benchmarks/nab_v2_study.py replay --config knn16 --grid '...'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from deepad.bench import nab  # noqa: E402
from deepad.detectors.series_likelihood import AnomalyLikelihood  # noqa: E402

DESIGN = ("artificialWithAnomaly", "realAWSCloudwatch")
CHECK = ("realKnownCause", "artificialNoAnomaly")
CACHE = Path(os.environ.get("NAB_V2_CACHE", "/tmp/nab_v2_cache"))

CONFIGS = {
    "knn16": dict(window=16, coarse_chunks=8, coarse_width=16, n_neighbors=5, memory=5000, contamination=0.04),
    "knn8": dict(window=8, coarse_chunks=8, coarse_width=8, n_neighbors=5, memory=5000, contamination=0.04),
    "knn32": dict(window=32, coarse_chunks=8, coarse_width=32, n_neighbors=5, memory=5000, contamination=0.04),
    "knn4": dict(window=4, coarse_chunks=0, coarse_width=1, n_neighbors=5, memory=5000, contamination=0.04),
    # the deep streaming detector: OnlineForecaster (its raw score, the absolute forecast error, is cached as "alpha")
    "online": dict(random_state=0),
    "online_frozen": dict(random_state=0, online_lr=0.0),
    "online_lr3e-3": dict(random_state=0, online_lr=3e-3),
    "online_every1": dict(random_state=0, train_every=1),
    "online_lr3e-4": dict(random_state=0, online_lr=3e-4),
    # issue 21, round 3: ARTimeStream (its score, the anomaly confidence, is cached as "alpha" and "unit"); the
    # range check and the confidence cut are replayed ("spatial", "or_unit" / "or_art"), so they are not set here
    "art": dict(),
    **{f"art_margin{m}": dict(range_margin=m) for m in (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)},
    **{f"art_chomp{c}": dict(chomp=c) for c in (0.0, 0.05, 0.1)},
    **{f"art_spike{f}": dict(spike_fraction=f) for f in (0.0, 0.05, 0.2)},
    **{f"art_wpp{k}": dict(windows_per_probation=k) for k in (8, 20)},
    **{f"art_rho{r}": dict(initial_rho=r) for r in (0.7, 0.9)},
    "art_window16": dict(window=16),
}


def part_of(key: str) -> str:
    return "design" if key.split("/")[0] in DESIGN else "check"


def cache(root: str, config: str) -> None:
    from deepad.detectors import ConformalKNN, OnlineForecaster

    out = CACHE / config
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    for key, df, wins in nab.load_corpus(root):
        X = df[["value"]].to_numpy(dtype=np.float64)
        n = X.shape[0]
        prob = nab.probation_length(n)
        if config.startswith("art"):
            from deepad.detectors import ARTimeStream

            det = ARTimeStream(**CONFIGS[config]).fit(X[:prob])
            alphas = det._stream_scores(det._stream_state(), X[prob:])
            units, train_alpha = alphas, det.decision_scores_
        elif config.startswith("online"):
            det = OnlineForecaster(**CONFIGS[config]).fit(X[:prob])
            state = det._stream_state()
            det._stream_prime(state, X[:prob])
            alphas = det._stream_scores(state, X[prob:])
            units = np.full_like(alphas, np.nan)
            train_alpha = det.decision_scores_
        else:
            det = ConformalKNN(**CONFIGS[config]).fit(X[:prob])
            state = det._stream_state()
            det._stream_prime(state, X[:prob])
            alphas = det._stream_alphas(state, X[prob:])
            units = det._stream_conformal(state, alphas)
            train_alpha = det.calibration_alphas_
        np.savez(
            out / (key.replace("/", "__") + ".npz"),
            alpha=alphas,
            unit=units,
            train_alpha=train_alpha,
            train_unit=np.asarray(det.p_value_reference, dtype=np.float64),
            n=n,
            prob=prob,
            windows=json.dumps([list(map(str, w)) for w in wins]),
            timestamps=df["timestamp"].astype(str).to_numpy() if "timestamp" in df else np.array([]),
        )
    print(f"cached {config}: CPU {time.process_time() - t0:.1f} s", flush=True)


def load(config: str, root: str = "/work/shared/datasets/nab") -> list[dict]:
    files = {k: (df, w) for k, df, w in nab.load_corpus(root)}
    out = []
    for p in sorted((CACHE / config).glob("*.npz")):
        key = p.stem.replace("__", "/")
        with np.load(p, allow_pickle=False) as z:
            d = {k: z[k] for k in ("alpha", "unit", "train_alpha", "train_unit")}
            d.update(n=int(z["n"]), prob=int(z["prob"]))
        d["key"], d["wins"] = key, files[key][1]
        d["values"] = files[key][0]["value"].to_numpy(dtype=np.float64)
        out.append(d)
    return out


def suppress(alarm: np.ndarray, refractory: int = 16, rearm: int = 64) -> np.ndarray:
    """StreamScorer's alert rule on a boolean alarm series (refractory, then re-arm after ``rearm`` quiet points)."""
    alerts = np.zeros(alarm.size, dtype=bool)
    cooldown, quiet = 0, -1
    for i, a in enumerate(alarm.tolist()):
        if quiet >= 0:
            quiet = 0 if a else quiet + 1
        if cooldown > 0:
            cooldown -= 1
        elif 0 <= quiet < rearm:
            pass
        else:
            quiet = -1
            if a:
                alerts[i] = True
                cooldown, quiet = refractory, (0 if rearm else -1)
    return alerts


def raw_input(f: dict, source: str):
    if source == "unit":
        return f["train_unit"], f["unit"]
    if source == "alpha":
        return f["train_alpha"], f["alpha"]
    if source == "logalpha":
        return np.log(f["train_alpha"] + 1e-9), np.log(f["alpha"] + 1e-9)
    raise ValueError(source)


def likelihood_alarms(train, stream, lk: dict, warmup: int = 0) -> tuple[np.ndarray, np.ndarray]:
    al = AnomalyLikelihood(**lk).initialize(train)
    q = np.array([al.update(s) for s in stream.tolist()])
    alarm = q < al.epsilon
    if warmup:
        alarm[:warmup] = False
    return alarm, q


def spatial(values: np.ndarray, prob: int, tol: float) -> np.ndarray:
    """HTM's NAB "spatial anomaly": the value leaves the range seen so far (from the file's start) by ``tol`` x range."""
    hi = np.maximum.accumulate(values)
    lo = np.minimum.accumulate(values)
    hi_prev, lo_prev = hi[prob - 1 : -1], lo[prob - 1 : -1]
    v = values[prob:]
    span = hi_prev - lo_prev
    return (span > 0) & ((v > hi_prev + tol * span) | (v < lo_prev - tol * span))


def score(files: list[dict], alerts_of) -> dict:
    res = {"design": {}, "check": {}, "all": {}}
    for f in files:
        a = np.zeros(f["n"], dtype=bool)
        a[f["prob"] :] = alerts_of(f)
        item = (a, f["wins"], f["n"])
        res[part_of(f["key"])][f["key"]] = item
        res["all"][f["key"]] = item
    row = {}
    for part, r in res.items():
        for prof in ("standard", "reward_low_FP_rate"):
            s = nab.score_corpus(r, prof)
            row[f"{part}_{prof}"] = s["score"]
            if prof == "standard":
                row[f"{part}_tp"], row[f"{part}_fp"] = s["tp"], s["fp"]
    return row


def fmt(name: str, row: dict) -> str:
    cells = []
    for part in ("design", "check", "all"):
        cells.append(
            f"{part} {row[f'{part}_standard']:5.1f}/{row[f'{part}_reward_low_FP_rate']:5.1f} "
            f"TP {row[f'{part}_tp']:3d} FP {row[f'{part}_fp']:3d}"
        )
    return f"{name:70s} " + " | ".join(cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["cache", "replay"])
    ap.add_argument("root", nargs="?", default="/work/shared/datasets/nab")
    ap.add_argument("--config", default="knn16")
    ap.add_argument("--ensemble", default="", help="more cached configs: their likelihood alarms are OR-ed in")
    ap.add_argument("--art", default="", help="a cached ARTimeStream config: its alarms (score > or_art) are OR-ed in")
    ap.add_argument(
        "--grid", default="{}", help="JSON: name -> list of values (AnomalyLikelihood args + source, warmup)"
    )
    args = ap.parse_args(argv)
    if args.mode == "cache":
        cache(args.root, args.config)
        return 0
    files = load(args.config, args.root)
    extra = {c: {f["key"]: f for f in load(c, args.root)} for c in args.ensemble.split(",") if c}
    art = {f["key"]: f for f in load(args.art, args.root)} if args.art else {}
    print(
        fmt("baseline: unit > 0.1398 (the shipped ConformalKNN)", score(files, lambda f: suppress(f["unit"] > 0.13979)))
    )
    grid = json.loads(args.grid)
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, combo))
        name = json.dumps(setting, separators=(",", ":"))
        source = setting.pop("source", "unit")
        warmup = setting.pop("warmup", 0)
        or_unit = setting.pop("or_unit", None)
        tol = setting.pop("spatial", None)
        rearm = setting.pop("rearm", 64)
        use_lk = setting.pop("lk", True)
        or_art = setting.pop("or_art", None)

        def alerts_of(
            f,
            setting=setting,
            source=source,
            warmup=warmup,
            or_unit=or_unit,
            tol=tol,
            rearm=rearm,
            use_lk=use_lk,
            or_art=or_art,
        ):
            tr, st = raw_input(f, source)
            alarm = likelihood_alarms(tr, st, setting, warmup)[0] if use_lk else np.zeros(st.size, dtype=bool)
            for other in extra.values():
                alarm |= likelihood_alarms(*raw_input(other[f["key"]], source), setting, warmup)[0]
            if or_unit is not None:
                alarm |= f["unit"] > or_unit
            if or_art is not None:
                alarm |= art[f["key"]]["unit"] > or_art
            if tol is not None:
                alarm |= spatial(f["values"], f["prob"], tol)
            return suppress(alarm, rearm=rearm)

        print(fmt(name, score(files, alerts_of)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
