"""One-class image benchmark: ``deepad bench --images mnist``.

Protocol (the classic one-class MNIST experiment, on the 10,000 MNIST test
images that ship in ``../shared/datasets/mnist``):

* for each digit ``d`` (normal class) and each seed ``s``: shuffle digit
  ``d``'s images with ``np.random.default_rng(s)``, train on the first
  80 % (``train_fraction``) -- normal images only --, and test on the
  remaining 20 % of ``d`` (label 0) plus every image of the other nine
  digits (label 1);
* pixels are scaled to ``[0, 1]`` and given to the detector as they are
  (no per-digit tuning: each detector runs with the same parameters for
  every digit);
* measured per run: ROC-AUC of ``decision_function`` on the test images,
  average precision, wall-clock fit seconds and fit CPU seconds (the
  process's CPU time during ``fit``, all threads together), with the torch
  thread count in use.

:func:`run_mnist_benchmark` returns one row per (detector, digit, seed)
and writes ``results.csv`` and ``RESULTS.md`` (per-digit mean ROC-AUC over
seeds, the mean over digits, and fit times) into ``out``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["mnist_split", "run_mnist_benchmark", "mnist_markdown", "IMAGE_BENCHMARKS", "parse_image_detectors"]

IMAGE_BENCHMARKS = ("mnist",)
COLUMNS = [
    "detector",
    "params",
    "digit",
    "seed",
    "n_train",
    "n_test",
    "roc_auc",
    "average_precision",
    "fit_seconds",
    "fit_cpu_seconds",
    "threads",
    "status",
    "error",
]


def mnist_split(
    labels: np.ndarray, digit: int, seed: int, train_fraction: float = 0.8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train_idx, test_idx, y_test)``: 80 % of ``digit`` to train on; the rest of it plus all other digits to test."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
    normal = np.flatnonzero(labels == digit)
    if normal.size < 2:
        raise ValueError(f"digit {digit} has {normal.size} images; need at least 2.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(normal)
    n_train = int(round(train_fraction * normal.size))
    train, held = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    test = np.sort(np.concatenate([held, np.flatnonzero(labels != digit)]))
    y_test = (labels[test] != digit).astype(np.int64)
    return train, test, y_test


def parse_image_detectors(spec: str | Sequence) -> list[tuple[str, dict]]:
    """``"ConvAutoEncoder,ConvDeepSVDD:{\\"epochs\\":10}"`` -> ``[(name, params), ...]``."""
    if not isinstance(spec, str):
        return [(s, {}) if isinstance(s, str) else (s[0], dict(s[1])) for s in spec]
    out, depth, cur = [], 0, ""
    for ch in spec:  # split on commas outside JSON braces
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    result = []
    for item in (s.strip() for s in out):
        if not item:
            continue
        name, _, params = item.partition(":")
        try:
            result.append((name.strip(), json.loads(params) if params else {}))
        except json.JSONDecodeError as exc:
            raise ValueError(f"detector {name!r}: parameters are not valid JSON ({exc}).") from None
    return result


def _make(name: str, params: dict, seed: int):
    import deepad.detectors as D

    try:
        cls = D.detector_class(name)  # case-insensitive, as deepad train -d
    except ValueError:
        cls = None
    if cls is None or not getattr(cls, "_image_input", False):
        image = D.image_detector_names()
        raise ValueError(f"{name!r} is not an image detector; choose from {image}.")
    return cls(**{"random_state": seed, **params})


def run_mnist_benchmark(
    data: str | os.PathLike,
    detectors="ConvAutoEncoder",
    *,
    digits: Iterable[int] = range(10),
    seeds: int | str | Sequence[int] = 3,
    train_fraction: float = 0.8,
    out: str | os.PathLike | None = None,
    progress: Callable[[dict], None] | None = None,
):
    """Run the one-class MNIST protocol; return a DataFrame of runs (and write results.csv / RESULTS.md to ``out``).

    Runs already in ``out/results.csv`` with status ``ok`` (same detector,
    parameters, digit and seed) are kept and not re-run, so an interrupted
    benchmark resumes.
    """
    import pandas as pd
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    from deepad.bench.protocol import parse_seeds
    from deepad.data.images import read_mnist

    X, labels = read_mnist(data)
    if labels is None:
        raise ValueError(
            f"{data}: the MNIST labels file (*-labels-idx1-ubyte.gz) is missing; it is needed to split by digit."
        )
    seed_list = parse_seeds(seeds)  # the table benchmark's parser: 0 seeds is an error
    specs = parse_image_detectors(detectors)
    for name, params in specs:  # fail fast on a bad name
        _make(name, params, 0)
    out_dir = Path(out) if out is not None else None
    rows: list[dict[str, Any]] = []
    done: set[tuple] = set()
    csv_path = out_dir / "results.csv" if out_dir is not None else None
    if csv_path is not None and csv_path.exists():
        prev = pd.read_csv(csv_path, dtype={"params": str}, keep_default_na=False)
        prev = prev[prev["status"] == "ok"]
        rows = prev.to_dict("records")
        done = {(r["detector"], r["params"], int(r["digit"]), int(r["seed"])) for r in rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name, params in specs:
        pkey = json.dumps(params, sort_keys=True)
        for digit in digits:
            for seed in seed_list:
                if (name, pkey, int(digit), int(seed)) in done:
                    continue
                train, test, y_test = mnist_split(labels, int(digit), int(seed), train_fraction)
                row: dict[str, Any] = dict(
                    detector=name,
                    params=pkey,
                    digit=int(digit),
                    seed=int(seed),
                    n_train=int(train.size),
                    n_test=int(test.size),
                )
                try:
                    det = _make(name, params, int(seed))
                    t0, c0 = time.perf_counter(), time.process_time()
                    det.fit(X[train])
                    row["fit_seconds"] = time.perf_counter() - t0
                    row["fit_cpu_seconds"] = time.process_time() - c0
                    row["threads"] = int(os.environ.get("DEEPAD_NUM_THREADS") or torch.get_num_threads())
                    s = det.decision_function(X[test])
                    row["roc_auc"] = float(roc_auc_score(y_test, s))
                    row["average_precision"] = float(average_precision_score(y_test, s))
                    row["status"], row["error"] = "ok", ""
                except Exception as exc:  # a failed run is recorded, not fatal for the rest
                    row["status"], row["error"] = "error", f"{type(exc).__name__}: {exc}"[:500]
                rows.append(row)
                if progress is not None:
                    progress(row)
                if out_dir is not None:
                    _frame(rows).to_csv(csv_path, index=False)
    df = _frame(rows)
    if out_dir is not None:
        df.to_csv(csv_path, index=False)
        (out_dir / "RESULTS.md").write_text(mnist_markdown(df))
    return df


def _frame(rows):
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    return df[COLUMNS]


def mnist_markdown(df, *, title: str = "One-class MNIST (deepad bench --images mnist)") -> str:
    """Per-digit ROC-AUC (mean ± std over seeds) per detector, the mean over digits, and fit times."""
    ok = df[df["status"] == "ok"].copy()
    ok["label"] = ok["detector"] + np.where(ok["params"].isin(["{}", ""]), "", " " + ok["params"].astype(str))
    lines = [f"# {title}", ""]
    if ok.empty:
        return "\n".join(lines + ["No successful runs.", ""])
    seeds = sorted(ok["seed"].unique())
    lines += [
        f"Protocol: normal = one digit; train on 80 % of its images from the 10,000 MNIST test images "
        f"(seeded split), test on the other 20 % plus all other digits. Seeds: {', '.join(map(str, seeds))}. "
        "ROC-AUC per digit is the mean over seeds (± standard deviation when there are several).",
        "",
    ]
    labels = list(dict.fromkeys(ok["label"]))
    digits = sorted(ok["digit"].unique())
    header = ["digit"] + labels
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(labels)) + "|"]
    g = ok.groupby(["label", "digit"])["roc_auc"]
    mean, std, runs = g.mean(), g.std(ddof=0), g.size()
    for d in digits:  # ± only where this detector has several seeds for the digit
        cells = [
            (f"{mean[(lab, d)]:.3f}" + (f" ± {std[(lab, d)]:.3f}" if runs[(lab, d)] > 1 else ""))
            if (lab, d) in mean.index
            else "–"
            for lab in labels
        ]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    per_digit = [ok[ok["label"] == lab].groupby("digit")["roc_auc"].mean() for lab in labels]
    cells = [
        f"**{m.mean():.4f}**" + ("" if len(m) == len(digits) else f" ({len(m)} of {len(digits)} digits)")
        for m in per_digit
    ]
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Fit time per digit (mean over digits and seeds; max over runs):",
        "",
        "| detector | fit s (wall) | fit s (CPU) | max fit s (wall) | max fit s (CPU) | threads | runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lab in labels:
        sub = ok[ok["label"] == lab]
        lines.append(
            f"| {lab} | {sub['fit_seconds'].mean():.1f} | {sub['fit_cpu_seconds'].mean():.1f} | "
            f"{sub['fit_seconds'].max():.1f} | {sub['fit_cpu_seconds'].max():.1f} | "
            f"{', '.join(str(int(t)) for t in sorted(sub['threads'].dropna().unique()))} | {len(sub)} |"
        )
    failed = df[df["status"] != "ok"]
    if len(failed):
        lines += [
            "",
            f"{len(failed)} run(s) failed: "
            + "; ".join(f"{r.detector} digit {r.digit} seed {r.seed}: {r.error}" for r in failed.head(5).itertuples()),
        ]
    return "\n".join(lines) + "\n"
