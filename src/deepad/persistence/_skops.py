"""The types a deepad ``.skops`` file may hold, and saving with skops only what loading will accept."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SKOPS_TRUSTED_TYPES", "skops_dumps", "skops_untrusted"]


#: The exact types (never a prefix, never a function) that a deepad ``.skops`` file may hold beyond what skops
#: itself trusts (scikit-learn estimators, NumPy/SciPy ufuncs and dtypes, builtin containers).  They are the
#: types that the fitted scikit-learn estimators of deepad's classical detectors and of the PyOD models that
#: :class:`~deepad.detectors.PyODDetector` can save actually contain (tests/unit/test_crafted_models.py).
_SKOPS_TREES = ("sklearn.tree._tree.Tree", "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree")
_SKOPS_METRICS = tuple(
    f"sklearn.metrics._dist_metrics.{m}Distance{bits}"
    for bits in ("64", "32")
    for m in (
        "Euclidean",
        "SEuclidean",
        "Manhattan",
        "Chebyshev",
        "Minkowski",
        "Mahalanobis",
        "Hamming",
        "Canberra",
        "BrayCurtis",
        "Jaccard",
        "Matching",
        "Dice",
        "RogersTanimoto",
        "RussellRao",
        "SokalMichener",
        "SokalSneath",
        "Haversine",
    )
)
_SKOPS_PYOD = tuple(
    f"pyod.models.{m}"
    for m in (
        "iforest.IForest",
        "knn.KNN",
        "lof.LOF",
        "pca.PCA",
        "ocsvm.OCSVM",
        "mcd.MCD",
        "ecod.ECOD",
        "hbos.HBOS",
        "copod.COPOD",
        "cblof.CBLOF",
    )
)
SKOPS_TRUSTED_TYPES = frozenset(_SKOPS_TREES + _SKOPS_METRICS + _SKOPS_PYOD)


def skops_untrusted(*, data: bytes | None = None, file: Path | None = None) -> list[str]:
    """The types in ``file`` that neither skops nor :data:`SKOPS_TRUSTED_TYPES` trusts (empty: safe to load)."""
    import skops.io as sio

    return [t for t in sio.get_untrusted_types(data=data, file=file) if t not in SKOPS_TRUSTED_TYPES]


def skops_dumps(detector, name: str, value) -> bytes:
    """Serialise with skops, refusing *now* what :func:`load` would refuse later (types off the trusted list)."""
    import skops.io as sio

    what = f"{type(detector).__name__}.{name} ({type(value).__name__})"
    try:
        data = sio.dumps(value)
        bad = skops_untrusted(data=data)
    except Exception as exc:  # skops raises many types for objects it cannot represent
        raise TypeError(
            f"{what} cannot be saved: skops cannot serialise it ({exc}); deepad never saves with pickle."
        ) from None
    if bad:
        raise TypeError(
            f"{what} cannot be saved: it holds types that deepad would refuse to load "
            f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); deepad never saves with pickle."
        )
    return data
