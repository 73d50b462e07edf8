"""Reading images and preparing them for the image detectors.

Sources (:func:`read_images` dispatches on the path):

* a folder of PNG/JPEG/BMP/GIF/TIFF/WebP files -- flat, or one sub-folder per
  class (the sub-folder names become the labels);
* NumPy arrays (``.npy``, or ``.npz`` with key ``X``/``images`` and optional
  ``y``/``labels``) of shape ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``;
* MNIST's idx format (``*-images-idx3-ubyte[.gz]``; a folder holding one is
  read with its ``*-labels-idx1-ubyte[.gz]`` partner).

Pixel values come back as float32 in ``[0, 1]`` (8-bit images are divided
by 255), one array per image ``(H, W, C)`` with ``C`` 1 (grey) or 3 (colour),
so images of different sizes can be read before they are resized.

:class:`ImagePreprocessor` turns such a list into the ``(N, C, H, W)``
array the detectors take: resize to ``target_size``, convert to grey or
colour, and standardise per channel with statistics fitted on the training
images.  Its state is plain JSON (``to_state`` / ``from_state``), saved
with the model.

Errors name the file or folder: an unreadable file, an empty folder, or
images of different sizes without a ``target_size``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "ImageSet",
    "ImagePreprocessor",
    "ImageReadError",
    "IMAGE_SUFFIXES",
    "read_images",
    "read_image_folder",
    "read_idx",
    "read_mnist",
    "as_images",
    "is_image_source",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ImageReadError(ValueError):
    """Images cannot be read: unreadable file, empty folder, unknown format.  The message names the path."""


@dataclass
class ImageSet:
    """Images as read: ``images`` (list of ``(H, W, C)`` float32 arrays in [0, 1], or one ``(N, C, H, W)`` array),
    ``labels`` (class per image, or ``None``) and ``names`` (file name or ``source[i]`` per image)."""

    images: Any
    labels: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


# --------------------------------------------------------------------------- idx / MNIST
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (MNIST's format; gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise ImageReadError(f"cannot read idx file {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ImageReadError(f"{path} is not an idx file (bad magic number {data[:4].hex()}).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ImageReadError(f"{path} is truncated: its idx header is incomplete.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise ImageReadError(
            f"{path} is damaged: header says shape {dims} ({expected} bytes) but it holds "
            f"{len(data) - header} bytes of data."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _mnist_files(directory: Path) -> tuple[Path, Path | None]:
    images = sorted(p for p in directory.iterdir() if "images-idx3" in p.name or "images.idx3" in p.name)
    if not images:
        raise ImageReadError(f"{directory} holds no MNIST images file (*-images-idx3-ubyte[.gz]).")
    img = images[0]
    labels = directory / img.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    return img, labels if labels.exists() else None


def read_mnist(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST images as float32 ``(N, 1, 28, 28)`` in [0, 1] and their digit labels (``None`` if no labels file).

    ``path`` is an images idx file or a folder holding one (e.g. the 10,000
    test images ``t10k-images-idx3-ubyte.gz`` with ``t10k-labels-idx1-ubyte.gz``).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"no such file or folder: {path}")
    if path.is_dir():
        img_path, lab_path = _mnist_files(path)
    else:
        img_path = path
        partner = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        lab_path = partner if partner != path and partner.exists() else None
    raw = read_idx(img_path)
    if raw.ndim != 3:
        raise ImageReadError(f"{img_path} holds a {raw.ndim}-D idx array; MNIST images are (N, H, W).")
    images = (raw.astype(np.float32) / 255.0)[:, None]
    labels = None
    if lab_path is not None:
        labels = read_idx(lab_path).astype(np.int64)
        if labels.shape != (raw.shape[0],):
            raise ImageReadError(f"{lab_path} has {labels.shape[0]} labels but {img_path} has {raw.shape[0]} images.")
    return images, labels


# --------------------------------------------------------------------------- arrays
def as_images(X: Any, *, name: str = "X") -> np.ndarray:
    """An array of images as float32 ``(N, C, H, W)``; ``(N, H, W)``, ``(N, H, W, C)`` and ``(N, C, H, W)`` accepted.

    Integer arrays are taken as 8-bit pixels and divided by 255; float
    arrays are kept as they are.  A 4-D array is channel-last when its last
    axis has 1, 3 or 4 entries and its second does not.
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}; images need numeric pixel values.")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
            arr = np.moveaxis(arr, -1, 1)
    else:
        raise ValueError(f"{name} must be (N, H, W), (N, H, W, C) or (N, C, H, W) images, got shape {arr.shape}.")
    if arr.shape[1] == 4:  # RGBA: drop alpha
        arr = arr[:, :3]
    if arr.shape[1] not in (1, 3):
        raise ValueError(f"{name} has {arr.shape[1]} channels; images must have 1 (grey) or 3 (colour).")
    out = arr.astype(np.float32)
    if arr.dtype.kind in "biu":
        out /= 255.0 if arr.dtype != np.bool_ else 1.0
    return np.ascontiguousarray(out)


