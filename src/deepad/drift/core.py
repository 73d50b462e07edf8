"""``detect_drift``: has the data a fitted model scores moved away from the data it learned from?"""

from __future__ import annotations

import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepad.data.reference import counted_features
from deepad.drift._c2st import c2st_test
from deepad.drift._mmd import mmd_test
from deepad.drift._numeric import DEFAULT_NUMERIC_TEST, ColumnReference, check_numeric_test, numeric_tests
from deepad.drift._score import TAIL_QUANTILES, check_tail_quantiles, score_drift
from deepad.drift._stats import CORRECTIONS, family_p, adjust, frequency_test, numeric_test, proportion_test

__all__ = ["DriftReport", "detect_drift", "score_drift", "json_safe"]

#: the sections of a report, in the order the combined p-value lists them
SECTIONS = ("features", "multivariate", "score")
#: the multivariate tests ``detect_drift(multivariate=...)`` knows ("both": MMD and C2ST, Bonferroni over the two)
MULTIVARIATE = ("mmd", "c2st", "both")
#: what ``multivariate=True`` (the default) runs: C2ST, which out-powered MMD on every shift of the 28-set benchmark
#: (benchmarks/results/drift-v3/RESULTS.md)
DEFAULT_MULTIVARIATE = "c2st"


@dataclass
class DriftReport:
    """The result of :func:`detect_drift`: ``drift`` and ``p_value`` on top, then one entry per section.

    ``features``: one dict per test (``column``, ``kind``, ``test``,
    ``p_value``, ``adjusted_p_value``, ``drift`` and effect sizes);
    ``multivariate``: the joint test (C2ST by default, or MMD); ``score``: the score distribution and
    flag rate; ``unavailable``: why a section was not run.  ``to_dict()``
    is the JSON ``deepad monitor`` writes.
    """

    drift: bool
    p_value: float
    alpha: float
    rule: str
    n_rows: int
    correction: str
    sections: dict[str, float] = field(default_factory=dict)
    features: list[dict] = field(default_factory=list)
    multivariate: dict | None = None
    score: dict | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    #: the new rows' anomaly scores (not in ``to_dict``)
    scores: np.ndarray | None = field(default=None, repr=False)
    #: seconds per part: ``prepare`` (read, encode, score the rows), ``features``, ``multivariate``, ``score``
    #: (not in ``to_dict``, so a report's JSON does not change from run to run)
    seconds: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def moved(self) -> list[str]:
        """What moved: the drifted feature tests (``column`` or ``column (missing rate)``), most significant first."""
        hits = sorted((f for f in self.features if f.get("drift")), key=lambda f: f["adjusted_p_value"])
        return [f["name"] for f in hits]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON types (non-finite numbers as ``None``)."""
        return json_safe(
            {
                "drift": bool(self.drift),
                "p_value": float(self.p_value),
                "alpha": float(self.alpha),
                "rule": self.rule,
                "rows": int(self.n_rows),
                "moved": self.moved,
                "sections": dict(self.sections),
                "unavailable": dict(self.unavailable),
                "score": self.score,
                "multivariate": self.multivariate,
                "features": {"correction": self.correction, "tests": list(self.features)},
            }
        )

    def summary(self) -> str:
        """One line: drift or not, the combined p-value, and what moved."""
        verdict = "drift" if self.drift else "no drift"
        parts = [f"{verdict} (p = {self.p_value:.3g}, alpha {self.alpha:g}, {self.n_rows:,} rows)"]
        if self.score is not None:
            s = self.score
            rate = s["flag_rate"]
            parts.append(
                f"flag rate {rate['new_rate']:.2%} vs {rate['reference_rate']:.2%} expected (p = {rate['p_value']:.3g})"
                + ("" if s.get("in_verdict", True) else ", not in the verdict")
                + ("" if s.get("held_out", True) else " (training scores as the reference)")
            )
        if self.moved:
            parts.append("moved: " + ", ".join(self.moved[:8]) + (" ..." if len(self.moved) > 8 else ""))
        return "; ".join(parts)


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN / infinity as ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


# --------------------------------------------------------------------------- per-feature tests
#: per model, what its drift reference gives every call: the prepared numeric columns and the encoded reference
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared(model) -> dict:
    """The model's reference, prepared once: numeric columns sorted (:class:`ColumnReference`), ``Z_ref`` on demand.

    Keyed on the identity of ``drift_reference_`` and ``preprocessor_state_``:
    a model given a new reference or preprocessor (a refit) gets a fresh entry.
    """
    key = (id(getattr(model, "drift_reference_", None)), id(getattr(model, "preprocessor_state_", None)))
    entry = _CACHE.get(model)
    if entry is None or entry["key"] != key:
        entry = {"key": key, "columns": {}, "Z_ref": None}
        _CACHE[model] = entry
    return entry


def _encoded_reference(model) -> np.ndarray:
    """The training sample encoded by the model's preprocessor (computed once per model, see :func:`_prepared`)."""
    from deepad.data.reference import reference_frame

    entry = _prepared(model)
    if entry["Z_ref"] is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            frame = reference_frame(model.preprocessor.columns_, model.drift_reference_)
            entry["Z_ref"] = model.transform(frame)
    return entry["Z_ref"]


