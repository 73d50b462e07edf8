"""Time-series reports (``deepad report`` on a window/stream detector): the series, its scores, threshold and alarms.

The series is replayed through :class:`deepad.stream.StreamScorer` exactly as
``deepad stream`` would score it (same SPOT threshold, same refractory
suppression), so the plot shows what an operator would have seen: the values
with the alerts marked, and below them the score against its adaptive
threshold.  One self-contained HTML file (plot embedded as a base64 PNG,
Jinja2 with autoescaping), written atomically; optionally the PNG as well.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pandas as pd

# re-exported: these rules live in the library
from deepad.data.series import read_model_series
from deepad.stream import is_series_detector, series_scores

__all__ = [
    "is_series_detector",
    "read_model_series",
    "series_scores",
    "series_figure",
    "alert_window_figure",
    "alert_columns",
    "build_series_report",
]

_VALUE, _ALARM, _ALERT, _THRESHOLD, _LABEL = "#4C72B0", "#DD8452", "#C44E52", "#333333", "#55A868"


def series_figure(
    times, values: np.ndarray, names, result: pd.DataFrame, labels: np.ndarray | None = None, *, title: str = ""
):
    """Two panels sharing the time axis: the values with alerts (and labels), the score with its threshold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.6), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.09, top=0.92, hspace=0.08)
    ax_v, ax_s = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    t = np.asarray(times)
    for j in range(values.shape[1]):
        ax_v.plot(t, values[:, j], lw=0.7, color=_VALUE if values.shape[1] == 1 else None, label=str(names[j]))
    if labels is not None and np.any(labels == 1):
        ax_v.scatter(t[labels == 1], values[labels == 1, 0], s=6, color=_LABEL, label="labelled anomaly", zorder=3)
    alerts = result["alert"].to_numpy()
    alarms = result["alarm"].to_numpy() & ~alerts
    for k, when in enumerate(t[alerts]):
        ax_v.axvline(when, color=_ALERT, lw=0.9, alpha=0.8, label="alert" if k == 0 else None)
        ax_s.axvline(when, color=_ALERT, lw=0.9, alpha=0.8)
    score = result["score"].to_numpy()
    ax_s.plot(t, score, lw=0.7, color=_VALUE, label="score")
    ax_s.plot(t, result["threshold"].to_numpy(), lw=1.0, ls="--", color=_THRESHOLD, label="threshold")
    if alarms.any():
        ax_s.scatter(t[alarms], score[alarms], s=8, color=_ALARM, label="suppressed alarm", zorder=3)
    finite = score[np.isfinite(score)]
    if finite.size and finite.min() > 0 and finite.max() / max(np.median(finite), 1e-300) > 100:
        ax_s.set_yscale("log")
    ax_v.set_ylabel("value")
    ax_s.set_ylabel("anomaly score")
    ax_v.legend(loc="upper left", fontsize=8, ncol=4)
    ax_s.legend(loc="upper left", fontsize=8, ncol=4)
    ax_v.set_title(title, fontsize=10)
    fig.autofmt_xdate()
    return fig


def alert_columns(model, values: np.ndarray, rows: np.ndarray, top: int = 5) -> list[dict[str, float] | None]:
    """The columns that drove each alert at ``rows``: ``{column: rarity}``, most anomalous first, from the model's
    ``column_scores`` (MultiSeriesKNN: each column's own conformal p-value); ``None`` per row for a detector that
    does not attribute, except with one column, which drove every alert (``{column: None}``)."""
    scorer = getattr(model, "column_scores", None)
    if scorer is None or not len(rows):
        names = _names(model, values.shape[1])
        return [{names[0]: None} if values.shape[1] == 1 else None for _ in rows]
    scores = scorer(values)[rows]
    names = model.column_names()
    out = []
    for r in scores:
        order = np.argsort(-r, kind="stable")[:top]
        out.append({names[j]: float(r[j]) for j in order})
    return out


def _names(model, d: int) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(c) for c in names] if names is not None else [f"x{j}" for j in range(d)]


