"""The two-sample tests and effect sizes behind :mod:`deepad.drift` (numpy and scipy.stats, no deepad state)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "adjust",
    "family_p",
    "numeric_test",
    "frequency_test",
    "proportion_test",
    "psi",
]

#: the multiple-testing corrections :func:`adjust` knows
CORRECTIONS = ("holm", "bh")
#: categories pooled (reference + new) fewer than this many times share one "(rare)" cell of the chi-squared table
MIN_CELL = 5


def adjust(p: np.ndarray, correction: str) -> np.ndarray:
    """Adjusted p-values: Holm (step-down Bonferroni, family-wise error) or Benjamini-Hochberg (false discovery rate).

    Holm (1979): sort ``p`` ascending, ``p_(i) * (m - i + 1)``, running
    maximum, capped at 1.  BH (1995): ``p_(i) * m / i``, running minimum
    from the top, capped at 1.
    """
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if correction == "holm":
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    elif correction == "bh":
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}.")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def family_p(p: np.ndarray, correction: str) -> float:
    """The p-value of "nothing moved" for a family of tests: the smallest adjusted p-value (1 for no tests).

    With Holm that is Bonferroni's ``m * min(p)``; with BH it is Simes'
    global test ``min(m * p_(i) / i)``.
    """
    adjusted = adjust(p, correction)
    return float(adjusted.min()) if adjusted.size else 1.0


def psi(reference: np.ndarray, new: np.ndarray, bins: int = 10) -> float:
    """Population stability index over ``bins`` quantile bins of the reference (0.1: moderate, 0.25: large shift).

    ``PSI = sum((q - p) * ln(q / p))`` with ``p``, ``q`` the reference and
    new shares per bin, each floored at 0.5 / n so an empty bin stays finite.
    """
    reference = np.asarray(reference, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1) / reference.size
    q = np.bincount(np.searchsorted(edges, new, side="right"), minlength=edges.size + 1) / new.size
    return _psi_shares(p, q, reference.size, new.size)


def _psi_shares(p: np.ndarray, q: np.ndarray, n: int, m: int) -> float:
    p = np.maximum(p, 0.5 / max(n, 1))
    q = np.maximum(q, 0.5 / max(m, 1))
    return float(np.sum((q - p) * np.log(q / p)))


def numeric_test(reference: np.ndarray, new: np.ndarray) -> dict:
    """Kolmogorov-Smirnov two-sample test of the non-missing values, with effect sizes.

    Effect sizes, all in units a user can read: the KS statistic (largest
    gap between the two empirical CDFs, 0..1), the Wasserstein-1 distance
    and the mean shift in reference standard deviations, the ratio of the
    standard deviations, and the PSI.
    """
    from scipy import stats

    reference = reference[~np.isnan(reference)]
    new = new[~np.isnan(new)]
    if reference.size < 2 or new.size < 2:
        return {"p_value": None, "skipped": f"too few values ({reference.size} reference, {new.size} new)"}
    ks = stats.ks_2samp(reference, new, method="asymp" if reference.size * new.size > 10_000 else "auto")
    std = float(np.std(reference))
    unit = std if std > 0 else 1.0
    return {
        "test": "ks",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "wasserstein_std": float(stats.wasserstein_distance(reference, new) / unit),
        "mean_shift_std": float((np.mean(new) - np.mean(reference)) / unit),
        "std_ratio": float(np.std(new) / std) if std > 0 else None,
        "psi": psi(reference, new),
        "reference_mean": float(np.mean(reference)),
        "new_mean": float(np.mean(new)),
    }


def frequency_test(labels: list[str], ref_counts: np.ndarray, new_counts: np.ndarray, *, top: int = 5) -> dict:
    """Chi-squared test of homogeneity of category frequencies (reference vs new), with effect sizes.

    ``labels``/``ref_counts``/``new_counts``: one cell per category (the
    caller puts values unseen in training into one cell of their own, with
    reference count 0).  Cells seen fewer than :data:`MIN_CELL` times in
    both samples together are pooled into one ``(rare)`` cell first, so the
    chi-squared approximation holds.  Effect sizes: total variation
    distance (half the L1 distance of the shares, 0..1), PSI, and the
    ``top`` categories whose share moved most.
    """
    from scipy import stats

    ref_counts = np.asarray(ref_counts, dtype=np.float64)
    new_counts = np.asarray(new_counts, dtype=np.float64)
    n, m = ref_counts.sum(), new_counts.sum()
    if n == 0 or m == 0:
        return {"p_value": None, "skipped": f"no values ({int(n)} reference, {int(m)} new)"}
    p, q = ref_counts / n, new_counts / m
    moved = np.argsort(-np.abs(q - p), kind="stable")[:top]
    effect = {
        "tvd": float(0.5 * np.abs(q - p).sum()),
        "psi": _psi_shares(p, q, int(n), int(m)),
        "top_changes": [
            {"category": labels[i], "reference_share": float(p[i]), "new_share": float(q[i])}
            for i in moved
            if p[i] != q[i]
        ],
    }
    rare = (ref_counts + new_counts) < MIN_CELL
    table = np.vstack([ref_counts[~rare], new_counts[~rare]])
    if rare.any():
        table = np.column_stack([table, [ref_counts[rare].sum(), new_counts[rare].sum()]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return {"test": "chi2", "statistic": 0.0, "p_value": 1.0, "cells": int(table.shape[1]), **effect}
    chi2, pvalue, dof, _ = stats.chi2_contingency(table, correction=False)
    return {"test": "chi2", "statistic": float(chi2), "p_value": float(pvalue), "cells": int(table.shape[1]), **effect}


def proportion_test(k_ref: int, n_ref: int, k_new: int, n_new: int) -> dict:
    """Fisher's exact test (two-sided) that two proportions are equal, e.g. a missing rate or a flag rate.

    Exact for any counts (no normal approximation that fails at rates near
    0), and it accounts for the sampling error of *both* proportions.
    """
    from scipy import stats

    table = [[int(k_ref), int(n_ref - k_ref)], [int(k_new), int(n_new - k_new)]]
    pvalue = 1.0 if k_ref + k_new == 0 or k_ref + k_new == n_ref + n_new else stats.fisher_exact(table).pvalue
    return {
        "test": "fisher",
        "p_value": float(min(1.0, pvalue)),
        "reference_rate": float(k_ref / n_ref) if n_ref else None,
        "new_rate": float(k_new / n_new) if n_new else None,
        "reference_count": int(k_ref),
        "reference_rows": int(n_ref),
        "new_count": int(k_new),
        "new_rows": int(n_new),
    }
