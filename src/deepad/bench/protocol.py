"""The evaluation protocol of ``deepad bench``: data, splits, settings and detector specs.

Everything that decides *what a number means* lives here, as small pure
functions, so the protocol can be read in one place and tested without
running a detector.  The protocol (version :data:`PROTOCOL_VERSION`):

1. **Data.**  An ADBench ``.npz`` (arrays ``X`` and ``y``, 1 = anomaly) or a
   CSV/Parquet file with a 0/1 label column (numeric feature columns only;
   anything else is a clear error).  A folder stands for every such file in
   it.  The file stem is the data set's name.
2. **Subsampling.**  A data set with more than ``max_rows`` rows (default
   10,000, as in ADBench) is reduced to ``max_rows`` rows by a stratified
   random sample, so the anomaly rate is kept.
3. **Split.**  A stratified 70/30 train/test split.
4. **Scaling.**  Min-max scaling fitted on the *whole* train part (every
   setting sees the same numbers) and applied to both parts.  Test values
   are **not clipped** to [0, 1]: clipping would cap how extreme an anomaly
   can look, which is exactly what is being measured.  Constant features are
   shifted to 0 and left unscaled.
5. **Seeds.**  The subsample, the split and the labelled anomalies of the
   weak setting are drawn from ``SeedSequence([seed, crc32(dataset name)])``
   -- the seed and the name only.  Every detector therefore sees the same
   rows for a (data set, seed), so results are paired across detectors, and
   re-running reproduces them bit for bit.  The detector's own
   ``random_state`` is the seed.
6. **Settings.**

   * ``unsupervised`` -- fit on the whole train part (anomalies included),
     labels unused;
   * ``oneclass`` -- fit on the normal rows of the train part only;
   * ``weak`` -- a fraction (``frac=0.05``: ``round(0.05 * train
     anomalies)``, at least 1) or a count (``count=5``, at most all) of the
     train anomalies is labelled 1, every other train row is unlabelled
     (-1).  Detectors whose ``_uses_labels`` is True get ``fit(X, y)``; the
     others are fitted unsupervised, as baselines.  The labelled anomalies
     for a smaller budget are a subset of those for a larger one (one
     permutation, first *k*).

   All settings score the same test part; ROC-AUC and average precision
   (AUC-PR) are computed from the test labels, which the detector never
   sees.
7. **Supervised peers.**  A class with ``predict_proba`` and no
   ``decision_function`` (``xgboost.XGBClassifier``,
   ``sklearn.ensemble.RandomForestClassifier``), or any scikit-learn
   classifier that is not an anomaly detector, is a supervised peer.  It
   runs in the ``weak`` setting only.  The weak protocol labels anomalies
   only, so a classifier -- which needs two classes -- is fitted on all
   train rows with the labelled anomalies as 1 and the unlabelled rows as 0
   ("unlabelled counts as normal", ADBench's convention); its score is the
   predicted probability of class 1.
8. **Timing.**  Fit seconds time ``fit`` alone, in a fresh process per run.
   One-time per-process costs are paid before the clock starts, for every
   detector alike: the detector's module is imported and, when torch is
   loaded, one optimiser step is taken on a one-element parameter (torch
   imports its compiler stack on the first ``optimizer.step()`` of a
   process, 1.5-2 s of CPU here, which would otherwise be billed to the
   first fit and swamp small data sets).

Detector specs (naming, building and scoring a detector) live in
:mod:`deepad.bench.specs` and :class:`BenchmarkError` in
:mod:`deepad.bench.errors`; both are re-exported here.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# BenchmarkError and the detector specs are defined in their own modules and re-exported here
from deepad.bench.errors import BenchmarkError
from deepad.bench.specs import (
    DetectorSpec,
    anomaly_scores,
    build_estimator,
    estimator_kind,
    parse_detectors,
    resolve_detector_class,
)
from deepad.bench.specs import _class_path, _param_names, _split_top_level  # noqa: F401 - old private names

__all__ = [
    "BenchmarkError",
    "PROTOCOL_VERSION",
    "SETTINGS",
    "DEFAULT_MAX_ROWS",
    "TEST_SIZE",
    "DatasetRef",
    "Split",
    "LabelledSpec",
    "DetectorSpec",
    "find_datasets",
    "load_dataset",
    "split_seeds",
    "subsample",
    "make_split",
    "minmax_fit",
    "minmax_apply",
    "parse_labelled",
    "weak_labels",
    "parse_detectors",
    "parse_seeds",
    "parse_settings",
    "resolve_detector_class",
    "build_estimator",
    "estimator_kind",
    "fit_inputs",
    "anomaly_scores",
]

PROTOCOL_VERSION = 1
SETTINGS = ("unsupervised", "oneclass", "weak")
DEFAULT_MAX_ROWS = 10_000
TEST_SIZE = 0.3
DATA_SUFFIXES = (".npz", ".csv", ".parquet", ".pq")


# --------------------------------------------------------------------------- data sets
@dataclass(frozen=True)
class DatasetRef:
    """A data file and the name its results are filed under (the file stem)."""

    name: str
    path: Path
    label: str = "label"


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def find_datasets(paths: Iterable[str | Path], label: str = "label") -> list[DatasetRef]:
    """Expand files and folders into data-set references; cheap checks only (no data read).

    Folders contribute every ``.npz``/``.csv``/``.parquet`` file directly in
    them, in natural order (``2_x`` before ``10_x``).  Two files with the same
    stem would mix their results, so that is an error.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    refs: list[DatasetRef] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                (f for f in p.iterdir() if f.is_file() and f.suffix.lower() in DATA_SUFFIXES),
                key=lambda f: _natural_key(f.stem),
            )
            if not files:
                raise BenchmarkError(f"folder {str(p)!r} holds no .npz, .csv or .parquet files.")
        elif p.is_file():
            if p.suffix.lower() not in DATA_SUFFIXES:
                raise BenchmarkError(
                    f"{str(p)!r}: unsupported file type {p.suffix!r}; "
                    "use an ADBench .npz (X, y) or a CSV/Parquet file with a label column."
                )
            files = [p]
        else:
            raise BenchmarkError(f"data path {str(p)!r} does not exist.")
        refs.extend(DatasetRef(f.stem, f, label) for f in files)
    if not refs:
        raise BenchmarkError("no data sets given.")
    seen: dict[str, Path] = {}
    for r in refs:
        if r.name in seen:
            raise BenchmarkError(
                f"two data files are both named {r.name!r} ({seen[r.name]} and {r.path}); "
                "results are filed by name, so rename one."
            )
        seen[r.name] = r.path
    for r in refs:
        if r.path.suffix.lower() == ".npz":
            try:
                with np.load(r.path, allow_pickle=False) as z:
                    missing = [k for k in ("X", "y") if k not in z.files]
            except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing data error
                raise BenchmarkError(f"{r.path}: cannot read as .npz ({exc}).") from None
            if missing:
                raise BenchmarkError(f"{r.path}: an ADBench .npz needs arrays 'X' and 'y'; missing {missing}.")
    return refs


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.dtype == bool:
        y = y.astype(np.int64)
    if y.dtype.kind not in "biuf":
        raise BenchmarkError(f"{where}: labels must be 0 (normal) / 1 (anomaly), got dtype {y.dtype}.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise BenchmarkError(f"{where}: labels contain NaN or infinity.")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise BenchmarkError(
            f"{where}: labels must be 0 (normal) / 1 (anomaly); found {sorted(np.unique(y[bad]).tolist())[:5]}."
        )
    return y.astype(np.int64)


