"""The v2 tables of the drift benchmark (``drift_power.py`` records each section's parts): rules chosen on half.

Run through ``drift_tables.py --v2`` (see benchmarks/results/drift-v2/RESULTS.md for the commands). Every
verdict is computed from the p-values the trials recorded: per-column numeric test x multivariate test x
score section, Bonferroni over the three sections; the rule is chosen on the *choose* half of the sets
(sorted names, even positions) and shown on the *confirm* half and all sets.
"""

from __future__ import annotations

import itertools

import numpy as np

from drift_tables import ALPHA, KINDS, SHIFTS, _p, load, rates, recal_table, write_tables

#: per-column numeric tests, multivariate tests and score sections the v2 trials record the parts of
V2_NUMERIC = ("ks", "lepage", "ks+lepage", "ks+mood")
V2_MULTIVARIATE = ("mmd", "c2st", "c2st_fast")
V2_SCORE = {
    "ks+rate": ("p_score_ks", "p_flag"),
    "ks+rate+tail99": ("p_score_ks", "p_flag", "p_tail99"),
    "ks+rate+tail90": ("p_score_ks", "p_flag", "p_tail90"),
    "ks+rate+tail90+tail99": ("p_score_ks", "p_flag", "p_tail90", "p_tail99"),
}


def v2_features(t: dict, numeric: str) -> float:
    return _p(t, f"p_features_{numeric}")


def v2_score(t: dict, score: str) -> float:
    ps = [_p(t, k) for k in V2_SCORE[score]]
    return min(1.0, len(ps) * min(ps))


def v2_rule(rule: tuple[str, str, str]):
    """``(numeric, multivariate, score)`` -> the verdict of Bonferroni over the three sections, from a trial's parts."""
    numeric, multivariate, score = rule

    def verdict(t: dict) -> bool:
        ps = (v2_features(t, numeric), _p(t, f"p_{multivariate}"), v2_score(t, score))
        return min(1.0, 3.0 * min(ps)) <= ALPHA

    return verdict


def v2_rows(rn: dict, fn) -> int | None:
    """The smallest n of the grid at which ``fn(trial parts)`` (True: detected) holds in >= 80 % of the trials."""
    ok = [int(n) for n, ts in rn["trials"].items() if ts and np.mean([fn(c) for c in ts]) >= 0.8]
    return min(ok) if ok else None


def v2_rows_counts(results: dict, names: list[str], numeric: str, score: str, study: str = "mixture") -> dict:
    """Per set: rows the score section and the feature section need; and fewer / same / more over ``names``."""
    out = {"fewer": 0, "same": 0, "more": 0, "neither": 0, "skipped": 0, "sets": {}}
    for name in names:
        rn = results[name].get("rows_needed", {}).get(study)
        if not rn or "skipped" in rn or "trials" not in rn:
            out["skipped"] += 1
            continue
        s = v2_rows(rn, lambda c: v2_score(c, score) <= ALPHA)
        f = v2_rows(rn, lambda c: v2_features(c, numeric) <= ALPHA)
        out["sets"][name] = (s, f)
        if s is None and f is None:
            out["neither"] += 1
            continue
        s, f = (float("inf") if v is None else v for v in (s, f))
        out["fewer" if s < f else "same" if s == f else "more"] += 1
    return out


def v2_rates(results: dict, names: list[str], fn) -> dict[str, float]:
    return {k: v[0] for k, v in rates(results, names, fn).items()}


def v2_alibi(results: dict, names: list[str]) -> dict[str, dict[str, float]]:
    return {
        "alibi KS": v2_rates(results, names, lambda t: bool(t.get("alibi_ks"))),
        "alibi MMD": v2_rates(results, names, lambda t: bool(t.get("alibi_mmd"))),
    }


def v2_choose(results: dict, names: list[str]) -> tuple[tuple, list]:
    """The rule chosen on ``names``: false alarms <= alpha, then the largest worst-shift margin over both Alibi
    detectors (power minus the better Alibi detector's, the smallest over the five shifts), then mean power."""
    alibi = v2_alibi(results, names)
    scored = []
    for rule in itertools.product(V2_NUMERIC, V2_MULTIVARIATE, V2_SCORE):
        r = v2_rates(results, names, v2_rule(rule))
        margin = min(r[k] - max(alibi["alibi KS"][k], alibi["alibi MMD"][k]) for k in SHIFTS)
        scored.append((r["none"] <= ALPHA, margin, float(np.mean([r[k] for k in SHIFTS])), rule, r["none"]))
    scored.sort(key=lambda s: (not s[0], -s[1], -s[2]))
    return scored[0][3], scored


