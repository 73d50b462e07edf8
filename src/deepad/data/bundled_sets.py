"""Small data sets shipped inside the package (see ``bundled/README.md`` for sources)."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_cardio(*, shuffle: bool = True, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cardiotocography (ADBench ``6_cardio``): ``X`` (1831 x 21) and ``y`` (1 = pathologic, 176 rows).

    The rows are shuffled with a fixed seed (``random_state``) by default:
    the file lists the 176 anomalies last, so unshuffled folds (``KFold``,
    ``GridSearchCV(cv=3)`` on a detector, which is not a classifier and so
    gets unstratified folds) would hold no anomaly, or only anomalies.
    ``shuffle=False`` returns the rows in the file's (ADBench's) order.
    """
    with resources.files("deepad.data").joinpath("bundled/cardio.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            X, y = data["X"].astype(np.float64), data["y"].astype(np.int64)
    if shuffle:
        order = np.random.default_rng(random_state).permutation(len(y))
        X, y = X[order], y[order]
    return X, y
