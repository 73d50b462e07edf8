"""All detectors, importable by class name.  ``DEFAULT`` names the recommended one.

:func:`detector_class` is the one lookup by name (case-insensitive) that
the commands, the benchmarks and the tuner use.

Detectors are imported lazily (PEP 562): ``from deepad.detectors import KNN``
loads scikit-learn but not torch, so classical detectors, the CLI and
benchmark child processes start in a fraction of a second instead of paying
torch's import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: class name -> module that defines it
_WHERE = {
    "AutoEncoder": "autoencoder",
    "VAE": "vae",
    "DeepSVDD": "deep_svdd",
    "DAGMM": "dagmm",
    "ALAD": "alad",
    "DeepSAD": "deep_sad",
    "DevNet": "devnet",
    "BoostedDetector": "boosted",
    "IsolationForest": "classical",
    "KNN": "classical",
    "LOF": "classical",
    "OneClassSVM": "classical",
    "PCA": "classical",
    "Mahalanobis": "classical",
    "ECOD": "ecod",
    "HBOS": "hbos",
    "DeepIsolationForest": "dif",
    "KDSM": "kdsm",
    "LocalGlobalEnsemble": "ensemble",
    "PyODDetector": "pyod_adapter",
    "RollingZScore": "series",
    "GRUForecaster": "series",
    "TCNAutoEncoder": "series",
    "ConformalKNN": "series",
    "LikelihoodKNN": "series_knn",
    "OnlineForecaster": "series_online",
    "LikelihoodEnsemble": "series_ensemble",
    "MultiSeriesKNN": "series_multi",
    "ARTimeStream": "series_art",
    "ARTimeEnsemble": "series_art_ensemble",
    "ConvAutoEncoder": "images",
    "ConvVAE": "images",
    "ConvDeepSVDD": "images",
    "GANomaly": "gan",
}
#: the recommended detector's class name
_DEFAULT = "LocalGlobalEnsemble"

__all__ = [*_WHERE, "DEFAULT"]


def detector_class(name: str | None = None) -> type:
    """The detector class called ``name``, case-insensitive (``knn`` is ``KNN``); ``None`` or ``DEFAULT``: the default.

    Only the matching detector's module is imported.  ``ValueError`` for an
    unknown name, listing the known ones.
    """
    if name is None or str(name).strip().upper() == "DEFAULT":
        return __getattr__("DEFAULT")
    key = str(name).strip().lower()
    match = [n for n in _WHERE if n.lower() == key]
    if not match:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(_WHERE)}")
    return __getattr__(match[0])


def image_detector_names() -> list[str]:
    """Names of the detectors that take images (``(N, C, H, W)`` arrays), sorted."""
    return sorted(n for n in _WHERE if getattr(__getattr__(n), "_image_input", False))


def __getattr__(name: str):
    if name == "DEFAULT":
        name = _DEFAULT
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'deepad.detectors' has no attribute {name!r}")
    cls = getattr(importlib.import_module(f"deepad.detectors.{module}"), name)
    globals()[name] = cls
    return cls


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs (the names are the lazy exports above)
    from deepad.detectors.alad import ALAD  # noqa: F401
    from deepad.detectors.autoencoder import AutoEncoder  # noqa: F401
    from deepad.detectors.classical import KNN, LOF, PCA, IsolationForest, Mahalanobis, OneClassSVM  # noqa: F401
    from deepad.detectors.dagmm import DAGMM  # noqa: F401
    from deepad.detectors.deep_sad import DeepSAD  # noqa: F401
    from deepad.detectors.deep_svdd import DeepSVDD  # noqa: F401
    from deepad.detectors.devnet import DevNet  # noqa: F401
    from deepad.detectors.dif import DeepIsolationForest  # noqa: F401
    from deepad.detectors.ecod import ECOD  # noqa: F401
    from deepad.detectors.gan import GANomaly  # noqa: F401
    from deepad.detectors.kdsm import KDSM  # noqa: F401
    from deepad.detectors.ensemble import LocalGlobalEnsemble  # noqa: F401
    from deepad.detectors.hbos import HBOS  # noqa: F401
    from deepad.detectors.images import ConvAutoEncoder, ConvDeepSVDD, ConvVAE  # noqa: F401
    from deepad.detectors.pyod_adapter import PyODDetector  # noqa: F401
    from deepad.detectors.series import ConformalKNN, GRUForecaster, RollingZScore, TCNAutoEncoder  # noqa: F401
    from deepad.detectors.series_knn import LikelihoodKNN  # noqa: F401
    from deepad.detectors.series_online import OnlineForecaster  # noqa: F401
    from deepad.detectors.series_ensemble import LikelihoodEnsemble  # noqa: F401
    from deepad.detectors.series_multi import MultiSeriesKNN  # noqa: F401
    from deepad.detectors.series_art import ARTimeStream  # noqa: F401
    from deepad.detectors.series_art_ensemble import ARTimeEnsemble  # noqa: F401
    from deepad.detectors.vae import VAE  # noqa: F401

    DEFAULT = LocalGlobalEnsemble