def v2_power_table(results: dict, names: list[str], rules: dict) -> list[str]:
    cols = {label: v2_rates(results, names, v2_rule(rule)) for label, rule in rules.items()}
    cols.update(v2_alibi(results, names))
    lines = ["| shift | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    n = {k: len([t for nm in names for t in results[nm]["kinds"][k]]) for k in KINDS}
    for kind in KINDS:
        label = ("none (false alarms)" if kind == "none" else kind) + f" ({n[kind]})"
        lines.append(f"| {label} | " + " | ".join(f"{c[kind]:.1%}" for c in cols.values()) + " |")
    lines.append(
        "| mean power, 5 shifts | " + " | ".join(f"{np.mean([c[k] for k in SHIFTS]):.1%}" for c in cols.values()) + " |"
    )
    return lines


def v2_sections_table(results: dict, names: list[str]) -> list[str]:
    """Each section alone at alpha, per variant."""
    cols = {f"features {v}": (lambda t, v=v: v2_features(t, v) <= ALPHA) for v in V2_NUMERIC}
    cols.update({v: (lambda t, v=v: _p(t, f"p_{v}") <= ALPHA) for v in V2_MULTIVARIATE})
    cols.update({f"score {v}": (lambda t, v=v: v2_score(t, v) <= ALPHA) for v in V2_SCORE})
    r = {k: v2_rates(results, names, fn) for k, fn in cols.items()}
    lines = ["| section alone | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 1) + "|"]
    for k, v in r.items():
        lines.append(f"| {k} | " + " | ".join(f"{v[kind]:.1%}" for kind in KINDS) + " |")
    return lines


def v2_time_table(results: dict, multivariate: str) -> list[str]:
    """Medians over the trials of one run, each part timed in the same trial (deepad's parts and Alibi's)."""
    trials = [t for r in results.values() for k in r["kinds"].values() for t in k if "alibi_ks_s" in t]
    if not trials:
        return ["(no trial of these files ran Alibi)"]

    def med(fn):
        return float(np.median([fn(t) for t in trials]))

    whole = {m: (lambda t, m=m: t["deepad_base_s"] + t[f"{m}_s"]) for m in V2_MULTIVARIATE}
    rows = [
        ("deepad features section (per-column tests, Holm)", lambda t: t["features_s"], "alibi KSDrift", "alibi_ks_s"),
        ("deepad multivariate: MMD (500 permutations)", lambda t: t["mmd_s"], "alibi MMDDrift", "alibi_mmd_s"),
        ("deepad multivariate: C2ST (50 trees)", lambda t: t["c2st_s"], "alibi MMDDrift", "alibi_mmd_s"),
        ("deepad multivariate: C2ST fast (20 trees)", lambda t: t["c2st_fast_s"], "alibi MMDDrift", "alibi_mmd_s"),
        ("deepad score section", lambda t: t["score_s"], "-", None),
        ("deepad prepare (read, encode, score the rows)", lambda t: t["prepare_s"], "-", None),
    ]
    rows += [(f"deepad whole report with {m}", whole[m], "alibi KSDrift", "alibi_ks_s") for m in V2_MULTIVARIATE]
    rows += [(f"deepad whole report with {m}", whole[m], "alibi MMDDrift", "alibi_mmd_s") for m in V2_MULTIVARIATE]
    if any("deepad_default_s" in t for t in trials):
        rows.append(
            (
                "deepad default report, one detect_drift call",
                lambda t: t["deepad_default_s"],
                "alibi KSDrift",
                "alibi_ks_s",
            )
        )
        rows.append(
            (
                "deepad default report, one detect_drift call",
                lambda t: t["deepad_default_s"],
                "alibi MMDDrift",
                "alibi_mmd_s",
            )
        )
    lines = [
        f"Trials: {len(trials)} (sets: {', '.join(results)}). Ratio: the median over trials of Alibi's time / "
        f"deepad's in the same trial (> 1: deepad faster). Default multivariate section: {multivariate}.",
        "",
        "| deepad part | median s | compared with | median s | ratio (per trial, median) |",
        "|---|---|---|---|---|",
    ]
    for label, fn, other, key in rows:
        if key is None:
            lines.append(f"| {label} | {med(fn):.4f} | - | - | - |")
            continue
        ratio = float(np.median([t[key] / max(fn(t), 1e-9) for t in trials]))
        lines.append(f"| {label} | {med(fn):.4f} | {other} | {med(lambda t: t[key]):.4f} | {ratio:.2f} |")
    return lines


def v2_check(results: dict) -> str:
    """How many trials reproduced the earlier run's rows: MMD, C2ST and KS-feature p-values equal to the bit."""
    keys = ("p_mmd", "p_c2st", "p_features")
    trials = [t for r in results.values() for k in r["kinds"].values() for t in k if "recorded" in t]
    same = {k: sum(t[k] == t["recorded"][k] for t in trials) for k in keys}
    return ", ".join(f"{k} {same[k]} of {len(trials)}" for k in keys)


def v2_rows_table(results: dict, rule: tuple, old: tuple) -> list[str]:
    lines = [
        "| data set | study | shift | rows: score (chosen) | rows: features (chosen) | verdict "
        "| rows: score (old) | rows: features (old, KS) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for study in ("mean", "mixture"):
            rn = r.get("rows_needed", {}).get(study)
            if not rn or "skipped" in rn:
                lines.append(f"| {name} | {study} | {rn['skipped'] if rn else '-'} | | | | | |")
                continue
            top = f"> {max(int(n) for n in rn['trials'])}" if rn["trials"] else "-"
            what = f"x{rn['column']} +{rn['shift']:.2f} sd" if study == "mean" else f"{rn['share']:.1%} anomalies"
            cells = []
            for numeric, score in ((rule[0], rule[2]), (old[0], old[2])):
                s = v2_rows(rn, lambda c: v2_score(c, score) <= ALPHA)
                f = v2_rows(rn, lambda c: v2_features(c, numeric) <= ALPHA)
                cells.append((s, f))
            (s, f), (so, fo) = cells
            inf = float("inf")
            verdict = (
                "neither"
                if s is None and f is None
                else "fewer"
                if (s or inf) < (f or inf)
                else "same"
                if s == f
                else "more"
            )
            lines.append(
                f"| {name} | {study} | {what} | {s or top} | {f or top} | {verdict} | {so or top} | {fo or top} |"
            )
    return lines


def main_v2(args) -> None:
    results = load(args.parts)
    names = list(results)
    choose, confirm = names[0::2], names[1::2]
    rule, scored = v2_choose(results, choose)
    old, old_c2st = ("ks", "mmd", "ks+rate"), ("ks", "c2st", "ks+rate")
    rules = {
        f"chosen {'/'.join(rule)}": rule,
        "old default ks/mmd/ks+rate": old,
        "old +c2st ks/c2st/ks+rate": old_c2st,
        f"{rule[0]}/mmd/{rule[2]}": (rule[0], "mmd", rule[2]),
        f"{rule[0]}/c2st_fast/{rule[2]}": (rule[0], "c2st_fast", rule[2]),
    }
    unique: dict = {}
    for label, r in rules.items():
        if r not in unique.values():
            unique[label] = r
    rules = unique
    timing = load(args.timing) if args.timing else {}
    top = "; ".join(f"{'/'.join(s[3])}: margin {s[1]:+.1%}, mean {s[2]:.1%}, fa {s[4]:.1%}" for s in scored[:8])
    counts = {
        half: {
            score: v2_rows_counts(results, ns, rule[0], score, study) for score in V2_SCORE for study in ("mixture",)
        }
        for half, ns in (("choose", choose), ("confirm", confirm), ("all", names))
    }
    rows_lines = [
        "| score section | half | fewer | same | more | neither within the grid | skipped |",
        "|---|---|---|---|---|---|---|",
    ]
    for half, per in counts.items():
        for score, c in per.items():
            rows_lines.append(
                f"| {score} | {half} | {c['fewer']} | {c['same']} | {c['more']} | {c['neither']} | {c['skipped']} |"
            )
    mean_counts = v2_rows_counts(results, names, rule[0], rule[2], "mean")
    text = [
        "# Drift detection v2 on the 28 ADBench sets: the parts of each section, the rule chosen on half (issue 20)",
        "",
        args.preamble.read_text() if args.preamble else "",
        "",
        f"Same rows as the earlier run (`benchmarks/results/drift/`, whose Alibi verdicts the power tables reuse): "
        f"{v2_check(results)} trials equal to the bit.",
        "",
        "## The rule, chosen on the choose half",
        "",
        f"Candidates: per-column numeric test {V2_NUMERIC} x multivariate {V2_MULTIVARIATE} x score section "
        f"{tuple(V2_SCORE)}, Bonferroni over the three sections (`3 min p`). Chosen on the choose half "
        "(false alarms <= 5 %, then the largest worst-shift margin over the better Alibi detector, then mean "
        f"power): **{'/'.join(rule)}**. Top 8 there: {top}.",
        "",
        f"Choose half ({len(choose)}): {', '.join(choose)}",
        "",
        *v2_power_table(results, choose, rules),
        "",
        f"Confirm half ({len(confirm)}): {', '.join(confirm)}",
        "",
        *v2_power_table(results, confirm, rules),
        "",
        f"All {len(names)} sets",
        "",
        *v2_power_table(results, names, rules),
        "",
        "Each section alone at alpha, all sets:",
        "",
        *v2_sections_table(results, names),
        "",
        "## Time per test, side by side",
        "",
        *v2_time_table(timing, rule[1]),
        "",
        "## Rows for 80 % power: score section vs feature tests",
        "",
        "Anomaly-rate shift (the set's anomalies mixed in to double the flag rate), 10 trials per n in "
        f"{sorted({int(n) for r in results.values() for s in r.get('rows_needed', {}).values() if 'trials' in s for n in s['trials']})}; "
        f"feature section: {rule[0]} per numeric column. Per score-section variant, sets where it needed fewer / "
        "as many / more rows than the feature section:",
        "",
        *rows_lines,
        "",
        f"Mean shift of one column doubling the flag rate, chosen rule: fewer {mean_counts['fewer']}, same "
        f"{mean_counts['same']}, more {mean_counts['more']}, neither {mean_counts['neither']}, skipped "
        f"{mean_counts['skipped']}.",
        "",
        *v2_rows_table(results, rule, old),
        "",
        "## Recalibrate on shifted clean rows",
        "",
        *recal_table(results),
        "",
    ]
    write_tables(args.out, text)
