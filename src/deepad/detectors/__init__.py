"""All detectors, importable by class name.  ``DEFAULT`` names the recommended one."""

from deepad.detectors.autoencoder import AutoEncoder

DEFAULT = AutoEncoder

__all__ = ["AutoEncoder", "DEFAULT"]
