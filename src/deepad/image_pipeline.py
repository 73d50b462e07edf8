"""Detectors on raw images: :class:`~deepad.data.images.ImagePreprocessor` + an image detector, saved as one model.

The image analogue of :class:`deepad.pipeline.TabularDetector`::

    from deepad.image_pipeline import ImagePipeline
    from deepad.detectors import ConvAutoEncoder

    model = ImagePipeline(ConvAutoEncoder(), target_size=(64, 64)).fit("normal_parts/")   # a folder of PNG/JPEG
    model.decision_function("new_parts/")          # one score per image, sorted file order
    model.anomaly_map("new_parts/")                # (N, 64, 64): where each image is unusual
    model.save("parts-model/")                     # preprocessing (size, colour, channel statistics) included

Inputs: a folder (flat, or one sub-folder per class), an image file, a
``.npy``/``.npz``/MNIST idx path, an :class:`~deepad.data.images.ImageSet`,
a list of ``(H, W[, C])`` arrays, or an array ``(N, H, W)`` / ``(N, H, W, C)`` /
``(N, C, H, W)`` (integers are 8-bit pixels, floats are in [0, 1]).

Why a pipeline: the resize target, the colour mode and the per-channel
statistics are learned from the training images and must be applied
identically at scoring time, so they are part of the saved model (JSON in
``model.json``; the detector in ``detector_/``).

Scoring rule: the wrapped detector's score of the preprocessed image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from deepad.base import BaseDetector
from deepad.data.images import ImagePreprocessor, ImageSet, read_images

__all__ = ["ImagePipeline", "load_image_input"]


@dataclass
class _Images:
    """Validated raw images: a list of ``(H, W, C)`` float arrays (or one ``(N, C, H, W)`` array) and their names."""

    images: Any
    names: list[str]
    labels: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        first = self.images[0]
        return len(self.images), int(np.prod(first.shape))


def load_image_input(X: Any) -> _Images:
    """Read any supported image input into :class:`_Images` (paths are read with :func:`read_images`)."""
    if isinstance(X, _Images):
        return X
    if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        X = read_images(X)
    if isinstance(X, ImageSet):
        names = list(X.names) or [f"image {i}" for i in range(len(X))]
        return _Images(X.images, names, X.labels)
    if isinstance(X, np.ndarray):
        if X.ndim not in (3, 4):
            raise ValueError(f"images must be an array (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {X.shape}.")
        from deepad.data.images import as_images

        arr = as_images(X)
        return _Images(arr, [f"image {i}" for i in range(len(arr))])
    if isinstance(X, (list, tuple)):
        return _Images(list(X), [f"image {i}" for i in range(len(X))])
    raise TypeError(
        f"cannot read images from {type(X).__name__}; give a folder, a file, an ImageSet, a list of "
        "arrays or an array of images."
    )


class ImagePipeline(BaseDetector):
    """An image detector on raw images: resize / colour / standardise (fitted, saved), then ``detector``.

    Parameters
    ----------
    detector:
        an unfitted image detector (template, cloned at ``fit``); ``None``
        uses :class:`~deepad.detectors.ConvAutoEncoder`.
    target_size:
        ``(height, width)`` every image is resized to; ``None`` requires
        equal sizes in training (and resizes scoring images to the training size).
    color:
        ``"auto"``, ``"grey"`` or ``"rgb"`` (see :class:`~deepad.data.images.ImagePreprocessor`).
    standardize:
        per-channel standardisation with the training images' statistics.
    contamination:
        fraction of training images above the threshold.
    """

    _image_input = True

    def __init__(
        self,
        detector: BaseDetector | None = None,
        *,
        target_size: Sequence[int] | None = None,
        color: str = "auto",
        standardize: bool = True,
        contamination: float = 0.1,
    ):
        self.detector = detector
        self.target_size = target_size
        self.color = color
        self.standardize = standardize
        self.contamination = contamination

    def _template(self) -> BaseDetector:
        if self.detector is None:
            from deepad.detectors import ConvAutoEncoder

            return ConvAutoEncoder()
        if not isinstance(self.detector, BaseDetector) or not getattr(self.detector, "_image_input", False):
            raise TypeError(
                f"detector must be a deepad image detector (ConvAutoEncoder, ConvVAE, ConvDeepSVDD, ...), "
                f"got {type(self.detector).__name__}."
            )
        return self.detector

    def _min_samples(self) -> int:
        return self._template()._min_samples()

    @property
    def preprocessor(self) -> ImagePreprocessor:
        """The fitted :class:`~deepad.data.images.ImagePreprocessor` (rebuilt from ``preprocessor_state_``)."""
        check_is_fitted(self, "preprocessor_state_")
        cached = self.__dict__.get("_prep")
        if cached is None or cached[0] is not self.preprocessor_state_:
            cached = (self.preprocessor_state_, ImagePreprocessor.from_state(self.preprocessor_state_))
            self.__dict__["_prep"] = cached
        return cached[1]

    def transform(self, X) -> np.ndarray:
        """The ``(N, C, H, W)`` array the wrapped detector sees."""
        imgs = load_image_input(X)
        return self.preprocessor.transform(imgs.images, imgs.names)

    # ------------------------------------------------------------------ persistence
    def _check_loaded_state(self) -> None:
        super()._check_loaded_state()
        if not isinstance(getattr(self, "detector_", None), BaseDetector):
            raise ValueError("detector_ must be a saved deepad detector.")
        self.preprocessor  # noqa: B018 - rebuilt from preprocessor_state_: a damaged state fails here

    # ------------------------------------------------------------------ BaseDetector hooks
    def _validate_for_fit(self, X):
        imgs = load_image_input(X)
        if len(imgs.images) == 0:
            raise ValueError("no images to train on.")
        if len(imgs.images) < self._min_samples():
            raise ValueError(
                f"{len(imgs.images)} images, but {type(self._template()).__name__} needs at least "
                f"{self._min_samples()}."
            )
        return imgs, None

    def _fit(self, X: _Images, y, seed: int, **fit_params) -> None:
        prep = ImagePreprocessor(target_size=self.target_size, color=self.color, standardize=self.standardize)
        Z = prep.fit_transform(X.images, X.names)
        detector = clone(self._template())
        detector.fit(Z, **fit_params)
        self.detector_ = detector
        self.preprocessor_state_ = prep.to_state()
        self.__dict__["_prep"] = (self.preprocessor_state_, prep)
        self.image_shape_ = list(detector.image_shape_)
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self.fitted_at_ = datetime.now(timezone.utc).isoformat(timespec="seconds")

    #: the training scores are the wrapped detector's (no second scoring pass over the training data)
    _reference_needs_in_sample = False

    def _training_reference_scores(self, X) -> np.ndarray:
        # The wrapped detector's training scores (leave-one-out for kNN-type detectors), the same array.
        return np.asarray(self.detector_.decision_scores_, dtype=np.float64)

    def training_scores_kind(self) -> str:
        return self.detector_.training_scores_kind()

    def _derived_state(self) -> dict:
        # the training scores are the wrapped detector's: saved once, in detector_/
        return {"decision_scores_": lambda: self.detector_.decision_scores_, **super()._derived_state()}

    def _validate_for_scoring(self, X) -> _Images:
        check_is_fitted(self, "decision_scores_")
        imgs = load_image_input(X)
        if len(imgs.images) == 0:
            raise ValueError("no images to score.")
        return imgs

    def _score(self, X: _Images) -> np.ndarray:
        return self.detector_.decision_function(self.preprocessor.transform(X.images, X.names))

    def anomaly_map(self, X) -> np.ndarray:
        """Per-pixel anomaly maps ``(N, H, W)`` at the model's image size (see the detector's ``anomaly_map``)."""
        imgs = self._validate_for_scoring(X)
        return self.detector_.anomaly_map(self.preprocessor.transform(imgs.images, imgs.names))

    def display_images(self, X) -> np.ndarray:
        """The images as the model sees them, back in [0, 1] pixel units ``(N, C, H, W)``, for overlays."""
        return np.clip(self.preprocessor.inverse_transform(self.transform(X)), 0.0, 1.0)
