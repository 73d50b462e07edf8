"""All detectors, importable by class name.  ``DEFAULT`` names the recommended one.

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
    "LocalGlobalEnsemble": "ensemble",
    "PyODDetector": "pyod_adapter",
    "RollingZScore": "series",
    "GRUForecaster": "series",
    "TCNAutoEncoder": "series",
    "ConformalKNN": "series",
    "ConvAutoEncoder": "images",
    "ConvVAE": "images",
    "ConvDeepSVDD": "images",
    "GANomaly": "gan",
}
#: the recommended detector's class name
_DEFAULT = "LocalGlobalEnsemble"

__all__ = [*_WHERE, "DEFAULT"]


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


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from deepad.detectors.alad import ALAD
    from deepad.detectors.autoencoder import AutoEncoder
    from deepad.detectors.classical import KNN, LOF, PCA, IsolationForest, Mahalanobis, OneClassSVM
    from deepad.detectors.dagmm import DAGMM
    from deepad.detectors.deep_sad import DeepSAD
    from deepad.detectors.deep_svdd import DeepSVDD
    from deepad.detectors.devnet import DevNet
    from deepad.detectors.dif import DeepIsolationForest
    from deepad.detectors.ecod import ECOD
    from deepad.detectors.gan import GANomaly
    from deepad.detectors.ensemble import LocalGlobalEnsemble
    from deepad.detectors.hbos import HBOS
    from deepad.detectors.images import ConvAutoEncoder, ConvDeepSVDD, ConvVAE
    from deepad.detectors.pyod_adapter import PyODDetector
    from deepad.detectors.series import ConformalKNN, GRUForecaster, RollingZScore, TCNAutoEncoder
    from deepad.detectors.vae import VAE

    DEFAULT = LocalGlobalEnsemble
