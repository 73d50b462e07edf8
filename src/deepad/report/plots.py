"""The report's figures, drawn with matplotlib's object API (Agg canvas, no pyplot, no global backend) as PNG."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["png_base64", "score_histogram", "operating_point", "roc_pr_curves", "loss_curves", "embedding_scatter"]

_NORMAL, _ANOMALY, _THRESHOLD = "#4C72B0", "#DD8452", "#C44E52"


def _figure(width: float, height: float, **margins):
    from matplotlib.figure import Figure

    # Fixed margins rather than constrained layout: layout solving doubled the drawing time.
    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(**{"left": 0.09, "right": 0.97, "bottom": 0.14, "top": 0.9, "wspace": 0.28, **margins})
    return fig


def png_base64(fig) -> str:
    """Render a matplotlib Figure to PNG and return it base64-encoded (for a ``data:image/png`` URI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _log_scale(scores: np.ndarray) -> bool:
    """Heavy right tail on positive scores: log-spaced bins keep the bulk visible."""
    if scores.size < 2 or scores.min() <= 0:
        return False
    lo, mid, hi = np.quantile(scores, [0.0, 0.5, 1.0])
    return hi / max(mid, 1e-300) > 50 or mid / max(lo, 1e-300) > 50


def score_histogram(scores: np.ndarray, threshold: float, y: np.ndarray | None = None):
    """Histogram of the scores (split by label when known) with the threshold as a vertical line."""
    scores = np.asarray(scores, dtype=np.float64)
    fig = _figure(8, 3.6)
    ax = fig.add_subplot()
    log = _log_scale(scores)
    lo, hi = float(scores.min()), float(scores.max())
    if np.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        hi = lo + 1.0
    bins = np.geomspace(lo, hi, 60) if log else np.linspace(lo, hi, 60)
    if y is not None and np.isin(y, (0, 1)).any():
        for value, name, colour in ((0, "normal (label 0)", _NORMAL), (1, "anomaly (label 1)", _ANOMALY)):
            part = scores[y == value]
            if part.size:
                ax.hist(part, bins=bins, color=colour, alpha=0.7, label=f"{name}: {part.size:,}")
    else:
        ax.hist(scores, bins=bins, color=_NORMAL, alpha=0.85, label=f"scored rows: {scores.size:,}")
    if np.isfinite(threshold):
        flagged = int((scores > threshold).sum())
        ax.axvline(
            threshold,
            color=_THRESHOLD,
            linestyle="--",
            linewidth=1.6,
            label=f"threshold {threshold:.4g} ({flagged:,} flagged)",
        )
    if log:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score" + (" (log scale)" if log else ""))
    ax.set_ylabel("rows (log scale)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Score distribution")
    return fig


def operating_point(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Where the threshold puts the labelled rows: flagged, TP, FP, TPR (= recall), FPR and precision (NaN: none flagged)."""
    y = np.asarray(y).astype(bool)
    flagged = np.asarray(scores) > threshold
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    pos, neg = int(y.sum()), int((~y).sum())
    return {
        "flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "tpr": tp / pos if pos else float("nan"),
        "fpr": fp / neg if neg else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
    }


def _mark(ax, x: float, y: float, label: str) -> None:
    """The operating point on a curve: one marker in the threshold's colour, with its legend entry."""
    ax.plot([x], [y], marker="o", markersize=8, color=_THRESHOLD, linestyle="none", label=label)


def roc_pr_curves(y: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> tuple[object, float, float]:
    """ROC and precision-recall curves side by side; returns ``(figure, roc_auc, average_precision)``.

    ``threshold``: mark the operating point it gives (flag ``scores > threshold``): its (FPR, TPR) on
    the ROC curve and its (recall, precision) on the precision-recall curve.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    auc = float(roc_auc_score(y, scores))
    ap = float(average_precision_score(y, scores))
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    fig = _figure(8, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(fpr, tpr, color=_NORMAL, linewidth=1.8, label=f"ROC-AUC {auc:.4f}")
    ax1.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    op = None
    if threshold is not None and np.isfinite(threshold):
        op = operating_point(y, scores, threshold)
        _mark(ax1, op["fpr"], op["tpr"], f"threshold {threshold:.4g}: FPR {op['fpr']:.3f}, TPR {op['tpr']:.3f}")
    ax1.set_xlabel("false-positive rate")
    ax1.set_ylabel("true-positive rate")
    ax1.set_title("ROC curve")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.step(recall, precision, where="post", color=_ANOMALY, linewidth=1.8, label=f"average precision {ap:.4f}")
    prevalence = float(np.mean(y))
    ax2.axhline(prevalence, color="grey", linestyle=":", linewidth=1, label=f"prevalence {prevalence:.3g}")
    if op is not None and op["flagged"]:
        _mark(ax2, op["tpr"], op["precision"], f"threshold: recall {op['tpr']:.3f}, precision {op['precision']:.3f}")
    ax2.set_xlabel("recall")
    ax2.set_ylabel("precision")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("Precision-recall curve")
    ax2.legend(loc="lower left", fontsize=8)
    return fig, auc, ap


def loss_curves(history: dict[str, list[float]]):
    """Per-epoch training and validation losses (every ``train_*`` / ``val_*`` series); titled by what it shows."""
    fig = _figure(8, 3.4)
    ax = fig.add_subplot()
    series = {k: np.asarray(v, dtype=np.float64) for k, v in history.items() if k.startswith(("train_", "val_")) and v}
    for key, values in series.items():
        epochs = np.arange(1, values.size + 1)
        ax.plot(
            epochs,
            values,
            linestyle="-" if key.startswith("train_") else "--",
            marker="." if values.size < 40 else None,
            label=key,
        )
    finite = np.concatenate([v[np.isfinite(v)] for v in series.values()]) if series else np.array([])
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 30:
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    has_val = any(k.startswith("val_") for k in series)
    ax.set_title("Training and validation loss" if has_val else "Training loss (no validation split)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def embedding_scatter(
    points: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    threshold_x: float | None = None,
):
    """2-D points coloured by anomaly score (colour range clipped to the 1st-99th percentile); flagged rows outlined.

    ``threshold_x``: draw the threshold as a vertical dashed line there (when x is the score or its quantile).
    """
    fig = _figure(7, 5.2, left=0.11, right=1.0, bottom=0.1, top=0.93)
    ax = fig.add_subplot()
    order = np.argsort(scores, kind="stable")  # most anomalous drawn last, on top
    p, s, f = points[order], scores[order], flagged[order]
    vmin, vmax = np.quantile(s, [0.01, 0.99]) if s.size > 1 else (float(s.min()), float(s.max()) + 1.0)
    if vmax <= vmin:
        vmax = vmin + 1e-12
    art = ax.scatter(p[~f, 0], p[~f, 1], c=s[~f], cmap="viridis", vmin=vmin, vmax=vmax, s=9, linewidths=0)
    if f.any():
        art = ax.scatter(
            p[f, 0],
            p[f, 1],
            c=s[f],
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            s=30,
            edgecolors=_THRESHOLD,
            linewidths=1.2,
            label=f"flagged ({int(f.sum()):,})",
        )
    if threshold_x is not None:
        ax.axvline(threshold_x, color=_THRESHOLD, linestyle="--", linewidth=1.4, label="threshold")
    # A few far rows would squeeze the bulk into a line: symmetric-log y axis, linear within a robust spread.
    y = points[:, 1]
    dev = np.abs(y - np.median(y))
    spread = float(np.median(dev)) if y.size else 0.0
    if spread > 0 and float(dev.max()) > 20 * spread:
        ax.set_yscale("symlog", linthresh=float(np.quantile(dev, 0.95)))  # the bulk stays linear
        ylabel = f"{ylabel} (symmetric log scale)"
    if f.any() or threshold_x is not None:
        ax.legend(loc="best", fontsize=8)
    fig.colorbar(art, ax=ax, label="anomaly score", extend="both")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig
