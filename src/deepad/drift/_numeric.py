"""Per-column numeric two-sample tests of :mod:`deepad.drift`: Kolmogorov-Smirnov and a rank test of location and scale.

One pass per column over the pooled sorted values gives every statistic:
the KS gap, the Wasserstein-1 distance, and the midranks behind two linear
rank statistics -- Wilcoxon's (location) and Mood's (scale: squared
distance of the rank from the middle) -- combined into Lepage's test (a
quadratic form in the two, chi-squared).  No scipy test wrapper per column
(those cost more than the test at a few hundred columns): the KS p-values of
large samples are one vectorised ``kstwo.sf`` call for all columns.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_NUMERIC_TEST",
    "NUMERIC_TESTS",
    "ColumnReference",
    "check_numeric_test",
    "numeric_tests",
    "rank_moments",
]

#: what the per-column numeric p-value is (``detect_drift(numeric_test=...)``): KS alone; Lepage alone; or the
#: smaller of KS and Lepage (or Mood), doubled (Bonferroni over the two, valid under any dependence between them)
NUMERIC_TESTS = ("ks", "lepage", "ks+lepage", "ks+mood")
#: the default: KS sees any change of a column's distribution, Lepage a change of location or scale with more power
#: (benchmarks/results/drift-v3/RESULTS.md)
DEFAULT_NUMERIC_TEST = "ks+lepage"
#: KS p-values are exact (scipy's recursion) when the two sample sizes multiply to at most this, else asymptotic
_EXACT_CELLS = 10_000


def check_numeric_test(name, *, what: str = "numeric_test") -> str:
    """``name`` lower-cased if it is one of :data:`NUMERIC_TESTS`, else a ``ValueError`` listing them.

    ``what``: how the message names the setting (``"--numeric-test"`` on the command line).
    """
    test = name.lower() if isinstance(name, str) else name
    if test not in NUMERIC_TESTS:
        raise ValueError(f"{what} must be one of {', '.join(NUMERIC_TESTS)}, got {name!r}.")
    return test


class ColumnReference:
    """One numeric column's reference values, prepared once per model (sorted, NaN dropped, moments, PSI bins)."""

    __slots__ = ("values", "mean", "std", "edges", "shares")

    def __init__(self, values: np.ndarray, bins: int = 10):
        v = np.sort(np.asarray(values, dtype=np.float64)[~np.isnan(values)])
        self.values = v
        self.mean = float(np.mean(v)) if v.size else float("nan")
        self.std = float(np.std(v)) if v.size else float("nan")
        if v.size:
            self.edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]))
            self.shares = np.bincount(np.searchsorted(self.edges, v, side="right"), minlength=self.edges.size + 1)
            self.shares = self.shares / v.size
        else:
            self.edges, self.shares = np.empty(0), np.ones(1)


