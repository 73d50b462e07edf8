"""Deep Isolation Forest: isolation forests in many random neural representation spaces."""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from deepad.base import BaseDetector, check_int_param
from deepad.data.scaling import fit_scaler

__all__ = ["DeepIsolationForest", "RandomNetEnsemble"]

_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """``c(n)``: mean path length of an unsuccessful binary-search-tree search among ``n`` points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _row_mean(a: np.ndarray, axis: int) -> np.ndarray:
    """``a.mean(axis)``, summed in the same order whatever the number of rows (columns of the last axis).

    NumPy sums a reduction pairwise when it is contiguous (one row) and in
    sequence otherwise, so ``mean`` of one row can differ from the same row
    in a batch by 1e-16; this keeps a row's score independent of its batch.
    """
    a = np.moveaxis(a, axis, 0)
    total = a[0].astype(np.float64, copy=True)
    for part in a[1:]:
        total += part
    return total / a.shape[0]


class RandomNetEnsemble(nn.Module):
    """``n_members`` bias-free MLPs ``d -> hidden_dims -> out_dim`` whose weights are fixed random draws.

    The weights are buffers, not parameters: nothing is trained, the
    networks only map the data into random non-linear representation
    spaces.  ``forward(x)`` returns shape ``(n_members, n_rows, out_dim)``.
    Hidden layers use ``activation``; the output layer is linear.
    """

    def __init__(self, in_dim: int, hidden_dims, out_dim: int, n_members: int, activation: str = "tanh") -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
        self.activation = activation
        dims = [int(in_dim), *map(int, hidden_dims), int(out_dim)]
        self.n_layers = len(dims) - 1
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            self.register_buffer(f"weight{i}", torch.zeros(int(n_members), a, b))

    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight{i}") for i in range(self.n_layers)]

    def reset_random(self, rng: np.random.Generator, scaled: bool = False) -> "RandomNetEnsemble":
        """Fill every weight with independent normal draws from ``rng``.

        Standard normal (the initialisation of the paper), or with variance
        ``1 / fan_in`` when ``scaled`` (LeCun), which keeps each layer's
        pre-activations at the scale of its inputs instead of saturating ``tanh``.
        """
        with torch.no_grad():
            for w in self.weights():
                draw = rng.standard_normal(tuple(w.shape), dtype=np.float32)
                if scaled:
                    draw /= np.float32(np.sqrt(w.shape[1]))
                w.copy_(torch.from_numpy(draw))
        return self

    def member(self, x: torch.Tensor, m: int) -> torch.Tensor:
        act = _ACTIVATIONS[self.activation]
        ws = self.weights()
        for w in ws[:-1]:
            x = act(x @ w[m])
        return x @ ws[-1][m]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.member(x, m) for m in range(self.weights()[0].shape[0])])


class DeepIsolationForest(BaseDetector):
    """Deep Isolation Forest (DIF).

    Paper: Xu, Pang, Wang, Chen, Zhang, Wei & Cheng, "Deep Isolation Forest
    for Anomaly Detection", IEEE TKDE 2023.

    Why it works.  Isolation Forest (Liu, Ting & Zhou, ICDM 2008) isolates a
    row by random axis-parallel cuts; rows in sparse regions are isolated by
    few cuts.  Axis-parallel cuts cannot isolate an anomaly that is unusual
    only in a *combination* of features (it hides inside every feature's
    marginal range), and they leave "ghost" regions of low score along the
    axes through dense clusters.  DIF maps the data through ``n_ensemble``
    randomly initialised, *untrained* networks: each is a random non-linear
    view of the data in which an axis-parallel cut is a non-linear cut of
    the original space, and the views differ from each other, so the forest
    as a whole cuts along many non-linear directions.  Nothing is learned
    from the data except the trees, so -- like Isolation Forest -- it needs
    no training loop, is robust to anomalies in the training data (each
    tree sees a subsample of ``max_samples`` rows) and scales linearly.

    Scoring rule.  Training and new rows are min-max scaled with the
    training ranges (``preprocessing``), then for network ``e`` (bias-free
    MLP ``d -> hidden_dims -> representation_dim``, ``tanh`` hidden layers,
    every weight drawn from N(0, 1), or N(0, 1 / fan_in) with
    ``weight_init="scaled"``) the representation is
    ``r_e(x) = tanh((phi_e(x) - mu_e) / sigma_e)`` with ``mu_e``, ``sigma_e``
    the training mean and standard deviation of ``phi_e``.  In each space,
    an isolation forest of ``n_estimators`` trees, each on ``max_samples``
    rows.  With ``h_t(x)`` the path length of ``x`` in tree ``t`` (plus the
    usual ``c(leaf size)`` correction) and ``psi`` the subsample size::

        depth_e(x) = 2 ** (-mean_{t in forest e} h_t(x) / c(psi))
        dev_e(x)   = mean_{t in forest e} mean_{split nodes k on x's path} |r_e(x)[f_k] - eta_k|
        score(x)   = mean_e depth_e(x) * dev_e(x)          (scoring="deas")
        score(x)   = mean_e depth_e(x)                     (scoring="depth")

    ``"deas"`` is the paper's deviation-enhanced anomaly score: a row that
    lands far beyond the split values on its path (``f_k``, ``eta_k``: the
    node's feature and threshold) is more anomalous than one just across
    them, which the depth alone cannot tell once a row is isolated.

    Differences from the reference implementations: the representations
    are standardised with *training* statistics (PyOD's ``DIF`` and the
    authors' code standardise each scored batch with its own statistics, so
    a row's score depends on the batch it comes in), the weights are drawn
    from a NumPy generator seeded by ``random_state``, and every tree is
    traversed for all rows at once in NumPy.  ``decision_scores_`` are the
    in-sample scores (as in PyOD): a training row is in only about
    ``max_samples / n`` of the trees' subsamples.

    Weights.  The paper (and PyOD) draw every weight from N(0, 1).  With
    ``tanh`` hidden layers that saturates the units: the second hidden
    layer's 500 inputs of size ~1 give pre-activations of size ~20, so
    already inside the min-max-scaled data range the network computes a
    random *binary code* of the row followed by a linear map (on uniform
    data in [0, 1]^6, 86 % of the second layer's units are beyond
    |tanh| > 0.99), and rows further out along a direction keep the code of
    the last cell they crossed -- how far out a row is gets lost.  The
    default ``weight_init="scaled"`` draws from N(0, 1 / fan_in) (LeCun), so
    each layer keeps the scale of its input (no unit saturated in the same
    check) and the map is a smooth non-linear distortion that still grows
    with the distance to the data; ``"normal"`` is the paper's
    initialisation.

    Measured (28 ADBench sets, 70/30 stratified split, 3 seeds, mean test
    ROC-AUC; ``benchmarks/explore_default.py members --seeds 0 1 2
    --members dif_scaled``, then ``combine --seeds 0 1 2 --baseline
    dif_scaled --show dif_scaled``): 85.0 fitted on the normal training
    rows, 76.1 on the contaminated training part.  The full table
    (``"scaled"`` against ``"normal"``, DEAS against depth, Isolation
    Forest, kNN, DEFAULT), its history and the fit time:
    ``docs/design/default.md``.

    Parameters
    ----------
    n_ensemble : int, default 50
        Number of random networks (representation spaces).
    n_estimators : int, default 6
        Isolation trees per representation space.
    max_samples : int, default 256
        Rows per tree (capped at the number of training rows).
    representation_dim : int, default 20
        Output width of each network.
    hidden_dims : tuple of int, default (500, 100)
        Hidden widths of each network.
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
        Hidden-layer activation.
    scoring : {"deas", "depth"}, default "deas"
        Deviation-enhanced score of the paper, or the plain isolation depth.
    weight_init : {"scaled", "normal"}, default "scaled"
        Network weights drawn from N(0, 1 / fan_in) (smooth random maps), or from N(0, 1) as in
        the paper and PyOD's ``DIF`` (hidden units saturate: the deeper layers act as random
        binary codes).  See "Weights" above for why and by how much the default differs.
    preprocessing : {"minmax", "standard", "robust", None}, default "minmax"
        Per-feature scaling fitted on the training data, applied before the networks.
    batch_size : int, default 4096
        Rows per forward pass and per tree traversal (memory only; scores do not depend on it
        except for float32 rounding).
    contamination : float, default 0.1
        Expected anomaly fraction, used only for ``threshold_``.
    n_threads : int or None
        Torch CPU threads for the forward passes (``None``: deepad's default, ``DEEPAD_NUM_THREADS``).
    random_state : int, Generator or None
        Seeds the network weights and the trees.
    """

    def __init__(
        self,
        n_ensemble: int = 50,
        n_estimators: int = 6,
        max_samples: int = 256,
        representation_dim: int = 20,
        hidden_dims=(500, 100),
        activation: str = "tanh",
        scoring: str = "deas",
        weight_init: str = "scaled",
        *,
        preprocessing: str | None = "minmax",
        batch_size: int = 4096,
        contamination: float = 0.1,
        n_threads: int | None = None,
        random_state=None,
    ):
        self.n_ensemble = n_ensemble
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.representation_dim = representation_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.scoring = scoring
        self.weight_init = weight_init
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.contamination = contamination
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    _check_int = staticmethod(check_int_param)

    def _check_params(self) -> None:
        for name in ("n_ensemble", "n_estimators", "representation_dim", "batch_size"):
            self._check_int(getattr(self, name), name)
        self._check_int(self.max_samples, "max_samples", 2)
        for width in self.hidden_dims:
            self._check_int(width, "hidden_dims entries")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}.")
        if self.weight_init not in ("normal", "scaled"):
            raise ValueError(f"weight_init must be 'normal' or 'scaled', got {self.weight_init!r}.")
        if self.scoring not in ("deas", "depth"):
            raise ValueError(f"scoring must be 'deas' or 'depth', got {self.scoring!r}.")

    # ------------------------------------------------------------------ networks
    def _new_module(self, name: str) -> nn.Module:
        """An all-zero network ensemble of the fitted shape, for :func:`deepad.load` to fill."""
        return RandomNetEnsemble(
            self.n_features_in_, self.hidden_dims, self.representation_dim, self.n_ensemble, self.activation
        )

    def _represent(self, X: np.ndarray) -> np.ndarray:
        """Raw network outputs ``phi_e(x)``, shape ``(n_ensemble, n, representation_dim)``, float32."""
        from deepad.data.progress import progress_bar
        from deepad.training import forward_rows, torch_context

        Z = ((X - self.scaler_center_) / self.scaler_scale_).astype(np.float32)
        out = np.empty((int(self.n_ensemble), Z.shape[0], int(self.representation_dim)), dtype=np.float32)
        step = int(self.batch_size)
        bar = progress_bar(Z.shape[0], "deep view: random networks", unit="row", unit_scale=True)
        with torch_context(None, torch.device("cpu"), self.n_threads, work=Z.shape[0] * 50_000), torch.no_grad():
            for start in range(0, Z.shape[0], step):
                xb = torch.from_numpy(Z[start : start + step])
                for m in range(out.shape[0]):
                    out[m, start : start + step] = forward_rows(lambda b, m=m: self.net_.member(b, m), xb).numpy()
                bar.update(xb.shape[0])
        bar.close()
        return out

    def _representation(self, X: np.ndarray) -> np.ndarray:
        return self._squash(self._represent(X))

    def _squash(self, phi: np.ndarray) -> np.ndarray:
        """Network outputs standardised with the training statistics, then ``tanh``: the spaces the trees split."""
        return np.tanh((phi - self.rep_center_[:, None, :]) / self.rep_scale_[:, None, :]).astype(np.float32)

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, seed, **fit_params):
        from sklearn.ensemble import IsolationForest

        self._check_params()
        rng = np.random.default_rng(seed)
        self.scaler_center_, self.scaler_scale_ = fit_scaler(X, self.preprocessing, constant="evidence")
        E, T = int(self.n_ensemble), int(self.n_estimators)
        self.net_ = (
            RandomNetEnsemble(X.shape[1], self.hidden_dims, self.representation_dim, E, self.activation)
            .reset_random(rng, self.weight_init == "scaled")
            .eval()
        )
        phi = self._represent(X)
        center = phi.mean(axis=1, dtype=np.float64)
        scale = phi.std(axis=1, dtype=np.float64)
        self.rep_center_ = center.astype(np.float32)
        self.rep_scale_ = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
        R = self._squash(phi)
        del phi
        psi = min(int(self.max_samples), X.shape[0])
        trees = []
        for e in range(E):
            forest = IsolationForest(n_estimators=T, max_samples=psi, random_state=int(rng.integers(2**31 - 1))).fit(
                R[e]
            )
            trees.extend(est.tree_ for est in forest.estimators_)
        self._pack_trees(trees, psi)

    def _pack_trees(self, trees, psi: int) -> None:
        """Store the trees as padded arrays (one row per tree), leaves turned into self-loops.

        ``leaf_value_`` holds, at each leaf, its depth plus ``c(leaf size)``;
        internal nodes are marked by ``internal_``.  Plain arrays make the
        model easy to save and let every tree be traversed for all rows at once.
        """
        M = max(t.node_count for t in trees)
        n_trees = len(trees)
        feature = np.zeros((n_trees, M), dtype=np.int64)
        threshold = np.full((n_trees, M), np.inf)
        left = np.tile(np.arange(M, dtype=np.int64), (n_trees, 1))
        right = left.copy()
        internal = np.zeros((n_trees, M), dtype=bool)
        leaf_value = np.zeros((n_trees, M))
        max_depth = 0
        for i, t in enumerate(trees):
            k = t.node_count
            cl, cr = t.children_left, t.children_right
            is_int = cl >= 0
            depth = np.zeros(k, dtype=np.int64)
            for node in range(k):  # scikit-learn numbers children after their parent
                if is_int[node]:
                    depth[cl[node]] = depth[cr[node]] = depth[node] + 1
            internal[i, :k] = is_int
            feature[i, :k] = np.where(is_int, t.feature, 0)
            threshold[i, :k] = np.where(is_int, t.threshold, np.inf)
            left[i, :k] = np.where(is_int, cl, np.arange(k))
            right[i, :k] = np.where(is_int, cr, np.arange(k))
            leaf_value[i, :k] = np.where(is_int, 0.0, depth + _average_path_length(t.n_node_samples))
            max_depth = max(max_depth, int(depth.max()))
        self.tree_feature_, self.tree_threshold_ = feature, threshold
        self.tree_left_, self.tree_right_ = left, right
        self.tree_internal_, self.tree_leaf_value_ = internal, leaf_value
        self.max_depth_ = max_depth
        self.psi_ = int(psi)

    # ------------------------------------------------------------------ scoring
    def _member_scores(self, R: np.ndarray) -> np.ndarray:
        """``(depth_e, dev_e)`` for every representation space: shape ``(2, n_ensemble, n)``."""
        E, n = R.shape[0], R.shape[1]
        T = int(self.n_estimators)
        n_trees = self.tree_feature_.shape[0]
        space = np.repeat(np.arange(E), T)[:, None]  # the representation space of each tree
        tree = np.arange(n_trees)[:, None]
        out = np.empty((2, E, n))
        step = max(1, int(self.batch_size))
        from deepad.data.progress import progress_bar

        bar = progress_bar(n, "deep view: isolation trees", unit="row", unit_scale=True)
        for start in range(0, n, step):
            rows = np.arange(start, min(start + step, n))[None, :]
            bar.update(rows.shape[1])
            node = np.zeros((n_trees, rows.shape[1]), dtype=np.int64)
            dev = np.zeros(node.shape)
            splits = np.zeros(node.shape)
            for _ in range(self.max_depth_):
                value = R[space, rows, self.tree_feature_[tree, node]].astype(np.float64)
                thr = self.tree_threshold_[tree, node]
                inside = self.tree_internal_[tree, node]
                dev += np.where(inside, np.abs(value - thr), 0.0)
                splits += inside
                node = np.where(value <= thr, self.tree_left_[tree, node], self.tree_right_[tree, node])
            depth = self.tree_leaf_value_[tree, node]
            dev /= np.maximum(splits, 1.0)
            out[0, :, start : start + rows.shape[1]] = _row_mean(depth.reshape(E, T, -1), axis=1)
            out[1, :, start : start + rows.shape[1]] = _row_mean(dev.reshape(E, T, -1), axis=1)
        bar.close()
        c = _average_path_length(np.array([self.psi_]))[0]
        out[0] = 2.0 ** (-out[0] / (c if c > 0 else 1.0))
        return out

    def _score(self, X):
        depth, dev = self._member_scores(self._representation(X))
        if self.scoring == "depth":
            return _row_mean(depth, axis=0)
        return _row_mean(depth * dev, axis=0)
