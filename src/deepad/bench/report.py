"""Summaries of benchmark results: markdown tables, Friedman/Nemenyi statistics and plots.

How results are aggregated, per setting (the weak setting once per labelled budget):

* a run's ROC-AUC and AUC-PR are averaged over the seeds that finished;
* **average rank**: on each data set the detectors are ranked by mean
  ROC-AUC (1 = best, ties share the mean rank) and the ranks are averaged.
  Only data sets on which *every* detector finished at least one seed are
  ranked, and the mean ROC-AUC / AUC-PR columns use the same data sets, so
  a detector cannot improve its numbers by failing on hard data sets;
  failures are counted in their own column and listed at the end;
* **Friedman test** (``scipy.stats.friedmanchisquare``, needs 3 or more
  detectors) on the per-data-set ROC-AUC, and the **Nemenyi critical
  difference** ``CD = q_0.05(k, inf) / sqrt(2) * sqrt(k (k + 1) / (6 N))``
  (Demšar 2006, q from ``scipy.stats.studentized_range``): two detectors
  whose average ranks differ by less than CD are not significantly
  different at the 5 % level;
* total fit time is the sum of ``fit_s`` over all finished runs.

Plots are drawn with matplotlib's object API (no pyplot, no global backend
change) into ``plot_<setting>.png``: a per-data-set ROC-AUC heatmap and an
average-rank plot with Nemenyi intervals of width CD.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepad.bench.protocol import DetectorSpec, LabelledSpec, _natural_key

__all__ = ["write_report", "markdown_report", "summarize", "friedman_nemenyi", "Summary"]


def friedman_nemenyi(auc: np.ndarray, alpha: float = 0.05) -> tuple[float | None, float | None, float | None]:
    """``(chi2, p, CD)`` for an (n_datasets, k_detectors) score matrix; None where undefined."""
    from scipy import stats

    n, k = auc.shape
    chi2 = p = cd = None
    if k >= 3 and n >= 2:
        res = stats.friedmanchisquare(*auc.T)
        chi2, p = float(res.statistic), float(res.pvalue)
    if k >= 2 and n >= 1:
        q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / np.sqrt(2)
        cd = q * np.sqrt(k * (k + 1) / (6.0 * n))
    return chi2, p, cd


def average_ranks(auc: np.ndarray) -> np.ndarray:
    """Mean rank per column (1 = highest score on a row; ties share the mean rank)."""
    from scipy.stats import rankdata

    return rankdata(-auc, axis=1).mean(axis=0)


@dataclass
class Summary:
    """One setting's aggregated results."""

    key: tuple[str, str]
    title: str
    slug: str
    table: Any  # DataFrame, one row per detector, sorted by average rank
    auc: Any  # DataFrame, data sets x detectors, mean ROC-AUC (NaN where no seed finished)
    status: Any  # DataFrame, data sets x detectors, "ok", "partial", "error" or "timeout"
    complete: list[str]
    n_seeds: int
    chi2: float | None
    p: float | None
    cd: float | None


def _label(row) -> str:
    return DetectorSpec(row["detector"], row["params"]).label


def _group_title(setting: str, labelled: str) -> tuple[str, str]:
    if not labelled:
        return setting, setting
    spec = LabelledSpec.parse(labelled)
    return f"weak, {spec.title}", f"{setting}_{labelled.replace('=', '-')}"


def summarize(df) -> list[Summary]:
    """Aggregate a results frame (as from :func:`deepad.bench.runner.read_results`) per setting."""
    import pandas as pd

    out: list[Summary] = []
    if df is None or len(df) == 0:
        return out
    df = df.copy()
    df["label"] = df.apply(_label, axis=1)
    order = {"unsupervised": 0, "oneclass": 1, "weak": 2}

    def group_order(g):
        lab = LabelledSpec.parse(g[1]) if g[1] else None
        return order.get(g[0], 9), (lab.kind != "frac", lab.value) if lab else (False, 0.0)

    groups = sorted(df.groupby(["setting", "labelled"]).groups, key=group_order)
    for key in groups:
        g = df[(df["setting"] == key[0]) & (df["labelled"] == key[1])]
        title, slug = _group_title(*key)
        datasets = sorted(g["dataset"].unique(), key=_natural_key)
        labels = list(dict.fromkeys(g["label"]))
        ok = g[g["status"] == "ok"]
        auc = ok.pivot_table(index="dataset", columns="label", values="roc_auc", aggfunc="mean")
        auc = auc.reindex(index=datasets, columns=labels)
        ap = ok.pivot_table(index="dataset", columns="label", values="auc_pr", aggfunc="mean")
        ap = ap.reindex(index=datasets, columns=labels)

        def cell_status(s: pd.Series) -> str:
            st = set(s)
            if st == {"ok"}:
                return "ok"
            if "ok" in st:
                return "partial"
            return "timeout" if "timeout" in st else "error"

        status = g.pivot_table(index="dataset", columns="label", values="status", aggfunc=cell_status)
        status = status.reindex(index=datasets, columns=labels).fillna("missing")
        complete = [d for d in datasets if auc.loc[d].notna().all()]
        A = auc.loc[complete].to_numpy(dtype=float)
        ranks = average_ranks(A) if len(complete) else np.full(len(labels), np.nan)
        chi2, p, cd = friedman_nemenyi(A) if len(complete) else (None, None, None)
        rows = []
        for j, lab in enumerate(labels):
            gl = g[g["label"] == lab]
            okl = gl[gl["status"] == "ok"]
            rows.append(
                {
                    "detector": lab,
                    "mean_roc_auc": float(auc.loc[complete, lab].mean()) if complete else np.nan,
                    "mean_auc_pr": float(ap.loc[complete, lab].mean()) if complete else np.nan,
                    "avg_rank": float(ranks[j]),
                    "fit_s_total": float(okl["fit_s"].sum()),
                    "median_peak_rss_mb": float(okl["peak_rss_mb"].median()) if len(okl) else np.nan,
                    "runs_ok": int(len(okl)),
                    "runs_failed": int(len(gl) - len(okl)),
                }
            )
        table = pd.DataFrame(rows).sort_values(["avg_rank", "detector"], na_position="last").reset_index(drop=True)
        out.append(Summary(key, title, slug, table, auc, status, complete, int(g["seed"].nunique()), chi2, p, cd))
    return out