def _feature_tests(model, df: pd.DataFrame, ignore=frozenset(), numeric: str = "ks") -> tuple[list[dict], str | None]:
    """One test per feature column (values) and per column with missing values (missing rate)."""
    from deepad.data.reference import raw_values
    from deepad.data.values import MISSING, category_values

    prep = model.preprocessor
    reference = getattr(model, "drift_reference_", None)
    info = getattr(model, "drift_reference_info_", None) or {}
    why = None
    if reference is None:
        why = (
            "the model was saved before deepad kept a training sample for drift tests (retrain it to get the "
            "numeric, boolean and datetime tests); categorical columns are tested against the category counts "
            "the model keeps"
        )
    n_train = int(prep.n_rows_fit_)
    tests: list[dict] = []
    columns = _prepared(model)["columns"]
    batch: list[tuple[dict, ColumnReference, np.ndarray]] = []  # numeric columns: tested together below
    for j, col in enumerate(prep.columns_):
        name, kind = col["name"], col["kind"]
        if name in ignore:
            continue
        s = df[name]
        if kind == "categorical":
            levels = list(col["levels"])
            counts = np.asarray(col["counts"], dtype=np.float64)
            text = category_values(s)
            is_missing = (text == MISSING).to_numpy()
            new_counts = text[~is_missing].value_counts(sort=False)
            # Cells: the categories the model one-hot encodes, then one for everything else -- rarer values and
            # values never seen in training, which the model maps to __other__ alike.
            cells = [c for c in col["categories"] if c != MISSING]
            position = {v: i for i, v in enumerate(levels)}
            ref_c = counts[[position[c] for c in cells]]
            new_c = new_counts.reindex(cells, fill_value=0).to_numpy(dtype=np.float64)
            ref_other = counts.sum() - ref_c.sum() - (counts[position[MISSING]] if MISSING in position else 0.0)
            new_other = float(new_counts.sum() - new_c.sum())
            result = frequency_test(
                cells + ["(other or unseen)"], np.append(ref_c, ref_other), np.append(new_c, new_other)
            )
            seen = new_counts.index.isin(levels)
            singletons = float(np.count_nonzero(counts == 1))
            result["unseen_share"] = float(new_counts[~seen].sum()) / max(float(new_counts.sum()), 1.0)
            # Good-Turing: the share of new rows with a value the training rows never had, under no drift
            result["expected_unseen_share"] = singletons / max(float(counts.sum()), 1.0)
            tests.append({"name": name, "column": name, "kind": kind, **result})
            k_ref = int(counts[levels.index(MISSING)]) if MISSING in levels else 0
            k_new, n_new = int(is_missing.sum()), len(s)
        else:
            values = raw_values(col, s)
            k_new, n_new = int(np.isnan(values).sum()), len(s)
            k_ref = int(info["missing"][j]) if reference is not None else (0 if not col.get("indicator") else None)
            if reference is not None:
                ref = reference[:, j]
                if kind == "datetime":
                    tests.extend(_datetime_tests(col, ref, values))
                elif kind == "boolean":
                    r, v = ref[~np.isnan(ref)], values[~np.isnan(values)]
                    result = frequency_test(
                        ["false", "true"],
                        np.bincount(r.astype(int), minlength=2),
                        np.bincount(v.astype(int), minlength=2),
                    )
                    tests.append({"name": name, "column": name, "kind": kind, **result})
                else:
                    if j not in columns:
                        columns[j] = ColumnReference(ref)
                    tests.append({"name": name, "column": name, "kind": kind})
                    batch.append((tests[-1], columns[j], values))
        if k_ref is None:
            continue  # an old model that had missing values in this column: its count was not kept
        if k_ref + k_new == 0:
            continue  # no missing value on either side: nothing can have moved (Fisher's p would be 1)
        result = proportion_test(k_ref, n_train, k_new, n_new)
        tests.append({"name": f"{name} (missing rate)", "column": name, "kind": "missing", **result})
    if batch:
        results = numeric_tests([b[1] for b in batch], [b[2] for b in batch], numeric)
        for (entry, _, _), result in zip(batch, results):
            entry.update(result)
    return tests, why


