"""Maximum mean discrepancy (MMD) two-sample test with a Gaussian kernel and a permutation p-value."""

from __future__ import annotations

import numpy as np

__all__ = ["mmd_test"]


def _subsample(X: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    if X.shape[0] <= rows:
        return X
    return X[np.sort(rng.choice(X.shape[0], size=rows, replace=False))]


def mmd_test(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    max_rows: int = 500,
    n_permutations: int = 500,
    random_state: int = 0,
) -> dict:
    """MMD² of two samples of feature vectors (Gretton et al., JMLR 2012) and its permutation p-value.

    Kernel ``k(a, b) = exp(-||a - b||² / (2 sigma²))`` with ``sigma`` the
    median pairwise distance of the pooled sample (median heuristic).  The
    statistic is the biased (V-statistic) estimate ``w^T K w`` with ``w =
    +1/n`` on reference rows and ``-1/m`` on new rows; the p-value is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)`` over random
    relabellings of the pooled rows, so it is exact under exchangeability
    whatever the kernel.  Each sample is subsampled (seeded) to at most
    ``max_rows`` rows: the kernel matrix costs ``(2 max_rows)²`` and all
    permutations are one matrix product ``K @ W``.
    """
    rng = np.random.default_rng(random_state)
    X = _subsample(np.asarray(reference, dtype=np.float64), max_rows, rng)
    Y = _subsample(np.asarray(new, dtype=np.float64), max_rows, rng)
    n, m = X.shape[0], Y.shape[0]
    if n < 2 or m < 2:
        return {"p_value": None, "skipped": f"too few rows ({n} reference, {m} new)"}
    Z = np.vstack([X, Y])
    sq = np.einsum("ij,ij->i", Z, Z)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T), 0.0)
    off = D2[np.triu_indices(n + m, k=1)]
    sigma2 = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0  # squared median distance
    K = np.exp(-D2 / (2.0 * sigma2))
    labels = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    W = np.empty((n + m, n_permutations + 1))
    W[:, 0] = labels
    W[:, 1:] = rng.permuted(np.broadcast_to(labels[:, None], (n + m, n_permutations)), axis=0)
    stats = np.einsum("ij,ij->j", W, K @ W)
    observed = float(stats[0])
    p = (1.0 + np.count_nonzero(stats[1:] >= observed - 1e-12)) / (1.0 + n_permutations)
    return {
        "test": "mmd",
        "statistic": observed,
        "p_value": float(p),
        "bandwidth": float(np.sqrt(sigma2)),
        "reference_rows": int(n),
        "new_rows": int(m),
        "permutations": int(n_permutations),
        "features": int(Z.shape[1]),
    }
