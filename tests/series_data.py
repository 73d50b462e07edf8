"""Time-series helpers shared by tests/unit/test_series.py and tests/integration/test_series_cli.py."""

from __future__ import annotations

import numpy as np
import pytest

import deepad.detectors as D

from conftest import FAST_PARAMS

SERIES_DETECTORS = ["RollingZScore", "GRUForecaster", "TCNAutoEncoder"]


def sine(n=1200, d=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = [np.sin(t / (8 + 3 * j)) + 0.05 * rng.normal(size=n) for j in range(d)]
    return np.column_stack(cols)


def make(name, **extra):
    params = {**FAST_PARAMS[name], **extra}
    cls = getattr(D, name)
    if "random_state" in cls().get_params():
        params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture(scope="module")
def fitted():
    X = sine()
    return {name: make(name).fit(X[:600]) for name in SERIES_DETECTORS}


def _knn(**kw):
    return D.ConformalKNN(**{"window": 8, "coarse_chunks": 4, "coarse_width": 8, "memory": 400, **kw})
