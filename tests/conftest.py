"""Shared fixtures: small synthetic data sets with planted anomalies, and fast settings per detector."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# Settings that keep every detector's tests quick on 2 CPU cores.  One entry
# per detector class exported by deepad.detectors; the contract tests fail
# for a detector that is missing here, so new detectors cannot skip them.
FAST_PARAMS: dict[str, dict] = {
    "AutoEncoder": dict(epochs=15, hidden_dims=(16, 8), latent_dim=4, batch_size=64),
    # --- add new detectors below this line ---
    "DAGMM": dict(epochs=20, hidden_dims=(16, 8), latent_dim=2, batch_size=64),
    "ALAD": dict(epochs=10, hidden_dims=(16, 8), latent_dim=4, disc_hidden_dims=(32, 16), batch_size=64),
    "DeepSAD": dict(epochs=15, hidden_dims=(16, 8), latent_dim=4, batch_size=64),
    "DevNet": dict(epochs=50, batch_size=64),
    "BoostedDetector": dict(iterations=100, n_neighbors_global=50),
    "IsolationForest": dict(n_estimators=50),
    "KNN": dict(n_neighbors=5),
    "LOF": dict(n_neighbors=20),
    "OneClassSVM": dict(),
    "PCA": dict(),
    "Mahalanobis": dict(robust=True),
    "ECOD": dict(),
    "HBOS": dict(),
    "DeepIsolationForest": dict(n_ensemble=10, hidden_dims=(64, 32)),
    "LocalGlobalEnsemble": dict(n_neighbors_global=50),
    "VAE": dict(epochs=15, hidden_dims=(16, 8), latent_dim=4, batch_size=64, n_samples=4),
    "DeepSVDD": dict(epochs=15, hidden_dims=(16, 8), latent_dim=4, batch_size=64),
    "RollingZScore": dict(window=32, diff=True),
    "GRUForecaster": dict(window=16, epochs=8, hidden_dims=(16,), batch_size=64),
    "OnlineForecaster": dict(window=16, epochs=8, hidden=16, batch_size=64),
    "TCNAutoEncoder": dict(window=16, epochs=8, hidden_dims=(8, 8), latent_dim=2, batch_size=64),
    "ConvAutoEncoder": dict(epochs=8, hidden_dims=(8, 16), latent_dim=8, batch_size=32),
    "ConvVAE": dict(epochs=8, hidden_dims=(8, 16), latent_dim=8, batch_size=32, n_samples=2),
    "ConvDeepSVDD": dict(epochs=8, pretrain_epochs=4, hidden_dims=(8, 4), latent_dim=16, batch_size=32),
    "GANomaly": dict(epochs=8, hidden_dims=(8, 16), latent_dim=8, batch_size=32),
    "KDSM": dict(width=32, n_blocks=1, n_steps=150, batch_size=64),
}


def make_blobs_with_anomalies(n_normal=400, n_anomalies=20, n_features=6, seed=0):
    """Normal rows on a correlated Gaussian; anomalies scattered uniformly far outside it."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
    normal = rng.normal(size=(n_normal, n_features)) @ A + 2.0
    anomalies = rng.uniform(-6, 10, size=(n_anomalies, n_features))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


@pytest.fixture(scope="session")
def planted():
    """(X_train_normal, X_test, y_test): one-class train set and a labelled test set."""
    X_train, _ = make_blobs_with_anomalies(n_normal=400, n_anomalies=0, seed=1)
    X_test, y_test = make_blobs_with_anomalies(n_normal=200, n_anomalies=20, seed=2)
    return X_train, X_test, y_test


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    monkeypatch.setenv("DEEPAD_NUM_THREADS", os.environ.get("DEEPAD_NUM_THREADS", "1"))
