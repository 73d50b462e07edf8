"""The drift page of ``deepad monitor -o drift.html``: self-contained HTML (Jinja2, autoescaped; PNGs inline)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from deepad.report.plots import _figure, png_base64

__all__ = ["drift_html", "write_drift_html"]

_LINE, _DRIFT, _OK, _REF = "#4C72B0", "#C44E52", "#55A868", "#8172B2"


def _over_time(windows: list[dict], alpha: float):
    """-log10 p per window with the alpha line (drifted windows in red), and the flag rate against the expected."""
    done = [w for w in windows if "p_value" in w]
    fig = _figure(10.0, 5.6, hspace=0.45, bottom=0.16, top=0.93)
    ax1, ax2 = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    x = np.arange(len(done))
    logp = np.array([-np.log10(max(w["p_value"], 1e-300)) for w in done])
    colours = [_DRIFT if w["drift"] else _OK for w in done]
    ax1.plot(x, logp, color=_LINE, lw=1, zorder=1)
    ax1.scatter(x, logp, c=colours, s=22, zorder=2)
    ax1.axhline(-np.log10(alpha), color=_DRIFT, ls="--", lw=1, label=f"alpha {alpha:g}")
    ax1.set_ylabel("-log10 combined p")
    ax1.set_title("Drift over time: combined p-value per window (red: drift)", fontsize=10)
    ax1.legend(loc="upper left", fontsize=8)
    rate = np.array([w["flag_rate"] for w in done])
    expected = np.array([w["expected_flag_rate"] for w in done])
    n = np.array([w["rows"] for w in done], dtype=np.float64)
    band = 2.0 * np.sqrt(expected * (1 - expected) / np.maximum(n, 1))
    ax2.fill_between(
        x, np.maximum(expected - band, 0), expected + band, color=_REF, alpha=0.18, label="expected +- 2 sd"
    )
    ax2.plot(x, expected, color=_REF, ls="--", lw=1)
    moved = [_DRIFT if w["flag_rate_p_value"] <= alpha else _LINE for w in done]
    ax2.bar(x, rate, color=moved, width=0.6, label="flag rate (red: Fisher p <= alpha)")
    ax2.set_ylabel("flag rate")
    ax2.set_title("Flag rate per window against the rate the threshold was set to", fontsize=10)
    ax2.legend(loc="upper left", fontsize=8)
    step = max(1, len(done) // 12)
    for ax in (ax1, ax2):
        ax.set_xticks(x[::step])
        ax.set_xticklabels([str(w["label"])[:19] for w in done][::step], rotation=20, fontsize=7, ha="right")
    return fig


def _score_histogram(reference: np.ndarray, scores: np.ndarray, threshold: float):
    fig = _figure(10.0, 3.2, bottom=0.18)
    ax = fig.add_subplot(1, 1, 1)
    both = np.concatenate([reference, scores])
    lo, hi = np.quantile(both, [0.001, 0.999])
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
    ax.hist(np.clip(reference, lo, hi), bins=bins, density=True, alpha=0.5, color=_REF, label="reference scores")
    ax.hist(np.clip(scores, lo, hi), bins=bins, density=True, alpha=0.5, color=_LINE, label="new scores")
    ax.axvline(threshold, color=_DRIFT, ls="--", lw=1, label="threshold")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.legend(fontsize=8)
    return fig


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
 body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
        padding: 0 1em; color: #222; line-height: 1.45; }
 h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 1.8em; }
 table { border-collapse: collapse; font-size: 0.86em; margin: 0.6em 0; }
 th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
 th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
 .drift { color: #C44E52; font-weight: bold; } .ok { color: #55A868; font-weight: bold; } .note { color: #666; }
 img { max-width: 100%; height: auto; display: block; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated }} by deepad {{ version }}. Model <code>{{ model_name }}</code>, data <code>{{ data_name }}</code>.</p>
<h2 id="summary">Verdict</h2>
<p>{% if report.drift %}<span class="drift">Drift</span>{% else %}<span class="ok">No drift</span>{% endif %}:
 combined p-value {{ "%.3g"|format(report.p_value) }} at alpha {{ report.alpha }} over {{ "{:,}".format(report.rows) }} rows.
 {% if report.moved %}Moved: {{ report.moved|join(", ") }}.{% endif %}</p>
<p class="note">Rule: {{ report.rule }}.</p>
<table><tr><th>section</th><th>p-value</th></tr>
{% for k, v in report.sections.items() %}<tr><td>{{ k }}</td><td class="num">{{ "%.3g"|format(v) }}</td></tr>{% endfor %}
{% for k, v in report.unavailable.items() %}<tr><td>{{ k }}</td><td class="note">{% if not v.startswith("reported") %}not run: {% endif %}{{ v }}</td></tr>{% endfor %}
</table>
{% if img_time %}<h2 id="time">Drift over time</h2><p class="note">Windows: {{ windows_by }}.{% if skipped %} {{ skipped }} window(s) with too few rows not tested.{% endif %}</p>
{% if ignored %}<p class="note">Per window, {{ ignored|join(", ") }} is left out of the feature and MMD tests: the windows are cut by it.</p>{% endif %}
<img src="data:image/png;base64,{{ img_time }}" alt="Combined drift p-value and flag rate per window">{% endif %}
<h2 id="score">Scores and flag rate</h2>
{% set s = report.score %}
<p>Flag rate {{ "%.2f"|format(100 * s.flag_rate.new_rate) }} % ({{ "{:,}".format(s.flag_rate.new_count) }} of {{ "{:,}".format(s.flag_rate.new_rows) }}) against
 {{ "%.2f"|format(100 * s.flag_rate.expected_rate) }} % expected from the {{ s.reference }} ({{ "{:,}".format(s.reference_rows) }} rows):
 ratio {{ "%.2f"|format(s.flag_rate.ratio) }}, Fisher p {{ "%.3g"|format(s.flag_rate.p_value) }}.
 Score distribution: KS {{ "%.3f"|format(s.distribution.statistic) }}, p {{ "%.3g"|format(s.distribution.p_value) }};
 median conformal p-value of the new rows {{ "%.3f"|format(s.distribution.median_p_value) }} (0.5 under no drift).</p>
{% if s.note %}<p class="note">{{ s.note }}.</p>{% endif %}
{% if s.in_verdict is sameas false %}<p class="note">This section is not in the verdict above: {{ report.unavailable.score }}.</p>{% endif %}
<img src="data:image/png;base64,{{ img_scores }}" alt="Reference and new score distributions with the threshold">
{% if report.multivariate %}{% set mv = report.multivariate %}<h2 id="mmd">Multivariate ({{ mv.test | default("skipped") | upper }})</h2>
{% for m in ([mv.mmd, mv.c2st] if mv.test == "mmd+c2st" else [mv]) %}{% if m.test == "mmd" %}<p>MMD² {{ "%.4g"|format(m.statistic) }} on {{ m.features }} encoded features ({{ m.reference_rows }} reference and {{ m.new_rows }} new rows, Gaussian kernel, bandwidth {{ "%.3g"|format(m.bandwidth) }}), permutation p-value {{ "%.3g"|format(m.p_value) }} ({{ m.permutations }} permutations).</p>
{% elif m.test == "c2st" %}<p>Classifier two-sample test: held-out AUC {{ "%.3f"|format(m.statistic) }} of {{ m.classifier }} telling {{ m.reference_rows }} reference from {{ m.new_rows }} new rows on {{ m.features }} encoded features (trained on {{ m.train_rows }}, tested on {{ m.test_rows }}; 0.5: it cannot tell), Mann-Whitney p-value {{ "%.3g"|format(m.p_value) }}.</p>
{% elif m.skipped %}<p class="note">{{ m.skipped }}</p>{% endif %}{% endfor %}{% endif %}
<h2 id="features">Per-feature tests</h2>
<p class="note">Correction: {{ report.features.correction }}. Effect: numeric -- KS statistic, Wasserstein distance and mean shift in training standard deviations, PSI; categorical -- total variation distance, PSI and the categories that moved most; missing -- the rates.</p>
<table><thead><tr><th>feature</th><th>kind</th><th>test</th><th>effect</th><th>p-value</th><th>adjusted</th><th>drift</th></tr></thead><tbody>
{% for f in features %}<tr><td>{{ f.name }}</td><td>{{ f.kind }}</td><td>{{ f.test or "-" }}</td><td>{{ f.effect }}</td>
<td class="num">{% if f.p_value is not none %}{{ "%.3g"|format(f.p_value) }}{% else %}-{% endif %}</td>
<td class="num">{% if f.adjusted_p_value is defined %}{{ "%.3g"|format(f.adjusted_p_value) }}{% else %}-{% endif %}</td>
<td>{% if f.drift %}<span class="drift">yes</span>{% elif f.skipped %}<span class="note">{{ f.skipped }}</span>{% else %}no{% endif %}</td></tr>{% endfor %}
</tbody></table>
</body></html>
"""


