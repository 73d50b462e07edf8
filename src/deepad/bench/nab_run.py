"""Run a streaming detector over the NAB corpus and score it (``deepad bench --nab DIR``).

Per file, causally: the detector is fitted on the file's probationary
period (the first 15 %, at most 750 rows -- NAB ignores detections there),
:class:`deepad.stream.StreamScorer` is set up with a SPOT threshold
initialised on those training scores (or, for a detector with its own
calibrated threshold such as :class:`~deepad.detectors.ConformalKNN`, that
one) and primed with the training rows, and the rest of the file is streamed ``batch`` points per :meth:`~StreamScorer.update`
call (``batch=1``: true streaming).  Two protocols are scored:

* **causal** -- the stream's *alerts* (SPOT threshold; suppression for
  ``refractory`` points after an alert and until the score has been below
  the threshold for ``rearm`` points) are the detections: what a deployed
  stream raises;
* **NAB** -- the stream's unit scores in [0, 1] (rarity under the SPOT tail
  model, or the detector's own rarity; see :mod:`deepad.stream`) with one
  threshold per profile chosen to maximise the corpus score
  (:func:`deepad.bench.nab.optimize_threshold`), as NAB's scoreboard does.
  It uses the labels to pick the threshold, so it is an upper bound,
  comparable to the published numbers.  Scored twice: the raw unit scores
  (every row above the threshold is a detection), and the unit scores as
  the stream reports them with its alert suppression (0 on the rows where
  the stream suppressed alarms) -- published detectors (e.g. ARTime, CAD-OSE)
  likewise suppress repeats inside the detector.

Reported next to the detector: the null detector (no detections; 0 by
construction) and a random detector (causal: the same number of alerts per
file at uniformly random rows; NAB: uniform random scores, threshold
optimised the same way), both seeded.  Every score comes from
:mod:`deepad.bench.nab`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from deepad.bench import nab

__all__ = ["DEFAULT_PARAMS", "run_nab", "run_file", "nab_markdown", "split_specs", "suppress_after_alerts"]

#: Settings per detector used when ``params`` does not override them.
DEFAULT_PARAMS: dict[str, dict] = {
    "GRUForecaster": dict(
        window=32,
        stateful=True,
        hidden_dims=(32,),
        epochs=30,
        batch_size=64,
        validation_fraction=0.1,
        patience=5,
        preprocessing="robust",
        random_state=0,
        device="cpu",
    ),
    "TCNAutoEncoder": dict(
        window=32,
        hidden_dims=(16, 16),
        latent_dim=4,
        epochs=30,
        batch_size=64,
        preprocessing="robust",
        random_state=0,
        device="cpu",
    ),
    "RollingZScore": dict(window=64),
    # contamination 0.04 (alarm at p < 0.04), not the class default 0.01: NAB's standard profile charges a false
    # alarm 0.11 of a detection; chosen on 48 NAB files, see benchmarks/results/nab-variants
    "ConformalKNN": dict(window=16, coarse_chunks=8, coarse_width=16, n_neighbors=5, memory=5000, contamination=0.04),
    # issue 21: the class defaults are the setting chosen on the design split (benchmarks/results/nab-v2)
    "LikelihoodKNN": {},
    "OnlineForecaster": dict(random_state=0),
    "LikelihoodEnsemble": dict(random_state=0),
}


def split_specs(text: str) -> list[str]:
    """Split ``'A,B:{"x":1,"y":2}'`` on the commas outside JSON braces."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _make_detector(detector, params: Mapping | None):
    if not isinstance(detector, str):
        if params:
            raise ValueError("params only apply when the detector is given by name.")
        return detector
    import deepad.detectors as D

    try:
        cls = D.detector_class(detector)  # case-insensitive, as deepad train -d
    except ValueError:
        raise ValueError(
            f"unknown detector {detector!r}; streaming detectors: {', '.join(sorted(DEFAULT_PARAMS))}."
        ) from None
    merged = {**DEFAULT_PARAMS.get(cls.__name__, {}), **dict(params or {})}
    return cls(**merged)


def run_file(detector, values: np.ndarray, probation: int, *, stream_kw: Mapping | None = None, batch: int = 1):
    """Fit a fresh clone of ``detector`` on ``values[:probation]`` and stream the rest.

    Returns ``(alerts, unit_scores, raw_scores, latency_s_per_point, scorer, suppressed)``;
    the arrays have one entry per row (rows inside the probation period:
    no alert, NaN scores, not suppressed).  ``scorer.cpu_per_point_s`` is the CPU time per point.
    """
    from sklearn.base import clone

    from deepad.stream import StreamScorer

    X = np.asarray(values, dtype=np.float64).reshape(values.shape[0], -1)
    det = clone(detector).fit(X[:probation])
    sc = StreamScorer(det, **dict(stream_kw or {}))
    if sc._state is not None:
        sc.prime(X[:probation])  # stateful: run the recurrent state through the training rows
    elif sc.context:
        sc.prime(X[max(probation - sc.context, 0) : probation])
    n = X.shape[0]
    alerts = np.zeros(n, dtype=bool)
    suppressed = np.zeros(n, dtype=bool)
    units, raw = np.full(n, np.nan), np.full(n, np.nan)
    for start in range(probation, n, batch):
        u = sc.update(X[start : start + batch])
        alerts[start : start + len(u)] = u.alerts
        units[start : start + len(u)] = u.unit_scores
        raw[start : start + len(u)] = u.scores
        suppressed[start : start + len(u)] = u.suppressed
    return alerts, units, raw, sc.latency_per_point_s, sc, suppressed


