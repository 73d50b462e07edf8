"""The smallest repair that makes an anomalous row normal: which columns, and how far they may stay from typical.

A *repair* sets a source column to its typical training value (the same
typical row as the attributions).  The counterfactual of a flagged row is
the smallest set of columns whose repair takes its score to the model's
threshold or below (ties: the lowest resulting score) -- the "minimal
set of features to change" of Wachter, Mittelstadt & Russell,
"Counterfactual explanations without opening the black box" (2017),
restricted to moves towards typical values, as in the "minimal
repair" of Angiulli et al.'s outlier explanation.  With the exact
Shapley enumeration every coalition is already scored, so the search
is exhaustive and free; above :data:`deepad.explain.shapley.MAX_EXACT`
columns it is greedy (repair in decreasing Shapley order until under the
threshold) and then pruned (un-repair any column not needed).

For each repaired numeric column the *bound* is the value furthest from
typical, on the line from the typical value to the row's value, that
still keeps the row under the threshold, the other repaired columns
being typical ("amount <= 356"): a grid of ``n_grid`` points along the
line, scored in one batch, the last point of the first under-threshold
run, refined by bisection.  Categorical columns read "country = US" (the most frequent
training category), booleans "card_present = true", datetimes
"timestamp typical", a missing value "customer_age present".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepad.explain.shapley import coalition_scores

__all__ = ["ColumnSpec", "column_specs", "counterfactuals"]

#: Bisection steps after the grid: the bound is within (1 / n_grid) / 2^6 of the way from typical to the row's value.
_BISECTIONS = 6


@dataclass(frozen=True)
class ColumnSpec:
    """What the counterfactual needs to know about one source column."""

    name: str
    kind: str  # numeric, boolean, categorical, datetime
    value_feature: int | None = None  # encoded feature holding the (scaled) value of a numeric column
    missing_feature: int | None = None  # its missing-value indicator, if any
    center: float = 0.0  # raw = encoded * scale + center
    scale: float = 1.0
    typical: object = None  # the raw typical value (median, most frequent category, majority boolean)


def column_specs(preprocessor=None, names=None, base=None) -> list[ColumnSpec]:
    """Specs of a TabularDetector's columns (from its preprocessor), or of a bare detector's numeric inputs."""
    if preprocessor is None:
        return [ColumnSpec(str(n), "numeric", j, None, 0.0, 1.0, float(base[j])) for j, n in enumerate(names)]
    pos = {f: j for j, f in enumerate(preprocessor.feature_names_out_)}
    specs = []
    for col in preprocessor.columns_:
        name, kind = col["name"], col["kind"]
        if kind == "numeric":
            j = pos[name]
            specs.append(
                ColumnSpec(
                    name,
                    kind,
                    j,
                    pos.get(f"{name}__missing"),
                    float(preprocessor.center_[j]),
                    float(preprocessor.scale_[j]),
                    float(col["fill"]),
                )
            )
        elif kind == "boolean":
            specs.append(ColumnSpec(name, kind, typical=bool(col["fill"] >= 0.5)))
        elif kind == "categorical":
            levels = list(col["levels"])
            specs.append(ColumnSpec(name, kind, typical=levels[0] if levels else None))
        else:
            specs.append(ColumnSpec(name, kind))
    return specs


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.4e}"


def _round_toward(bound: float, typical: float) -> float:
    """``bound`` rounded to 3 significant digits in the direction of ``typical``, so that it stays valid."""
    up = typical > bound
    if bound == 0 or not math.isfinite(bound):
        return bound
    step = 10 ** (math.floor(math.log10(abs(bound))) - 2)
    return float((math.ceil if up else math.floor)(bound / step) * step)


def _condition(spec: ColumnSpec, raw_x: float | None, bound: float | None) -> dict:
    """One repaired column as ``{"column", "op", "value", "text"}``."""
    if spec.kind == "numeric":
        if raw_x is None:  # the row's value is missing
            return {"column": spec.name, "op": "present", "value": spec.typical, "text": f"{spec.name} present"}
        op = "<=" if raw_x > spec.typical else ">="
        value = _round_toward(float(bound), float(spec.typical))
        return {"column": spec.name, "op": op, "value": value, "text": f"{spec.name} {op} {_fmt(value)}"}
    if spec.kind == "boolean":
        return {
            "column": spec.name,
            "op": "=",
            "value": spec.typical,
            "text": f"{spec.name} = {str(spec.typical).lower()}",
        }
    if spec.kind == "categorical" and spec.typical is not None:
        return {"column": spec.name, "op": "=", "value": spec.typical, "text": f"{spec.name} = {spec.typical}"}
    return {"column": spec.name, "op": "typical", "value": None, "text": f"{spec.name} typical"}


def _smallest_from_table(masks: np.ndarray, V: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the index of the coalition with the fewest repaired columns under the threshold (-1: none)."""
    repaired = masks.shape[1] - masks.sum(axis=1)
    ok = V <= threshold
    fewest = np.where(ok, repaired[None, :], np.iinfo(np.int64).max).min(axis=1)
    choice = np.where(ok & (repaired[None, :] == fewest[:, None]), V, np.inf).argmin(axis=1)
    found = ok.any(axis=1)
    return np.where(found, choice, -1), found


