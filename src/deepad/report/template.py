"""The report's HTML template (Jinja2, autoescaped: every user-provided string is HTML-escaped)."""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="deepad {{ deepad_version }}">
<title>{{ title }}</title>
<style>
  body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
         max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
  h1 { font-size: 1.6em; margin-bottom: 0.2em; }
  h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
  h3 { font-size: 1.05em; margin-top: 1.4em; }
  .meta, .note { color: #666; }
  .note { font-style: italic; }
  img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
  table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; }
  th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
  th { background: #f4f4f4; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  table.kv th { width: 14em; }
  ul.attr { margin: 0; padding-left: 1.1em; }
  code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
  pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
  .flag { color: #C44E52; font-weight: bold; }
  nav a { margin-right: 1em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">Generated {{ generated }} by deepad {{ deepad_version }}.</p>
<nav>
  <a href="#summary">Summary</a><a href="#scores">Scores</a><a href="#roc">ROC / PR</a>
  <a href="#training">Training</a><a href="#anomalies">Top anomalies</a><a href="#view">2-D view</a>
  <a href="#fingerprint">Fingerprint</a>
</nav>

<h2 id="summary">Summary</h2>
<ul>
  <li>Data: <code>{{ data_name }}</code>, {{ "{:,}".format(n_rows) }} rows.</li>
  <li>Model: {{ fp.detector }}{% if fp.pipeline %} on a table ({{ fp.pipeline }}){% endif %}{% if model_name %}, <code>{{ model_name }}</code>{% endif %}.</li>
  <li><span class="flag">{{ "{:,}".format(n_flagged) }}</span> rows ({{ "%.2f"|format(100 * flag_rate) }}%) score above the threshold {{ "%.6g"|format(fp.threshold) }}.</li>
  {% if roc_auc is not none %}<li>Against the labels{% if label_name %} in <code>{{ label_name }}</code>{% endif %}: ROC-AUC <b>{{ "%.4f"|format(roc_auc) }}</b>, average precision <b>{{ "%.4f"|format(average_precision) }}</b>; precision of the flagged rows {{ precision_text }}, recall {{ recall_text }}.{% if sample_text %} <b>{{ sample_text }}</b>{% endif %}</li>{% endif %}
  <li>Threshold rule: {{ fp.threshold_reason }}</li>
</ul>

<h2 id="scores">Score distribution</h2>
<img src="data:image/png;base64,{{ img_hist }}" alt="Histogram of the anomaly scores with the threshold line">
<p class="note">Higher scores are more anomalous. The dashed line is the threshold; rows to its right are flagged.</p>

<h2 id="roc">ROC and precision-recall curves</h2>
{% if img_roc %}
<img src="data:image/png;base64,{{ img_roc }}" alt="ROC and precision-recall curves">
<p>ROC-AUC {{ "%.4f"|format(roc_auc) }}; average precision {{ "%.4f"|format(average_precision) }} ({{ "{:,}".format(n_labelled) }} labelled rows, {{ "{:,}".format(n_positive) }} anomalies).</p>
<p>{{ operating_text }}</p>
{% if sample_text %}<p class="in-sample"><b>{{ sample_text }}</b></p>{% endif %}
{% else %}
<p class="note">{{ roc_note }}</p>
{% endif %}

<h2 id="training">Training history</h2>
{% if img_loss %}
<img src="data:image/png;base64,{{ img_loss }}" alt="Training and validation loss per epoch">
<p class="note">{{ loss_note }}</p>
{% else %}
<p class="note">{{ loss_note }}</p>
{% endif %}

<h2 id="anomalies">Top anomalies</h2>
<p>The {{ top|length }} highest-scoring rows. Attributions: {{ method_text }}; positive values raised the score. "Typical would be": the fewest columns whose typical training values bring the row under the threshold (each bound holds with the other listed columns typical).{% if explain_note %} <span class="note">{{ explain_note }}</span>{% endif %}</p>
<table>
  <thead><tr><th>rank</th><th>{{ row_header }}</th>{% for c in id_columns %}<th>{{ c }}</th>{% endfor %}<th>score</th><th>p-value</th><th>flagged</th>{% if has_labels %}<th>label</th>{% endif %}<th>top contributing columns (value, attribution)</th><th>typical would be (counterfactual)</th></tr></thead>
  <tbody>
  {% for r in top %}
    <tr><td class="num">{{ r.rank }}</td><td class="num">{{ r.row }}</td>{% for v in r.ids %}<td>{{ v }}</td>{% endfor %}<td class="num">{{ "%.5g"|format(r.score) }}</td><td class="num">{{ "%.4g"|format(r.p_value) }}</td><td>{% if r.flagged %}<span class="flag">yes</span>{% else %}no{% endif %}</td>{% if has_labels %}<td>{{ r.label }}</td>{% endif %}<td><ul class="attr">{% for a in r.attributions %}<li><b>{{ a.column }}</b> = {{ a.value }} ({{ "%+.4g"|format(a.attribution) }})</li>{% endfor %}</ul></td><td>{% if r.counterfactual %}{{ r.counterfactual }}{% if r.score_after is not none %} <span class="note">(score &rarr; {{ "%.4g"|format(r.score_after) }})</span>{% endif %}{% endif %}</td></tr>
  {% endfor %}
  </tbody>
</table>

<h2 id="view">2-D view</h2>
<img src="data:image/png;base64,{{ img_view }}" alt="Two-dimensional view of the rows coloured by anomaly score">
<p class="note">{{ view_note }}</p>

<h2 id="fingerprint">Model and data fingerprint</h2>
<table class="kv">
  <tr><th>data</th><td><code>{{ data_name }}</code></td></tr>
  <tr><th>data rows x columns</th><td>{{ "{:,}".format(n_rows) }} x {{ n_columns }}</td></tr>
  <tr><th>data SHA-256</th><td><code>{{ data_sha256 }}</code> ({{ data_hash_of }})</td></tr>
  {% if model_name %}<tr><th>model</th><td><code>{{ model_name }}</code></td></tr>{% endif %}
  <tr><th>detector</th><td>{{ fp.detector }}{% if fp.pipeline %} in {{ fp.pipeline }}{% endif %}</td></tr>
  <tr><th>trained on</th><td>{{ "{:,}".format(fp.training_rows) }} rows, {{ fp.input_columns }} columns &rarr; {{ fp.encoded_features }} model features{% if fp.epochs_run %}; {{ fp.epochs_run }} epochs{% endif %}</td></tr>
  <tr><th>training date</th><td>{{ fp.trained_at or "not recorded" }}</td></tr>
  <tr><th>threshold</th><td>{{ "%.6g"|format(fp.threshold) }}; flags {{ "%.2f"|format(100 * fp.training_flag_rate) }}% of the training rows</td></tr>
  <tr><th>threshold method</th><td>{% for k, v in fp.threshold_method.items() %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
  <tr><th>threshold reason</th><td>{{ fp.threshold_reason }}</td></tr>
  <tr><th>p-value reference</th><td>{% if fp.calibration_rows %}{{ "{:,}".format(fp.calibration_rows) }} held-out calibration rows{% else %}training scores{% endif %}</td></tr>
  <tr><th>versions</th><td>{% for k, v in fp.versions.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
</table>
{% if fp.schema %}
<h3>Schema</h3>
<table>
  <thead><tr><th>column</th><th>kind</th></tr></thead>
  <tbody>{% for name, kind in fp.schema %}<tr><td>{{ name }}</td><td>{{ kind }}</td></tr>{% endfor %}</tbody>
</table>
{% endif %}
<h3>Parameters</h3>
<pre>{{ params_json }}</pre>
</body>
</html>
"""