def _datetime_tests(col: dict, ref: np.ndarray, values: np.ndarray) -> list[dict]:
    """KS tests of the cyclic quantities the model derives from a datetime column (hour of day, ...), not the instant.

    The instant always moves forward, so it is not tested; what the model
    sees (hour, day of week, month) is.
    """
    from deepad.data.preprocessing import _datetime_raw

    out = []
    ts_ref = pd.Series(pd.to_datetime(ref, unit="s", utc=True))
    ts_new = pd.Series(pd.to_datetime(values, unit="s", utc=True))
    features = [f for f in col["features"] if f != "unix"]
    raw_ref, raw_new = _datetime_raw(ts_ref, features), _datetime_raw(ts_new, features)
    for f in features:
        result = numeric_test(raw_ref[f], raw_new[f])
        out.append({"name": f"{col['name']}.{f}", "column": col["name"], "kind": "datetime", **result})
    return out


# --------------------------------------------------------------------------- the whole report
def _multivariate(which: str, Z_ref, Z, max_rows: int, n_permutations: int, random_state: int) -> dict:
    """The multivariate section: MMD, C2ST, or both (then ``p = min(1, 2 min)`` and each test under its name)."""
    tests = {}
    if which in ("mmd", "both"):
        tests["mmd"] = mmd_test(Z_ref, Z, max_rows=max_rows, n_permutations=n_permutations, random_state=random_state)
    if which in ("c2st", "both"):
        tests["c2st"] = c2st_test(Z_ref, Z, max_rows=max_rows, random_state=random_state)
    if which != "both":
        return tests[which]
    ran = [t["p_value"] for t in tests.values() if t.get("p_value") is not None]
    if not ran:
        return {"p_value": None, "skipped": "; ".join(t["skipped"] for t in tests.values())}
    return {"test": "mmd+c2st", "p_value": float(min(1.0, len(ran) * min(ran))), **tests}


def _score_left_out(model, score: dict, asked) -> str:
    """Why the score section is not in the verdict (``unavailable["score"]``)."""
    if asked is False:
        return f"reported, not in the verdict (score_in_verdict=False; its own p-value {score['p_value']:.3g})"
    return (
        f"reported, not in the verdict: its reference is the {score['reference']} of {type(model).__name__}, "
        "not held out (new normal rows do not score like the rows the model learned from, so its tests raise "
        "false alarms); "
        "calibrate the model on held-out clean rows (deepad.drift.recalibrate, deepad train --calibration-fraction) "
        f"or pass score_in_verdict=True (its own p-value {score['p_value']:.3g})"
    )