def rank_moments(scores: np.ndarray, counts: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation mean vector and covariance of ``T = sum of the new rows' scores`` (score columns: statistics).

    ``scores``: one row per distinct pooled value, one column per rank
    statistic; ``counts``: how many pooled values share it.  Under no drift
    the ``m`` new rows are a uniformly random subset of the ``N = n + m``
    pooled ones, so ``E T = m a_bar`` and ``Cov T = n m / (N (N - 1)) S``
    with ``S`` the scores' centred sum of squares and products -- exact
    with ties, whatever the scores.
    """
    N = n + m
    mean = counts @ scores / N
    centred = scores - mean
    S = (centred * counts[:, None]).T @ centred
    return m * mean, S * (n * m / (N * (N - 1.0)))


def _one(reference: np.ndarray, new: np.ndarray) -> dict:
    """The statistics of one column (``reference`` sorted, both without NaN)."""
    from scipy import stats

    n, m = reference.size, new.size
    new = np.sort(new)
    pooled = np.concatenate([reference, new])
    pooled.sort(kind="mergesort")
    cdf_r = np.searchsorted(reference, pooled, side="right") / n
    cdf_v = np.searchsorted(new, pooled, side="right") / m
    gap = cdf_r - cdf_v
    d = float(np.max(np.abs(gap)))
    wasserstein = float(np.sum(np.abs(gap[:-1]) * np.diff(pooled)))
    # midranks: the distinct pooled values, each with the mean of the ranks it spans
    start = np.flatnonzero(np.r_[True, pooled[1:] != pooled[:-1]])
    counts = np.diff(np.r_[start, pooled.size]).astype(np.float64)
    values = pooled[start]
    midrank = start + (counts + 1.0) / 2.0
    N = n + m
    scores = np.column_stack([midrank, (midrank - (N + 1.0) / 2.0) ** 2])
    at = np.searchsorted(values, new)
    observed = scores[at].sum(axis=0)
    mean, cov = rank_moments(scores, counts, n, m)
    z = observed - mean
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(sd > 0, z / np.where(sd > 0, sd, 1.0), 0.0)
    p_w, p_mood = (math.erfc(abs(float(v)) / math.sqrt(2.0)) if s > 0 else 1.0 for v, s in zip(zs, sd))
    # Lepage: z' Cov^+ z ~ chi2(rank Cov); with two distinct values (a 0/1 column) Mood's scores are a linear
    # function of Wilcoxon's and the rank is 1
    if sd[0] == 0:
        p_lep = 1.0
    else:
        det = cov[0, 0] * cov[1, 1] - cov[0, 1] ** 2
        if det <= 1e-9 * cov[0, 0] * cov[1, 1]:
            p_lep = p_w
        else:
            q = (cov[1, 1] * z[0] ** 2 - 2.0 * cov[0, 1] * z[0] * z[1] + cov[0, 0] * z[1] ** 2) / det
            p_lep = math.exp(-0.5 * max(float(q), 0.0))  # chi2(2).sf(q), exactly
    out = {
        "ks_statistic": d,
        "wilcoxon_z": float(zs[0]),
        "mood_z": float(zs[1]),
        "p_wilcoxon": p_w,
        "p_mood": p_mood,
        "p_lepage": p_lep,
        "wasserstein": wasserstein,
    }
    if n * m <= _EXACT_CELLS:
        out["p_ks"] = float(stats.ks_2samp(reference, new, method="auto").pvalue)
    return out


def numeric_tests(references: list[ColumnReference], news: list[np.ndarray], test: str = "ks") -> list[dict]:
    """Two-sample tests of each numeric column: ``references[j]`` against ``news[j]`` (its NaN dropped).

    Per column: the KS p-value (exact when ``n m <= 10,000``, else
    Smirnov's asymptotic ``kstwo.sf(D, round(n m / (n + m)))``, both as
    scipy's ``ks_2samp`` gives them), Wilcoxon's and Mood's rank tests
    (normal approximation, exact permutation moments with ties) and Lepage's
    (Lepage 1971; here with Mood's scale scores, chi-squared with 2 degrees
    of freedom).  ``p_value`` is the test named by ``test`` (see
    :data:`NUMERIC_TESTS`); every component p-value is in the result too.
    Effect sizes: Wasserstein-1 and mean shift in reference standard
    deviations, the ratio of the standard deviations, the PSI.
    """
    from scipy import stats

    from deepad.drift._stats import _psi_shares

    test = check_numeric_test(test)
    out: list[dict] = []
    asymp: list[tuple[int, float, float]] = []
    for ref, new in zip(references, news):
        reference = ref.values
        new = new[~np.isnan(new)]
        if reference.size < 2 or new.size < 2:
            out.append({"p_value": None, "skipped": f"too few values ({reference.size} reference, {new.size} new)"})
            continue
        r = _one(reference, new)
        std = ref.std
        unit = std if std > 0 else 1.0
        shares = np.bincount(np.searchsorted(ref.edges, new, side="right"), minlength=ref.edges.size + 1) / new.size
        new_mean = float(np.mean(new))
        r.update(
            wasserstein_std=r.pop("wasserstein") / unit,
            mean_shift_std=float((new_mean - ref.mean) / unit),
            std_ratio=float(np.std(new) / std) if std > 0 else None,
            psi=_psi_shares(ref.shares, shares, reference.size, new.size),
            reference_mean=ref.mean,
            new_mean=new_mean,
        )
        if "p_ks" not in r:
            big, small = max(reference.size, new.size), min(reference.size, new.size)
            asymp.append((len(out), r["ks_statistic"], float(np.round(big * small / (big + small)))))
        out.append(r)
    if asymp:
        where, d, en = (np.array(v) for v in zip(*asymp))
        p = np.clip(stats.kstwo.sf(d, en), 0.0, 1.0)
        for i, v in zip(where.astype(int), p):
            out[i]["p_ks"] = float(v)
    for r in out:
        if r.get("p_value", 0) is None:
            continue
        combined = {
            "ks": r["p_ks"],
            "lepage": r["p_lepage"],
            "ks+lepage": min(1.0, 2.0 * min(r["p_ks"], r["p_lepage"])),
            "ks+mood": min(1.0, 2.0 * min(r["p_ks"], r["p_mood"])),
        }
        r.update(test=test, statistic=r["ks_statistic"], p_value=float(combined[test]))
    return out
