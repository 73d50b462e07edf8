"""Shapley values of source columns against a typical row, for any detector (it only calls ``decision_function``).

The players are the source columns (a one-hot block, a value and its
missing indicator, a datetime's features move together).  The value of a
coalition ``S`` is the score of the row with the columns in ``S`` kept and
every other column set to the typical row ``b``:
``v(S) = f(x_S, b_{-S})`` -- the "baseline Shapley" of Sundararajan & Najmi,
"The many Shapley values for model explanation" (ICML 2020), and the
game of Lundberg & Lee's KernelSHAP (NeurIPS 2017) with a one-row
background.  The Shapley value (Shapley, 1953)::

    phi_c = sum_{S not containing c} |S|! (g - |S| - 1)! / g!  (v(S + c) - v(S))

averages column ``c``'s effect over every order of repairing the others,
so columns that are anomalous only *together* (an AND in the detector:
any one of them typical still leaves the row anomalous) share the credit
instead of each getting ~0 as with one-column occlusion.  Efficiency:
``sum_c phi_c = f(x) - f(b)``.

With ``g <= max_exact`` columns every coalition is scored (``2^g`` rows
per explained row, all in a few large batched ``decision_function``
calls) and ``phi = V @ W`` with a fixed ``2^g x g`` weight matrix.  Above
that, permutation sampling (Castro, Gómez & Tejada, 2009) with antithetic
pairs (each permutation and its reverse; Mitchell et al., "Sampling
permutations for Shapley value estimation", JMLR 2022): ``n_permutations``
orders drawn with ``random_state``, the same orders for every row (so a
row's values do not depend on the batch), each costing ``g + 1`` scores.
Each sampled order telescopes, so efficiency still holds exactly.
"""

from __future__ import annotations

from math import factorial
from typing import Sequence

import numpy as np

#: Most matrix cells (rows x features, 8 bytes each) built and scored in one decision_function call.
_CELLS_PER_CALL = 4_000_000
#: Exact enumeration up to this many columns (2^10 = 1,024 scores per row); permutation sampling above.
MAX_EXACT = 10


def all_coalitions(g: int) -> np.ndarray:
    """``(2^g, g)`` boolean masks of every coalition; row ``i`` keeps column ``c`` iff bit ``c`` of ``i`` is set."""
    idx = np.arange(2**g, dtype=np.int64)
    return ((idx[:, None] >> np.arange(g)) & 1).astype(bool)


def shapley_weights(masks: np.ndarray) -> np.ndarray:
    """``W`` with ``phi = V @ W`` for the exact Shapley value, ``V`` the scores of the coalitions in ``masks``."""
    g = masks.shape[1]
    w = np.array([factorial(s) * factorial(g - s - 1) / factorial(g) for s in range(g)])
    size = masks.sum(axis=1)
    with_c = w[np.clip(size - 1, 0, g - 1)][:, None]  # S contains c: + w(|S| - 1)
    without_c = w[np.clip(size, 0, g - 1)][:, None]  # S lacks c: - w(|S|)
    return np.where(masks, with_c, -without_c)


