"""Issue 19, item 7: small wishes of the analyst (load_cardio order, detector listing, report views)."""

from __future__ import annotations

import warnings

import numpy as np


# --------------------------------------------------------------------------- load_cardio
def test_load_cardio_is_shuffled_reproducibly_and_keeps_rows():
    from deepad.data import load_cardio

    X, y = load_cardio()
    X0, y0 = load_cardio(shuffle=False)
    assert X.shape == (1831, 21) and y.sum() == 176
    # the file lists the anomalies last; the default order spreads them out
    assert y0[-176:].all()
    assert 0.05 < y[:610].mean() < 0.15 and 0.05 < y[-610:].mean() < 0.15
    X2, y2 = load_cardio()
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # the same rows, only reordered
    order0 = np.lexsort(X0.T)
    order = np.lexsort(X.T)
    np.testing.assert_array_equal(X[order], X0[order0])
    np.testing.assert_array_equal(y[order], y0[order0])
    assert not np.array_equal(load_cardio(random_state=1)[1], y)


def test_load_cardio_works_with_grid_search_cv3():
    from sklearn.model_selection import GridSearchCV

    from deepad.data import load_cardio
    from deepad.detectors import KNN

    X, y = load_cardio()
    search = GridSearchCV(KNN(), {"n_neighbors": [5, 20]}, cv=3, scoring="roc_auc", error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KNN is unsupervised: it warns that it ignores y
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and scores.min() > 0.6
    assert search.best_params_["n_neighbors"] in (5, 20)
