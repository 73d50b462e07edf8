"""All detectors, importable by class name.  ``DEFAULT`` names the recommended one."""

from deepad.detectors.autoencoder import AutoEncoder
from deepad.detectors.classical import KNN, LOF, PCA, IsolationForest, Mahalanobis, OneClassSVM
from deepad.detectors.ecod import ECOD
from deepad.detectors.pyod_adapter import PyODDetector
from deepad.detectors.deep_sad import DeepSAD
from deepad.detectors.devnet import DevNet
from deepad.detectors.deep_svdd import DeepSVDD
from deepad.detectors.vae import VAE
from deepad.detectors.dagmm import DAGMM
from deepad.detectors.alad import ALAD

DEFAULT = AutoEncoder

__all__ = ["AutoEncoder", "IsolationForest", "KNN", "LOF", "OneClassSVM", "PCA", "Mahalanobis", "ECOD",
           "PyODDetector", "DeepSAD", "DevNet", "DeepSVDD", "VAE", "DAGMM", "ALAD", "DEFAULT"]
