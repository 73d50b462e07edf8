"""The report's views of the rows: 2-D projections, whether labelled rows are training rows, the operating point."""

from __future__ import annotations

import numpy as np

__all__ = ["PROJECTIONS", "training_overlap", "two_d_view"]


def _pc1(Z: np.ndarray) -> tuple[np.ndarray, float]:
    """First principal component scores of ``Z`` and its share of the variance."""
    Zc = Z - Z.mean(axis=0)
    if Zc.shape[1] == 0 or not np.any(Zc):
        return np.zeros(Z.shape[0]), 0.0
    _, s, vt = np.linalg.svd(Zc, full_matrices=False)
    total = float((s**2).sum())
    return Zc @ vt[0], float(s[0] ** 2 / total) if total > 0 else 0.0


def _top_rows(scores: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The flagged rows, or the top 5 % by score (at least 10) when too few are flagged."""
    if flags.sum() >= 5:
        return flags
    k = min(max(10, int(0.05 * scores.size)), scores.size)
    top = np.zeros(scores.size, dtype=bool)
    top[np.argsort(-scores, kind="stable")[:k]] = True
    return top


def pca_view(Z, scores, flags):
    from sklearn.decomposition import PCA

    n_comp = min(2, Z.shape[1], Z.shape[0])
    pca = PCA(n_components=n_comp, random_state=0).fit(Z)
    points = pca.transform(Z)
    if points.shape[1] < 2:
        points = np.column_stack([points[:, 0], np.zeros(points.shape[0])])
    ev = np.append(pca.explained_variance_ratio_, [0.0, 0.0])
    return points, (f"PC 1 ({ev[0]:.0%} of variance)", f"PC 2 ({ev[1]:.0%})")


def score_pc_view(Z, scores, flags):
    from scipy.stats import rankdata

    y, ev = _pc1(Z)
    return np.column_stack([rankdata(scores) / scores.size, y]), (
        "anomaly score (quantile among the rows shown)",
        f"PC 1 of the features ({ev:.0%} of variance)",
    )


def contrast_view(Z, scores, flags):
    top = _top_rows(scores, flags)
    d = Z[top].mean(axis=0) - Z[~top].mean(axis=0) if (~top).any() else np.zeros(Z.shape[1])
    norm = float(np.linalg.norm(d))
    if norm < 1e-12:
        return pca_view(Z, scores, flags)
    d /= norm
    x = (Z - Z.mean(axis=0)) @ d
    y, ev = _pc1(Z - np.outer(Z @ d, d))
    return np.column_stack([x, y]), (
        "direction from the typical rows to the flagged rows",
        f"PC 1 of the rest ({ev:.0%} of its variance)",
    )


def attributed_pca_view(Z, scores, flags, n_columns: int = 5):
    top = _top_rows(scores, flags)
    med = np.median(Z, axis=0)
    spread = np.mean(np.abs(Z - med), axis=0) + 1e-12
    lift = np.mean(np.abs(Z[top] - med), axis=0) / spread
    cols = np.argsort(-lift, kind="stable")[: min(n_columns, Z.shape[1])]
    points, axes = pca_view(Z[:, cols], scores, flags)
    return points, tuple(f"{a} of the {len(cols)} most deviating features" for a in axes)


def tsne_view(Z, scores, flags):
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(5.0, (Z.shape[0] - 1) / 3.0)))
    points = TSNE(2, init="pca", learning_rate="auto", perplexity=perplexity, random_state=0).fit_transform(Z)
    return points, ("t-SNE 1", "t-SNE 2")


def training_overlap(model, scores: np.ndarray, Z: np.ndarray | None = None) -> float | None:
    """The fraction of the scored rows that are rows ``model`` was fitted on, or ``None`` if that cannot be told.

    With the encoded rows ``Z`` of a model that keeps ``train_fingerprints_``
    (a :class:`~deepad.pipeline.TabularDetector` keeps the row hashes of up
    to 4,096 training rows), the rows are matched by hash: the hits among
    the kept hashes, scaled by the share of training rows kept, estimate
    how many scored rows are training rows (exact when all were kept).

    Otherwise, for models saved before fingerprints, by score:
    ``decision_function`` reproduces a fitted model's ``decision_scores_``
    on its training rows, so a scored row whose score equals a training
    row's score (to 1e-9 relative) is taken for that training row.  This is
    decisive only when training rows rarely share a score: with many ties
    (histogram or tree scores, duplicated rows) it returns ``None``, unless
    the scores equal the training scores row for row.
    """
    kept = getattr(model, "train_fingerprints_", None)
    if Z is not None and kept is not None and np.size(kept) and np.shape(Z)[0]:
        from deepad.pipeline import row_fingerprints

        n_train = np.size(getattr(model, "decision_scores_", kept))
        hits = np.isin(row_fingerprints(Z), np.asarray(kept, dtype=np.int64)).sum()
        return float(min(1.0, hits * max(n_train, np.size(kept)) / np.size(kept) / np.shape(Z)[0]))
    train = np.asarray(getattr(model, "decision_scores_", ()), dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if train.size == 0 or scores.size == 0:
        return None
    scale = float(np.std(train)) or 1.0

    def tol(v):
        return 1e-9 * (np.abs(v) + scale)  # rows in another order or chunking: measured within 2e-10

    if train.shape == scores.shape and np.all(np.abs(train - scores) <= tol(train)):
        return 1.0
    ordered = np.sort(train)
    if ordered.size > 1 and np.mean(np.diff(ordered) <= tol(ordered[1:])) > 0.1:
        return None  # too many ties among the training scores to tell rows apart by score
    pos = np.clip(np.searchsorted(ordered, scores), 1, max(ordered.size - 1, 1))
    nearest = np.minimum(np.abs(ordered[pos - 1] - scores), np.abs(ordered[np.minimum(pos, ordered.size - 1)] - scores))
    return float(np.mean(nearest <= tol(scores)))


def score_attributed_view(Z, scores, flags, n_columns: int = 5):
    from scipy.stats import rankdata

    top = _top_rows(scores, flags)
    med = np.median(Z, axis=0)
    lift = np.mean(np.abs(Z[top] - med), axis=0) / (np.mean(np.abs(Z - med), axis=0) + 1e-12)
    cols = np.argsort(-lift, kind="stable")[: min(n_columns, Z.shape[1])]
    y, ev = _pc1(Z[:, cols])
    return np.column_stack([rankdata(scores) / scores.size, y]), (
        "anomaly score (quantile among the rows shown)",
        f"PC 1 of the {len(cols)} most deviating features ({ev:.0%} of their variance)",
    )


#: the candidate projections measured by benchmarks/report_views.py (docs/design/report-2d-view.md),
#: ``name -> f(Z, scores, flags) -> (points (n, 2), (x label, y label))``; the report draws ``score_pc1``
PROJECTIONS = {
    "pca": pca_view,
    "score_pc1": score_pc_view,
    "contrast": contrast_view,
    "attr_pca": attributed_pca_view,
    "score_attr": score_attributed_view,
    "tsne": tsne_view,  # 2-40 s for 2,000 rows on one core: measured, too slow for a report
}


def two_d_view(model, Z: np.ndarray, scores: np.ndarray, flags: np.ndarray, keep: np.ndarray, tabular: bool):
    """``(figure, note)``: the report's 2-D view of the rows ``keep``, coloured by score.

    x is the anomaly score as a quantile of the rows shown, so the flagged
    rows stand to the right of the threshold line whatever the data; y is
    the first principal component of the detector's latent code when it has
    an encoder, else of the features it sees (standardised), which spreads
    the rows along their main direction of variation.

    Why not the plain PCA plane used before: on tables with many weakly
    correlated encoded columns its two components explain little (the
    issue saw 10 % + 9 % on ``deepad example`` data) and the anomalies sit
    in a blob.  Measured by how well labels (never used by the view)
    separate on the plane, a 15-NN cross-validated ROC-AUC over eight data
    sets (benchmarks/report_views.py, docs/design/report-2d-view.md): this
    view 0.911 on average, the PCA plane 0.908 (better on four sets, worse
    on four), on the example data 0.918 against 0.864; t-SNE reaches 0.930
    but takes 2-55 s per 2,000 rows on one core, too slow for a report.
    """
    from deepad.report.plots import embedding_scatter

    inner = model.detector_ if tabular else model
    Zs = Z[keep]
    base, what = None, ""
    if hasattr(inner, "encode") and hasattr(inner, "module_"):
        try:
            latent = np.asarray(inner.encode(Zs), dtype=np.float64)
        except (AttributeError, NotImplementedError):
            latent = None
        if latent is not None and latent.ndim == 2 and latent.shape[1] >= 1 and np.isfinite(latent).all():
            base = latent
            what = f"the detector's latent code ({type(inner).__name__}.encode, {latent.shape[1]}-D)"
    if base is None:
        sd = Zs.std(axis=0)
        base = Zs if tabular else (Zs - Zs.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
        what = "the encoded features the detector sees" if tabular else "the standardised input features"
    points, (xlabel, ylabel) = score_pc_view(base, scores[keep], flags[keep])
    ylabel = ylabel.replace("the features", "the latent code" if what.startswith("the detector") else "the features")
    threshold = float(model.threshold_)
    cut = float(np.mean(scores[keep] <= threshold)) if np.isfinite(threshold) else None
    shown = (
        f"{keep.size:,} of {Z.shape[0]:,} rows shown (a random sample plus the top anomalies)"
        if keep.size < Z.shape[0]
        else f"all {Z.shape[0]:,} rows"
    )
    fig = embedding_scatter(
        points,
        scores[keep],
        flags[keep],
        title="Rows by anomaly score and main variation",
        xlabel=xlabel,
        ylabel=ylabel,
        threshold_x=cut,
    )
    note = (
        f"x: the anomaly score as a quantile of the rows shown (the dashed line is the threshold; flagged rows, "
        f"outlined in red, lie to its right); y: the first principal component of {what}, which spreads the rows "
        f"by their main direction of variation. {shown[0].upper()}{shown[1:]}."
    )
    return fig, note
