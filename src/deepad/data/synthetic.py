"""A realistic fraud-like card-transaction table with planted anomalies.

Used by the README tour (``deepad example``), the tests and the benchmarks:
real exports are mixed-type tables, and this one has every kind of column
the data layer must handle.

Columns (mixed types, as real exports have them):

``transaction_id``   unique text id ("T0000000042")  -> an id column
``timestamp``        "YYYY-MM-DD HH:MM:SS" over 60 days, busy in the afternoon
``amount``           log-normal, depends on the merchant category, 2 decimals
``merchant_category`` 40 levels with Zipf-like frequencies
``merchant_id``      ~3000 merchants ("M01234"), Zipf-like: high cardinality
``country``          mostly "US", a few others
``channel``          "pos", "online" or "atm"
``card_present``     bool, true for most "pos" rows
``customer_age``     integer years, ~3 % missing
``distance_km``      distance from home, log-normal, ~5 % missing
``n_tx_24h``         transactions by the card in the last 24 h
``is_fraud``         label: 1 for the planted anomalies (``anomaly_rate`` of the rows)

Planted frauds combine 2-4 of: a large amount, a night-time hour (1-4 am),
a far-away distance, a rare foreign country, card-not-present online
shopping in a rare category, and a burst of transactions.  Each trait alone
also occurs in normal rows, at lower rates, so detection needs more than
one rule.

:func:`make_sensor_series` is the multivariate time series with known
culprits (correlated sensors, faults in known sensors at known times) that
tests and benchmarks the per-column attribution of
:class:`deepad.detectors.MultiSeriesKNN`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = [
    f"mcc_{c}"
    for c in (
        "grocery",
        "fuel",
        "restaurant",
        "pharmacy",
        "clothing",
        "electronics",
        "travel",
        "hotel",
        "entertainment",
        "utilities",
        "telecom",
        "insurance",
        "education",
        "health",
        "auto",
        "home",
        "sports",
        "books",
        "toys",
        "jewelry",
        "beauty",
        "pets",
        "garden",
        "music",
        "digital",
        "gaming",
        "charity",
        "taxi",
        "parking",
        "transit",
        "airline",
        "car_rental",
        "florist",
        "hardware",
        "furniture",
        "optical",
        "dental",
        "vet",
        "laundry",
        "tobacco",
    )
]
COUNTRIES = ["US", "CA", "MX", "GB", "DE", "FR", "NG", "RU", "BR", "IN"]
_COUNTRY_P = np.array([0.9, 0.035, 0.02, 0.015, 0.01, 0.01, 0.002, 0.002, 0.003, 0.003])
_RARE_CATEGORIES = ["mcc_jewelry", "mcc_gaming", "mcc_digital", "mcc_electronics", "mcc_tobacco"]


def make_fraud_frame(
    n_rows: int = 5000, *, anomaly_rate: float = 0.01, seed: int = 0, start_index: int = 0, missing_rate: float = 1.0
) -> pd.DataFrame:
    """The table described in the module docstring; ``missing_rate`` scales the missing-value rates."""
    rng = np.random.default_rng(seed)
    n = int(n_rows)
    zipf = 1.0 / np.arange(1, len(CATEGORIES) + 1) ** 1.1
    cat_idx = rng.choice(len(CATEGORIES), size=n, p=zipf / zipf.sum())
    category = np.asarray(CATEGORIES, dtype=object)[cat_idx]
    # amounts: category-specific log-normal
    base = 2.5 + 1.5 * (np.sin(cat_idx * 1.7) + 1) / 2
    amount = np.exp(rng.normal(base, 0.6))
    n_merchants = 3000
    mz = 1.0 / np.arange(1, n_merchants + 1) ** 0.9
    merchant = rng.choice(n_merchants, size=n, p=mz / mz.sum())
    channel = rng.choice(np.array(["pos", "online", "atm"], dtype=object), size=n, p=[0.7, 0.25, 0.05])
    card_present = np.where(channel == "online", False, rng.random(n) < 0.97)
    country = rng.choice(np.asarray(COUNTRIES, dtype=object), size=n, p=_COUNTRY_P)
    # hours: busy afternoon, quiet night
    hour_p = np.exp(-0.5 * ((np.arange(24) - 15) / 4.5) ** 2) + 0.02
    hour = rng.choice(24, size=n, p=hour_p / hour_p.sum())
    day = rng.integers(0, 60, size=n)
    second = rng.integers(0, 3600, size=n)
    age = rng.integers(18, 90, size=n).astype(np.float64)
    distance = np.exp(rng.normal(1.5, 0.9, size=n))
    n_tx = rng.poisson(3, size=n)
    y = np.zeros(n, dtype=np.int64)
    n_anom = int(round(anomaly_rate * n))
    if n_anom:
        idx = rng.choice(n, size=n_anom, replace=False)
        y[idx] = 1
        for i in idx:
            traits = rng.choice(6, size=rng.integers(2, 5), replace=False)
            for t in traits:
                if t == 0:
                    amount[i] = amount[i] * rng.uniform(15, 60)
                elif t == 1:
                    hour[i] = rng.integers(1, 5)
                elif t == 2:
                    distance[i] = rng.uniform(800, 9000)
                elif t == 3:
                    country[i] = rng.choice(["NG", "RU", "BR"])
                elif t == 4:
                    channel[i], card_present[i] = "online", False
                    category[i] = rng.choice(_RARE_CATEGORIES)
                else:
                    n_tx[i] = rng.integers(15, 40)
    age[rng.random(n) < 0.03 * missing_rate] = np.nan
    distance[rng.random(n) < 0.05 * missing_rate] = np.nan
    ts = (
        pd.Timestamp("2024-03-01")
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(hour, unit="h")
        + pd.to_timedelta(second, unit="s")
    )
    ids = np.char.add("T", np.char.zfill(np.arange(start_index, start_index + n).astype(str), 10))
    return pd.DataFrame(
        {
            "transaction_id": ids.astype(object),
            "timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "amount": np.round(amount, 2),
            "merchant_category": category,
            "merchant_id": np.char.add("M", np.char.zfill(merchant.astype(str), 5)).astype(object),
            "country": country,
            "channel": channel,
            "card_present": card_present.astype(bool),
            "customer_age": pd.array([None if np.isnan(a) else int(a) for a in age], dtype="Int64"),
            "distance_km": np.round(distance, 1),
            "n_tx_24h": n_tx.astype(np.int64),
            "is_fraud": y,
        }
    )


def write_fraud_csv(path: str | Path, n_rows: int = 5000, **kwargs) -> Path:
    """Write :func:`make_fraud_frame` to ``path`` as CSV (booleans as ``true``/``false``) and return the path."""
    path = Path(path)
    df = make_fraud_frame(n_rows, **kwargs)
    df["card_present"] = np.where(df["card_present"], "true", "false")
    df.to_csv(path, index=False)
    return path


def _ar1(rng, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series with marginal standard deviation ``sd``."""
    from scipy.signal import lfilter

    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), size=n)
    e[0] = rng.normal(0.0, sd)  # the first value from the stationary distribution
    return lfilter([1.0], [1.0, -phi], e)


