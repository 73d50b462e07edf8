"""Per-feature centring and scaling, shared by the table preprocessor and the detectors' own scaling.

Kept free of torch and pandas so classical detectors can use it without
importing either.
"""

from __future__ import annotations

import numpy as np

SCALERS = ("standard", "robust", "minmax", None)


def fit_scaler(X: np.ndarray, kind: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale per feature; constant features get scale 1 so they map to 0, not NaN.

    ``robust`` divides the inter-quartile range by 1.349 (the IQR of a
    standard normal), falling back to the standard deviation where the IQR
    is zero.
    """
    if kind not in SCALERS:
        raise ValueError(f"preprocessing must be one of {SCALERS}, got {kind!r}")
    d = X.shape[1]
    if kind is None or X.shape[0] == 0:
        return np.zeros(d), np.ones(d)
    if kind == "standard":
        center, scale = X.mean(axis=0), X.std(axis=0)
    elif kind == "robust":
        q1, med, q3 = np.percentile(X, [25, 50, 75], axis=0)
        center, scale = med, (q3 - q1) / 1.349
        scale = np.where(scale > 1e-12, scale, X.std(axis=0))
    else:
        lo, hi = X.min(axis=0), X.max(axis=0)
        center, scale = lo, hi - lo
    scale = np.where(scale > 1e-12, scale, 1.0)
    return center.astype(np.float64), scale.astype(np.float64)