# --------------------------------------------------------------------------- markdown
def _f(v, fmt: str = ".3f") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _environment(threads: Any) -> str:
    from importlib import metadata

    def v(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    import os

    pkgs = ", ".join(f"{p} {v(p)}" for p in ("deepad", "numpy", "scikit-learn", "torch", "pyod"))
    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()} "
        f"({os.cpu_count()} CPUs); {pkgs}; {threads} thread(s) per run."
    )


PROTOCOL_TEXT = (
    "Protocol (`deepad.bench.protocol`): data sets over {max_rows} rows are subsampled to {max_rows} "
    "(stratified); stratified 70/30 train/test split; min-max scaling fitted on the train part (test values "
    "not clipped); the subsample, split and labelled anomalies come from the seed and the data set's name "
    "only, so every detector sees identical rows. `unsupervised` fits on the whole train part without labels, "
    "`oneclass` on its normal rows, `weak` on the whole train part with a budget of labelled anomalies "
    "(the rest unlabelled) for detectors that use labels. Every run is a separate process with a "
    "time-out; ROC-AUC and AUC-PR are computed on the test part. Mean ROC-AUC / AUC-PR and average ranks "
    "(1 = best) use the data sets on which every detector finished; fit time is the total over finished runs; "
    "peak RSS is the child process's resident high-water mark (interpreter and imports included)."
)