def make_sensor_series(
    n: int = 6000,
    n_sensors: int = 6,
    *,
    train: int = 3000,
    n_faults: int = 8,
    fault_length: int = 40,
    culprit: int = 3,
    pair: tuple[int, int] = (1, 2),
    shift: float = 1.0,
    noise: float = 0.15,
    seed: int = 0,
    step: str = "1min",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Correlated sensors with faults in known sensors at known times: ``(frame, faults)``.

    Sensor ``j`` reads ``a_j * f_t + noise`` with a shared factor ``f`` (a
    slow cycle plus an AR(1) wander) and gains ``a_j`` in [0.6, 1.4]; the
    sensors of ``pair`` also share a second AR(1) factor ``g``, so they are
    more correlated with each other than with the rest.  The first ``train``
    rows are clean.  After them, ``n_faults`` faults of ``fault_length`` rows
    alternate between two kinds:

    * ``shift``: sensor ``culprit`` is offset by ``shift`` times its standard
      deviation -- a fault in one sensor, inside the range the shared
      factor gives it;
    * ``decouple``: the second sensor of ``pair`` follows an independent
      copy of ``g`` -- its marginal distribution is unchanged, only its
      correlation with its partner breaks (both sensors are culprits).

    ``frame``: ``timestamp`` (every ``step``) and ``sensor_0 ..``;
    ``faults``: one row per fault, ``start``, ``end`` (row indices, end
    exclusive), ``kind`` and ``columns`` (the culprit column names).
    """
    rng = np.random.default_rng(seed)
    if not (0 <= culprit < n_sensors and all(0 <= p < n_sensors for p in pair) and pair[0] != pair[1]):
        raise ValueError(f"culprit {culprit} and pair {pair} must name different sensors among 0..{n_sensors - 1}.")
    t = np.arange(n)
    f = np.sin(2 * np.pi * t / 240.0) + _ar1(rng, n, 0.98, 0.5)
    g = _ar1(rng, n, 0.95, 0.6)
    gains = rng.uniform(0.6, 1.4, size=n_sensors)
    X = gains[None, :] * f[:, None] + noise * rng.normal(size=(n, n_sensors))
    X[:, list(pair)] += g[:, None]
    sd = X[:train].std(axis=0)
    names = [f"sensor_{j}" for j in range(n_sensors)]
    gap = (n - train) // max(n_faults, 1)
    if gap < fault_length + 2:
        raise ValueError(f"{n_faults} faults of {fault_length} rows do not fit in the {n - train} rows after train.")
    rows = []
    for i in range(n_faults):
        start = train + i * gap + int(rng.integers(fault_length // 2, gap - fault_length))
        end = start + fault_length
        if i % 2 == 0:
            X[start:end, culprit] += shift * sd[culprit]
            rows.append((start, end, "shift", names[culprit]))
        else:
            other = pair[1]
            X[start:end, other] += _ar1(rng, fault_length, 0.95, 0.6) - g[start:end]
            rows.append((start, end, "decouple", f"{names[pair[0]]},{names[other]}"))
    frame = pd.DataFrame(X, columns=names)
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=n, freq=step))
    faults = pd.DataFrame(rows, columns=["start", "end", "kind", "columns"])
    return frame, faults
