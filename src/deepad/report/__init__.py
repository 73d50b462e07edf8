"""Self-contained HTML reports on a model scoring a data set (``deepad report``).

:func:`build_report` writes one HTML file with the plots embedded as
base64 PNGs (matplotlib, Agg canvas) and no external assets: score
histogram with the threshold, ROC and precision-recall curves when labels
exist, training/validation loss of neural detectors, the top anomalies with
their per-column attributions (:mod:`deepad.explain`), a 2-D view coloured
by score, and the model/data fingerprint.  The page is rendered with Jinja2
with autoescaping on, so column names and values from the data are
HTML-escaped.
"""

from deepad.report.build import build_report
from deepad.report.fingerprint import describe_threshold, model_fingerprint, threshold_reason

__all__ = ["build_report", "describe_threshold", "model_fingerprint", "threshold_reason"]
