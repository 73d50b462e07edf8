"""The v3 tables of the drift benchmark: the defaults chosen on seed 0's trials, confirmed on fresh seed-1 trials.

The defaults (``numeric_test="ks+lepage"``, ``multivariate="c2st"``, equal-weight Bonferroni over the three
sections) were chosen on every trial of ``benchmarks/results/drift-v2/power.json`` (seed 0: each set's split,
model and trials). This run draws new ones (``drift_power.py --seed 1``): a new reference/pool split, a new
model, new trials, Alibi Detect run side by side in each trial. The "deepad default" column is the verdict of
one ``detect_drift(model, rows)`` call as a user makes it; the other deepad columns are recomposed from the
parts the same trial recorded. Run (see benchmarks/results/drift-v3/RESULTS.md for the commands)::

    python benchmarks/drift_tables_v3.py benchmarks/results/drift-v3/part_*.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_tables import ALPHA, KINDS, SHIFTS, load, write_tables  # noqa: E402
from drift_tables_v2 import v2_alibi, v2_rates, v2_rule, v2_sections_table, v2_time_table  # noqa: E402

NEW, OLD = ("ks+lepage", "c2st", "ks+rate"), ("ks", "mmd", "ks+rate")


def _columns(results: dict, names: list[str]) -> dict[str, dict[str, float]]:
    cols = {"deepad default (one call)": v2_rates(results, names, lambda t: bool(t["deepad_default"]))}
    cols["recomposed ks+lepage/c2st"] = v2_rates(results, names, v2_rule(NEW))
    cols["old default ks/mmd"] = v2_rates(results, names, v2_rule(OLD))
    cols["ks/c2st"] = v2_rates(results, names, v2_rule(("ks", "c2st", "ks+rate")))
    cols["ks+lepage/mmd"] = v2_rates(results, names, v2_rule(("ks+lepage", "mmd", "ks+rate")))
    cols.update(v2_alibi(results, names))
    return cols


def power_table(results: dict, names: list[str], columns=None) -> list[str]:
    """Rate per shift kind of each rule of ``columns(results, names)`` (default: this run's), with Alibi's margin."""
    cols = (columns or _columns)(results, names)
    n = {k: len([t for nm in names for t in results[nm]["kinds"][k]]) for k in KINDS}
    lines = ["| shift | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for kind in KINDS:
        label = ("none (false alarms)" if kind == "none" else kind) + f" ({n[kind]})"
        lines.append(f"| {label} | " + " | ".join(f"{c[kind]:.1%}" for c in cols.values()) + " |")
    lines.append(
        "| mean power, 5 shifts | " + " | ".join(f"{np.mean([c[k] for k in SHIFTS]):.1%}" for c in cols.values()) + " |"
    )
    best = {k: max(cols["alibi KS"][k], cols["alibi MMD"][k]) for k in SHIFTS}
    lines.append(
        "| worst margin over the better Alibi | "
        + " | ".join(f"{min(c[k] - best[k] for k in SHIFTS):+.1%}" for c in cols.values())
        + " |"
    )
    return lines


def check(results: dict) -> str:
    """Trials where the one-call default verdict and the verdict recomposed from the parts agree."""
    rule = v2_rule(NEW)
    trials = [t for r in results.values() for k in r["kinds"].values() for t in k]
    same = sum(bool(t["deepad_default"]) == rule(t) for t in trials)
    return f"{same} of {len(trials)}"


def closing_tables(results: dict, names: list[str]) -> list[str]:
    """The last two tables of a run: each section alone, and the time per test side by side."""
    return [
        "## Each section alone, all sets",
        "",
        *v2_sections_table(results, names),
        "",
        "## Time per test, side by side in each trial",
        "",
        *v2_time_table(results, "c2st"),
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+")
    ap.add_argument("--preamble", default=None, help="markdown put first (commands, machine load)")
    ap.add_argument("--out", default="benchmarks/results/drift-v3/RESULTS.md")
    args = ap.parse_args()
    results = load(args.parts)
    names = list(results)
    choose, confirm = names[0::2], names[1::2]
    text = [
        "# Drift detection v3 (issue 20): the new defaults on fresh trials, side by side with Alibi Detect",
        "",
        Path(args.preamble).read_text() if args.preamble else "",
        "",
        f"Sets: {len(names)}; per set {2 * len(results[names[0]]['kinds']['mean'])} no-shift trials and "
        f"{len(results[names[0]]['kinds']['mean'])} per shift kind; alpha {ALPHA}. The one-call default and the "
        f"default recomposed from the trial's parts agree on {check(results)} trials.",
        "",
        "## All sets",
        "",
        *power_table(results, names),
        "",
        f"## The v2 tables' choose half ({', '.join(choose)})",
        "",
        *power_table(results, choose),
        "",
        f"## The v2 tables' confirm half ({', '.join(confirm)})",
        "",
        *power_table(results, confirm),
        "",
        *closing_tables(results, names),
    ]
    write_tables(args.out, text)


if __name__ == "__main__":
    main()