def coalition_scores(det, Z: np.ndarray, base: np.ndarray, feature_group: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(n, m)`` scores of the rows of ``Z`` with, per mask, the kept columns from the row and the rest from ``base``.

    ``base`` is one typical row ``(d,)`` or a reference set ``(R, d)``
    (then each score is the mean over the ``R`` references).  ``masks`` is
    ``(m, g)`` (the same coalitions for every row) or ``(n, m, g)`` (per
    row); ``feature_group[j]`` is the column of encoded feature ``j``.
    Rows are scored in calls of at most :data:`_CELLS_PER_CALL` cells.
    """
    n, d = Z.shape
    refs = np.atleast_2d(base)
    R = refs.shape[0]
    per_row = masks.ndim == 3
    m = masks.shape[-2]
    keep = masks[..., feature_group]  # (m, d) or (n, m, d)
    out = np.empty((n, m), dtype=np.float64)
    if m * R * d > _CELLS_PER_CALL:  # very wide or many coalitions: one row, part of the coalitions per call
        step = max(1, _CELLS_PER_CALL // (R * d))
        for i in range(n):
            for m0 in range(0, m, step):
                k = keep[i, m0 : m0 + step] if per_row else keep[m0 : m0 + step]
                block = np.where(k[:, None, :], Z[i], refs[None]).reshape(-1, d)
                s = np.asarray(det.decision_function(block), dtype=np.float64)
                out[i, m0 : m0 + k.shape[0]] = s.reshape(k.shape[0], R).mean(axis=1)
        return out
    rows = max(1, _CELLS_PER_CALL // (m * R * d))
    for r0 in range(0, n, rows):
        x = Z[r0 : r0 + rows]
        k = keep[r0 : r0 + rows] if per_row else keep[None]
        block = np.where(k[:, :, None, :], x[:, None, None, :], refs[None, None]).reshape(-1, d)
        s = np.asarray(det.decision_function(block), dtype=np.float64)
        out[r0 : r0 + x.shape[0]] = s.reshape(x.shape[0], m, R).mean(axis=2)
    return out


def feature_groups(groups: Sequence[np.ndarray], d: int) -> np.ndarray:
    """``feature_group[j]``: the index of the column (group) holding encoded feature ``j``."""
    fg = np.full(d, -1, dtype=np.int64)
    for c, idx in enumerate(groups):
        fg[np.asarray(idx, dtype=np.int64)] = c
    if (fg < 0).any():  # pragma: no cover - the layout and the groups disagree
        raise RuntimeError("some encoded features belong to no source column.")
    return fg


def shapley_values(
    det,
    Z: np.ndarray,
    base: np.ndarray,
    groups: Sequence[np.ndarray],
    *,
    max_exact: int = MAX_EXACT,
    n_permutations: int = 64,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(phi, masks, V)``: Shapley values ``(n, g)``; for exact enumeration also the coalitions and their scores.

    ``V[:, i]`` is the score with ``masks[i]`` kept (the counterfactual
    search reuses it); ``masks`` and ``V`` are ``None`` when sampled.
    """
    n, d = Z.shape
    g = len(groups)
    fg = feature_groups(groups, d)
    if g <= int(max_exact):
        masks = all_coalitions(g)
        V = coalition_scores(det, Z, base, fg, masks)
        return V @ shapley_weights(masks), masks, V
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 2:
        raise ValueError(f"n_permutations must be an integer >= 2, got {n_permutations!r}.")
    rng = np.random.default_rng(random_state)
    half = (int(n_permutations) + 1) // 2
    orders = np.array([rng.permutation(g) for _ in range(half)])
    orders = np.concatenate([orders, orders[:, ::-1]])  # antithetic: each order and its reverse
    p = orders.shape[0]
    # prefix masks: step t of order o keeps its first t columns (t = 0..g); shared end points scored once
    rank = np.empty_like(orders)
    rank[np.arange(p)[:, None], orders] = np.arange(g)
    steps = rank[:, None, :] < np.arange(1, g)[None, :, None]  # (p, g - 1, g): strict prefixes of length 1..g-1
    masks = np.concatenate([np.zeros((1, g), bool), steps.reshape(-1, g), np.ones((1, g), bool)])
    V = coalition_scores(det, Z, base, fg, masks)
    empty, full = V[:, :1], V[:, -1:]
    path = np.concatenate(
        [
            np.repeat(empty[:, None, :], p, axis=1),
            V[:, 1:-1].reshape(n, p, g - 1),
            np.repeat(full[:, None, :], p, axis=1),
        ],
        axis=2,
    )  # (n, p, g + 1): scores along each order
    gains = np.diff(path, axis=2)  # gains[:, o, t] = effect of adding orders[o, t]
    phi = np.zeros((n, g))
    np.add.at(phi.T, orders.ravel(), gains.transpose(1, 2, 0).reshape(-1, n))
    return phi / p, None, None
