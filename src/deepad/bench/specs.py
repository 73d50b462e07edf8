"""Detector specs of ``deepad bench``: naming a detector, building it for a run and reading its scores.

A detector is a deepad class name, a dotted class path or ``module:QualName``
plus JSON parameters (:class:`DetectorSpec`); :func:`build_estimator` fills in
the run's seed and thread count, :func:`estimator_kind` tells an anomaly
detector from a supervised peer (protocol item 7 of :mod:`deepad.bench.protocol`)
and :func:`anomaly_scores` reads either's scores.  Re-exported by
:mod:`deepad.bench.protocol`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepad.bench.errors import BenchmarkError

__all__ = [
    "DetectorSpec",
    "parse_detectors",
    "resolve_detector_class",
    "build_estimator",
    "estimator_kind",
    "anomaly_scores",
]


@dataclass(frozen=True)
class DetectorSpec:
    """A detector: a deepad class name, a dotted class path or ``module:QualName``, plus JSON params.

    String syntax: ``Name`` or ``Name:{"param": value}``, e.g.
    ``AutoEncoder:{"epochs": 50}`` or ``pyod.models.knn.KNN:{"n_neighbors": 10}``.
    """

    name: str
    params_json: str = ""

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json) if self.params_json else {}

    @property
    def label(self) -> str:
        """Short display name: ``AutoEncoder``, ``pyod.KNN``, ``xgboost.XGBClassifier``, plus params."""
        name = self.name.replace(":", ".")
        parts = name.split(".")
        short = parts[-1] if len(parts) == 1 or name.startswith("deepad.") else f"{parts[0]}.{parts[-1]}"
        return short + (self.params_json if self.params_json not in ("", "{}") else "")

    def __str__(self) -> str:
        return self.name + (f":{self.params_json}" if self.params_json else "")

    @classmethod
    def make(cls, name: str, params: dict | None = None) -> "DetectorSpec":
        if params is not None and not isinstance(params, dict):
            raise BenchmarkError(f"params of detector {name!r} must be a JSON object, got {type(params).__name__}.")
        try:
            pj = json.dumps(params, sort_keys=True, separators=(",", ":")) if params else ""
        except TypeError as exc:
            raise BenchmarkError(f"params of detector {name!r} must be JSON-serialisable ({exc}).") from None
        return cls(str(name).strip(), pj)

    @classmethod
    def parse(cls, text: str) -> "DetectorSpec":
        text = text.strip()
        brace = text.find("{")
        if brace < 0:
            name, params = text, None
        else:
            name = text[:brace].rstrip().rstrip(":")
            try:
                params = json.loads(text[brace:])
            except json.JSONDecodeError as exc:
                raise BenchmarkError(
                    f'detector {text!r}: params are not valid JSON ({exc.msg}); write e.g. KNN:{{"n_neighbors": 10}}.'
                ) from None
        if not name:
            raise BenchmarkError(f"detector {text!r} has no class name.")
        return cls.make(name, params)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside braces, brackets and JSON strings."""
    parts, depth, in_str, esc, cur = [], 0, False, False, []
    for ch in text:
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_detectors(detectors) -> list[DetectorSpec]:
    """Detectors from a comma-separated string, or a list of strings, classes, specs or ``(name, params)`` pairs."""
    if detectors is None:
        raise BenchmarkError("no detectors given.")
    items = (
        _split_top_level(detectors)
        if isinstance(detectors, str)
        else list(detectors)
        if isinstance(detectors, (list, tuple))
        else [detectors]
    )
    specs: list[DetectorSpec] = []
    for item in items:
        if isinstance(item, DetectorSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(DetectorSpec.parse(item))
        elif isinstance(item, type):
            specs.append(DetectorSpec.make(_class_path(item)))
        elif isinstance(item, tuple) and len(item) == 2:
            name = _class_path(item[0]) if isinstance(item[0], type) else str(item[0])
            specs.append(DetectorSpec.make(name, item[1]))
        else:
            raise BenchmarkError(f"cannot read detector {item!r}; give a name, a class, or (name, params).")
    if not specs:
        raise BenchmarkError("no detectors given.")
    dup = [str(s) for s in specs if specs.count(s) > 1]
    if dup:
        raise BenchmarkError(f"detector listed twice: {dup[0]}.")
    return specs


def _class_path(cls: type) -> str:
    mod = cls.__module__
    if mod == "__main__" or "<locals>" in cls.__qualname__:
        raise BenchmarkError(
            f"{cls.__qualname__} is defined in __main__ or inside a function; benchmark runs "
            "import detectors in a child process, so define it in an importable module."
        )
    try:
        import deepad.detectors as D

        if getattr(D, cls.__name__, None) is cls:
            return cls.__name__
    except ImportError:  # pragma: no cover
        pass
    return f"{mod}:{cls.__qualname__}"


def resolve_detector_class(name: str) -> type:
    """The class behind a detector name; raises :class:`BenchmarkError` with a hint if it cannot be found."""
    if ":" in name:
        module_name, _, qual = name.partition(":")
    elif "." in name:
        module_name, _, qual = name.rpartition(".")
    else:
        import deepad.detectors as D

        try:
            return D.detector_class(name)  # case-insensitive, as deepad train -d
        except ValueError:
            known = ", ".join(n for n in D.__all__ if n != "DEFAULT")
            raise BenchmarkError(
                f"unknown deepad detector {name!r}; choose one of: {known}, DEFAULT -- or give a "
                "class path such as pyod.models.iforest.IForest."
            ) from None
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        root = module_name.split(".")[0]
        hint = (
            " (PyOD is optional: pip install pyod tqdm, or pip install 'deepad[bench]')"
            if root == "pyod"
            else f" (is {root} installed?)"
        )
        raise BenchmarkError(f"detector {name!r}: cannot import {module_name!r}: {exc}{hint}.") from None
    for attr in qual.split("."):
        obj = getattr(obj, attr, None)
    if not isinstance(obj, type):
        raise BenchmarkError(f"detector {name!r}: {module_name} has no class {qual!r}.")
    return obj


def estimator_kind(est: Any) -> str:
    """``"detector"`` (scored by ``decision_function``) or ``"peer"`` (a supervised classifier, scored by P(class 1))."""
    has_df = callable(getattr(est, "decision_function", None))
    has_proba = callable(getattr(est, "predict_proba", None))
    if has_proba and not has_df:
        return "peer"
    mods = {c.__module__.split(".")[0] for c in type(est).__mro__}
    if "sklearn.base" in sys.modules and not mods & {"deepad", "pyod"}:
        from sklearn.base import is_classifier

        try:
            classifier = is_classifier(est)
        except Exception:  # noqa: BLE001 - recent scikit-learn raises for non-BaseEstimator objects
            classifier = False
        if classifier:
            return "peer"
    if not has_df:
        raise BenchmarkError(
            f"{type(est).__name__} has neither decision_function nor predict_proba; it cannot be scored."
        )
    return "detector"


def _param_names(est: Any, cls: type) -> set[str]:
    """The constructor's parameter names: ``get_params`` plus the signature (CatBoost's lists only those set)."""
    names: set[str] = set()
    if callable(getattr(est, "get_params", None)):
        try:
            names = set(est.get_params(deep=False))
        except Exception:  # noqa: BLE001 - fall back to the signature
            pass
    try:
        names |= {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
    except (TypeError, ValueError):  # pragma: no cover - builtins / extension types
        pass
    return names


def build_estimator(
    cls: type, params: dict[str, Any], *, seed: int, threads: int, n_features: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Instantiate ``cls(**params)`` and fill in, unless the user set them: ``random_state=seed``, and
    ``n_threads`` (deepad) / ``n_jobs`` (PyOD, scikit-learn, XGBoost) / ``thread_count`` (CatBoost) ``= threads``; a *required*
    ``n_features`` argument (PyOD's DeepSVDD has one) gets the data's feature count.

    Returns the estimator and the parameters that were filled in.
    """
    try:
        sig = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins / extension types
        sig = {}
    if sig and not any(p.kind is p.VAR_KEYWORD for p in sig.values()):
        unknown = set(params) - set(sig)
        if unknown:
            valid = sorted(p for p in sig if p != "self" and sig[p].kind is not sig[p].VAR_POSITIONAL)
            raise BenchmarkError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}; valid: {valid}.")
    inject = {}
    required_n_features = sig.get("n_features") if sig else None
    if (
        required_n_features is not None
        and required_n_features.default is inspect.Parameter.empty
        and "n_features" not in params
    ):
        inject["n_features"] = int(n_features)
        params = {**params, "n_features": int(n_features)}
    try:
        est = cls(**params)
    except (TypeError, ValueError) as exc:
        raise BenchmarkError(f"{cls.__name__}: bad params {params} ({exc}).") from None
    names = _param_names(est, cls)
    if "random_state" in names and "random_state" not in params:
        inject["random_state"] = int(seed)
    for key in ("n_threads", "n_jobs", "thread_count"):  # thread_count: CatBoost
        if key in names and key not in params:
            inject[key] = int(threads)
    late = {k: v for k, v in inject.items() if k != "n_features"}
    if late:
        if callable(getattr(est, "set_params", None)):
            est.set_params(**late)
        else:
            est = cls(**params, **late)
    return est, inject


def anomaly_scores(est: Any, kind: str, X: np.ndarray) -> np.ndarray:
    """Scores with higher = more anomalous: ``decision_function``, or P(class 1) for a peer."""
    if kind == "peer":
        proba = np.asarray(est.predict_proba(X))
        classes = list(getattr(est, "classes_", [0, 1]))
        col = classes.index(1) if 1 in classes else proba.shape[1] - 1
        return proba[:, col].astype(np.float64)
    return np.asarray(est.decision_function(X), dtype=np.float64).ravel()
