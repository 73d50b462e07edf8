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