def _effect(f: dict) -> str:
    if f.get("p_value") is None:
        return ""
    if f["kind"] == "missing":
        return f"missing {f['reference_rate']:.2%} -> {f['new_rate']:.2%}"
    if "wasserstein_std" in f:  # numeric and datetime, whichever test gave the p-value (KS, Lepage, ...)
        ratio = f"; std x{f['std_ratio']:.2f}" if f.get("std_ratio") is not None else ""
        return (
            f"KS {f['statistic']:.3f}; Wasserstein {f['wasserstein_std']:.3f} sd; mean {f['mean_shift_std']:+.3f} sd"
            f"{ratio}; PSI {f['psi']:.3f}"
        )
    moved = "; ".join(
        f"{c['category']} {c['reference_share']:.1%} -> {c['new_share']:.1%}" for c in f.get("top_changes", [])[:3]
    )
    unseen = f"; unseen {f['unseen_share']:.1%}" if f.get("unseen_share") else ""
    return f"TVD {f['tvd']:.3f}; PSI {f['psi']:.3f}; {moved}{unseen}"


def drift_html(
    document: dict, *, reference: np.ndarray, scores: np.ndarray, model_name: str = "", data_name: str = ""
) -> str:
    """The page for a ``deepad monitor`` JSON ``document`` (with its optional ``windows``)."""
    import jinja2

    import deepad

    windows = document.get("windows") or []
    done = [w for w in windows if "p_value" in w]
    features = sorted(
        ({**f, "effect": _effect(f)} for f in document["features"]["tests"]),
        key=lambda f: (f.get("adjusted_p_value", 2.0), f["name"]),
    )
    ctx = {
        "title": f"Drift report: {'drift' if document['drift'] else 'no drift'}",
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "version": deepad.__version__,
        "model_name": model_name,
        "data_name": data_name,
        "report": document,
        "features": features,
        "img_time": png_base64(_over_time(windows, document["alpha"])) if len(done) >= 2 else None,
        "windows_by": document.get("windows_by", ""),
        "skipped": len(windows) - len(done),
        "ignored": document.get("windows_ignore") or [],
        "img_scores": png_base64(_score_histogram(reference, scores, document["score"]["threshold"])),
    }
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    return env.from_string(_TEMPLATE).render(**ctx)


def write_drift_html(path, document: dict, **kwargs) -> None:
    """Render :func:`drift_html` and write it atomically to ``path``."""
    from deepad.report.build import _write_atomic

    _write_atomic(Path(path), drift_html(document, **kwargs), during="writing the drift report")
