"""Numenta Anomaly Benchmark (NAB) scoring, re-implemented from the paper and the reference scorer.

Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms -- the
Numenta Anomaly Benchmark" (ICMLA 2015).  NAB rewards *early* detection of
each labelled anomaly window and penalises false positives, so a detector is
judged on the alerts it would actually raise, not on a ranking metric.

Rules (as in NAB's ``sweeper.py``):

* **Windows** come from ``combined_windows.json`` (``{"realKnownCause/x.csv":
  [[start, end], ...]}``); both ends are inclusive timestamps of the file.
* **Probationary period**: the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows
  of each file (15 %, capped at 750 rows as in NAB) are ignored: detections
  there neither help nor hurt.  ``probation_cap=None`` drops the cap.
* **True positives**: only the *first* detection in a window counts; row
  ``i`` of a window ``[l, r]`` earns ``A_TP * sigma(-(r - i + 1) / (r - l + 1))
  / sigma(-1)`` where ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` is the scaled
  sigmoid, so a detection at the window's first row earns exactly ``A_TP``
  and one at its last row almost nothing.
* **False positives**: a detection outside every window costs
  ``|A_FP| * sigma(d)`` (a negative number) where ``d`` is its distance past the
  preceding window's right end divided by ``(width - 1)`` of that window; with
  no preceding window it costs ``|A_FP|`` in full.  Every detection outside a
  window counts.
* **False negatives**: each window without a detection costs ``|A_FN|``.
* **Normalisation** over the corpus: ``100 * (raw - null) / (perfect - null)``
  where *null* raises no detections (``-|A_FN|`` per window) and *perfect*
  detects every window at its first row (``A_TP`` per window).  A perfect
  detector scores 100 and the null detector 0.

Two protocols.  NAB's scoreboard ("NAB protocol") takes raw anomaly scores
in [0, 1], flags every row whose score is at or above one threshold, and
*chooses that threshold per profile to maximise the corpus score*
(:func:`optimize_threshold`, NAB's "optimize" step) -- an upper bound that
uses the labels.  The causal protocol scores the alerts a detector actually
raised (:func:`score_corpus`), which is what a deployed stream would see.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "PROFILES",
    "Profile",
    "scaled_sigmoid",
    "probation_length",
    "window_indices",
    "score_file",
    "score_corpus",
    "window_metrics",
    "optimize_threshold",
    "load_windows",
    "load_corpus",
]


@dataclass(frozen=True)
class Profile:
    """Application profile weights, signs as in the paper (A_FP and A_FN are negative)."""

    a_tp: float
    a_fp: float
    a_tn: float
    a_fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(1.0, -0.11, 1.0, -1.0),
    "reward_low_FP_rate": Profile(1.0, -0.22, 1.0, -1.0),
    "reward_low_FN_rate": Profile(1.0, -0.11, 1.0, -2.0),
}


def scaled_sigmoid(y: float) -> float:
    """NAB's ``2 / (1 + exp(5y)) - 1``, and ``-1`` for ``y > 3`` (far past a window)."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_length(n_rows: int, fraction: float = 0.15, cap: int | None = 750) -> int:
    """Rows at the start of a file where detections are ignored (NAB: 15 %, at most 750)."""
    length = int(math.floor(fraction * n_rows))
    return length if cap is None else min(length, int(cap))


def window_indices(timestamps: Sequence, windows: Iterable[Sequence]) -> list[tuple[int, int]]:
    """Turn ``[[start, end], ...]`` timestamps into inclusive row-index pairs ``(l, r)``.

    ``l`` is the first row at or after ``start`` and ``r`` the last row at or
    before ``end`` (NAB's windows fall exactly on rows, so this is exact there).
    """
    ts = np.asarray(_to_datetime(timestamps), dtype="datetime64[ns]")
    out = []
    for w in windows:
        if len(w) != 2:
            raise ValueError(f"each window must be [start, end], got {w!r}")
        start, end = (np.datetime64(_to_datetime([t])[0], "ns") for t in w)
        if end < start:
            raise ValueError(f"window {w!r} ends before it starts.")
        # NAB locates window ends by exact timestamp (its files are not all strictly sorted);
        # otherwise: the first row at/after start and the last row at/before end.
        hit = np.flatnonzero(ts == start)
        after = np.flatnonzero(ts >= start)
        l = int(hit[0]) if hit.size else (int(after[0]) if after.size else ts.size)
        hit = np.flatnonzero(ts == end)
        before = np.flatnonzero(ts <= end)
        r = int(hit[0]) if hit.size else (int(before[-1]) if before.size else -1)
        if l <= r:
            out.append((l, r))
    out.sort()
    for (l0, r0), (l1, _) in zip(out, out[1:]):
        if l1 <= r0:
            raise ValueError(f"windows overlap: rows {l0}-{r0} and {l1}-...")
    return out


def _to_datetime(values) -> np.ndarray:
    import pandas as pd

    return pd.to_datetime(pd.Series(list(values))).to_numpy(dtype="datetime64[ns]")


