"""Experiments behind ``deepad.detectors.DEFAULT``.

Protocol (the one the DEFAULT targets are stated in):

* every ``/work/shared/datasets/adbench/*.npz`` (keys ``X``, ``y``; 1 = anomaly);
* sets over 10,000 rows are subsampled to 10,000 (stratified, seeded);
* 70/30 stratified train/test split (seeded);
* min-max scaling fitted on the train part, applied to both parts;
* ``oneclass``: fit on the normal rows of the train part;
  ``unsupervised``: fit on the whole (contaminated) train part;
* ROC-AUC on the test part, averaged over seeds, then over data sets.

Stages
------
``members``  fit candidate members / reference detectors and cache their
             test scores and training *reference* scores (leave-one-out
             for memorising members) under ``$DEEPAD_EXPLORE_CACHE``;
``combine``  evaluate score ensembles of cached members offline (cheap);
``final``    fit the shipped ``deepad.detectors.DEFAULT`` end to end on the
             same splits and print it next to the cached references.

Reproduce the reported numbers (about 1 CPU hour in all, most of it the PyOD references)::

    export DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1
    .venv/bin/python benchmarks/explore_default.py members --seeds 0 1 2 \
        --members knn iforest pyod_ecod pyod_lof pyod_pca pyod_ocsvm pyod_ae
    .venv/bin/python benchmarks/explore_default.py final --seeds 0 1 2

``final`` prints DEFAULT next to kNN (k=5, largest distance), Isolation
Forest and the PyOD detectors per setting, and DEFAULT's fit+score CPU
seconds.  The design study used the cheaper members below (``knn_std``,
``knn_big``, ``hbos``/``hbos2``, ``trim``, ``nbr``, ``bag``, ``gmm``,
``maha``, ``ae``, ``dtec``, ``default_views``) and ``combine`` /
ad-hoc combinations of their cached scores; results are cached under
``$DEEPAD_EXPLORE_CACHE`` (default ``/tmp/deepad_explore_default``).

Deep Isolation Forest as a DEFAULT member (``--lg`` recombines cached
members with DEFAULT's own scoring rule; ``dm_local/dm_global+dm_hbos``
reproduces DEFAULT exactly)::

    .venv/bin/python benchmarks/explore_default.py members --seeds 0 1 2 \
        --members default_members dif dif_scaled dif_scaled_std iforest knn
    .venv/bin/python benchmarks/explore_default.py combine --seeds 0 1 2 --baseline default \
        --show default knn_mm_k5_largest iforest100 dif dif_scaled dif_scaled_std \
        --lg dm_local/dm_global+dm_hbos dm_local/dm_global+dm_hbos+dif_scaled \
             dm_local/dm_global+dif_scaled dm_local/dif_scaled+dm_hbos dm_local+dif_scaled/dm_global+dm_hbos \
             dm_local/dif_scaled_std+dm_hbos dm_local/dm_global+dm_hbos+dif_scaled_std

Deep members trained on trimmed data (the 90 % of training rows DEFAULT finds
least unusual), and a third "excess" view that can only raise a row's score
(``--excess DEEP@w``: ``+ w * max(0, D - max(L, G))``)::

    .venv/bin/python benchmarks/explore_default.py members --seeds 0 1 2 \
        --members default_members ae_new ae_trim dif_trim
    .venv/bin/python benchmarks/explore_default.py combine --seeds 0 1 2 \
        --baseline dm_local/dm_global+dm_hbos --show ae_new ae_trim dif_trim \
        --lg dm_local/dm_global+dm_hbos dm_local/dm_global+dm_hbos+ae_trim \
             dm_local+ae_trim/dm_global+dm_hbos dm_local/dm_global+dm_hbos+dif_trim \
             dm_local+dif_trim/dm_global+dm_hbos dm_local/dm_global+dm_hbos+ae_new \
        --excess dif_trim@0.25 dif_trim@0.5 ae_trim@0.25 ae_new@0.25

Result (2026-11-29, after the constant-feature scaling): the best, the excess
view of ``dif_trim`` at 0.25, moved one-class / unsupervised by +0.08 / +0.01
(wins 6 / 11 of 28 sets) -- noise -- and every other variant lost 0.06-0.88
in one setting; trimming lifts the AutoEncoder alone from 74.2 to 77.0
unsupervised but costs 0.5 one-class as a member.  DEFAULT unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

DATA = Path(os.environ.get("DEEPAD_ADBENCH", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "adbench"))
CACHE = Path(os.environ.get("DEEPAD_EXPLORE_CACHE", "/tmp/deepad_explore_default"))
MAX_ROWS = 10_000
SETTINGS = ("oneclass", "unsupervised")


# --------------------------------------------------------------------------- protocol
def datasets(names=None):
    files = sorted(DATA.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    if names:
        files = [f for f in files if any(n.lower() in f.stem.lower() for n in names)]
    return files


def split(path: Path, seed: int, setting: str):
    """(X_fit, X_test, y_test) under the protocol above."""
    d = np.load(path)
    X, y = d["X"].astype(np.float64), d["y"].astype(int).ravel()
    if X.shape[0] > MAX_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=MAX_ROWS, stratify=y, random_state=seed)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    lo, hi = Xtr.min(axis=0), Xtr.max(axis=0)
    rng = np.where(hi - lo > 0, hi - lo, 1.0)
    Xtr, Xte = (Xtr - lo) / rng, (Xte - lo) / rng
    if setting == "oneclass":
        Xtr = Xtr[ytr == 0]
    return np.ascontiguousarray(Xtr), np.ascontiguousarray(Xte), yte


def auc(y, s):
    s = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0, posinf=1e300, neginf=-1e300)
    return roc_auc_score(y, s)


# --------------------------------------------------------------------------- members
# Each member function returns {variant_name: (test_scores, reference_scores)}.  Reference scores are
# the training rows scored as new data would be (leave-one-out for memorising members).
KS = (1, 3, 5, 10, 20, 50, 100, 200)


def _knn_variants(Xtr, Xte, prefix):
    from sklearn.neighbors import NearestNeighbors

    K = min(max(KS), Xtr.shape[0] - 1)
    nn = NearestNeighbors(n_neighbors=K + 1).fit(Xtr)
    dte, _ = nn.kneighbors(Xte, n_neighbors=K)
    dtr, _ = nn.kneighbors(Xtr, n_neighbors=K + 1)
    dtr = dtr[:, 1:]  # leave-one-out: drop the row itself (a zero distance)
    out = {}
    for k in KS:
        kk = min(k, K)
        out[f"{prefix}_k{k}_largest"] = (dte[:, kk - 1], dtr[:, kk - 1])
        out[f"{prefix}_k{k}_mean"] = (dte[:, :kk].mean(1), dtr[:, :kk].mean(1))
        out[f"{prefix}_k{k}_meansq"] = ((dte[:, :kk] ** 2).mean(1), (dtr[:, :kk] ** 2).mean(1))
    return out


def m_knn(Xtr, Xte, seed):
    """kNN distances in the min-max space the protocol hands over."""
    return _knn_variants(Xtr, Xte, "knn_mm")


def m_knn_std(Xtr, Xte, seed):
    """kNN distances after per-feature standardisation on the fit data."""
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return _knn_variants((Xtr - mu) / sd, (Xte - mu) / sd, "knn_std")


def _loo_knn(Xfit, Xte, ks):
    """(test, reference) kNN-mean distances for each k, reference = leave-one-out on Xfit."""
    from sklearn.neighbors import NearestNeighbors

    K = min(max(ks), Xfit.shape[0] - 1)
    nn = NearestNeighbors(n_neighbors=K + 1).fit(Xfit)
    dte, _ = nn.kneighbors(Xte, n_neighbors=K)
    dtr, _ = nn.kneighbors(Xfit, n_neighbors=K + 1)
    dtr = dtr[:, 1:]
    return {k: (dte[:, : min(k, K)].mean(1), dtr[:, : min(k, K)].mean(1)) for k in ks}


def _z(s, ref):
    sd = ref.std()
    return (s - ref.mean()) / (sd if sd > 0 else 1.0)


def m_trim(Xtr, Xte, seed):
    """Two-stage fit: screen the fit data with a contamination-robust score (IForest + 50-NN mean, z-averaged),
    drop the top ``f`` fraction, then fit small-k kNN and IForest on what is left (standardised space)."""
    from sklearn.ensemble import IsolationForest

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    f1 = IsolationForest(n_estimators=100, random_state=seed).fit(A)
    i_ref = -f1.score_samples(A)
    k_te, k_ref = _loo_knn(A, B, (50,))[50]
    screen = 0.5 * (_z(i_ref, i_ref) + _z(k_ref, k_ref))
    out = {}
    for frac in (0.0, 0.02, 0.05, 0.1, 0.2):
        keep = screen <= np.quantile(screen, 1 - frac) if frac > 0 else np.ones(len(A), bool)
        Ak = A[keep]
        for k, v in _loo_knn(Ak, B, (1, 3, 5, 10, 20)).items():
            out[f"trim{frac}_knn_k{k}_mean"] = v
        f = IsolationForest(n_estimators=100, random_state=seed).fit(Ak)
        out[f"trim{frac}_iforest"] = (-f.score_samples(B), -f.score_samples(Ak))
    out["screen"] = (0.5 * (_z(-f1.score_samples(B), i_ref) + _z(k_te, k_ref)), screen)
    return out


def m_nbr(Xtr, Xte, seed):
    """Neighbour-trust kNN in standardised space: each neighbour's distance is combined with the neighbour's own
    (leave-one-out) K-NN-mean radius ``rho``, so a query close to a small, isolated clump of training rows
    (anomalies in contaminated data, duplicates) is not called normal just because the clump is near."""
    from sklearn.neighbors import NearestNeighbors

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    K = min(50, A.shape[0] - 1)
    nn = NearestNeighbors(n_neighbors=K + 1).fit(A)
    dte, ite = nn.kneighbors(B, n_neighbors=K)
    dtr, itr = nn.kneighbors(A, n_neighbors=K + 1)
    dtr, itr = dtr[:, 1:], itr[:, 1:]
    out = {}
    for Kself in (10, 20, 50):
        rho = dtr[:, : min(Kself, K)].mean(1)
        for k in (1, 5, 10):
            kk = min(k, K)
            for name, fn in (
                ("add", lambda d, r: d + r),
                ("reach", lambda d, r: np.maximum(d, r)),
                ("ratio", lambda d, r: d / np.maximum(r, 1e-12)),
            ):
                te = fn(dte[:, :kk], rho[ite[:, :kk]]).mean(1)
                ref = fn(dtr[:, :kk], rho[itr[:, :kk]]).mean(1)
                out[f"nbr_{name}_K{Kself}_k{k}"] = (te, ref)
    return out


def _hbos(Xtr, Xte, n_bins=10, alpha=0.01, tol=0.5):
    """Scale-free HBOS (Goldstein & Dengel 2012): -sum_j log(bin mass_j(x_j) + alpha), equal-width bins over the
    fit range; values beyond ``tol`` bin widths outside the range get the emptiest bin's mass."""
    n, d = Xtr.shape
    lo, hi = Xtr.min(0), Xtr.max(0)
    width = np.where(hi > lo, (hi - lo) / n_bins, 1.0)

    def masses():
        m = np.empty((n_bins, d))
        for j in range(d):
            idx = np.clip(((Xtr[:, j] - lo[j]) / width[j]).astype(int), 0, n_bins - 1)
            m[:, j] = np.bincount(idx, minlength=n_bins) / n
        return np.log(m + alpha)

    logm = masses()

    def score(X):
        pos = (X - lo) / width
        idx = np.clip(np.floor(pos).astype(int), 0, n_bins - 1)
        s = logm[idx, np.arange(d)]
        outside = (pos < -tol) | (pos > n_bins + tol)
        s = np.where(outside, logm.min(0)[None, :], s)
        return -s.sum(1)

    return score(Xte), score(Xtr)


