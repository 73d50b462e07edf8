"""Small data sets shipped inside the package (see ``bundled/README.md`` for sources)."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_cardio() -> tuple[np.ndarray, np.ndarray]:
    """Cardiotocography (ADBench ``6_cardio``): ``X`` (1831 x 21) and ``y`` (1 = pathologic)."""
    with resources.files("deepad.data").joinpath("bundled/cardio.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            return data["X"].astype(np.float64), data["y"].astype(np.int64)