def suppress_after_alerts(units: np.ndarray, suppressed: np.ndarray) -> np.ndarray:
    """Unit scores as a stream with alert suppression reports them: 0 where the stream suppressed alarms."""
    out = np.array(units, dtype=np.float64, copy=True)
    out[np.asarray(suppressed, dtype=bool)] = 0.0
    return out


def run_nab(
    root: str | os.PathLike,
    detector="ConformalKNN",
    params: Mapping | None = None,
    *,
    categories: Sequence[str] | None = None,
    risk: float = 1e-4,
    init_quantile: float = 0.98,
    refractory: int = 16,
    rearm: int = 64,
    smoothing: int = 1,
    batch: int = 1,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    seed: int = 0,
) -> dict:
    """Stream ``detector`` (a name in :mod:`deepad.detectors` or an unfitted instance) over the NAB corpus at ``root``.

    Returns a summary dict (settings, per-protocol score tables, per-file
    rows, wall/CPU time, mean latency per streamed point).  With ``out``,
    writes ``summary_<name>.md``, ``results_<name>.json`` and
    ``per_file_<name>.csv`` there.
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    proto = _make_detector(detector, params)
    name = detector if isinstance(detector, str) else type(detector).__name__
    # detectors with their own calibrated threshold (e.g. conformal rarity) stream with it, others with SPOT
    from deepad.stream import default_threshold

    threshold = default_threshold(proto)
    stream_kw = dict(
        threshold=threshold,
        risk=risk,
        init_quantile=init_quantile,
        refractory=refractory,
        rearm=rearm,
        smoothing=smoothing,
    )
    files = list(nab.load_corpus(root, categories))
    if not files:
        raise ValueError(
            f"no labelled NAB files found under {root}"
            + (f" in categories {list(categories)}" if categories else "")
            + "."
        )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=sum(len(df) for _, df, _ in files), unit="pt", unit_scale=True, desc=f"NAB {name}", dynamic_ncols=True
        )
    rng = np.random.default_rng(seed)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    causal = {"deepad " + name: {}, "null": {}, "random (same alert count)": {}}
    unit = {
        "deepad " + name: {},
        f"deepad {name}, suppressed after alerts": {},
        "null": {},
        "random (uniform scores)": {},
    }
    per_file, n_points, latency_sum, cpu_sum = [], 0, 0.0, 0.0
    for key, df, wins in files:
        values = df[["value"]].to_numpy(dtype=np.float64)
        n = values.shape[0]
        probation = nab.probation_length(n)
        t0 = time.perf_counter()
        alerts, units, _, lat, sc, suppressed = run_file(proto, values, probation, stream_kw=stream_kw, batch=batch)
        seconds = time.perf_counter() - t0
        k = int(alerts.sum())
        r = np.zeros(n, dtype=bool)
        r[rng.choice(np.arange(probation, n), size=min(k, n - probation), replace=False)] = True
        causal["deepad " + name][key] = (alerts, wins, n)
        causal["null"][key] = (np.zeros(n, dtype=bool), wins, n)
        causal["random (same alert count)"][key] = (r, wins, n)
        unit["deepad " + name][key] = (units, wins, n)
        unit[f"deepad {name}, suppressed after alerts"][key] = (suppress_after_alerts(units, suppressed), wins, n)
        unit["null"][key] = (np.zeros(n), wins, n)
        unit["random (uniform scores)"][key] = (rng.random(n), wins, n)
        f = nab.score_file(alerts, wins, n, "standard")
        other = {p: nab.score_file(alerts, wins, n, p) for p in nab.PROFILES if p != "standard"}
        per_file.append(
            {
                "file": key,
                "rows": n,
                "streamed": n - probation,
                "windows": len(wins),
                "alerts": k,
                "tp": f["tp"],
                "fp": f["fp"],
                "fn": f["fn"],
                "raw_standard": f["raw"],
                "null_standard": f["null"],
                **{f"raw_{p}": o["raw"] for p, o in other.items()},  # per-part scores (benchmarks/nab_v2_report.py)
                **{f"null_{p}": o["null"] for p, o in other.items()},
                "seconds": seconds,
                "latency_ms": 1e3 * lat,
                "cpu_ms": 1e3 * sc.cpu_per_point_s,
            }
        )
        n_points += n - probation
        latency_sum += lat * (n - probation)
        cpu_sum += sc.cpu_per_point_s * (n - probation)
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(f"{key.split('/')[-1][:28]} {1e3 * lat:.3f} ms/pt")
    if bar is not None:
        bar.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    causal_table = {}
    for det_name, res in causal.items():
        row = {prof: nab.score_corpus(res, prof)["score"] for prof in nab.PROFILES}
        s = nab.score_corpus(res, "standard")
        row.update(nab.window_metrics(s))
        row.update({"tp": s["tp"], "fp": s["fp"], "fn": s["fn"], "windows": s["windows"]})
        causal_table[det_name] = row
    nab_table = {}
    for det_name, res in unit.items():
        row = {}
        for prof in nab.PROFILES:
            o = nab.optimize_threshold(res, prof)
            row[prof] = o["score"]
            row[f"threshold_{prof}"] = o["threshold"]
            if prof == "standard":
                row.update(nab.window_metrics(o))
                row.update({"tp": o["tp"], "fp": o["fp"], "fn": o["fn"], "windows": o["windows"]})
        nab_table[det_name] = row
    params_used = {k: v for k, v in proto.get_params(deep=False).items()}
    summary = {
        "detector": name,
        "params": params_used,
        "stream": stream_kw,
        "batch": int(batch),
        "files": len(files),
        "points_streamed": n_points,
        "wall_s": wall,
        "cpu_s": cpu,
        "latency_ms_per_point": 1e3 * latency_sum / max(n_points, 1),
        "cpu_ms_per_point": 1e3 * cpu_sum / max(n_points, 1),
        "load_average": _load(),
        "threads": os.environ.get("DEEPAD_NUM_THREADS"),
        "causal": causal_table,
        "nab": nab_table,
        "per_file": per_file,
    }
    if out is not None:
        _write(Path(out), name, summary)
    return summary


def nab_markdown(summary: Mapping) -> str:
    """The summary as a markdown report (both protocols, timing)."""
    s = summary
    lines = [
        f"# NAB ({s['files']} files, {s['points_streamed']} streamed points) -- {s['detector']}",
        "",
        f"stream: {s['stream']}, batch={s['batch']}; params: {s['params']}",
        "",
        "### Causal protocol (the alerts a deployed stream raises: the stream's threshold -- `threshold` above: "
        "SPOT, or the detector's own calibrated one -- and refractory suppression)",
        "",
        "| detector | standard | low FP | low FN | precision | recall | F1 | TP | FP | FN |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for det_name, row in s["causal"].items():
        lines.append(
            f"| {det_name} | {row['standard']:.1f} | {row['reward_low_FP_rate']:.1f} | "
            f"{row['reward_low_FN_rate']:.1f} | {row['precision']:.2f} | {row['recall']:.2f} | "
            f"{row['f1']:.2f} | {row['tp']} | {row['fp']} | {row['fn']} |"
        )
    lines += [
        "",
        "### NAB protocol (unit scores in [0,1], threshold optimised over the corpus per profile, "
        "as on NAB's scoreboard; uses the labels)",
        "",
        "| detector | standard | low FP | low FN | threshold (standard) | precision | recall | F1 | TP | FP | FN |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for det_name, row in s["nab"].items():
        lines.append(
            f"| {det_name} | {row['standard']:.1f} | {row['reward_low_FP_rate']:.1f} | "
            f"{row['reward_low_FN_rate']:.1f} | {row['threshold_standard']:.4g} | {row['precision']:.2f} | "
            f"{row['recall']:.2f} | {row['f1']:.2f} | {row['tp']} | {row['fp']} | {row['fn']} |"
        )
    lines += [
        "",
        "Precision/recall/F1 are window-level (a window is found if it has a detection; every detection "
        "outside a window is a false alarm), at the standard profile.",
        "",
        f"wall {s['wall_s']:.1f} s, CPU {s['cpu_s']:.1f} s (whole corpus, fit + stream), "
        f"mean streaming latency {s['latency_ms_per_point']:.3f} ms/point wall, "
        f"{s.get('cpu_ms_per_point', float('nan')):.3f} ms/point CPU (batch {s['batch']}, "
        f"DEEPAD_NUM_THREADS={s['threads']}; machine load average at the end {s.get('load_average')})",
    ]
    return "\n".join(lines) + "\n"


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def _write(out: Path, name: str, summary: Mapping) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{name}.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    (out / f"summary_{name}.md").write_text(nab_markdown(summary))
    pd.DataFrame(summary["per_file"]).to_csv(out / f"per_file_{name}.csv", index=False, float_format="%.6g")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)