def m_hbos(Xtr, Xte, seed):
    out = {"hbos": _hbos(Xtr, Xte)}
    for b in (5, 20):
        out[f"hbos_b{b}"] = _hbos(Xtr, Xte, n_bins=b)
    return out


def m_hbos2(Xtr, Xte, seed):
    n = Xtr.shape[0]
    out = {f"hbos_b{b}": _hbos(Xtr, Xte, n_bins=b) for b in (15, 30, 50)}
    out["hbos_sqrt"] = _hbos(Xtr, Xte, n_bins=max(5, int(round(np.sqrt(n)))))
    out["hbos_cbrt"] = _hbos(Xtr, Xte, n_bins=max(5, int(round(2 * n ** (1 / 3)))))  # Rice rule
    return out


def m_knn_big(Xtr, Xte, seed):
    """Standardised kNN-mean distances at large neighbourhoods: fixed k and k as a fraction of n."""
    from sklearn.neighbors import NearestNeighbors

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    n = A.shape[0]
    ks = {f"k{k}": k for k in (200, 300, 500, 1000)}
    ks.update({f"f{f}": max(10, int(np.ceil(f * n))) for f in (0.01, 0.03, 0.05, 0.1)})
    K = min(max(ks.values()), n - 1)
    nn = NearestNeighbors(n_neighbors=K + 1).fit(A)
    dte, _ = nn.kneighbors(B, n_neighbors=K)
    dtr, _ = nn.kneighbors(None, n_neighbors=K)
    cte, ctr = np.cumsum(dte, 1), np.cumsum(dtr, 1)
    out = {}
    for name, k in ks.items():
        kk = min(k, K)
        out[f"knnbig_{name}"] = (cte[:, kk - 1] / kk, ctr[:, kk - 1] / kk)
    return out