def _greedy(det, Z, base, fg, phi, threshold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repair in decreasing Shapley order until under the threshold, then un-repair what is not needed."""
    n, g = phi.shape
    order = np.argsort(-phi, axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(g)
    steps = rank[:, None, :] >= np.arange(g + 1)[None, :, None]  # (n, g + 1, g): step t repairs the first t columns
    V = coalition_scores(det, Z, base, fg, steps)
    ok = V <= threshold
    found = ok.any(axis=1)
    t = np.where(found, ok.argmax(axis=1), g)
    keep = steps[np.arange(n), t].copy()
    score = V[np.arange(n), t]
    for _ in range(g):  # prune: un-repair the column whose return keeps the score lowest, while one can
        trial = np.repeat(keep[:, None, :], g, axis=1)
        trial[:, np.arange(g), np.arange(g)] = True
        S = coalition_scores(det, Z, base, fg, trial)
        S = np.where(~keep & found[:, None], S, np.inf)
        best = S.argmin(axis=1)
        better = S[np.arange(n), best] <= threshold
        if not better.any():
            break
        keep[np.flatnonzero(better), best[better]] = True
        score = np.where(better, S[np.arange(n), best], score)
    return keep, score, found


def _bounds(det, Z, base, fg, keep, specs, threshold, n_grid) -> dict[tuple[int, int], float]:
    """``{(row, column): raw bound}`` for every repaired numeric column of a row whose value is present."""
    pairs = []
    for r, c in zip(*np.nonzero(~keep)):  # formatting-sized: the repaired columns of the explained rows
        s = specs[c]
        if s.kind != "numeric" or s.value_feature is None:
            continue
        if s.missing_feature is not None and Z[r, s.missing_feature] > 0.5:
            continue  # missing in the row: no line to search
        pairs.append((r, c))
    if not pairs:
        return {}
    rows = np.array([p[0] for p in pairs])
    cols = np.array([p[1] for p in pairs])
    j = np.array([specs[c].value_feature for c in cols])
    t = np.arange(1, n_grid + 1) / n_grid  # (G,)
    start = np.where(keep[rows][:, fg], Z[rows], base)  # the rows with their repair applied
    block = np.repeat(start[:, None, :], n_grid, axis=1)  # (P, G, d)
    block[np.arange(len(pairs)), :, j] = base[j][:, None] + t[None, :] * (Z[rows, j] - base[j])[:, None]
    scores = np.asarray(det.decision_function(block.reshape(-1, Z.shape[1])), dtype=np.float64).reshape(-1, n_grid)
    under = scores <= threshold
    last = np.where(under.all(axis=1), n_grid, (~under).argmax(axis=1))  # grid points before the first crossing
    lo, hi = last / n_grid, np.minimum(last + 1, n_grid) / n_grid
    for _ in range(_BISECTIONS):  # refine between the last point under the threshold and the first above it
        mid = np.where(last < n_grid, (lo + hi) / 2, lo)
        probe = start.copy()
        probe[np.arange(len(pairs)), j] = base[j] + mid * (Z[rows, j] - base[j])
        ok = np.asarray(det.decision_function(probe), dtype=np.float64) <= threshold
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    frac = lo
    out = {}
    for p, (r, c) in enumerate(pairs):
        s = specs[c]
        raw_x = Z[r, s.value_feature] * s.scale + s.center
        out[(r, c)] = s.typical + frac[p] * (raw_x - s.typical)
    return out


def counterfactuals(
    det,
    Z: np.ndarray,
    base: np.ndarray,
    groups,
    specs: list[ColumnSpec],
    threshold: float,
    scores: np.ndarray,
    *,
    phi: np.ndarray,
    masks: np.ndarray | None = None,
    V: np.ndarray | None = None,
    n_grid: int = 32,
) -> list[dict]:
    """Per row: ``{"flagged", "found", "repair", "score_after", "conditions", "text"}`` (see the module docstring)."""
    from deepad.explain.shapley import feature_groups

    n, g = phi.shape
    fg = feature_groups(groups, Z.shape[1])
    if masks is not None:
        choice, found = _smallest_from_table(masks, V, threshold)
        keep = np.where(found[:, None], masks[np.maximum(choice, 0)], True)
        after = np.where(found, V[np.arange(n), np.maximum(choice, 0)], np.nan)
    else:
        keep, after, found = _greedy(det, Z, base, fg, phi, threshold)
        keep = np.where(found[:, None], keep, True)
        after = np.where(found, after, np.nan)
    flagged = scores > threshold
    keep[~flagged] = True
    bounds = _bounds(det, Z, base, fg, keep, specs, threshold, int(n_grid))
    out = []
    for r in range(n):  # assembling per-row results (strings); all scoring was batched above
        if not flagged[r]:
            out.append(
                {"flagged": False, "found": True, "repair": [], "score_after": float(scores[r]), "conditions": []}
            )
            out[-1]["text"] = ""
            continue
        if not found[r]:
            out.append({"flagged": True, "found": False, "repair": [], "score_after": math.nan, "conditions": []})
            out[-1]["text"] = "no repair to typical values brings the score under the threshold"
            continue
        repaired = [int(c) for c in np.flatnonzero(~keep[r])]
        repaired.sort(key=lambda c: -phi[r, c])
        conditions = []
        for c in repaired:
            s = specs[c]
            missing = s.kind == "numeric" and s.missing_feature is not None and Z[r, s.missing_feature] > 0.5
            raw_x = None if missing or s.value_feature is None else float(Z[r, s.value_feature] * s.scale + s.center)
            conditions.append(_condition(s, raw_x, bounds.get((r, c))))
        out.append(
            {
                "flagged": True,
                "found": True,
                "repair": [specs[c].name for c in repaired],
                "score_after": float(after[r]),
                "conditions": conditions,
                "text": "; ".join(x["text"] for x in conditions),
            }
        )
    return out
