"""Image helpers shared by tests/unit/test_images.py and tests/integration/test_images_cli.py."""

from __future__ import annotations

import numpy as np
import pytest

import deepad.detectors as D

from conftest import FAST_PARAMS, SHARED

MNIST = SHARED / "mnist"


def make(name, **extra):
    return getattr(D, name)(**{**FAST_PARAMS[name], "random_state": 0, "device": "cpu", **extra})


def blobs(n, seed, *, patch=False, size=16, channels=1):
    """Normal images: one soft blob near the centre plus noise.  ``patch=True`` adds a bright 4x4 square at (1:5, 10:14)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        cy, cx = size / 2 + rng.normal(0, 1.0, 2)
        img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5**2))
        img = img + rng.normal(0, 0.03, img.shape)
        if patch:
            img[1:5, 10:14] = 1.0
        out[i] = np.clip(img, 0, 1)[None]
    return out if channels > 1 else out[:, 0]


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    (root / "train").mkdir()
    (root / "test").mkdir()
    for i, a in enumerate(blobs(80, 1, size=20)):
        Image.fromarray((a * 255).astype(np.uint8)).save(root / "train" / f"{i:03d}.png")
    test = np.concatenate([blobs(10, 2, size=20), blobs(4, 3, patch=True, size=20)])
    for i, a in enumerate(test):
        Image.fromarray((a * 255).astype(np.uint8)).save(
            root / "test" / f"{'b_anom' if i >= 10 else 'a_norm'}{i:02d}.png"
        )
    return root