def score_file(
    detections: Sequence[int] | np.ndarray,
    windows: Sequence[tuple[int, int]],
    n_rows: int,
    profile: Profile | str = "standard",
    *,
    probation_fraction: float = 0.15,
    probation_cap: int | None = 750,
) -> dict:
    """NAB score of one file.

    ``detections`` is a 0/1 array of length ``n_rows`` (1 = the detector
    raised an alert at that row) or a list of row indices; ``windows`` are
    inclusive row-index pairs (:func:`window_indices`).  Returns ``raw``
    (the file's score), ``null`` and ``perfect`` (the same for the null and
    the perfect detector), ``tp``/``fp``/``fn`` counts (windows detected,
    detections outside windows, windows missed) and the number of windows.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    det = _as_indices(detections, n_rows)
    wins = sorted((int(l), int(r)) for l, r in windows)
    probation = probation_length(n_rows, probation_fraction, probation_cap)
    # window id of each row (-1 outside), and the last window ending before it
    where = np.full(n_rows, -1, dtype=np.int64)
    for k, (l, r) in enumerate(wins):
        if not (0 <= l <= r < n_rows):
            raise ValueError(f"window rows ({l}, {r}) outside the file's {n_rows} rows.")
        where[l : r + 1] = k
    rights = np.asarray([r for _, r in wins], dtype=np.int64)
    best: dict[int, float] = {}
    fp_score, n_fp = 0.0, 0
    tp_norm = scaled_sigmoid(-1.0)
    for i in det:
        if i < probation:
            continue
        k = int(where[i])
        if k >= 0:
            if k in best:  # only the first detection in a window counts
                continue
            l, r = wins[k]
            width = r - l + 1
            best[k] = prof.a_tp * scaled_sigmoid(-(r - i + 1) / width) / tp_norm
        else:
            prev = int(np.searchsorted(rights, i, side="left")) - 1
            if prev < 0:
                unweighted = -1.0
            else:
                l, r = wins[prev]
                width = r - l + 1
                unweighted = scaled_sigmoid(abs(r - i) / max(width - 1, 1))
            fp_score += unweighted * abs(prof.a_fp)
            n_fp += 1
    n_w = len(wins)
    n_tp = len(best)
    raw = sum(best.values()) + fp_score - abs(prof.a_fn) * (n_w - n_tp)
    return {
        "raw": raw,
        "null": -abs(prof.a_fn) * n_w,
        "perfect": prof.a_tp * n_w,
        "tp": n_tp,
        "fp": n_fp,
        "fn": n_w - n_tp,
        "windows": n_w,
        "probation": probation,
    }


def _as_indices(detections, n_rows: int) -> np.ndarray:
    arr = np.asarray(detections)
    if arr.dtype == bool or (
        arr.ndim == 1 and arr.size == n_rows and set(np.unique(arr)) <= {0, 1} and arr.dtype.kind in "biuf"
    ):
        if arr.size != n_rows:
            raise ValueError(f"detections has {arr.size} entries but the file has {n_rows} rows.")
        return np.flatnonzero(arr.astype(bool))
    idx = np.unique(arr.astype(np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= n_rows):
        raise ValueError(f"detection rows must lie in [0, {n_rows}).")
    return idx


def score_corpus(results: Mapping[str, tuple], profile: Profile | str = "standard", **kw) -> dict:
    """Normalised NAB score over several files.

    ``results`` maps a file key to ``(detections, windows, n_rows)``.  Returns
    ``score`` = ``100 * (raw - null) / (perfect - null)`` summed over files,
    the raw sums, and per-file results under ``files``.
    """
    files = {key: score_file(d, w, n, profile, **kw) for key, (d, w, n) in results.items()}
    raw = sum(f["raw"] for f in files.values())
    null = sum(f["null"] for f in files.values())
    perfect = sum(f["perfect"] for f in files.values())
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")
    totals = {k: sum(f[k] for f in files.values()) for k in ("tp", "fp", "fn", "windows")}
    return {"score": score, "raw": raw, "null": null, "perfect": perfect, **totals, "files": files}


def window_metrics(corpus_result: Mapping) -> dict:
    """Window-level precision, recall and F1 from :func:`score_corpus` (or :func:`score_file`) counts.

    Recall = windows with at least one detection / windows; precision =
    detected windows / (detected windows + detections outside windows), i.e.
    each alert outside a window is one false alarm.  Probationary rows are
    excluded as in the NAB score.
    """
    tp, fp, fn = corpus_result["tp"], corpus_result["fp"], corpus_result["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def optimize_threshold(
    results: Mapping[str, tuple],
    profile: Profile | str = "standard",
    *,
    probation_fraction: float = 0.15,
    probation_cap: int | None = 750,
) -> dict:
    """NAB's threshold optimisation: the one threshold on raw scores that maximises the corpus score.

    ``results`` maps a file key to ``(scores, windows, n_rows)`` with one score
    per row (NaN = no score, never a detection).  A row is a detection when
    its score is ``>= threshold``.  All rows of the corpus are swept once in
    decreasing score order; adding a detection changes the raw score in O(1)
    (a false positive adds its weighted cost; a row inside a window replaces
    the window's reward when it is earlier than the window's current first
    detection), so every distinct threshold is evaluated exactly.  Returns
    ``threshold`` (``inf`` when no detection at all is best), ``score`` and the
    counts of :func:`score_corpus` at that threshold.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    tp_norm = scaled_sigmoid(-1.0)
    all_s, all_w, all_v, all_i = [], [], [], []
    null = perfect = 0.0
    w_offset = 0
    for key, (scores, windows, n_rows) in results.items():
        s = np.asarray(scores, dtype=np.float64).ravel()
        if s.size != n_rows:
            raise ValueError(f"{key}: {s.size} scores for {n_rows} rows.")
        wins = sorted((int(l), int(r)) for l, r in windows)
        probation = probation_length(n_rows, probation_fraction, probation_cap)
        where = np.full(n_rows, -1, dtype=np.int64)
        value = np.zeros(n_rows)
        rights = np.asarray([r for _, r in wins], dtype=np.int64)
        rows = np.arange(n_rows)
        for k, (l, r) in enumerate(wins):
            if not (0 <= l <= r < n_rows):
                raise ValueError(f"{key}: window rows ({l}, {r}) outside the file's {n_rows} rows.")
            where[l : r + 1] = w_offset + k
            i = rows[l : r + 1]
            value[l : r + 1] = prof.a_tp * np.array([scaled_sigmoid(-(r - j + 1) / (r - l + 1)) for j in i]) / tp_norm
        outside = np.flatnonzero(where < 0)
        prev = np.searchsorted(rights, outside, side="left") - 1
        for j, p in zip(outside, prev):
            if p < 0:
                value[j] = -abs(prof.a_fp)
            else:
                l, r = wins[p]
                value[j] = scaled_sigmoid(abs(r - j) / max(r - l, 1)) * abs(prof.a_fp)
        keep = np.flatnonzero((rows >= probation) & np.isfinite(s))
        all_s.append(s[keep])
        all_w.append(where[keep])
        all_v.append(value[keep])
        all_i.append(keep)
        null -= abs(prof.a_fn) * len(wins)
        perfect += prof.a_tp * len(wins)
        w_offset += len(wins)
    S, Wid, V, I = (np.concatenate(a) if a else np.empty(0) for a in (all_s, all_w, all_v, all_i))
    order = np.lexsort((I, -S))  # decreasing score; ties in any fixed order (they enter together)
    S, Wid, V, I = S[order], Wid[order].astype(np.int64), V[order], I[order].astype(np.int64)
    first = np.full(w_offset, np.iinfo(np.int64).max)
    reward = np.zeros(w_offset)
    raw = best_raw = null
    best_t, best_counts = float("inf"), (0, 0)
    n_tp = n_fp = 0
    m = S.size
    j = 0
    while j < m:
        t = S[j]
        while j < m and S[j] == t:
            k = Wid[j]
            if k < 0:
                raw += V[j]
                n_fp += 1
            elif I[j] < first[k]:
                if first[k] == np.iinfo(np.int64).max:
                    n_tp += 1
                    raw += abs(prof.a_fn)
                raw += V[j] - reward[k]
                first[k], reward[k] = I[j], V[j]
            j += 1
        if raw > best_raw + 1e-12:
            best_raw, best_t, best_counts = raw, float(t), (n_tp, n_fp)
    score = 100.0 * (best_raw - null) / (perfect - null) if perfect != null else float("nan")
    n_w = w_offset
    return {
        "threshold": best_t,
        "score": score,
        "raw": best_raw,
        "null": null,
        "perfect": perfect,
        "tp": best_counts[0],
        "fp": best_counts[1],
        "fn": n_w - best_counts[0],
        "windows": n_w,
    }


# --------------------------------------------------------------------------- corpus loading
def load_windows(path: str | Path) -> dict[str, list]:
    """Read ``combined_windows.json``."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object mapping file keys to window lists.")
    return data


def load_corpus(root: str | Path, categories: Sequence[str] | None = None):
    """Yield ``(key, DataFrame, windows_as_row_pairs)`` for each NAB data file under ``root`` that has labels.

    ``root`` holds ``combined_windows.json`` and category folders of CSV
    files with ``timestamp`` and ``value`` columns.  Files whose key is not in
    the windows file are skipped.
    """
    import pandas as pd

    root = Path(root)
    windows_file = root / "combined_windows.json"
    if not windows_file.exists():
        raise FileNotFoundError(f"{windows_file} not found; point at a NAB data folder.")
    windows = load_windows(windows_file)
    for key in sorted(windows):
        if categories is not None and key.split("/")[0] not in categories:
            continue
        path = root / key
        if not path.exists():
            continue
        df = pd.read_csv(path)
        df["timestamp"] = pd.to_datetime(df["timestamp"])
        yield key, df, window_indices(df["timestamp"], windows[key])