def alert_window_figure(times, values: np.ndarray, names, row: int, window: int, drivers=()):
    """A small plot of the rows around an alert: every column in robust units (median / IQR of the data shown, so
    sensors of different scales share the axis), the columns that drove it in colour, the rest grey; the alert's
    window (the rows its score saw) shaded."""
    from matplotlib.figure import Figure

    n = values.shape[0]
    w = max(int(window), 1)
    lo, hi = max(0, row - 3 * w), min(n, row + w + 1)
    seg = values[lo:hi]
    q1, med, q3 = np.percentile(values, [25, 50, 75], axis=0)
    scale = np.where(q3 - q1 > 0, q3 - q1, 1.0)
    t = np.arange(lo, hi)
    fig = Figure(figsize=(3.8, 1.7), dpi=80)
    fig.subplots_adjust(left=0.1, right=0.99, bottom=0.16, top=0.97)
    ax = fig.subplots()
    driven = [names.index(c) for c in drivers if c in names][:3]
    palette = ("#C44E52", "#4C72B0", "#55A868")
    for j in range(values.shape[1]):
        if j not in driven:
            ax.plot(t, (seg[:, j] - med[j]) / scale[j], lw=0.6, color="#BBBBBB")
    for k, j in enumerate(driven):
        ax.plot(t, (seg[:, j] - med[j]) / scale[j], lw=1.1, color=palette[k], label=str(names[j]))
    ax.axvspan(max(lo, row - w + 1), row, color="#DD8452", alpha=0.18, lw=0)
    ax.axvline(row, color="#C44E52", lw=0.8)
    ax.tick_params(labelsize=6)
    ax.set_xlabel(f"row (alert at {row}, {times[row]})", fontsize=6, labelpad=1)
    if driven:
        ax.legend(loc="upper left", fontsize=6, frameon=False)
    return fig


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;
padding:0 1em;color:#222}img{max-width:100%}table{border-collapse:collapse;font-size:.88em}
th,td{border:1px solid #ddd;padding:.3em .6em}th{background:#f4f4f4}.note{color:#666;font-style:italic}</style>
</head><body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated }} by deepad {{ version }}.</p>
<ul>
<li>Data: <code>{{ data_name }}</code>, {{ "{:,}".format(n_rows) }} rows from {{ start }} to {{ end }}, columns {{ columns|join(", ") }}.</li>
<li>Model: {{ detector }}{% if model_name %}, <code>{{ model_name }}</code>{% endif %}; window {{ window }}.</li>
<li>Threshold: {{ threshold_text }}; alerts suppressed for {{ refractory }} points after each alert{% if rearm %}, and until the score has been below the threshold for {{ rearm }} points{% endif %}.</li>
<li><b>{{ n_alerts }}</b> alerts ({{ n_alarms }} rows above the threshold).{% if label_text %} {{ label_text }}{% endif %}</li>
</ul>
<img src="data:image/png;base64,{{ img }}" alt="The series with alerts, and the anomaly score with its threshold">
<p class="note">Top: the values; red lines are alerts{% if has_labels %}, green dots labelled anomalies{% endif %}. Bottom: the score of each row (from its own past only, as a stream computes it) and the threshold it was compared with; orange dots are alarms suppressed as repeats of an incident.</p>
<h2>Alerts</h2>
{% if alerts %}<p class="note">Columns that drove each alert: {{ attribution_text }} Each window plot shows the rows around the alert in robust units (median / IQR), the driving columns in colour, the others grey, and shades the window the alert's score saw{% if n_plotted < alerts|length %} (the first {{ n_plotted }} alerts){% endif %}.</p>
<table><thead><tr><th>#</th><th>row</th><th>time</th><th>score</th><th>threshold</th><th>columns that drove it</th><th>window</th></tr></thead><tbody>
{% for a in alerts %}<tr><td>{{ loop.index }}</td><td>{{ a.row }}</td><td>{{ a.time }}</td><td>{{ "%.5g"|format(a.score) }}</td><td>{{ "%.5g"|format(a.threshold) }}</td><td>{% if a.columns %}{% for c, r in a.columns.items() %}<code>{{ c }}</code>{% if r is not none %} {{ "%.3f"|format(r) }}{% endif %}{% if not loop.last %}, {% endif %}{% endfor %}{% else %}-{% endif %}</td><td>{% if a.img %}<img src="data:image/png;base64,{{ a.img }}" alt="the window around alert {{ loop.index }}">{% endif %}</td></tr>{% endfor %}
</tbody></table>{% else %}<p>No alerts.</p>{% endif %}
</body></html>
"""


def build_series_report(
    model,
    data,
    path="report.html",
    *,
    label_column: str | None = None,
    risk: float = 1e-4,
    refractory: int = 0,
    rearm: int = 0,
    smoothing: int = 1,
    fixed_threshold: bool = False,
    png: str | None = None,
    data_name: str | None = None,
    model_name: str | None = None,
    max_window_plots: int = 30,
) -> Path:
    """Write the time-series HTML report of fitted ``model`` on ``data`` (a CSV/Parquet path or DataFrame).

    ``data`` is read as :func:`read_model_series` reads it; ``label_column``
    (1 = anomaly) is plotted, never scored.  ``png``: also write the figure
    to this file.  Each alert is listed with the columns that drove it (:func:`alert_columns`) and, for the
    first ``max_window_plots``, a small plot of its window (:func:`alert_window_figure`).
    """
    import jinja2
    from sklearn.utils.validation import check_is_fitted

    import deepad
    from deepad.report.build import _write_atomic
    from deepad.report.plots import png_base64
    from deepad.stream import default_threshold

    check_is_fitted(model, "decision_scores_")
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the report {path} must end in .html.")
    frame, labels = read_model_series(model, data, label_column=label_column, data_name=data_name)
    values = frame.to_numpy(dtype=np.float64)
    result = series_scores(
        model,
        values,
        risk=risk,
        refractory=refractory,
        smoothing=smoothing,
        rearm=rearm,
        fixed_threshold=fixed_threshold,
    )
    data_name = data_name or (str(data) if not isinstance(data, pd.DataFrame) else "in-memory DataFrame")
    title = f"deepad time-series report: {type(model).__name__} on {data_name}"
    fig = series_figure(frame.index, values, list(frame.columns), result, labels, title=title)
    if png is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        fig.savefig(png, format="png")
    hits = np.flatnonzero(result["alert"].to_numpy())
    names = list(map(str, frame.columns))
    drivers = alert_columns(model, values, hits[:200])
    window = int(getattr(model, "window", 1) or 1)
    alerts = []
    for k, i in enumerate(hits[:200]):
        cols = drivers[k]
        img = None
        if k < max_window_plots:
            top = [c for c in (cols or {})][:3] if values.shape[1] > 1 else names
            img = png_base64(alert_window_figure(frame.index, values, names, int(i), window, top))
        alerts.append(
            {
                "row": int(i),
                "time": str(frame.index[i]),
                "score": float(result["score"].iloc[i]),
                "threshold": float(result["threshold"].iloc[i]),
                "columns": {c: r for c, r in list(cols.items())[:3]} if cols else None,
                "img": img,
            }
        )
    label_text = ""
    if labels is not None:
        lab = np.nan_to_num(labels, nan=0.0) == 1
        label_text = (
            f"{int(lab.sum())} labelled anomalous rows; {int((lab & result['alert'].to_numpy()).sum())} alerts on them."
        )
    ctx = dict(
        title=title,
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        version=deepad.__version__,
        data_name=data_name,
        n_rows=len(frame),
        start=str(frame.index[0]),
        end=str(frame.index[-1]),
        columns=list(map(str, frame.columns)),
        detector=type(model).__name__,
        model_name=model_name,
        window=getattr(model, "window", "-"),
        threshold_text=(
            f"the model's own threshold {float(model.threshold_):.5g} "
            f"({model.threshold_method_.get('reason') or model.threshold_method_})"
            if default_threshold(model, fixed_threshold) == "fixed"
            else f"streaming peaks-over-threshold (SPOT), risk {risk:g}, adapted as the series arrives"
        ),
        refractory=refractory,
        rearm=rearm,
        n_alerts=int(hits.size),
        n_alarms=int(result["alarm"].sum()),
        label_text=label_text,
        has_labels=labels is not None,
        img=png_base64(fig),
        alerts=alerts,
        n_plotted=min(len(alerts), max(int(max_window_plots), 0)),
        attribution_text=(
            "each column's own rarity, -log10 of its conformal p-value / 10 (the same scale as the score)."
            if hasattr(model, "column_scores")
            else (
                f"the series has one column, {frame.columns[0]}."
                if values.shape[1] == 1
                else f"{type(model).__name__} scores all columns jointly and does not attribute its alerts to "
                "columns (MultiSeriesKNN does)."
            )
        ),
    )
    html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(_TEMPLATE).render(**ctx)
    _write_atomic(path, html)
    return path
