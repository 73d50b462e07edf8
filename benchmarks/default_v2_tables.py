"""Issue 17's tables from the ``deepad bench`` runs in ``benchmarks/results/default-v2``: nothing here runs a detector.

* the "Done when" table: mean test ROC-AUC (x 100) and average rank per detector, on the design half and
  on the confirmation half of the 28 ADBench sets, in both settings (3 seeds each);
* the large-n table: DEFAULT with an exact kNN, with its kNN reference set bounded by ``max_reference``,
  and with a faiss HNSW index, on the design half's large sets at 100,000 rows (``--max-rows 100000``).

    python benchmarks/default_v2_tables.py          # prints the tables and writes benchmarks/results/default-v2/RESULTS.md

The commands that produced the runs are in benchmarks/results/default-v2/PROVENANCE.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE / "results" / "default-v2"
DESIGN = (
    "1_ALOI 5_campaign 8_celeba 12_fault 16_http 19_landsat 23_mammography 26_optdigits 30_satellite 33_skin "
    "37_Stamps 39_vertebral 42_WBC 45_wine"
).split()
CONFIRM = (
    "4_breastw 6_cardio 11_donors 15_Hepatitis 17_InternetAds 21_Lymphography 24_mnist 28_pendigits 32_shuttle "
    "35_SpamBase 38_thyroid 41_Waveform 43_WDBC 46_WPBC"
).split()
LABELS = {
    ("LocalGlobalEnsemble", ""): "DEFAULT (deep_weight=0, the new default)",
    ("LocalGlobalEnsemble", '{"deep_weight":0.25}'): "DEFAULT with its deep view (deep_weight=0.25, the old default)",
}


def _label(row) -> str:
    params = "" if pd.isna(row["params"]) else str(row["params"])
    return LABELS.get((row["detector"], params), row["detector"] + params)


def _read(setting: str) -> pd.DataFrame:
    df = pd.read_csv(ROOT / setting / "results.csv", dtype={"params": str})
    df = df[df["status"] == "ok"].copy()
    df["label"] = df.apply(_label, axis=1)
    return df


def _markdown(table: pd.DataFrame, digits: int) -> str:
    """A DataFrame as a GitHub markdown table (index first), without the optional ``tabulate`` package."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.{digits}f}"
        return str(v)

    head = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def half_table(df: pd.DataFrame, sets: list[str]) -> pd.DataFrame:
    """Mean ROC-AUC x 100 over sets x seeds, average rank (per set and seed, 1 = best), runs, median fit seconds."""
    part = df[df["dataset"].isin(sets)]
    complete = part.groupby("label")["roc_auc"].count()
    part = part[part["label"].isin(complete[complete == complete.max()].index)]  # only detectors with every run
    rank = part.groupby(["dataset", "seed"])["roc_auc"].rank(ascending=False)
    out = pd.DataFrame(
        {
            "mean ROC-AUC": 100 * part.groupby("label")["roc_auc"].mean(),
            "avg rank": rank.groupby(part["label"]).mean(),
            "runs": part.groupby("label")["roc_auc"].count().astype(str),
            "median fit s": part.groupby("label")["fit_s"].median(),
            "median score s": part.groupby("label")["score_s"].median(),
        }
    )
    return out.sort_values("mean ROC-AUC", ascending=False)


def large_table(setting: str) -> list[tuple[str, pd.DataFrame]]:
    """ROC-AUC x 100 per large set and variant: on seed 0 (every variant), and on 3 seeds (the variants run on all)."""
    path = ROOT / "large-n" / setting / "results.csv"
    if not path.is_file():
        return []
    df = pd.read_csv(path, dtype={"params": str})
    names = {'{"max_reference":null}': "exact kNN (max_reference=None)"}
    names.update({f'{{"max_reference":{m}}}': f"max_reference={m:,}" for m in (5000, 10000, 20000, 50000)})
    df["variant"] = df["params"].fillna("").map(lambda p: names.get(p, p))
    faiss = df["detector"] == "default_faiss:FaissDefault"
    df.loc[faiss, "variant"] = "faiss HNSW, all rows (M=32, efSearch=256)"
    failed = df[df["status"] != "ok"]
    df = df[df["status"] == "ok"]
    tables = []
    n_sets = df["dataset"].nunique()
    runs = df.groupby("variant")["roc_auc"].count()
    three = runs[runs == 3 * n_sets].index
    for title, part in (("seed 0", df[df["seed"] == 0]), ("3 seeds", df[df["variant"].isin(three)])):
        if part.empty:
            continue
        auc = part.pivot_table(index="variant", columns="dataset", values="roc_auc", aggfunc="mean") * 100
        auc["mean"] = auc.mean(axis=1, skipna=False)  # blank where a run failed
        auc["median fit s"] = part.groupby("variant")["fit_s"].median()
        auc["median score s"] = part.groupby("variant")["score_s"].median()
        tables.append((title, auc))
    if not failed.empty:
        notes = failed[["variant", "dataset", "seed", "error"]].astype(str).agg(" / ".join, axis=1)
        tables.append(("failed runs", pd.DataFrame({"variant / set / seed / error": notes.tolist()})))
    return tables


def main() -> int:
    if not (ROOT / "oneclass" / "results.csv").is_file():
        print(f"no runs in {ROOT}: see {ROOT / 'PROVENANCE.md'}", file=sys.stderr)
        return 2
    md = [
        "# DEFAULT v2 (issue 17): deepad bench tables\n",
        "Generated by `python benchmarks/default_v2_tables.py` from `results.csv` in this folder's subfolders; "
        "the commands are in `PROVENANCE.md`. Mean test ROC-AUC x 100 over the sets and 3 seeds; rank 1 = best "
        "of the detectors in the table, per set and seed. Do not edit by hand.\n",
    ]
    for setting in ("oneclass", "unsupervised"):
        df = _read(setting)
        for name, sets in (("design half", DESIGN), ("confirmation half", CONFIRM), ("all 28 sets", DESIGN + CONFIRM)):
            table = half_table(df, sets)
            md.append(f"\n## {setting}, {name} ({len(sets)} sets)\n\n" + _markdown(table, 2) + "\n")
    for setting in ("oneclass", "unsupervised"):
        for title, table in large_table(setting):
            md.append(
                f"\n## Large n, {setting}, {title}: ROC-AUC x 100 at up to 100,000 rows (`--max-rows 100000`)\n\n"
                + _markdown(table, 3)
                + "\n"
            )
    text = "\n".join(md)
    print(text)
    (ROOT / "RESULTS.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
