"""The tiny NAB corpus shared by tests/unit/test_nab.py and tests/integration/test_nab_cli.py."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _tiny_corpus(root):
    """Two files with planted spikes inside their windows, one with no anomaly."""
    rng = np.random.default_rng(0)
    windows = {}
    for name, spike in (("cat/a.csv", 1200), ("cat/b.csv", 1500), ("cat/c.csv", None)):
        n = 2000
        t = pd.date_range("2021-01-01", periods=n, freq="5min")
        v = np.sin(np.arange(n) * 2 * np.pi / 96) + 0.05 * rng.standard_normal(n)
        if spike is not None:
            v[spike] += 6.0
            windows[name] = [[str(t[spike - 50]), str(t[spike + 50])]]
        else:
            windows[name] = []
        (root / "cat").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(root / name, index=False)
    (root / "combined_windows.json").write_text(__import__("json").dumps(windows))
    return root
