"""Series p_value against the alert rule (issue 19): rows below the alert level but not flagged, and the reverse.

A series model's ``deepad score`` output has ``p_value`` and ``is_anomaly``;
the alert level is ConformalKNN's contamination (0.01) or SPOT's risk
(1e-4) for the others.  Trains ConformalKNN and RollingZScore on a noisy
sine with three spikes and scores a continuation with stronger spikes and a
level shift.  Run from a checkout (about 20 s)::

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 python benchmarks/series_p_values.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd


def _deepad(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "deepad.cli", "-q", *args], check=True, capture_output=True)


def main() -> None:
    d = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    n = 900
    x = np.sin(np.arange(n) / 10) + rng.normal(0, 0.1, n)
    x[[500, 650, 800]] += 4.0
    t = pd.date_range("2022-01-01", periods=n, freq="1min")
    pd.DataFrame({"timestamp": t.astype(str), "x0": x}).to_csv(f"{d}/train.csv", index=False)
    x = np.sin(np.arange(n, n + 600) / 10) + rng.normal(0, 0.1, 600)
    x[[150, 300, 450]] += 30.0
    x[500:520] = 12.0
    later = pd.date_range(t[-1], periods=601, freq="1min")[1:].astype(str)
    pd.DataFrame({"timestamp": later, "x0": x}).to_csv(f"{d}/new.csv", index=False)
    for det, level in (("ConformalKNN", 0.01), ("RollingZScore", 1e-4)):
        _deepad("train", f"{d}/train.csv", "-d", det, "-o", f"{d}/{det}")
        _deepad("score", f"{d}/{det}", f"{d}/new.csv", "-o", f"{d}/{det}.csv")
        s = pd.read_csv(f"{d}/{det}.csv")
        ok = s["score"].notna()
        below, flagged = s["p_value"] < level, s["is_anomaly"] == 1
        print(
            f"{det}: {int(ok.sum())} scored, {int(flagged.sum())} flagged; p<{level:g} but not flagged: "
            f"{int((below & ~flagged & ok).sum())}; flagged but p>={level:g}: {int((~below & flagged & ok).sum())}"
        )


if __name__ == "__main__":
    main()