def load_dataset(ref: DatasetRef) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(X, y)`` as float64 / int64 arrays with a message naming any problem."""
    path, where = ref.path, str(ref.path)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            X, y = np.asarray(z["X"]), np.asarray(z["y"])
        if X.ndim != 2:
            raise BenchmarkError(f"{where}: X must be 2-D, got shape {X.shape}.")
        if X.dtype.kind not in "biuf":
            raise BenchmarkError(f"{where}: X has non-numeric dtype {X.dtype}.")
        X = X.astype(np.float64)
        if not np.isfinite(X).all():
            r, c = (int(v[0]) for v in np.nonzero(~np.isfinite(X)))
            raise BenchmarkError(
                f"{where}: X contains NaN or infinity (first at row {r}, column {c}); impute it first."
            )
    else:
        import pandas as pd

        try:
            df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001
            raise BenchmarkError(f"{where}: cannot read ({exc}).") from None
        if ref.label not in df.columns:
            raise BenchmarkError(
                f"{where}: no label column {ref.label!r} (columns: {list(map(str, df.columns))[:20]}); "
                "name it with --label."
            )
        y = df.pop(ref.label).to_numpy()
        bad = [
            f"{c!r} ({df[c].dtype})"
            for c in df.columns
            if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
        ]
        if bad:
            raise BenchmarkError(
                f"{where}: non-numeric columns {', '.join(bad[:10])}; the benchmark takes numeric "
                "features only for now -- encode or drop them first."
            )
        if df.shape[1] == 0:
            raise BenchmarkError(f"{where}: no feature columns besides the label {ref.label!r}.")
        X = df.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(X).all():
            cols = [str(df.columns[j]) for j in np.flatnonzero(~np.isfinite(X).all(axis=0))]
            raise BenchmarkError(f"{where}: missing or infinite values in columns {cols[:10]}; impute them first.")
    y = _check_labels(y, where)
    if len(y) != len(X):
        raise BenchmarkError(f"{where}: X has {len(X)} rows but y has {len(y)}.")
    return np.ascontiguousarray(X), y


# --------------------------------------------------------------------------- seeds, subsample, split
def split_seeds(dataset: str, seed: int) -> tuple[int, int, int]:
    """Three independent integer seeds (subsample, split, labelled anomalies) from the seed and the name only.

    ``crc32`` (not Python's salted ``hash``) keeps them equal across
    processes and machines.
    """
    ss = np.random.SeedSequence([int(seed), zlib.crc32(dataset.encode("utf-8"))])
    return tuple(int(child.generate_state(1)[0]) for child in ss.spawn(3))  # type: ignore[return-value]


def _check_stratifiable(y: np.ndarray, where: str) -> None:
    n_anom = int(y.sum())
    if n_anom < 2 or len(y) - n_anom < 2:
        raise BenchmarkError(
            f"{where}: {n_anom} anomalies and {len(y) - n_anom} normal rows; a stratified split "
            "needs at least 2 of each."
        )


def subsample(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a stratified sample of ``max_rows`` rows, or None when no subsampling is needed."""
    if max_rows is None or len(y) <= max_rows:
        return None
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=int(max_rows), stratify=y, random_state=seed)
    return np.sort(idx)


