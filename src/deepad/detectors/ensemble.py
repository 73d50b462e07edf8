"""LocalGlobalEnsemble: deepad's default detector (calibrated local and global kNN views; a deep view on request)."""

from __future__ import annotations

import numbers

import numpy as np

from deepad.base import BaseDetector, check_int_param
from deepad.data.scaling import fit_scaler
from deepad.detectors.hbos import HBOS

__all__ = ["LocalGlobalEnsemble"]

#: Column order of :meth:`LocalGlobalEnsemble.member_scores`.
MEMBERS = ("knn_local", "knn_global", "hbos")

#: Default ``max_reference``: most training rows the kNN members search (docs/design/default.md, "Large n").
MAX_REFERENCE = 20_000


#: Query rows per ``kneighbors`` call: a multiple of scikit-learn's internal chunk (256 rows), so a chunked query
#: computes the same distances as one call, and ``n x k`` distances and indices never exist at once at large n.
_QUERY_CHUNK_VALUES = 1 << 22


def _query_chunk(k: int) -> int:
    return max(256, (_QUERY_CHUNK_VALUES // (k + 1)) // 256 * 256)


#: Brute-force queries are padded to a multiple of this many rows: BLAS computes a GEMM's edge rows with other
#: kernels (on an AMD EPYC, a chunk's last row differed by 3.6e-15), so a row alone would score differently from
#: the same row in a batch; padded, every row goes through the same kernel (multiples of 4 sufficed there).
_BLAS_ROWS = 16


def _pad_rows(Z: np.ndarray, neighbors) -> np.ndarray:
    """``Z`` with its last row repeated up to a multiple of ``_BLAS_ROWS`` rows, for a brute-force search."""
    n = Z.shape[0]
    extra = -n % _BLAS_ROWS
    if getattr(neighbors, "_fit_method", "brute") != "brute" or extra == 0:
        return Z
    return np.concatenate([Z, np.repeat(Z[-1:], extra, axis=0)])


def _location_scale(ref: np.ndarray) -> tuple[float, float]:
    """Median and inter-quartile range of reference scores (std, then 1, when the IQR is 0)."""
    q25, med, q75 = np.percentile(ref, [25, 50, 75])
    scale = q75 - q25
    if not scale > 1e-12:
        scale = float(np.std(ref))
    if not scale > 1e-12:
        scale = 1.0
    return float(med), float(scale)


class LocalGlobalEnsemble(BaseDetector):
    """Local and global anomaly views, each calibrated on the training data, combined.

    This is :data:`deepad.detectors.DEFAULT`: the detector to use when you do
    not know which one to use, on clean ("one-class") training data and on
    training data that already contains some anomalies ("unsupervised").

    Members (all fitted on features standardised with the training mean and
    standard deviation, so the units of a feature do not matter):

    * **local** -- mean distance to the ``n_neighbors`` (5) nearest reference
      rows (Angiulli & Pizzuti, "Fast outlier detection in high dimensional
      spaces", PKDD 2002).  On clean training data this is the strongest
      single score we measured; it is also what the non-parametric
      diffusion-time estimator DTE-NP (Livernoche et al., "On diffusion
      modeling for anomaly detection", ICLR 2024) reduces to -- its authors
      recommend kNN with ``method="mean"`` in its place.
    * **global**, the mean of two calibrated members:
      mean distance to the ``n_neighbors_global`` (200, at most ``m - 1``)
      nearest reference rows -- the distance to the bulk of the data -- and
      :class:`~deepad.detectors.HBOS` (Goldstein & Dengel, KI 2012) with
      ``n_bins`` histogram bins per feature (``"auto"``: the Rice rule),
      built on all training rows.

    The **reference rows** of the kNN members are the training rows, or a
    seeded uniform random sample of ``m = max_reference`` (20,000) of them
    when there are more: fitting is then linear in the rows (every training
    row is still scored leave-one-out: a reference row without itself) and
    scoring costs ``O(m)`` per row.  What the bound costs in ROC-AUC on the
    large ADBench sets, and why 20,000: ``docs/design/default.md``.

    Why two views.  A small-``k`` kNN score is local and precise, but it
    *memorises*: when the training data holds a clump of similar anomalies
    (duplicated attacks, a faulty sensor stuck at one value) new anomalies
    of that kind find close neighbours in the clump and look normal -- on
    ADBench's ``http`` data the 5-NN distance ranks them *below* normal rows
    (ROC-AUC 0.00).  A clump of fewer than ``n_neighbors_global`` rows
    cannot hide itself from the 200-NN distance, and coarse per-feature
    histograms barely notice it; but these global views are blurrier on
    clean data.  Each view is kept where it is strong: the score is the
    global view plus (a weighted part of) the amount by which the local view
    exceeds it.

    Scoring rule.  With ``s_m(x)`` the raw score of member ``m`` and
    ``med_m``/``iqr_m`` the median and inter-quartile range of that member's
    *leave-one-out* training scores (each training row scored without itself,
    i.e. as a new row would be)::

        z_m(x)   = (s_m(x) - med_m) / iqr_m
        L(x)     = calibrate(z_knn_local(x))
        G(x)     = calibrate((z_knn_global(x) + z_hbos(x)) / 2)
        base(x)  = G(x) + local_weight * max(0, L(x) - G(x))
        D(x)     = (dif(x) - med_dif) / iqr_dif
        score(x) = base(x) + deep_weight * max(0, D(x) - max(L(x), G(x)))

    where ``calibrate`` again subtracts the median and divides by the IQR of
    the view's leave-one-out training values, so both views are on the same
    "how unusual for this training set" scale (Kriegel et al., "Interpreting
    and unifying outlier scores", SDM 2011; Aggarwal & Sathe, "Outlier
    Ensembles", 2017).  ``local_weight=1`` is the maximum of the two views
    (flag a row when either view finds it unusual), ``0`` the global view
    alone; the default 0.65 leans towards the global view, which is the
    robust one.

    The optional **deep view** ``D`` (``deep_weight > 0``; off by default
    since issue 17: on the bench's confirmation half it added -0.03 one-class
    and +0.27 unsupervised mean ROC-AUC for about 7x the fit's CPU time) is a
    :class:`~deepad.detectors.DeepIsolationForest` (Xu et al., "Deep isolation forest for anomaly detection", TKDE 2023:
    isolation trees in the spaces of random neural networks) fitted on the
    ``1 - deep_trim`` (90 %) of training rows the two kNN views find least
    unusual -- so anomalies in contaminated training data do not shape it
    -- and calibrated (median, IQR) on all training rows.  It can only
    raise a score, and only where it finds a row more unusual than both kNN
    views do: a second opinion from a different geometry (random non-linear
    projections and axis-parallel cuts instead of Euclidean distances).

    Measured (28 ADBench sets x 3 seeds, mean test ROC-AUC,
    ``benchmarks/results/default-v2``, commands in its ``PROVENANCE.md``):
    87.09 with clean training data (5-NN: 85.87) and 79.35 with
    contaminated training data (Isolation Forest: 77.14); ``local_weight``
    was chosen on these 28 sets, so expect smaller margins on other data.
    Cost (``python benchmarks/default_speed.py``, one thread, 10,000 x 30
    Gaussian training rows, 40,000 scored): fit 2.5x and
    ``decision_function`` 3.1-3.2x the time of scikit-learn's exact
    brute-force 5-NN query on the same rows (a busy machine; at 100,000 and
    1,000,000 rows, with the bound, 0.4x and 0.04x); one row scored alone
    takes 2.1 ms (median; p99 2.7 ms of CPU time).  Design study and
    history: ``docs/design/default.md``.

    Training scores.  ``decision_scores_`` (and so ``threshold_``,
    ``labels_`` and p-values) are the leave-one-out scores above;
    ``decision_function(X_train)`` is lower, each training row being its
    own nearest neighbour.

    Parameters
    ----------
    n_neighbors : int, default 5
        ``k`` of the local kNN view; needs ``n_neighbors + 1`` training rows.
    n_neighbors_global : int, default 200
        ``k`` of the global kNN member (capped at the reference rows - 1).
    n_bins : int or "auto", default "auto"
        Histogram bins per feature of the HBOS member.
    local_weight : float in [0, 1], default 0.65
        Weight of the local view's excess over the global view.
    deep_weight : float >= 0, default 0.0
        Weight of the deep view's excess over both kNN views; 0 (the
        default) fits no deep view: the detector is deterministic and
        torch-free.  Models saved with the old default 0.25 keep theirs.
    deep_trim : float in [0, 0.5), default 0.1
        Fraction of training rows, the most unusual by the kNN views' own
        leave-one-out score, that the deep view is not fitted on.
    max_reference : int or None, default 20000 (:data:`MAX_REFERENCE`)
        Most training rows the kNN members search; more rows are sampled
        (seeded by ``random_state``).  ``None``: all rows, an exact kNN whose
        fit is quadratic in the rows.  ``deepad train`` first samples
        50,000 rows of a larger table (``--max-train-rows``), so by default
        it fits on 50,000 rows with 20,000 of them as the reference set.
    preprocessing : {"standard", "robust", "minmax", None}, default "standard"
        Per-feature scaling fitted on the training data before every member.
    algorithm : str, default "auto"
        Nearest-neighbour search of :class:`sklearn.neighbors.NearestNeighbors`.
    contamination : float, default 0.1
        Expected anomaly fraction, used only for ``threshold_``.
    n_jobs : int or None
        Parallel jobs for the neighbour search.
    random_state : int, generator or None, default 0
        Seed of the reference sample and of the deep view's random networks
        and trees.  Fixed by default, so DEFAULT gives the same scores on
        every fit.
    """

    _reference_needs_in_sample = False
    #: what a model saved before the parameter existed did: an exact kNN over all training rows
    _params_before_added = {"max_reference": None}
    _training_scores_kind = "leave-one-out training scores"

    def __init__(
        self,
        n_neighbors: int = 5,
        n_neighbors_global: int = 200,
        n_bins: int | str = "auto",
        local_weight: float = 0.65,
        deep_weight: float = 0.0,
        deep_trim: float = 0.1,
        *,
        max_reference: int | None = MAX_REFERENCE,
        preprocessing: str | None = "standard",
        algorithm: str = "auto",
        contamination: float = 0.1,
        n_jobs: int | None = None,
        random_state=0,
    ):
        self.n_neighbors = n_neighbors
        self.n_neighbors_global = n_neighbors_global
        self.n_bins = n_bins
        self.local_weight = local_weight
        self.deep_weight = deep_weight
        self.deep_trim = deep_trim
        self.max_reference = max_reference
        self.preprocessing = preprocessing
        self.algorithm = algorithm
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    _check_int = staticmethod(check_int_param)

    def _min_samples(self) -> int:
        return self._check_int(self.n_neighbors, "n_neighbors") + 1

    def _check_params(self) -> None:
        k = self._check_int(self.n_neighbors, "n_neighbors")
        self._check_int(self.n_neighbors_global, "n_neighbors_global")
        if self.max_reference is not None:
            m = self._check_int(self.max_reference, "max_reference", allowed="None or a positive integer")
            if m < k + 1:
                raise ValueError(
                    f"max_reference={m} keeps fewer reference rows than the local view needs "
                    f"(n_neighbors + 1 = {k + 1}); raise it or pass None for all training rows."
                )
        for name, low, high, closed in (
            ("local_weight", 0.0, 1.0, True),
            ("deep_weight", 0.0, np.inf, True),
            ("deep_trim", 0.0, 0.5, False),
        ):
            w = getattr(self, name)
            ok = (
                not isinstance(w, (bool, np.bool_))
                and isinstance(w, numbers.Real)
                and low <= w
                and (w <= high if closed else w < high)
            )
            if not ok:
                raise ValueError(f"{name} must be a number in [{low:g}, {high:g}{']' if closed else ')'}, got {w!r}.")

    # ------------------------------------------------------------------ fitting
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.scaler_center_) / self.scaler_scale_

    def _neighbour_index(self, ref: np.ndarray, k: int):
        """The nearest-neighbour search over the reference rows (``kneighbors`` as scikit-learn's)."""
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k, algorithm=self.algorithm, n_jobs=self.n_jobs).fit(ref)

    @property
    def neighbors_(self):
        """The nearest-neighbour index over ``reference_`` (the kNN members' reference rows).

        Built at fit and rebuilt from ``reference_`` when a saved model is
        loaded: the model file holds the rows as a plain float array, not a
        skops-serialised scikit-learn object, so loading DEFAULT imports no
        skops (2.5 s of CPU: it walks every scikit-learn module on import).
        The same rows, algorithm and ``k`` give the same index and the same scores.
        """
        index = self.__dict__.get("_neighbors")
        if index is None:
            if "reference_" not in self.__dict__:
                raise AttributeError("neighbors_")
            index = self._neighbour_index(self.reference_, max(self.k_local_, self.k_global_))
            self.__dict__["_neighbors"] = index
        return index

    @neighbors_.setter
    def neighbors_(self, index) -> None:  # at fit, and from a model saved before (its neighbors_.skops)
        self.__dict__["_neighbors"] = index
        self.reference_ = np.asarray(index._fit_X)

    def _check_loaded_state(self) -> None:
        super()._check_loaded_state()
        ref = getattr(self, "reference_", None)
        d = np.asarray(self.scaler_center_).shape[-1]
        if not (isinstance(ref, np.ndarray) and ref.ndim == 2 and ref.shape[1] == d and ref.dtype.kind == "f"):
            shape = getattr(ref, "shape", None)
            raise ValueError(f"reference_ must be a float array of shape (rows, {d}), got {shape}.")
        if not max(self.k_local_, self.k_global_) <= ref.shape[0]:
            raise ValueError(f"reference_ has {ref.shape[0]} rows, fewer than the {self.k_global_} neighbours used.")
        self.neighbors_  # noqa: B018 -- build the index now, not inside the first request

    def _fit(self, X, y, seed, **fit_params):
        from deepad.data.progress import progress_bar

        self._check_params()
        self.scaler_center_, self.scaler_scale_ = fit_scaler(X, self.preprocessing, constant="evidence")
        Z = self._transform(X)
        n = Z.shape[0]
        m = n if self.max_reference is None else min(n, int(self.max_reference))
        in_ref = None
        if m < n:  # a seeded uniform sample of the rows is the kNN members' reference set
            in_ref = np.zeros(n, dtype=bool)
            in_ref[np.random.default_rng(seed).choice(n, size=m, replace=False)] = True
        ref = Z if in_ref is None else Z[in_ref]
        self.n_reference_ = m
        self.k_local_ = int(self.n_neighbors)
        self.k_global_ = min(int(self.n_neighbors_global), m - 1)
        k_max = max(self.k_local_, self.k_global_)
        steps = 3 if float(self.deep_weight) > 0 else 2
        what = f"{k_max} nearest of {m:,} reference rows" if in_ref is not None else f"{k_max} nearest neighbours"
        bar = progress_bar(steps, f"DEFAULT on {n:,} rows: {what}", unit="member")
        self.neighbors_ = self._neighbour_index(ref, k_max)
        # every training row's neighbours among the *other* reference rows: a reference row without itself
        # (dropped by index, so duplicates count), any other row against the whole reference set
        if in_ref is None:
            means = self._knn_means(ref, self_query=True)
        else:
            means = np.empty((n, 2))
            means[in_ref] = self._knn_means(ref, self_query=True)
            means[~in_ref] = self._knn_means(Z[~in_ref])
        bar.set_description(f"DEFAULT on {n:,} rows: histograms", refresh=False)
        bar.update(1)
        self.hbos_ = HBOS(n_bins=self.n_bins, contamination=self.contamination).fit(Z)
        bar.update(1)
        raw = self._raw(means, self.hbos_._reference_scores_)
        stats = [_location_scale(raw[:, m]) for m in range(raw.shape[1])]
        self.member_center_ = np.array([c for c, _ in stats])
        self.member_scale_ = np.array([s for _, s in stats])
        views = self._views(raw)
        stats = [_location_scale(views[:, v]) for v in range(2)]
        self.view_center_ = np.array([c for c, _ in stats])
        self.view_scale_ = np.array([s for _, s in stats])
        self._loo_views = self._calibrated(views)
        self._loo_scores = self._combine(self._loo_views)
        self.deep_ = None
        if float(self.deep_weight) > 0:
            bar.set_description(f"DEFAULT on {n:,} rows: deep view", refresh=False)
            self._fit_deep_view(X, seed)
            bar.update(1)
        bar.close()

    def _knn_means(self, Z: np.ndarray, self_query: bool = False) -> np.ndarray:
        """Mean distance of each row of ``Z`` to its ``k_local_`` and ``k_global_`` nearest reference rows, ``(n, 2)``.

        ``self_query``: ``Z`` is the reference set itself, each row scored
        without itself (as ``kneighbors(None)`` does).  Queried in chunks of
        rows, so memory stays ``O(chunk x k)``.
        """
        k = max(self.k_local_, self.k_global_)
        n, step = Z.shape[0], _query_chunk(k)
        out = np.empty((n, 2))
        for start in range(0, n, step):  # chunks of rows, not rows
            stop = min(start + step, n)
            if self_query and stop - start == n:
                dist, _ = self.neighbors_.kneighbors(None, n_neighbors=k)
            elif self_query:
                dist, ind = self.neighbors_.kneighbors(Z[start:stop], n_neighbors=k + 1)
                keep = ind != np.arange(start, stop)[:, None]
                keep[keep.all(axis=1), 0] = False  # more duplicates than neighbours: drop one of them (as sklearn)
                dist = dist[keep].reshape(stop - start, k)
            else:
                dist, _ = self.neighbors_.kneighbors(_pad_rows(Z[start:stop], self.neighbors_), n_neighbors=k)
                dist = dist[: stop - start]
            out[start:stop, 0] = dist[:, : self.k_local_].mean(axis=1)
            out[start:stop, 1] = dist[:, : self.k_global_].mean(axis=1)
        return out

    def _fit_deep_view(self, X: np.ndarray, seed: int) -> None:
        """Deep Isolation Forest on the rows the kNN views find least unusual, calibrated on all training rows."""
        from deepad.detectors.dif import DeepIsolationForest

        keep = self._loo_scores <= np.quantile(self._loo_scores, 1.0 - float(self.deep_trim))
        if keep.sum() < 3:  # ties at the top of a tiny set: fit on everything rather than on nothing
            keep[:] = True
        self.deep_ = DeepIsolationForest(random_state=seed, contamination=self.contamination).fit(X[keep])
        # the kept rows were scored by the fit itself (decision_scores_); only the trimmed ones are new
        ref = np.empty(X.shape[0])
        ref[keep] = self.deep_.decision_scores_
        if not keep.all():
            ref[~keep] = self.deep_.decision_function(X[~keep])
        self.deep_center_, self.deep_scale_ = _location_scale(ref)
        self._loo_scores = self._with_deep_view(self._loo_scores, self._loo_views, ref)

    def _with_deep_view(self, scores: np.ndarray, cal: np.ndarray, deep_raw: np.ndarray) -> np.ndarray:
        deep = (deep_raw - self.deep_center_) / self.deep_scale_
        return scores + float(self.deep_weight) * np.maximum(deep - cal.max(axis=1), 0.0)

    def _training_reference_scores(self, X):
        scores = self._loo_scores
        del self._loo_scores
        return scores

    def pop_training_views(self) -> np.ndarray:
        """Leave-one-out calibrated ``(local, global)`` views of the training rows, once, right after ``fit``.

        What :meth:`view_scores` would give each training row if it were a
        new row (scored without itself).  The array is handed over and
        forgotten, so a fitted ensemble does not keep an ``n x 2`` copy.
        """
        views = self.__dict__.pop("_loo_views", None)
        if views is None:
            raise RuntimeError("pop_training_views() is available once, right after fit().")
        return views

    # ------------------------------------------------------------------ scoring
    def _raw(self, knn_means: np.ndarray, hbos_scores: np.ndarray) -> np.ndarray:
        return np.column_stack([knn_means, hbos_scores])

    def _views(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.member_center_) / self.member_scale_
        return np.column_stack([z[:, 0], z[:, 1:].mean(axis=1)])

    def _calibrated(self, views: np.ndarray) -> np.ndarray:
        return (views - self.view_center_) / self.view_scale_

    def _combine(self, cal: np.ndarray) -> np.ndarray:
        local, glob = cal[:, 0], cal[:, 1]
        return glob + float(self.local_weight) * np.maximum(local - glob, 0.0)

    def _member_raw(self, X: np.ndarray) -> np.ndarray:
        Z = self._transform(X)
        return self._raw(self._knn_means(Z), self.hbos_._score(Z))

    def _score(self, X):
        cal = self._calibrated(self._views(self._member_raw(X)))
        scores = self._combine(cal)
        if getattr(self, "deep_", None) is not None:
            scores = self._with_deep_view(scores, cal, self.deep_.decision_function(X))
        return scores

    def view_scores(self, X) -> np.ndarray:
        """Calibrated ``(local, global)`` view scores, shape ``(n, 2)``: which view finds each row unusual.

        Both are in "IQRs above the median training row" units; the
        anomaly score combines them as described in the class docstring.
        """
        return self._calibrated(self._views(self._member_raw(self._validate_for_scoring(X))))

    def member_scores(self, X) -> np.ndarray:
        """Raw member scores, shape ``(n, 3)``, columns in :data:`MEMBERS` order."""
        return self._member_raw(self._validate_for_scoring(X))