def _read_array_file(path: Path) -> ImageSet:
    try:
        if path.suffix == ".npy":
            X, y = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as z:
                key = next((k for k in ("X", "images", "x") if k in z.files), None)
                if key is None:
                    raise ImageReadError(f"{path} has no array named X or images (it has {z.files}).")
                X = z[key]
                lk = next((k for k in ("y", "labels") if k in z.files), None)
                y = z[lk] if lk else None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(f"cannot read NumPy file {path}: {exc}") from None
    images = as_images(X, name=str(path))
    return ImageSet(images, None if y is None else np.asarray(y), [f"{path.name}[{i}]" for i in range(len(images))])


# --------------------------------------------------------------------------- image files
def _load_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F") or (im.mode == "P" and _palette_is_grey(im))
            if im.mode in ("I", "I;16"):
                arr = np.asarray(im, dtype=np.float32) / (65535.0 if np.asarray(im).max() > 255 else 255.0)
            elif im.mode == "F":
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image file {path}: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _palette_is_grey(im) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_folder(path: str | os.PathLike) -> ImageSet:
    """Read a folder of images: flat (no labels) or one sub-folder per class (labels = sub-folder names).

    Files are read in sorted order.  Hidden files and files with other
    suffixes are ignored; a folder with no images at all is an error.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ImageReadError(f"{directory} is not a folder.")
    files = _image_files(directory)
    labels: list[str] | None = None
    if not files:
        classes = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        for cls in classes:
            members = _image_files(cls)
            if not members:
                raise ImageReadError(f"class folder {cls} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
            files.extend(members)
            labels = (labels or []) + [cls.name] * len(members)
    if not files:
        raise ImageReadError(
            f"{directory} holds no image files ({', '.join(IMAGE_SUFFIXES)}) and no class sub-folders with images."
        )
    images = [_load_file(f) for f in files]
    names = [str(f.relative_to(directory)) for f in files]
    return ImageSet(images, None if labels is None else np.asarray(labels), names)


def is_image_source(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like images (image folder, idx file, or an image file) rather than a table."""
    p = Path(path)
    if p.is_dir():
        if any(q.suffix.lower() in IMAGE_SUFFIXES or "idx3" in q.name for q in p.iterdir() if q.is_file()):
            return True
        return any(q.is_dir() and _image_files(q) for q in p.iterdir())
    name = p.name.lower()
    return "idx3" in name or p.suffix.lower() in IMAGE_SUFFIXES


def read_images(path: str | os.PathLike) -> ImageSet:
    """Read images from a folder, an image file, a ``.npy``/``.npz`` array or an MNIST idx file/folder."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"no such file or folder: {p}")
    if p.is_dir():
        if any("idx3" in q.name for q in p.iterdir()):
            X, y = read_mnist(p)
            return ImageSet(X, y, [f"{p.name}[{i}]" for i in range(len(X))])
        return read_image_folder(p)
    if "idx3" in p.name:
        X, y = read_mnist(p)
        return ImageSet(X, y, [f"{p.name}[{i}]" for i in range(len(X))])
    if p.suffix.lower() in (".npy", ".npz"):
        return _read_array_file(p)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSet([_load_file(p)], None, [p.name])
    raise ImageReadError(
        f"{p}: unknown image source; give a folder of images, an image file, .npy/.npz, or an MNIST idx file."
    )


# --------------------------------------------------------------------------- preprocessing
def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one ``(H, W, C)`` float image to ``size = (H, W)`` with bilinear interpolation, per channel."""
    from PIL import Image

    if img.shape[:2] == tuple(size):
        return img
    h, w = size
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32), mode="F").resize(
                (w, h), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=2)


def _to_hwc_list(images: Any) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        arr = as_images(images) if images.ndim != 4 or images.shape[1] not in (1, 3) else images.astype(np.float32)
        return list(np.moveaxis(arr, 1, -1))
    out = []
    for i, img in enumerate(images):
        a = np.asarray(img, dtype=np.float32)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise ValueError(f"image {i} has shape {a.shape}; expected (H, W) or (H, W, C) with C in 1, 3, 4.")
        out.append(a[:, :, :3])
    return out