def detect_drift(
    model,
    X,
    *,
    alpha: float = 0.05,
    correction: str = "holm",
    multivariate: bool | str = True,
    max_rows: int = 500,
    n_permutations: int = 500,
    random_state: int = 0,
    ignore=(),
    weights: dict | None = None,
    numeric_test: str = DEFAULT_NUMERIC_TEST,
    tail_quantiles=TAIL_QUANTILES,
    score_in_verdict: bool | None = None,
) -> DriftReport:
    """Test whether ``X`` (new rows, no labels) still looks like the data ``model`` learned from.

    ``model``: a fitted :class:`~deepad.pipeline.TabularDetector` (all
    sections) or any fitted deepad detector (the score section only).
    Sections:

    * ``features``: per feature column of the saved schema -- numeric: the
      test ``numeric_test`` names (:data:`~deepad.drift.NUMERIC_TESTS`,
      case-insensitive): ``"ks+lepage"`` (default) twice the smaller of
      the KS two-sample and Lepage rank-test (location and scale)
      p-values, ``"ks"`` or ``"lepage"`` alone, ``"ks+mood"`` KS with
      Mood's scale test (each entry's ``test`` says which, and carries
      every component p-value);
      categorical: chi-squared on the category frequencies (unseen
      categories in a cell of their own) against the training counts;
      boolean: chi-squared on true/false; datetime: KS of hour of
      day, day of week and month; and per column with missing values, the
      missing rate by Fisher's exact test.  The reference is the training
      sample the model saved (``drift_reference_``).  ``correction``:
      ``"holm"`` (family-wise error, default) or ``"bh"``
      (Benjamini-Hochberg false discovery rate) says which features
      drifted and gives the section's p-value (Bonferroni / Simes);
    * ``multivariate``: on the encoded features the detector sees, a test
      of the joint distribution (a swapped pair of columns, a broken
      correlation) that no single column shows: ``True`` (default) or
      ``"c2st"``: a classifier two-sample test
      (:func:`~deepad.drift._c2st.c2st_test`, held-out AUC of gradient
      boosting, ``max_rows`` rows per side); ``"mmd"``: MMD with a
      Gaussian kernel (:func:`~deepad.drift._mmd.mmd_test`; ``max_rows``
      rows per side, ``n_permutations``);
      ``"both"``: the two, the section's p-value twice the smaller;
      ``False``: not run;
    * ``score``: :func:`score_drift`, the anomaly scores and the flag rate,
      and per quantile of ``tail_quantiles`` (each strictly in (0, 1), none
      twice; default none) a one-sided test of an excess of new rows above
      the reference's quantile.  ``score_in_verdict``: whether the section
      counts in the verdict; ``None`` (default): only when the model's
      reference scores are calibration scores, held out of training
      (``score["held_out"]``).  Against training scores -- in-sample, or
      leave-one-out -- its no-shift false alarms at alpha 0.05 on the 28
      ADBench sets were 7.9 % (IsolationForest), 27.5 % (PCA), 8.9 % (KNN)
      and 14.6 % (DEFAULT), calibrated 2.5-6.1 %
      (``benchmarks/drift_reference.py``).  Left out, the section is still
      reported (``score["in_verdict"]`` false, ``unavailable["score"]``
      says why).  With no section left in the verdict (a bare detector,
      uncalibrated), ``drift`` is false with ``p_value`` 1 and a
      ``UserWarning`` says so.

    Combined rule: ``p_value = min(1, S * min(section p-values))`` over the
    ``S`` sections that ran (Bonferroni across sections, so each section
    keeps its power however many columns the table has) and ``drift =
    p_value <= alpha``: the chance of ``drift`` on data that did not move
    is at most ``alpha``.

    ``weights``: ``{"features": w_f, "multivariate": w_m, "score": w_s}``
    for a weighted Bonferroni instead, ``p_value = min(1, min_s p_s /
    w_s)`` with the weights of the sections that ran normalised to sum 1
    (valid under any dependence between the sections, like Bonferroni; a
    section missing from the dict gets weight 0).  The 28-set benchmark
    (benchmarks/results/drift/RESULTS.md) compares rules; equal weights stay
    the default.

    ``ignore``: feature columns left out of the feature and multivariate
    sections (e.g. the timestamp a window was cut by: within a week, its
    month and weekday cannot look like the training year's).  The score
    section always uses the whole row.

    A ``numeric_test`` or ``tail_quantiles`` it does not know raises a
    ``ValueError`` (:func:`~deepad.drift.check_numeric_test`,
    :func:`~deepad.drift.check_tail_quantiles`).  Bad input -- a missing
    column, a value that cannot be read as its column's kind -- raises the same :class:`~deepad.data.DataValidationError`
    scoring does, before any test runs.
    """
    if not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}.")
    numeric_test = check_numeric_test(numeric_test)
    tail_quantiles = check_tail_quantiles(tail_quantiles)
    if multivariate is True:
        multivariate = DEFAULT_MULTIVARIATE
    if multivariate is not False and multivariate not in MULTIVARIATE:
        raise ValueError(f"multivariate must be True, False or one of {MULTIVARIATE}, got {multivariate!r}.")
    tabular = hasattr(model, "preprocessor_state_")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    unavailable: dict[str, str] = {}
    features: list[dict] = []
    joint = None
    if tabular:
        from deepad.data.readers import to_frame

        df = to_frame(X)
        df = model._validate_for_scoring(df)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unseen categories: reported by the categorical tests
            Z = model.transform(df)
        scores = np.asarray(model.detector_.decision_function(Z), dtype=np.float64)
        unknown = sorted(set(ignore) - set(model.preprocessor.schema_.feature_columns))
        if unknown:
            raise ValueError(f"ignore names {unknown}, which are not feature columns of the model.")
        seconds["prepare"] = time.perf_counter() - clock
        clock = time.perf_counter()
        features, why = _feature_tests(model, df, frozenset(ignore), numeric_test)
        if why:
            unavailable["features"] = why
        seconds["features"] = time.perf_counter() - clock
        clock = time.perf_counter()
        reference = getattr(model, "drift_reference_", None)
        if not multivariate:
            unavailable["multivariate"] = "turned off (multivariate=False)"
        elif reference is None:
            unavailable["multivariate"] = "the model was saved without a training sample (retrain it)"
        else:
            Z_ref = _encoded_reference(model)
            # the ignored columns, and the frequency encodings (a training row counted itself: counted_features)
            keep = ~np.isin(np.asarray(model.feature_sources_, dtype=object), list(ignore))
            keep &= ~counted_features(model.preprocessor)
            if keep.any():
                joint = _multivariate(multivariate, Z_ref[:, keep], Z[:, keep], max_rows, n_permutations, random_state)
            else:
                unavailable["multivariate"] = "no feature left to test (every one ignored, or a frequency encoding)"
            seconds["multivariate"] = time.perf_counter() - clock
    else:
        scores = np.asarray(model.decision_function(X), dtype=np.float64)
        unavailable["features"] = f"{type(model).__name__} on arrays keeps no schema or training sample"
        unavailable["multivariate"] = unavailable["features"]
    n_rows = int(scores.size)
    clock = time.perf_counter()
    score = score_drift(model, scores, tail_quantiles)
    seconds["score"] = time.perf_counter() - clock

    tested = [f for f in features if f.get("p_value") is not None]
    p_raw = np.array([f["p_value"] for f in tested], dtype=np.float64)
    sections: dict[str, float] = {}
    if tested:
        sections["features"] = family_p(p_raw, correction)
    elif "features" not in unavailable:
        unavailable["features"] = "no column could be tested"
    if joint is not None and joint.get("p_value") is not None:
        sections["multivariate"] = float(joint["p_value"])
    elif joint is not None:
        unavailable["multivariate"] = joint["skipped"]
    in_verdict = score["held_out"] if score_in_verdict is None else bool(score_in_verdict)
    score["in_verdict"] = in_verdict
    if in_verdict:
        sections["score"] = score["p_value"]
    else:
        unavailable["score"] = _score_left_out(model, score, score_in_verdict)
    if not sections:
        warnings.warn(
            f"detect_drift: no section is in the verdict ({unavailable['score']}); drift is False by default, "
            "not because nothing moved.",
            UserWarning,
            stacklevel=2,
        )
    # Weighted Bonferroni over the sections that ran (equal weights: plain Bonferroni): p = min(1, min p_s / w_s).
    w = {k: 1.0 for k in sections} if weights is None else {k: float(weights.get(k, 0.0)) for k in sections}
    if sections and not sum(w.values()) > 0:
        left = " (the score section is left out: see score_in_verdict)" if not in_verdict else ""
        raise ValueError(f"weights give no positive weight to a section that ran ({', '.join(sections)}){left}.")
    w = {k: v / sum(w.values()) for k, v in w.items()} if sections else {}
    # A test "drifted" when it alone makes the combined rule fire: p (adjusted in its section) / w_s <= alpha.
    bound = {k: alpha / len(sections) if weights is None else alpha * v for k, v in w.items()}
    for f, adj in zip(tested, adjust(p_raw, correction)):
        f["adjusted_p_value"] = float(adj)
        f["drift"] = bool(adj <= bound.get("features", 0.0))
    if "multivariate" in sections:
        joint["drift"] = bool(joint["p_value"] <= bound["multivariate"])
    score["drift"] = bool(score["p_value"] <= bound["score"]) if in_verdict else None
    if not sections:
        p_value = 1.0
    elif weights is None:
        p_value = float(min(1.0, len(sections) * min(sections.values())))
    else:
        p_value = float(min([1.0] + [sections[k] / v for k, v in w.items() if v > 0]))
    if weights is None:
        how = f"Bonferroni over the sections {', '.join(sections)}"
    else:
        how = "weighted Bonferroni, weights " + ", ".join(f"{k} {v:.2g}" for k, v in w.items())
    lead = f"{len(sections)} x the smallest section p-value" if weights is None else "min over sections of p / weight"
    rule = (
        f"drift when min(1, {lead}) <= alpha ({how}; feature tests combined by "
        f"{'Holm' if correction == 'holm' else 'Benjamini-Hochberg'})"
    )
    if not sections:
        rule = "no section is in the verdict (see unavailable): drift is false and p_value 1 by default"
    return DriftReport(
        drift=bool(p_value <= alpha),
        p_value=p_value,
        alpha=float(alpha),
        rule=rule,
        n_rows=n_rows,
        correction=correction,
        sections=sections,
        features=features,
        multivariate=joint,
        score=score,
        unavailable=unavailable,
        scores=scores,
        seconds=seconds,
    )
