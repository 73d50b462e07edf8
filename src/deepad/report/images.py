"""Anomaly-map overlays (PNG) and the HTML report for image models.

:func:`overlay_figure` draws, side by side, the image, its per-pixel anomaly
map, and the map laid over the image (semi-transparent heat map), titled
with the score -- what ``deepad explain MODEL IMAGES`` saves per image and
``deepad report`` embeds for the top anomalies.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

from deepad.report.plots import _figure, png_base64, score_histogram

__all__ = ["overlay_figure", "save_overlay", "build_image_report"]


def _as_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` in [0, 1] -> what ``imshow`` wants, and its colour map."""
    img = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0], "gray"
    if img.ndim == 3:
        return np.moveaxis(img, 0, -1), None
    return img, "gray"


def overlay_figure(image: np.ndarray, amap: np.ndarray, *, title: str = ""):
    """Figure with three panels: the image, the anomaly map, and the map over the image."""
    shown, cmap = _as_display(image)
    fig = _figure(7.5, 2.8, left=0.02, right=0.98, bottom=0.04, top=0.82, wspace=0.08)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    axes[0].imshow(shown, cmap=cmap, vmin=0, vmax=1)
    axes[0].set_title("image", fontsize=9)
    vmax = float(np.max(amap)) if np.max(amap) > 0 else 1.0
    im = axes[1].imshow(amap, cmap="inferno", vmin=0, vmax=vmax)
    axes[1].set_title("anomaly map", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    axes[2].imshow(shown, cmap=cmap, vmin=0, vmax=1)
    axes[2].imshow(amap, cmap="inferno", vmin=0, vmax=vmax, alpha=0.55)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_overlay(image: np.ndarray, amap: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """Write :func:`overlay_figure` to ``path`` as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = overlay_figure(image, amap, title=title)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")
    return path


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}}
th{{background:#f4f4f4}}td.l,th.l{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{title}</h1>
<p>Model <code>{model_name}</code> ({detector}); images <code>{data_name}</code>: {n:,} images of
{shape}; threshold {threshold:.4g} flags {n_flag:,} ({frac:.2%}).</p>
<h2>Scores</h2><img src="data:image/png;base64,{hist}" alt="score histogram">
{labelled}
{training}
<h2>Top {k} anomalies, with anomaly maps</h2>
<p>Anomaly map: {map_rule}</p>
<table><tr><th>rank</th><th class="l">image</th><th>score</th><th>p-value</th><th>anomaly</th>{label_head}</tr>{rows}</table>
{overlays}
</body></html>"""


def build_image_report(
    model, X, path: str | Path, *, top_n: int = 12, data_name: str = "", model_name: str = "", y=None
) -> Path:
    """Write a self-contained HTML report for an image model (:class:`~deepad.image_pipeline.ImagePipeline`).

    Sections: score histogram with the threshold, ROC and precision-recall
    curves when known labels ``y`` are given (one per image, 1 = anomaly,
    NaN = unknown), training loss curves, and the ``top_n`` highest-scoring
    images with score, p-value, known label and anomaly-map overlay.
    """
    from deepad import thresholds as _thr
    from deepad.image_pipeline import load_image_input
    from deepad.report.build import _write_atomic
    from deepad.report.plots import loss_curves, roc_pr_curves

    imgs = load_image_input(X)
    scores = model.decision_function(imgs)
    p = _thr.conformal_p_values(model.p_value_reference, scores)
    flags = scores > model.threshold_
    order = np.argsort(-scores, kind="stable")[: int(top_n)]
    chosen = type(imgs)(
        [imgs.images[i] for i in order] if isinstance(imgs.images, list) else imgs.images[order],
        [imgs.names[i] for i in order],
    )
    maps = model.anomaly_map(chosen)
    shown = model.display_images(chosen)
    inner = getattr(model, "detector_", model)
    labels = None if y is None else np.asarray(y, dtype=np.float64)
    if labels is not None and labels.shape != scores.shape:
        raise ValueError(f"y has {labels.size} labels for {scores.size} images.")
    labelled = ""
    if labels is not None:
        known = ~np.isnan(labels)
        yk = labels[known].astype(np.int64)
        if np.unique(yk).size < 2:
            labelled = (
                f"<h2>Known labels</h2><p>The labels have a single class ({int(known.sum()):,} labelled images) "
                "-- ROC and precision-recall need both normal and anomalous images.</p>"
            )
        else:
            fig, auc, ap = roc_pr_curves(yk, scores[known])
            labelled = (
                f"<h2>Known labels</h2><p>{int(known.sum()):,} labelled images, {int(yk.sum()):,} anomalies: "
                f"ROC-AUC {auc:.4f}, average precision {ap:.4f}.</p>"
                f"<img src='data:image/png;base64,{png_base64(fig)}' alt='ROC and precision-recall curves'>"
            )
    rows, overlays = [], []
    for rank, (i, m, img) in enumerate(zip(order, maps, shown), 1):
        name = html.escape(str(imgs.names[i]))
        rows.append(
            f"<tr><td>{rank}</td><td class='l'>{name}</td><td>{scores[i]:.4g}</td><td>{p[i]:.3g}</td>"
            f"<td>{'yes' if flags[i] else 'no'}</td>"
            + ("" if labels is None else f"<td>{'' if np.isnan(labels[i]) else int(labels[i])}</td>")
            + "</tr>"
        )
        fig = overlay_figure(img, m, title=f"#{rank} {imgs.names[i]}  score {scores[i]:.4g}")
        overlays.append(f"<img src='data:image/png;base64,{png_base64(fig)}' alt='{name}'>")
    history = getattr(inner, "history_", None)
    training = ""
    if history:
        training = f"<h2>Training</h2><img src='data:image/png;base64,{png_base64(loss_curves(history))}' alt='loss'>"
    doc = _PAGE.format(
        title="deepad image report",
        model_name=html.escape(model_name),
        detector=type(inner).__name__,
        data_name=html.escape(data_name),
        n=len(scores),
        shape="x".join(map(str, model.image_shape_)),
        threshold=model.threshold_,
        n_flag=int(flags.sum()),
        frac=float(flags.mean()),
        hist=png_base64(score_histogram(scores, model.threshold_, labels)),
        labelled=labelled,
        label_head="" if labels is None else "<th>known label</th>",
        training=training,
        k=len(order),
        map_rule=html.escape(map_description(inner)),
        rows="".join(rows),
        overlays="\n".join(overlays),
    )
    path = Path(path)
    _write_atomic(path, doc)
    return path


def map_description(detector) -> str:
    """One line on what the detector's anomaly map measures."""
    if getattr(detector, "_map_needs_grad", False):
        return "gradient saliency |d score / d pixel|, averaged over channels."
    return "per-pixel squared reconstruction residual, averaged over channels."


def top_indices(scores: np.ndarray, k: int) -> Sequence[int]:
    return list(np.argsort(-np.asarray(scores), kind="stable")[: int(k)])