def m_maha(Xtr, Xte, seed):
    """Mahalanobis distance with a Ledoit-Wolf covariance (and MCD where d <= 50), standardised space."""
    from sklearn.covariance import LedoitWolf, MinCovDet

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    lw = LedoitWolf().fit(A)
    out = {"maha_lw": (lw.mahalanobis(B), lw.mahalanobis(A))}
    if A.shape[1] <= 50 and A.shape[0] > 2 * A.shape[1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mcd = MinCovDet(random_state=seed).fit(A)
                out["maha_mcd"] = (mcd.mahalanobis(B), mcd.mahalanobis(A))
            except Exception:  # singular covariance
                pass
    return out


def m_bag(Xtr, Xte, seed):
    """Subsampled 1-NN ensembles (Zimek et al. 2013; Aggarwal & Sathe 2015): the mean over B random subsamples of the
    (standardised) distance to the nearest subsample row; a clump of c anomalies is missing from most subsamples of
    size s << n / c, which is what makes subsampling robust to contamination (as in Isolation Forest)."""
    from sklearn.neighbors import NearestNeighbors

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    n = A.shape[0]
    rng = np.random.default_rng(seed)
    out = {}
    for s_max, label in ((256, "s256"), (1024, "s1024")):
        s = min(s_max, n - 1)
        te, tr = np.zeros(len(B)), np.zeros(n)
        for _ in range(25):
            idx = rng.choice(n, s, replace=False)
            nn = NearestNeighbors(n_neighbors=2).fit(A[idx])
            d_te, _ = nn.kneighbors(B, n_neighbors=1)
            d_tr, i_tr = nn.kneighbors(A, n_neighbors=2)
            member = np.zeros(n, bool)
            member[idx] = True
            # a subsample row's own distance is 0: use its second neighbour (leave-one-out)
            tr += np.where(member, d_tr[:, 1], d_tr[:, 0])
            te += d_te[:, 0]
        out[f"bag_{label}"] = (te / 25, tr / 25)
    return out


def m_gmm(Xtr, Xte, seed):
    """Gaussian mixture negative log-likelihood in standardised space (a smooth, global density model)."""
    from sklearn.mixture import GaussianMixture

    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    out = {}
    for c in (1, 4, 16):
        for cov in ("full", "diag"):
            cc = min(c, max(1, A.shape[0] // 10))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = GaussianMixture(cc, covariance_type=cov, reg_covar=1e-2, random_state=seed, max_iter=100).fit(A)
            out[f"gmm_{cov}{c}"] = (-g.score_samples(B), -g.score_samples(A))
    return out


def m_iforest(Xtr, Xte, seed):
    from sklearn.ensemble import IsolationForest

    out = {}
    for n in (100, 300):
        f = IsolationForest(n_estimators=n, random_state=seed).fit(Xtr)
        out[f"iforest{n}"] = (-f.score_samples(Xte), -f.score_samples(Xtr))
    return out


def _pyod(model, Xtr, Xte):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xtr)
        return model.decision_function(Xte), np.asarray(model.decision_scores_)


def m_pyod_ecod(Xtr, Xte, seed):
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.hbos import HBOS

    return {
        "pyod_ecod": _pyod(ECOD(), Xtr, Xte),
        "pyod_copod": _pyod(COPOD(), Xtr, Xte),
        "pyod_hbos": _pyod(HBOS(), Xtr, Xte),
    }


def m_pyod_lof(Xtr, Xte, seed):
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    return {"pyod_lof": _pyod(LOF(), Xtr, Xte), "pyod_knn": _pyod(KNN(), Xtr, Xte)}


def m_pyod_ocsvm(Xtr, Xte, seed):
    from pyod.models.ocsvm import OCSVM

    return {"pyod_ocsvm": _pyod(OCSVM(), Xtr, Xte)}


def m_pyod_pca(Xtr, Xte, seed):
    from pyod.models.pca import PCA

    return {"pyod_pca": _pyod(PCA(random_state=seed), Xtr, Xte)}


def m_pyod_ae(Xtr, Xte, seed):
    from pyod.models.auto_encoder import AutoEncoder

    return {"pyod_ae": _pyod(AutoEncoder(random_state=seed, verbose=0), Xtr, Xte)}


def m_pyod_dif(Xtr, Xte, seed):
    from pyod.models.dif import DIF

    return {"pyod_dif": _pyod(DIF(random_state=seed, device="cpu"), Xtr, Xte)}


def m_ae(Xtr, Xte, seed):
    """deepad's AutoEncoder with its defaults."""
    from deepad.detectors import AutoEncoder

    det = AutoEncoder(random_state=seed, device="cpu").fit(Xtr)
    return {"ae": (det.decision_function(Xte), det.decision_scores_)}


def _dte_class():
    import torch
    from torch import nn

    from deepad.detectors._neural import NeuralDetector
    from deepad.nn import MLP
    from deepad.training import Step

    class DTEC(NeuralDetector):
        """Prototype of DTE-C (Livernoche et al. 2024) with variance-exploding noise on standardised data."""

        def __init__(
            self,
            hidden_dims=(256, 256),
            n_bins=7,
            sigma_min=0.01,
            sigma_max=3.0,
            epochs=30,
            batch_size=64,
            lr=1e-3,
            weight_decay=1e-5,
            dropout=0.0,
            validation_fraction=0.0,
            patience=10,
            lr_schedule=None,
            preprocessing="standard",
            contamination=0.1,
            device="cpu",
            n_threads=None,
            random_state=None,
            verbose=False,
        ):
            self.hidden_dims, self.n_bins, self.sigma_min, self.sigma_max = hidden_dims, n_bins, sigma_min, sigma_max
            self.epochs, self.batch_size, self.lr, self.weight_decay, self.dropout = (
                epochs,
                batch_size,
                lr,
                weight_decay,
                dropout,
            )
            self.validation_fraction, self.patience, self.lr_schedule = validation_fraction, patience, lr_schedule
            self.preprocessing, self.contamination, self.device, self.n_threads = (
                preprocessing,
                contamination,
                device,
                n_threads,
            )
            self.random_state, self.verbose = random_state, verbose

        def _build_module(self, n_features):
            return MLP(n_features, list(self.hidden_dims), int(self.n_bins), dropout=self.dropout)

        def _steps(self, module, data):
            lo, hi = np.log(self.sigma_min), np.log(self.sigma_max)
            B = int(self.n_bins)

            def loss(batch):
                x = batch[0]
                u = torch.rand(x.shape[0], 1)
                sigma = torch.exp(lo + (hi - lo) * u)
                target = torch.clamp((u[:, 0] * B).long(), max=B - 1)
                xt = x + sigma * torch.randn_like(x)
                return nn.functional.cross_entropy(module(xt), target)

            return [Step("loss", loss, list(module.parameters()))]

        def _score_batch(self, module, xb):
            p = torch.softmax(module(xb), dim=1)
            return (p * torch.arange(p.shape[1], dtype=p.dtype)).sum(1)

    return DTEC


def m_dtec(Xtr, Xte, seed):
    """Prototype DTE-C: predict the (log-binned) noise level of a noised row; score = expected bin of a clean row."""
    DTEC = _dte_class()
    out = {}
    for label, kw in (("dtec", dict(epochs=150)), ("dtec_s1", dict(sigma_max=1.0, epochs=150, dropout=0.1))):
        det = DTEC(random_state=seed, **kw).fit(Xtr)
        out[label] = (det.decision_function(Xte), det.decision_scores_)
    return out


def m_dif(Xtr, Xte, seed):
    """deepad's DeepIsolationForest (Xu et al., TKDE 2023) with the paper's N(0, 1) weights (not deepad's default):
    DEAS and plain-depth scores of one fit on min-max inputs (``dif``, ``dif_depth``), and the same on standardised
    inputs (``dif_std``, ``dif_std_depth``), the space DEFAULT's members work in.  Reference scores are the in-sample
    training scores."""
    from deepad.detectors import DeepIsolationForest

    out = {}
    for label, prep in (("dif", "minmax"), ("dif_std", "standard")):
        det = DeepIsolationForest(preprocessing=prep, weight_init="normal", random_state=seed, n_threads=1).fit(Xtr)
        out.update(_dif_scores(det, Xtr, Xte, label))
    return out


def _dif_scores(det, Xtr, Xte, label):
    """A fitted DeepIsolationForest's DEAS (``label``) and depth (``label_depth``) scores, each space scored once."""
    (dte, vte), (dtr, vtr) = (det._member_scores(det._representation(X)) for X in (Xte, Xtr))
    return {label: ((dte * vte).mean(0), (dtr * vtr).mean(0)), label + "_depth": (dte.mean(0), dtr.mean(0))}


def m_dif_scaled(Xtr, Xte, seed):
    """DeepIsolationForest with N(0, 1/fan_in) weights (``weight_init="scaled"``), min-max inputs: DEAS and depth."""
    from deepad.detectors import DeepIsolationForest

    det = DeepIsolationForest(weight_init="scaled", random_state=seed, n_threads=1).fit(Xtr)
    return _dif_scores(det, Xtr, Xte, "dif_scaled")


def m_dif_scaled_std(Xtr, Xte, seed):
    """DeepIsolationForest, N(0, 1/fan_in) weights, on standardised inputs (DEFAULT's feature space)."""
    from deepad.detectors import DeepIsolationForest

    det = DeepIsolationForest(preprocessing="standard", random_state=seed, n_threads=1).fit(Xtr)
    return _dif_scores(det, Xtr, Xte, "dif_scaled_std")


def _trimmed(Xtr, fraction=0.1):
    """The training rows DEFAULT finds least unusual: its leave-one-out scores at or below the (1 - fraction) quantile."""
    from deepad.detectors import DEFAULT

    ref = DEFAULT().fit(Xtr)._reference_scores_
    return Xtr[ref <= np.quantile(ref, 1.0 - fraction)]


def m_ae_new(Xtr, Xte, seed):
    """deepad's AutoEncoder with its current defaults (batch 128, lr 2e-3; ``ae`` is an older cache)."""
    from deepad.detectors import AutoEncoder

    det = AutoEncoder(random_state=seed, device="cpu", n_threads=1).fit(Xtr)
    return {"ae_new": (det.decision_function(Xte), det.decision_scores_)}


def m_ae_trim(Xtr, Xte, seed):
    """AutoEncoder trained on the 90 % of training rows DEFAULT finds least unusual; reference = all training rows."""
    from deepad.detectors import AutoEncoder

    det = AutoEncoder(random_state=seed, device="cpu", n_threads=1).fit(_trimmed(Xtr))
    return {"ae_trim": (det.decision_function(Xte), det.decision_function(Xtr))}


def m_dif_trim(Xtr, Xte, seed):
    """DeepIsolationForest on the 90 % of training rows DEFAULT finds least unusual; reference = all training rows."""
    from deepad.detectors import DeepIsolationForest

    det = DeepIsolationForest(random_state=seed, n_threads=1).fit(_trimmed(Xtr))
    return {"dif_trim": (det.decision_function(Xte), det.decision_function(Xtr))}


def m_default_members(Xtr, Xte, seed):
    """DEFAULT's raw members (5-NN mean, 200-NN mean, HBOS; standardised space), test and leave-one-out training
    scores, to recombine them with other members offline exactly as DEFAULT does (``default_rule`` in ``combine``)."""
    from deepad.detectors import DEFAULT

    det = DEFAULT().fit(Xtr)
    dist, _ = det.neighbors_.kneighbors(None, n_neighbors=max(det.k_local_, det.k_global_))
    ref = det._raw(dist, det.hbos_._reference_scores_)
    te = det.member_scores(Xte)
    return {f"dm_{name}": (te[:, i], ref[:, i]) for i, name in enumerate(("local", "global", "hbos"))}


def m_default(Xtr, Xte, seed):
    """The shipped DEFAULT detector, end to end."""
    from deepad.detectors import DEFAULT

    det = DEFAULT().fit(Xtr)
    return {"default": (det.decision_function(Xte), det._reference_scores_)}


def m_default_views(Xtr, Xte, seed):
    """DEFAULT's calibrated (local, global) views, to study ``local_weight`` offline."""
    from deepad.detectors import DEFAULT

    det = DEFAULT().fit(Xtr)
    v = det.view_scores(Xte)
    zero = np.zeros(len(Xtr))  # reference scores are not needed to recombine calibrated views
    return {"view_local": (v[:, 0], zero), "view_global": (v[:, 1], zero)}


MEMBERS = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_") and callable(fn)}


# --------------------------------------------------------------------------- cache
def cache_file(member, path, setting, seed):
    return CACHE / member / f"{path.stem}__{setting}__{seed}.npz"


def run_members(args):
    for member in args.members:
        fn = MEMBERS[member]
        for path in datasets(args.datasets):
            for setting in args.settings:
                for seed in args.seeds:
                    f = cache_file(member, path, setting, seed)
                    if f.exists() and not args.force:
                        continue
                    Xtr, Xte, yte = split(path, seed, setting)
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = fn(Xtr, Xte, seed)
                    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                    f.parent.mkdir(parents=True, exist_ok=True)
                    arrays = {}
                    for k, (te, ref) in out.items():
                        arrays[f"test::{k}"] = np.asarray(te, dtype=np.float64)
                        arrays[f"ref::{k}"] = np.asarray(ref, dtype=np.float64)
                    np.savez_compressed(f, y=yte, wall=wall, cpu=cpu, **arrays)
                    best = max(out, key=lambda k: auc(yte, out[k][0]))
                    print(
                        f"{member:10s} {path.stem:18s} {setting:12s} seed={seed} wall={wall:6.1f}s cpu={cpu:6.1f}s "
                        f"best={best}:{auc(yte, out[best][0]):.3f}",
                        flush=True,
                    )


def load_results(names=None, settings=SETTINGS, seeds=(0,)):
    """{(dataset, setting, seed): {"y": y, "test": {variant: s}, "ref": {variant: s}, "cpu": {member: s}}}."""
    res = {}
    for mdir in sorted(p for p in CACHE.iterdir() if p.is_dir()):
        for f in mdir.glob("*.npz"):
            ds, setting, seed = f.stem.split("__")
            if (
                setting not in settings
                or int(seed) not in seeds
                or (names and not any(n.lower() in ds.lower() for n in names))
            ):
                continue
            d = np.load(f)
            r = res.setdefault((ds, setting, int(seed)), {"y": d["y"], "test": {}, "ref": {}, "cpu": {}})
            r["cpu"][mdir.name] = float(d["cpu"])
            for k in d.files:
                if k.startswith("test::"):
                    r["test"][k[6:]] = d[k]
                elif k.startswith("ref::"):
                    r["ref"][k[5:]] = d[k]
    return res


# --------------------------------------------------------------------------- combination rules
def normalise(test, ref, how):
    """Map a member's scores onto a common scale using only its training reference scores."""
    ref = np.asarray(ref, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if how == "z":
        sd = ref.std()
        return (test - ref.mean()) / (sd if sd > 0 else 1.0)
    if how == "robust":
        q25, med, q75 = np.percentile(ref, [25, 50, 75])
        iqr = q75 - q25
        if iqr <= 0:
            iqr = ref.std() or 1.0
        return (test - med) / iqr
    if how == "tail":
        # median-centred, scaled by the distance from the median to the 90th percentile
        med, q90 = np.percentile(ref, [50, 90])
        scale = q90 - med if q90 > med else (ref.std() or 1.0)
        return (test - med) / scale
    if how == "logp":
        # conformal p-value with exponential tail extrapolation beyond the reference max
        srt = np.sort(ref)
        n = srt.size
        ge = n - np.searchsorted(srt, test, side="left")
        p = (ge + 1.0) / (n + 1.0)
        out = -np.log(p)
        med, q90 = np.percentile(ref, [50, 90])
        scale = q90 - med if q90 > med else 1.0
        over = test > srt[-1]
        out[over] += (test[over] - srt[-1]) / scale
        return out
    if how == "rank":
        srt = np.sort(ref)
        return np.searchsorted(srt, test, side="left") / srt.size
    raise ValueError(how)


def combo_scores(r, members, how, weights=None, agg="mean"):
    parts = [normalise(r["test"][m], r["ref"][m], how) for m in members]
    w = np.ones(len(parts)) if weights is None else np.asarray(weights, dtype=float)
    P = np.vstack(parts)
    if agg == "mean":
        return (w[:, None] * P).sum(0) / w.sum()
    if agg == "max":
        return P.max(0)
    raise ValueError(agg)


def table(res, candidates, settings, seeds):
    """candidates: {label: fn(r) -> test scores}; returns {setting: {label: {dataset: mean auc}}}."""
    out = {}
    for setting in settings:
        out[setting] = {}
        for label, fn in candidates.items():
            per = {}
            for (ds, st, seed), r in res.items():
                if st != setting or seed not in seeds:
                    continue
                try:
                    s = fn(r)
                except KeyError:
                    continue
                per.setdefault(ds, []).append(auc(r["y"], s))
            # a data set counts only when every requested seed was run
            out[setting][label] = {ds: float(np.mean(v)) for ds, v in per.items() if len(v) == len(seeds)}
    return out


def print_table(tab, baseline, per_dataset=False):
    for setting, cands in tab.items():
        common = set(cands.get(baseline) or set.intersection(*(set(v) for v in cands.values() if v)))
        skipped = sorted(k for k, v in cands.items() if not common <= set(v))
        cands = {k: v for k, v in cands.items() if common <= set(v)}
        print(
            f"\n== {setting}: mean ROC-AUC over {len(common)} data sets (delta vs {baseline})"
            + (f"; not run on all of them: {', '.join(skipped)}" if skipped else "")
        )
        base = np.mean([cands[baseline][d] for d in common]) if baseline in cands else np.nan
        rows = sorted(((np.mean([v[d] for d in common]), k) for k, v in cands.items() if v), reverse=True)
        for m, k in rows:
            wins = sum(cands[k][d] > cands[baseline][d] + 1e-9 for d in common) if baseline in cands else 0
            print(f"  {k:55s} {100 * m:6.2f}  {100 * (m - base):+6.2f}  wins {wins}/{len(common)}")
        if per_dataset:
            labels = [k for _, k in rows]
            print("  " + " ".join(f"{k[:12]:>12s}" for k in ["dataset"] + labels))
            for d in sorted(common, key=lambda s: int(s.split("_")[0])):
                print("  " + f"{d[:12]:>12s} " + " ".join(f"{100 * cands[k][d]:12.1f}" for k in labels))


def _loc_scale(ref):
    """Median and IQR of reference scores (std, then 1, when the IQR is 0): DEFAULT's own ``_location_scale``."""
    from deepad.detectors.ensemble import _location_scale

    return _location_scale(np.asarray(ref))


def default_rule(r, local, glob, w=0.65):
    """DEFAULT's scoring rule (see LocalGlobalEnsemble) over any cached members: each member robust-z-scored on its
    reference scores, the local and global views the means of their members' z-scores, each view calibrated on its
    reference values, then ``G + w * max(0, L - G)``."""
    L, G = _calibrated_view(r, local), _calibrated_view(r, glob)
    return G + w * np.maximum(L - G, 0.0)


def parse_excess(spec):
    """``DEEP@w``: DEFAULT's rule plus ``w * max(0, D - max(L, G))``, D the calibrated score of cached member DEEP --
    a third view that can only raise a row's score where it finds the row more unusual than both kNN views."""
    deep, _, w = spec.partition("@")
    weight = float(w) if w else 0.25

    def score(r):
        L = _calibrated_view(r, ["dm_local"])
        G = _calibrated_view(r, ["dm_global", "dm_hbos"])
        D = _calibrated_view(r, [deep])
        return G + 0.65 * np.maximum(L - G, 0.0) + weight * np.maximum(D - np.maximum(L, G), 0.0)

    return score


def _calibrated_view(r, members):
    """One view of ``default_rule``: the members' robust z-scores averaged, then calibrated on the reference values."""
    te, ref = 0.0, 0.0
    for m in members:
        c, s = _loc_scale(r["ref"][m])
        te = te + (r["test"][m] - c) / s
        ref = ref + (r["ref"][m] - c) / s
    te, ref = te / len(members), ref / len(members)
    c, s = _loc_scale(ref)
    return (te - c) / s


def parse_lg(spec):
    """``LOCAL/GLOBAL[@w]`` with ``+``-separated member lists, e.g. ``dm_local/dm_global+dm_hbos@0.65``."""
    spec, _, w = spec.partition("@")
    local, _, glob = spec.partition("/")
    return (lambda L, G, ww: lambda r: default_rule(r, L, G, ww))(
        local.split("+"), glob.split("+"), float(w) if w else 0.65
    )


def single(name):
    return lambda r: r["test"][name]


def run_combine(args):
    res = load_results(args.datasets, args.settings, tuple(args.seeds))
    cands = {k: single(k) for k in args.show}
    for spec in args.combo:
        how, _, rest = spec.partition(":")
        members = rest.split("+")
        cands[spec] = (lambda ms, h: lambda r: combo_scores(r, ms, h))(members, how)
    for spec in args.lg:
        cands[spec] = parse_lg(spec)
    for spec in args.excess:
        cands[f"excess:{spec}"] = parse_excess(spec)
    tab = table(res, cands, args.settings, tuple(args.seeds))
    print_table(tab, args.baseline, per_dataset=args.per_dataset)


def run_final(args):
    args.members = ["default"]
    args.force = True  # always score the DEFAULT of the current code, never a stale cache
    run_members(args)
    res = load_results(args.datasets, args.settings, tuple(args.seeds))
    refs = [
        "default",
        "knn_mm_k5_largest",
        "pyod_knn",
        "iforest100",
        "pyod_ecod",
        "pyod_copod",
        "pyod_hbos",
        "pyod_lof",
        "pyod_ocsvm",
        "pyod_pca",
        "pyod_ae",
        "pyod_dif",
        "ae",
    ]
    tab = table(res, {k: single(k) for k in refs}, args.settings, tuple(args.seeds))
    print_table(tab, "knn_mm_k5_largest", per_dataset=args.per_dataset)
    cpu = {}
    for (ds, st, seed), r in res.items():
        if "default" in r["cpu"]:
            cpu.setdefault(st, []).append(r["cpu"]["default"])
    for st, v in cpu.items():
        print(f"DEFAULT fit+score CPU seconds ({st}): mean {np.mean(v):.1f}, max {np.max(v):.1f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("members", "combine", "final"))
    p.add_argument("--members", nargs="*", default=["knn", "knn_std", "iforest"], choices=sorted(MEMBERS))
    p.add_argument("--datasets", nargs="*", default=None, help="substrings of data-set file names")
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--force", action="store_true", help="recompute cached members")
    p.add_argument("--show", nargs="*", default=[], help="single cached variants to list")
    p.add_argument("--combo", nargs="*", default=[], help="HOW:member+member+... (HOW: z, robust, tail, logp, rank)")
    p.add_argument(
        "--lg",
        nargs="*",
        default=[],
        help="DEFAULT's rule over other members: LOCAL/GLOBAL[@w], "
        "members joined by '+', e.g. dm_local/dm_global+dif@0.65",
    )
    p.add_argument(
        "--excess",
        nargs="*",
        default=[],
        help="DEFAULT's rule plus a third view that only raises scores: "
        "DEEP@w adds w * max(0, D - max(L, G)), e.g. dif_trim@0.25",
    )
    p.add_argument("--baseline", default="knn_mm_k5_largest")
    p.add_argument("--per-dataset", action="store_true")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"no data at {DATA}")
    {"members": run_members, "combine": run_combine, "final": run_final}[args.stage](args)


if __name__ == "__main__":
    main()