def markdown_report(
    df,
    *,
    title: str = "deepad benchmark",
    header: str = "",
    images: dict[str, str] | None = None,
    max_rows: Any = 10000,
) -> str:
    """The summary as markdown; ``images`` maps a setting slug to the image path to embed."""
    summaries = summarize(df)
    images = images or {}
    threads = sorted(set(df["threads"].dropna().astype(int))) if len(df) else []
    parts = [f"# {title}", ""]
    if header:
        parts += [header.strip(), ""]
    parts += [
        PROTOCOL_TEXT.format(max_rows=max_rows),
        "",
        "Environment: " + _environment(", ".join(map(str, threads)) or "?"),
        "",
    ]
    if not summaries:
        parts.append("No results yet.")
    for s in summaries:
        n_ds = len(s.auc.index)
        parts += [
            f"## Setting: {s.title}",
            "",
            f"{n_ds} data set(s), {s.n_seeds} seed(s); ranked over {len(s.complete)} data set(s) "
            "on which every detector finished.",
            "",
        ]
        rows = [
            [
                r.detector,
                _f(r.mean_roc_auc),
                _f(r.mean_auc_pr),
                _f(r.avg_rank, ".2f"),
                _f(r.fit_s_total, ".2f"),
                _f(r.median_peak_rss_mb, ".0f"),
                f"{r.runs_ok}/{r.runs_ok + r.runs_failed}",
            ]
            for r in s.table.itertuples()
        ]
        parts.append(
            _md_table(
                [
                    "Detector",
                    "mean ROC-AUC",
                    "mean AUC-PR",
                    "avg rank",
                    "fit time total (s)",
                    "median peak RSS (MB)",
                    "runs ok",
                ],
                rows,
            )
        )
        parts.append("")
        k = len(s.table)
        if s.p is not None:
            verdict = "differ significantly" if s.p < 0.05 else "do not differ significantly"
            parts.append(
                f"Friedman test over {len(s.complete)} data sets and {k} detectors: "
                f"χ² = {s.chi2:.2f}, p = {s.p:.3g} (the detectors' ranks {verdict} at the 5 % level). "
                f"Nemenyi critical difference (α = 0.05): {s.cd:.2f} ranks."
            )
        elif s.cd is not None:
            parts.append(
                f"Nemenyi critical difference (α = 0.05): {s.cd:.2f} ranks "
                f"(Friedman test needs 3+ detectors and 2+ data sets; here {k} and {len(s.complete)})."
            )
        parts.append("")
        if s.slug in images:
            parts += [f"![ROC-AUC per data set and average ranks, {s.title}]({images[s.slug]})", ""]
        parts += [
            "### ROC-AUC per data set",
            "",
            "Mean over seeds; best per data set in bold; † = some seeds failed.",
            "",
        ]
        cols = list(s.table["detector"])
        trows = []
        for d in s.auc.index:
            vals = s.auc.loc[d, cols]
            best = vals.max()
            cells = []
            for c in cols:
                st, v = s.status.loc[d, c], vals[c]
                if not np.isfinite(v):
                    cells.append(st)
                    continue
                txt = f"{v:.3f}" + ("†" if st == "partial" else "")
                cells.append(f"**{txt}**" if v == best else txt)
            trows.append([str(d)] + cells)
        parts += [_md_table(["data set"] + cols, trows), ""]
    failed = df[df["status"] != "ok"] if len(df) else df
    if len(failed):
        parts += ["## Failed runs", ""]
        rows = [
            [
                r.dataset,
                _label({"detector": r.detector, "params": r.params}),
                r.setting + (f" ({r.labelled})" if r.labelled else ""),
                str(r.seed),
                r.status,
                str(r.error).replace("|", "\\|")[:200],
            ]
            for r in failed.itertuples()
        ]
        parts += [
            _md_table(
                ["data set", "detector", "setting", "seed", "status", "error"], rows, ["l", "l", "l", "r", "l", "l"]
            ),
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- plots
def plot_summary(s: Summary, path: str | Path) -> Path:
    """Heatmap of per-data-set ROC-AUC (detectors by average rank) and an average-rank plot with Nemenyi intervals."""
    from matplotlib.figure import Figure

    cols = list(s.table["detector"])
    A = s.auc[cols].to_numpy(dtype=float)
    n, k = A.shape
    names = [c if len(c) <= 30 else c[:29] + "…" for c in cols]  # long JSON params would squeeze the axes
    longest = max(len(c) for c in names)
    fig = Figure(figsize=(3.0 + 0.8 * k + 6.0, max(3.5, 0.32 * n + 1.5 + 0.07 * longest)), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.0 + 0.35 * k, 2.2])
    masked = np.ma.masked_invalid(A)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    vmin = min(0.5, float(np.nanmin(A))) if np.isfinite(A).any() else 0.5
    im = ax1.imshow(masked, aspect="auto", cmap=cmap, vmin=vmin, vmax=1.0)
    ax1.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax1.set_yticks(range(n), list(s.auc.index), fontsize=8)
    if n * k <= 600:
        for i in range(n):
            for j in range(k):
                if np.isfinite(A[i, j]):
                    ax1.text(
                        j,
                        i,
                        f"{A[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if A[i, j] > vmin + 0.6 * (1 - vmin) else "white",
                    )
    fig.colorbar(im, ax=ax1, shrink=0.6, label="ROC-AUC")
    ax1.set_title(f"ROC-AUC per data set ({s.title})", fontsize=9)

    ranks = s.table["avg_rank"].to_numpy(dtype=float)
    y = np.arange(k)[::-1]
    if np.isfinite(ranks).all():
        half = (s.cd or 0.0) / 2
        ax2.errorbar(ranks, y, xerr=half if half else None, fmt="o", color="C0", ecolor="C0", capsize=3)
        ax2.set_yticks(y, names, fontsize=8)
        ax2.set_xlim(max(k + 0.5, float((ranks + half).max()) + 0.1), min(0.5, float((ranks - half).min()) - 0.1))
        ax2.set_xlabel("average rank (1 = best)")
        stat = f"Friedman p = {s.p:.3g}; " if s.p is not None else ""
        cd = f"Nemenyi CD = {s.cd:.2f}" if s.cd is not None else ""
        ax2.set_title(
            f"Average rank over {len(s.complete)} data sets\n{stat}{cd}\n"
            "(non-overlapping bars: significantly different)",
            fontsize=9,
        )
        ax2.grid(axis="x", alpha=0.3)
    else:
        ax2.text(0.5, 0.5, "no data set on which every detector finished", ha="center", va="center")
        ax2.set_axis_off()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def write_report(
    df,
    out: str | Path,
    *,
    md_path: str | Path | None = None,
    title: str = "deepad benchmark",
    header: str = "",
    max_rows: Any = None,
    plot_prefix: str = "plot_",
) -> Path:
    """Write ``<plot_prefix><setting>.png`` files into ``out`` and the markdown summary to ``md_path``
    (default ``out/summary.md``; image links are relative to the markdown file)."""
    import json
    import os

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if max_rows is None:
        proto = out / "protocol.json"
        max_rows = json.loads(proto.read_text()).get("max_rows", 10000) if proto.exists() else 10000
    md_path = out / "summary.md" if md_path is None else Path(md_path)
    images = {}
    for s in summarize(df):
        png = plot_summary(s, out / f"{plot_prefix}{s.slug}.png")
        images[s.slug] = Path(os.path.relpath(png.resolve(), md_path.resolve().parent)).as_posix()
    md_path.write_text(markdown_report(df, title=title, header=header, images=images, max_rows=max_rows))
    return md_path
