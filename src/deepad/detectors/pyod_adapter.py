"""Use any PyOD detector wherever a deepad detector is expected.

PyOD is optional: this module imports it only inside :meth:`PyODDetector.fit`,
so ``import deepad`` works without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepad.base import BaseDetector
from deepad.persistence import pyod_class, require_pyod

__all__ = ["PyODDetector"]


class PyODDetector(BaseDetector):
    """Adapter that gives a PyOD detector the deepad contract.

    ``PyODDetector(detector=pyod.models.iforest.IForest(n_estimators=200))``
    or ``PyODDetector("pyod.models.knn.KNN", params={"n_neighbors": 10})``.
    The wrapped detector is cloned at ``fit`` (the template passed in is
    never fitted), so the adapter behaves like any scikit-learn estimator:
    ``clone``, grid search, deepad thresholds, conformal p-values and
    saving all work.

    Paper and scoring rule: those of the wrapped PyOD detector -- the score
    is its ``decision_function`` (PyOD's convention, higher = more
    anomalous, is deepad's).  PyOD itself: Zhao, Nasrullah & Li, "PyOD: A
    Python Toolbox for Scalable Outlier Detection" (JMLR 2019).

    Why an adapter: to compare deepad's detectors with PyOD's on equal terms
    (same validation, thresholds, p-values and persistence) and to use
    PyOD models inside deepad pipelines.

    Training scores.  ``decision_scores_`` (and so thresholds, ``labels_``
    and p-values) are the wrapped detector's own ``decision_scores_`` --
    for memorising detectors such as PyOD's ``KNN`` and ``LOF`` these are
    leave-one-out scores, which is how new rows are scored, and differ from
    ``decision_function(X_train)`` -- exactly as in PyOD.

    Seeding.  If the wrapped detector has a ``random_state`` parameter left
    at ``None``, it gets the seed resolved from this adapter's
    ``random_state``; an explicit value on the wrapped detector wins.
    ``contamination`` is copied to the wrapped detector (it only affects
    PyOD's own ``labels_``).

    Caveats.  Scores are only as deterministic as the wrapped detector's:
    PyOD's ``ECOD`` and ``COPOD`` re-estimate their ECDFs on training +
    query rows, so a row's score depends on the batch it is scored in (use
    :class:`deepad.detectors.ECOD`).  Saving goes through skops, never
    pickle: it works when every type in the fitted PyOD object is on
    deepad's trusted list (PyOD, scikit-learn, NumPy, SciPy) -- e.g. IForest,
    KNN, LOF, PCA, OCSVM, MCD, ECOD -- and saving refuses other models
    (e.g. PyOD's torch-based detectors) with a ``TypeError`` naming the
    types, before anything is written.  The unfitted ``detector`` template
    is saved as its class path and parameters; loading imports only
    ``pyod.*`` detector classes.
    """

    #: The contract suite cannot build this class without a wrapped detector (and PyOD).
    _needs_wrapped = True

    def __init__(
        self, detector: Any = None, params: dict | None = None, *, contamination: float = 0.1, random_state=None
    ):
        self.detector = detector
        self.params = params
        self.contamination = contamination
        self.random_state = random_state

    def _make_detector(self):
        from sklearn.base import clone

        if self.detector is None:
            raise ValueError(
                "PyODDetector needs a detector: an instance such as pyod.models.iforest.IForest() "
                "or a class path such as 'pyod.models.knn.KNN'."
            )
        if self.params is not None and not isinstance(self.params, dict):
            raise TypeError(
                f"params must be a dict of the PyOD detector's parameters, got {type(self.params).__name__}."
            )
        params = dict(self.params or {})
        if isinstance(self.detector, str):
            try:
                return pyod_class(self.detector)(**params)
            except TypeError as exc:
                raise TypeError(f"params do not fit {self.detector}: {exc}") from None
        require_pyod()
        if isinstance(self.detector, type):
            raise TypeError(
                f"detector must be a PyOD detector instance or a class path string, not the class "
                f"{self.detector.__name__}; write {self.detector.__name__}() instead."
            )
        if not (
            callable(getattr(self.detector, "fit", None))
            and callable(getattr(self.detector, "decision_function", None))
        ):
            raise TypeError(
                f"detector must have fit and decision_function (a PyOD detector), got {type(self.detector).__name__}."
            )
        est = clone(self.detector)
        if params:
            est.set_params(**params)
        return est

    def _fit(self, X, y, seed, **fit_params):
        est = self._make_detector()
        own = est.get_params(deep=False) if hasattr(est, "get_params") else {}
        update = {}
        if "random_state" in own and own["random_state"] is None:
            update["random_state"] = seed
        if "contamination" in own:
            update["contamination"] = self.contamination
        if update:
            est.set_params(**update)
        est.fit(X, **fit_params)
        self.detector_ = est

    def _score(self, X):
        return np.asarray(self.detector_.decision_function(X), dtype=np.float64).ravel()

    def _training_reference_scores(self, X):
        own = getattr(self.detector_, "decision_scores_", None)
        if own is not None:
            own = np.asarray(own, dtype=np.float64).ravel()
            if own.shape == (X.shape[0],) and np.isfinite(own).all():
                return own
        return self.decision_scores_

    def training_scores_kind(self) -> str:
        if getattr(getattr(self, "detector_", None), "decision_scores_", None) is not None:
            return f"training scores {type(self.detector_).__name__} reports (PyOD's decision_scores_)"
        return self._training_scores_kind