class ImagePreprocessor:
    """Resize, convert and standardise images; fitted on training images and saved as JSON with the model.

    Parameters
    ----------
    target_size:
        ``(height, width)`` to resize every image to (bilinear), or ``None``
        to require all images to share one size (an error names the first
        image that differs).
    color:
        ``"auto"`` (grey if every training image is grey, else colour),
        ``"grey"`` or ``"rgb"``.
    standardize:
        subtract the per-channel mean and divide by the per-channel standard
        deviation of the training images (after scaling to [0, 1]).
    """

    def __init__(self, target_size: Sequence[int] | None = None, color: str = "auto", standardize: bool = True):
        self.target_size = target_size
        self.color = color
        self.standardize = standardize

    # -------------------------------------------------------------- fitting
    def fit(self, images, names: Sequence[str] | None = None) -> "ImagePreprocessor":
        self.fit_transform(images, names)
        return self

    def fit_transform(self, images, names: Sequence[str] | None = None) -> np.ndarray:
        if self.color not in ("auto", "grey", "rgb"):
            raise ValueError(f"color must be 'auto', 'grey' or 'rgb', got {self.color!r}.")
        hwc = _to_hwc_list(images)
        if not hwc:
            raise ValueError("no images to fit the preprocessor on.")
        if self.target_size is not None:
            ts = tuple(int(v) for v in self.target_size)
            if len(ts) != 2 or min(ts) < 1:
                raise ValueError(f"target_size must be (height, width) of positive integers, got {self.target_size!r}.")
            self.size_ = list(ts)
        else:
            self.size_ = list(hwc[0].shape[:2])
        self.channels_ = (
            1 if self.color == "grey" or (self.color == "auto" and all(a.shape[2] == 1 for a in hwc)) else 3
        )
        self.mean_, self.std_ = [0.0] * self.channels_, [1.0] * self.channels_
        X = self._stack(hwc, names)
        if self.standardize:
            mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
            std = X.std(axis=(0, 2, 3), dtype=np.float64)
            self.mean_ = [float(v) for v in mean]
            self.std_ = [float(v) if v > 1e-12 else 1.0 for v in std]
            X = self._standardize(X)
        return X

    # -------------------------------------------------------------- transforming
    def _stack(self, hwc: list[np.ndarray], names: Sequence[str] | None) -> np.ndarray:
        size = tuple(self.size_)
        out = np.empty((len(hwc), self.channels_, *size), dtype=np.float32)
        for i, a in enumerate(hwc):
            if a.shape[:2] != size:
                if self.target_size is None:
                    who = names[i] if names is not None else f"image {i}"
                    raise ValueError(
                        f"{who} is {a.shape[0]}x{a.shape[1]} but the images are {size[0]}x{size[1]}; "
                        f"images of different sizes need a target size (ImagePreprocessor(target_size="
                        f"({size[0]}, {size[1]})) or deepad train --image-size {size[0]}x{size[1]})."
                    )
                a = _resize(a, size)
            if self.channels_ == 1 and a.shape[2] == 3:
                a = (a @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
            elif self.channels_ == 3 and a.shape[2] == 1:
                a = np.repeat(a, 3, axis=2)
            out[i] = np.moveaxis(a, -1, 0)
        return out

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.std_, dtype=np.float32)[None, :, None, None]
        return ((X - mean) / std).astype(np.float32)

    def transform(self, images, names: Sequence[str] | None = None) -> np.ndarray:
        """``(N, C, H, W)`` float32 array for the detector; new images are resized to the fitted size."""
        if not hasattr(self, "size_"):
            raise RuntimeError("ImagePreprocessor is not fitted; call fit first.")
        hwc = _to_hwc_list(images)
        if not hwc:
            raise ValueError("no images to transform.")
        fixed = self.target_size
        try:
            self.target_size = self.size_  # scoring always resizes to the training size
            X = self._stack(hwc, names)
        finally:
            self.target_size = fixed
        return self._standardize(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Back to [0, 1] pixel units (for display)."""
        mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.std_, dtype=np.float32)[None, :, None, None]
        return X * std + mean

    # -------------------------------------------------------------- state
    def to_state(self) -> dict:
        return {
            "target_size": None if self.target_size is None else [int(v) for v in self.target_size],
            "color": self.color,
            "standardize": bool(self.standardize),
            "size": list(self.size_),
            "channels": int(self.channels_),
            "mean": list(self.mean_),
            "std": list(self.std_),
        }

    @classmethod
    def from_state(cls, state: dict) -> "ImagePreprocessor":
        prep = cls(target_size=state["target_size"], color=state["color"], standardize=state["standardize"])
        prep.size_, prep.channels_ = list(state["size"]), int(state["channels"])
        prep.mean_, prep.std_ = list(state["mean"]), list(state["std"])
        return prep
