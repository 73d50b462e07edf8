"""The benchmark's results files: ``results.csv`` (one row per run, appended as runs finish, so an interrupted
benchmark resumes) and ``protocol.json`` (the settings a results folder was made with), read back as a frame."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from deepad.bench.errors import BenchmarkError

__all__ = ["read_results", "results_frame", "KEY_COLUMNS", "COLUMNS", "RESULTS_FILE", "PROTOCOL_FILE"]

KEY_COLUMNS = ["dataset", "detector", "params", "setting", "labelled", "seed"]
COLUMNS = KEY_COLUMNS + [
    "status",
    "roc_auc",
    "auc_pr",
    "fit_s",
    "score_s",
    "fit_cpu_s",
    "peak_rss_mb",
    "base_rss_mb",
    "n_fit",
    "n_labelled",
    "used_labels",
    "n_test",
    "n_features",
    "test_anomaly_rate",
    "n_rows",
    "threads",
    "wall_s",
    "error",
    "finished_at",
]
RESULTS_FILE = "results.csv"
PROTOCOL_FILE = "protocol.json"


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != COLUMNS:
            raise BenchmarkError(
                f"{path} has columns {reader.fieldnames}, not those of this deepad version; "
                "use a new --output-dir folder."
            )
        return list(reader)


def _append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
        fh.flush()


def _check_protocol(out: Path, protocol: dict[str, Any]) -> None:
    path = out / PROTOCOL_FILE
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in protocol.items() if old.get(k) != v}
        if diff:
            raise BenchmarkError(
                f"{out} holds results of a different protocol ({', '.join(f'{k}: {a} there, {b} now' for k, (a, b) in diff.items())}); "
                "use a new --output-dir folder."
            )
    else:
        path.write_text(json.dumps(protocol, indent=2) + "\n")


def results_frame(rows: list[dict[str, Any]]):
    """Rows to a DataFrame with proper dtypes; the last row per key wins (a retried run replaces its error)."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.empty:
        return df
    for c in ("params", "labelled", "error", "dataset", "detector", "setting", "status", "finished_at"):
        df[c] = df[c].fillna("").astype(str)
    for c in (
        "roc_auc",
        "auc_pr",
        "fit_s",
        "score_s",
        "fit_cpu_s",
        "peak_rss_mb",
        "base_rss_mb",
        "n_fit",
        "n_labelled",
        "n_test",
        "n_features",
        "test_anomaly_rate",
        "n_rows",
        "threads",
        "wall_s",
        "seed",
    ):
        df[c] = pd.to_numeric(df[c].replace("", None), errors="coerce")
    df["seed"] = df["seed"].astype(int)
    df["used_labels"] = df["used_labels"].map(lambda v: str(v).lower() == "true")
    df = df.drop_duplicates(subset=KEY_COLUMNS, keep="last").reset_index(drop=True)
    return df


def read_results(out: str | Path):
    """The results in ``out/results.csv`` as a DataFrame (last row per key)."""
    return results_frame(_read_rows(Path(out) / RESULTS_FILE))
