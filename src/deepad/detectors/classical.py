"""Classical (non-neural) baselines under the deepad contract, built on scikit-learn.

Every class here is a thin :class:`~deepad.base.BaseDetector` around a
scikit-learn estimator: the algorithm is scikit-learn's, deepad adds the
shared contract (validation, thresholds, conformal p-values, saving).
Defaults follow PyOD's namesakes (``IForest``, ``KNN``, ``LOF``, ``OCSVM``,
``PCA``, ``MCD``) so numbers are comparable with PyOD and ADBench.

Fitted scikit-learn estimators are learned attributes (``estimator_``) and
are saved by :mod:`deepad.persistence` with skops (no pickle).
"""

from __future__ import annotations

import numpy as np

from deepad.base import BaseDetector, check_int_param

__all__ = ["IsolationForest", "KNN", "LOF", "OneClassSVM", "PCA", "Mahalanobis"]


def _check_choice(value, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value


# --------------------------------------------------------------------------- Isolation Forest
class IsolationForest(BaseDetector):
    """Isolation Forest: anomalies are isolated by fewer random splits.

    Paper: Liu, Ting & Zhou, "Isolation Forest" (ICDM 2008).

    Why it works: a random axis-parallel split separates a point lying in a
    sparse region after few cuts, while a point inside a dense cluster needs
    many.  Averaging the path length over many random trees built on small
    subsamples gives a score that needs no distance or density model.

    Scoring rule: ``score(x) = 2 ** (-E[h(x)] / c(psi))`` where ``h`` is the
    path length in a tree and ``c(psi)`` the average path length of an
    unsuccessful BST search on ``psi`` samples -- i.e. ``-score_samples`` of
    :class:`sklearn.ensemble.IsolationForest`, in (0, 1], higher = more
    anomalous.  (PyOD's ``IForest`` subtracts a constant offset; rankings are
    identical.)

    Parameters are scikit-learn's: ``n_estimators``, ``max_samples``,
    ``max_features``, ``bootstrap``, ``n_jobs``; ``random_state`` seeds the trees.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples="auto",
        max_features: float = 1.0,
        bootstrap: bool = False,
        *,
        contamination: float = 0.1,
        n_jobs: int | None = None,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.ensemble import IsolationForest as SkIsolationForest

        self.estimator_ = SkIsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            n_jobs=self.n_jobs,
            random_state=seed,
        ).fit(X)

    def _score(self, X):
        return -self.estimator_.score_samples(X)


# --------------------------------------------------------------------------- k nearest neighbours
_KNN_METHODS = ("largest", "mean", "median")


class KNN(BaseDetector):
    """k-nearest-neighbour distance detector.

    Papers: Ramaswamy, Rastogi & Shim, "Efficient algorithms for mining
    outliers from large data sets" (SIGMOD 2000) for ``method="largest"``;
    Angiulli & Pizzuti, "Fast outlier detection in high dimensional spaces"
    (PKDD 2002) for ``method="mean"`` (the summed/averaged kNN distance).

    Why it works: normal rows have close neighbours among the training rows;
    a row far from all of them is unusual.  No distributional assumption.

    Scoring rule: with ``d_1 <= ... <= d_k`` the distances from ``x`` to its
    ``k = n_neighbors`` nearest *training* rows (``metric``/``p``, Euclidean
    by default), the score is ``d_k`` (``"largest"``), ``mean(d)`` or
    ``median(d)`` -- PyOD's ``KNN`` rule.

    Training scores.  ``decision_scores_`` (and so ``threshold_``,
    ``labels_`` and p-values) are *leave-one-out* scores: each training
    row's ``k`` nearest *other* rows, as PyOD's KNN reports them, because
    that is how a new normal row is scored.  ``decision_function(X_train)``
    is lower -- each row finds itself at distance 0 -- and a threshold on
    it would flag too many new rows.
    Needs at least ``n_neighbors + 1`` training rows.
    """

    _reference_needs_in_sample = False
    _training_scores_kind = "leave-one-out training scores"

    def __init__(
        self,
        n_neighbors: int = 5,
        method: str = "largest",
        *,
        metric: str = "minkowski",
        p: float = 2,
        metric_params: dict | None = None,
        algorithm: str = "auto",
        leaf_size: int = 30,
        contamination: float = 0.1,
        n_jobs: int | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.method = method
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.contamination = contamination
        self.n_jobs = n_jobs

    def _min_samples(self) -> int:
        return check_int_param(self.n_neighbors, "n_neighbors") + 1

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.neighbors import NearestNeighbors

        _check_choice(self.method, "method", _KNN_METHODS)
        self.estimator_ = NearestNeighbors(
            n_neighbors=self.n_neighbors,
            algorithm=self.algorithm,
            leaf_size=self.leaf_size,
            metric=self.metric,
            p=self.p,
            metric_params=self.metric_params,
            n_jobs=self.n_jobs,
        ).fit(X)

    def _aggregate(self, dist: np.ndarray) -> np.ndarray:
        if self.method == "largest":
            return dist[:, -1].copy()
        if self.method == "mean":
            return dist.mean(axis=1)
        return np.median(dist, axis=1)

    def _score(self, X):
        dist, _ = self.estimator_.kneighbors(X, n_neighbors=self.n_neighbors)
        return self._aggregate(dist)

    def _training_reference_scores(self, X):
        # X=None: scikit-learn queries every training row and drops the row
        # itself by index (not by distance), so duplicates stay neighbours.
        dist, _ = self.estimator_.kneighbors(None, n_neighbors=self.n_neighbors)
        return self._aggregate(dist)


# --------------------------------------------------------------------------- LOF
class LOF(BaseDetector):
    """Local Outlier Factor.

    Paper: Breunig, Kriegel, Ng & Sander, "LOF: identifying density-based
    local outliers" (SIGMOD 2000).

    Why it works: a global distance threshold fails when clusters have
    different densities.  LOF compares a row's local reachability density
    with that of its neighbours, so a row is outlying *relative to its
    neighbourhood*.

    Scoring rule: ``LOF_k(x) = mean_{o in N_k(x)} lrd_k(o) / lrd_k(x)``
    (about 1 for inliers, larger for outliers), computed against the
    training rows by :class:`sklearn.neighbors.LocalOutlierFactor` with
    ``novelty=True``; the score is ``-score_samples(X)``.

    Training scores.  ``decision_scores_`` (and so ``threshold_``,
    ``labels_`` and p-values) are the leave-one-out factors
    ``-negative_outlier_factor_`` that scikit-learn computes during fit
    (PyOD's ``decision_scores_``), which match how a new normal row is
    scored; ``decision_function(X_train)`` differs, each training row being
    its own neighbour at distance 0.  Needs at least
    ``n_neighbors + 1`` training rows.
    """

    _reference_needs_in_sample = False
    _training_scores_kind = "leave-one-out training scores"

    def __init__(
        self,
        n_neighbors: int = 20,
        *,
        metric: str = "minkowski",
        p: float = 2,
        metric_params: dict | None = None,
        algorithm: str = "auto",
        leaf_size: int = 30,
        contamination: float = 0.1,
        n_jobs: int | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.contamination = contamination
        self.n_jobs = n_jobs

    def _min_samples(self) -> int:
        return check_int_param(self.n_neighbors, "n_neighbors") + 1

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.neighbors import LocalOutlierFactor

        self.estimator_ = LocalOutlierFactor(
            n_neighbors=self.n_neighbors,
            algorithm=self.algorithm,
            leaf_size=self.leaf_size,
            metric=self.metric,
            p=self.p,
            metric_params=self.metric_params,
            novelty=True,
            n_jobs=self.n_jobs,
        ).fit(X)

    def _score(self, X):
        return -self.estimator_.score_samples(X)

    def _training_reference_scores(self, X):
        return -np.asarray(self.estimator_.negative_outlier_factor_, dtype=np.float64)


# --------------------------------------------------------------------------- One-class SVM
class OneClassSVM(BaseDetector):
    """One-class support vector machine.

    Paper: Schölkopf, Platt, Shawe-Taylor, Smola & Williamson, "Estimating
    the support of a high-dimensional distribution" (Neural Computation 2001).

    Why it works: in the kernel feature space it finds the hyperplane that
    separates the training rows from the origin with maximum margin, so the
    region on the data's side is a smooth estimate of the support of the
    normal distribution; ``nu`` bounds the fraction of training rows outside.

    Scoring rule: ``score(x) = -(sum_i alpha_i k(x_i, x) - rho)``, i.e.
    ``-decision_function`` of :class:`sklearn.svm.OneClassSVM`: the signed
    distance to the boundary, positive outside.  Defaults are PyOD's
    ``OCSVM`` (``nu=0.5``, ``gamma="auto"`` = ``1 / n_features``; use
    ``gamma="scale"`` for features that are not on a unit scale).  The
    solver is deterministic, so there is no ``random_state``.
    """

    def __init__(
        self,
        kernel: str = "rbf",
        nu: float = 0.5,
        gamma="auto",
        degree: int = 3,
        coef0: float = 0.0,
        *,
        tol: float = 1e-3,
        shrinking: bool = True,
        cache_size: float = 200,
        max_iter: int = -1,
        contamination: float = 0.1,
    ):
        self.kernel = kernel
        self.nu = nu
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.tol = tol
        self.shrinking = shrinking
        self.cache_size = cache_size
        self.max_iter = max_iter
        self.contamination = contamination

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.svm import OneClassSVM as SkOneClassSVM

        self.estimator_ = SkOneClassSVM(
            kernel=self.kernel,
            nu=self.nu,
            gamma=self.gamma,
            degree=self.degree,
            coef0=self.coef0,
            tol=self.tol,
            shrinking=self.shrinking,
            cache_size=self.cache_size,
            max_iter=self.max_iter,
        ).fit(X)

    def _score(self, X):
        return -self.estimator_.decision_function(X)


# --------------------------------------------------------------------------- PCA
class PCA(BaseDetector):
    """Principal-component detector: weighted squared projections on the minor components.

    Paper: Shyu, Chen, Sarinnapakorn & Chang, "A novel anomaly detection
    scheme based on principal component classifier" (ICDM Foundation and New
    Directions of Data Mining workshop, 2003); also Aggarwal, *Outlier
    Analysis* (2017), section 3.3.

    Why it works: normal rows vary mostly along the major principal
    directions of the (standardised) training data.  A row that moves along
    a *minor* direction -- one along which normal data barely varies --
    breaks the correlation structure, even if every single feature looks
    ordinary.

    Scoring rule: with ``z`` the standardised row (``standardization=True``),
    ``y_j = v_j . (z - mean)`` its coordinate on principal axis ``v_j`` and
    ``lambda_j`` that axis' variance (eigenvalue), the score sums over the
    ``n_selected_components`` axes of *smallest* variance:

    * ``weighted=True``: ``sum_j y_j^2 / lambda_j`` -- each axis in units of
      its own spread.  With all components selected (the default) this is
      the squared Mahalanobis distance in the PCA basis;
    * ``weighted=False``: ``sum_j y_j^2`` -- the squared reconstruction error
      of the model that keeps the other, major components (with
      ``n_components=None`` and ``n_selected_components = d - k``: the error
      of a ``k``-component PCA).

    Difference from PyOD's ``PCA``: PyOD sums the Euclidean *distances from
    the row to the unit component vectors* (``cdist(X, components)``)
    divided by explained-variance *ratios*, which is not a projection; deepad
    uses the projections of Shyu et al.  Eigenvalues below the numerical
    rank tolerance are clamped to it so degenerate directions give large but
    finite scores.  Parameters ``n_components``, ``svd_solver`` and
    ``random_state`` go to :class:`sklearn.decomposition.PCA`.
    """

    def __init__(
        self,
        n_components=None,
        n_selected_components: int | None = None,
        *,
        weighted: bool = True,
        standardization: bool = True,
        svd_solver: str = "auto",
        contamination: float = 0.1,
        random_state=None,
    ):
        self.n_components = n_components
        self.n_selected_components = n_selected_components
        self.weighted = weighted
        self.standardization = standardization
        self.svd_solver = svd_solver
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.decomposition import PCA as SkPCA
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler(with_mean=True, with_std=bool(self.standardization)).fit(X)
        Z = self.scaler_.transform(X)
        self.estimator_ = SkPCA(n_components=self.n_components, svd_solver=self.svd_solver, random_state=seed).fit(Z)
        n_kept = int(self.estimator_.n_components_)
        if self.n_selected_components is None:
            n_sel = n_kept
        else:
            n_sel = check_int_param(self.n_selected_components, "n_selected_components")
            if n_sel > n_kept:
                raise ValueError(
                    f"n_selected_components={n_sel} exceeds the {n_kept} principal components kept "
                    f"(n_components={self.n_components!r}, data of shape {X.shape})."
                )
        self.n_selected_components_ = n_sel
        variances = np.asarray(self.estimator_.explained_variance_, dtype=np.float64)
        tol = (
            max(float(variances.max(initial=0.0)), np.finfo(np.float64).tiny) * max(X.shape) * np.finfo(np.float64).eps
        )
        self.component_weights_ = 1.0 / np.maximum(variances, tol) if self.weighted else np.ones_like(variances)

    def _score(self, X):
        proj = self.estimator_.transform(self.scaler_.transform(X))[:, -self.n_selected_components_ :]
        w = self.component_weights_[-self.n_selected_components_ :]
        return (proj**2 * w).sum(axis=1)


# --------------------------------------------------------------------------- Mahalanobis / MCD
class Mahalanobis(BaseDetector):
    """Squared Mahalanobis distance to a (robust) Gaussian fit of the training data.

    Papers: Mahalanobis, "On the generalised distance in statistics" (1936);
    for ``robust=True``, Rousseeuw, "Least median of squares regression"
    (JASA 1984) and Rousseeuw & Van Driessen, "A fast algorithm for the
    minimum covariance determinant estimator" (Technometrics 1999).

    Why it works: for roughly elliptical normal data the Mahalanobis distance
    measures how many standard deviations a row lies from the centre,
    accounting for correlations.  With ``robust=True`` the centre and
    covariance come from the Minimum Covariance Determinant subset
    (:class:`sklearn.covariance.MinCovDet`), so anomalies that slipped into
    the training data do not inflate the covariance and mask themselves
    (PyOD's ``MCD``); ``robust=False`` uses the sample mean and covariance
    (:class:`sklearn.covariance.EmpiricalCovariance`).

    Scoring rule: ``score(x) = (x - mu)^T Sigma^{-1} (x - mu)``
    (scikit-learn's ``mahalanobis``; a pseudo-inverse for singular
    covariances).  ``random_state`` seeds the MCD subset search.
    """

    def __init__(
        self,
        robust: bool = True,
        support_fraction: float | None = None,
        *,
        assume_centered: bool = False,
        contamination: float = 0.1,
        random_state=None,
    ):
        self.robust = robust
        self.support_fraction = support_fraction
        self.assume_centered = assume_centered
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X, y, seed, **fit_params):
        from sklearn.covariance import EmpiricalCovariance, MinCovDet

        if self.robust:
            est = MinCovDet(
                support_fraction=self.support_fraction, assume_centered=self.assume_centered, random_state=seed
            )
        else:
            est = EmpiricalCovariance(assume_centered=self.assume_centered)
        self.estimator_ = est.fit(X)

    def _score(self, X):
        return self.estimator_.mahalanobis(X)