def minmax_fit(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    return lo, np.where(span > 0, span, 1.0)


def minmax_apply(X: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Min-max transform, deliberately *not* clipped to [0, 1] (see the module docstring)."""
    return np.ascontiguousarray((X - lo) / span)


@dataclass
class Split:
    """One (data set, seed) split, scaled; identical for every detector."""

    dataset: str
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_rows: int  # rows before subsampling
    subsampled: bool
    label_seed: int = field(repr=False, default=0)


def make_split(
    X: np.ndarray,
    y: np.ndarray,
    dataset: str,
    seed: int,
    *,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    test_size: float = TEST_SIZE,
) -> Split:
    """Subsample, split (stratified) and min-max scale one data set for one seed."""
    from sklearn.model_selection import train_test_split

    if max_rows is not None and int(max_rows) < 10:
        raise BenchmarkError(f"max_rows must be at least 10, got {max_rows}.")
    _check_stratifiable(y, dataset)
    n_rows = len(y)
    s_sub, s_split, s_lab = split_seeds(dataset, seed)
    idx = subsample(y, max_rows, s_sub)
    if idx is not None:
        X, y = X[idx], y[idx]
        _check_stratifiable(y, f"{dataset} after subsampling to {max_rows} rows")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=y, random_state=s_split)
    lo, span = minmax_fit(X_tr)
    return Split(
        dataset,
        int(seed),
        minmax_apply(X_tr, lo, span),
        y_tr.astype(np.int64),
        minmax_apply(X_te, lo, span),
        y_te.astype(np.int64),
        n_rows=n_rows,
        subsampled=idx is not None,
        label_seed=s_lab,
    )


# --------------------------------------------------------------------------- weak supervision
@dataclass(frozen=True)
class LabelledSpec:
    """How many train anomalies the weak setting labels: a fraction or a count."""

    kind: str  # "frac" or "count"
    value: float

    def __str__(self) -> str:
        return f"frac={self.value:g}" if self.kind == "frac" else f"count={int(self.value)}"

    @property
    def title(self) -> str:
        return (
            f"{self.value:.0%} of train anomalies labelled"
            if self.kind == "frac"
            else f"{int(self.value)} train anomalies labelled"
        )

    @classmethod
    def parse(cls, text: str) -> "LabelledSpec":
        kind, _, value = str(text).partition("=")
        if kind == "frac":
            return cls("frac", float(value))
        if kind == "count":
            return cls("count", int(value))
        raise BenchmarkError(f"labelled spec {text!r} must look like 'frac=0.05' or 'count=5'.")

    def n_labelled(self, n_anomalies: int) -> int:
        k = int(round(self.value * n_anomalies)) if self.kind == "frac" else int(self.value)
        return max(1, min(k, n_anomalies))


def _split_list(text: str | Sequence | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, str):
        return [t.strip() for t in text.split(",") if t.strip()]
    return [str(t).strip() for t in text]


def parse_labelled(
    fractions: str | Sequence[float] | None = None, counts: str | Sequence[int] | None = None
) -> list[LabelledSpec]:
    """``--labelled 0.01,0.05`` and ``--labelled-count 5,10`` to specs; default ``frac=0.05``."""
    specs: list[LabelledSpec] = []
    for t in _split_list(fractions):
        try:
            v = float(t)
        except ValueError:
            raise BenchmarkError(f"--labelled takes fractions like 0.01,0.05; got {t!r}.") from None
        if not 0 < v <= 1:
            raise BenchmarkError(f"--labelled fractions must be in (0, 1]; got {t}.")
        specs.append(LabelledSpec("frac", v))
    for t in _split_list(counts):
        try:
            v = int(t)
        except ValueError:
            raise BenchmarkError(f"--labelled-count takes whole numbers like 5,10; got {t!r}.") from None
        if v < 1:
            raise BenchmarkError(f"--labelled-count must be at least 1; got {t}.")
        specs.append(LabelledSpec("count", v))
    if not specs:
        specs = [LabelledSpec("frac", 0.05)]
    return list(dict.fromkeys(specs))


def weak_labels(y_train: np.ndarray, spec: LabelledSpec, label_seed: int) -> np.ndarray:
    """``-1`` everywhere except the chosen labelled anomalies (``1``)."""
    anomalies = np.flatnonzero(y_train == 1)
    order = np.random.default_rng(label_seed).permutation(anomalies)
    y_weak = np.full(len(y_train), -1, dtype=np.int64)
    y_weak[order[: spec.n_labelled(len(anomalies))]] = 1
    return y_weak


# --------------------------------------------------------------------------- options
def parse_seeds(seeds: int | str | Sequence[int]) -> list[int]:
    """``3`` -> [0, 1, 2]; ``"0,5"`` or ``[0, 5]`` -> that list (duplicates dropped).

    The one seed parser of the table, image and NAB benchmarks.  A count
    must be at least 1: ``0`` (or an empty list) is an error, never a run
    of nothing.
    """
    if isinstance(seeds, str):
        try:
            vals = [int(p) for p in _split_list(seeds)]
        except ValueError:
            raise BenchmarkError(f"--seeds takes a count (3) or a list (0,1,2); got {seeds!r}.") from None
        seeds = vals if "," in seeds else (vals[0] if vals else 0)
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise BenchmarkError(
                f"seeds={seeds} gives no seeds: the number of seeds must be at least 1 "
                "(3 = seeds 0, 1, 2), or give a list such as 0,5."
            )
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise BenchmarkError(f"seeds={seeds!r} gives no seeds; give a number of seeds >= 1 or a non-empty list.")
    if any(v < 0 for v in out):
        raise BenchmarkError(f"seeds must be a non-empty list of non-negative integers; got {seeds!r}.")
    return list(dict.fromkeys(out))


def parse_settings(setting: str | Sequence[str]) -> list[str]:
    names = _split_list(setting)
    bad = [s for s in names if s not in SETTINGS]
    if bad or not names:
        raise BenchmarkError(f"setting must be one of {', '.join(SETTINGS)}; got {setting!r}.")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- settings: what a detector is fitted on
def fit_inputs(
    setting: str, kind: str, uses_labels: bool, X_train: np.ndarray, y_train: np.ndarray, y_weak: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(X, y)`` a detector is fitted on in each setting (``y`` None: fitted without labels)."""
    if setting not in SETTINGS:
        raise BenchmarkError(f"setting must be one of {SETTINGS}; got {setting!r}.")
    if kind == "peer":
        if setting != "weak":
            raise BenchmarkError(
                f"a supervised classifier needs labels and runs in the weak setting only, not {setting!r}."
            )
        return X_train, (y_weak == 1).astype(np.int64)
    if setting == "oneclass":
        return X_train[y_train == 0], None
    if setting == "weak" and uses_labels:
        if y_weak is None:
            raise BenchmarkError("weak setting without weak labels.")
        return X_train, y_weak
    return X_train, None
