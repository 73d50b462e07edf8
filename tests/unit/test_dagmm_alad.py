"""DAGMM and ALAD specifics: the mixture algebra against scipy, determinism of scores, and that training trains."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import deepad
from deepad.detectors import ALAD, DAGMM
from deepad.nn.dagmm import gmm_energy, gmm_parameters
from deepad.training import Callback

from conftest import FAST_PARAMS


class Snapshot(Callback):
    """Keeps a copy of the untrained module handed to the trainer."""

    def on_train_begin(self, trainer, module):
        self.initial = copy.deepcopy(module)


def numpy_energy(z, phi, mu, cov):
    """``-log sum_k phi_k N(z; mu_k, cov_k)`` the textbook way, with scipy."""
    log_terms = np.stack([np.log(phi[k]) + multivariate_normal(mu[k], cov[k]).logpdf(z) for k in range(len(phi))])
    return -logsumexp(log_terms, axis=0)


@pytest.fixture(scope="module")
def dagmm(planted):
    X_train, _, _ = planted
    return DAGMM(**FAST_PARAMS["DAGMM"], random_state=0).fit(X_train)


@pytest.fixture(scope="module")
def alad(planted):
    X_train, _, _ = planted
    return ALAD(**FAST_PARAMS["ALAD"], random_state=0).fit(X_train)


# --------------------------------------------------------------------------- mixture algebra
def test_gmm_parameters_match_weighted_moments():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    logits = rng.normal(size=(50, 2))
    gamma = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    phi, mu, cov = (t.numpy() for t in gmm_parameters(torch.tensor(z), torch.tensor(gamma), cov_eps=1e-6))
    np.testing.assert_allclose(phi, gamma.mean(axis=0))
    assert phi.sum() == pytest.approx(1.0)
    for k in range(2):
        w = gamma[:, k]
        np.testing.assert_allclose(mu[k], (w[:, None] * z).sum(0) / w.sum())
        expected = np.cov(z.T, aweights=w, bias=True) + 1e-6 * np.eye(3)
        np.testing.assert_allclose(cov[k], expected, rtol=1e-10, atol=1e-12)


def test_gmm_energy_matches_scipy_and_stays_finite_far_out():
    rng = np.random.default_rng(1)
    K, D = 3, 4
    phi = rng.dirichlet(np.ones(K))
    mu = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    cov = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(D)
    z = rng.normal(size=(20, D))
    z[0] = 1e3  # exp(-E) underflows to 0 here; the direct formula would give inf
    got = gmm_energy(*(torch.tensor(a) for a in (z, phi, mu, cov))).numpy()
    np.testing.assert_allclose(got, numpy_energy(z, phi, mu, cov), rtol=1e-10)
    assert np.isfinite(got).all() and got[0] > 1e4


# --------------------------------------------------------------------------- DAGMM
def test_dagmm_score_is_energy_under_fitted_mixture(dagmm, planted):
    _, X_test, _ = planted
    rows = X_test[[0, 5, 17, 205, 210]]  # normal and planted anomalies
    z = dagmm.encode(rows)
    assert z.shape == (5, dagmm.latent_dim + 2)
    expected = numpy_energy(z, dagmm.phi_, dagmm.mu_, dagmm.cov_)
    np.testing.assert_allclose(dagmm.decision_function(rows), expected, rtol=1e-7, atol=1e-9)


def test_dagmm_mixture_weights_and_memberships(dagmm, planted):
    X_train, X_test, _ = planted
    K = dagmm.n_components
    assert dagmm.phi_.shape == (K,) and (dagmm.phi_ > 0).all()
    assert dagmm.phi_.sum() == pytest.approx(1.0, abs=1e-12)
    gamma = dagmm.component_memberships(X_test)
    assert gamma.shape == (X_test.shape[0], K)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-6)
    # the stored mixture is the one estimated from the whole training set
    gamma_train = dagmm.component_memberships(X_train)
    z_train = dagmm.encode(X_train)
    np.testing.assert_allclose(dagmm.phi_, gamma_train.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(dagmm.mu_, gamma_train.T @ z_train / gamma_train.sum(0)[:, None], rtol=1e-8, atol=1e-10)
    assert dagmm.cov_.shape == (K, z_train.shape[1], z_train.shape[1])
    assert (np.linalg.eigvalsh(dagmm.cov_) > 0).all()


def test_dagmm_score_independent_of_batch_composition(dagmm, planted):
    _, X_test, _ = planted
    full = dagmm.decision_function(X_test)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(dagmm.decision_function(X_test[perm]), full[perm], rtol=1e-12)
    singles = np.array([dagmm.decision_function(X_test[i : i + 1])[0] for i in range(0, len(X_test), 37)])
    np.testing.assert_allclose(singles, full[::37], rtol=5e-6)  # float32 kernels by batch size: 1.1e-6 on an AMD EPYC


def test_dagmm_training_lowers_loss_and_changes_all_networks(planted):
    X_train, _, _ = planted
    snap = Snapshot()
    det = DAGMM(**FAST_PARAMS["DAGMM"], validation_fraction=0.0, random_state=0).fit(X_train, callbacks=[snap])
    loss = det.history_["train_loss"]
    assert len(loss) == det.n_epochs_ == FAST_PARAMS["DAGMM"]["epochs"]
    assert loss[-1] < 0.5 * loss[0]
    for part in ("encoder", "decoder", "estimation"):
        before = getattr(snap.initial, part).state_dict()
        after = getattr(det.module_, part).state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{part} did not train"


def test_dagmm_saved_mixture_round_trips(dagmm, planted, tmp_path):
    dagmm.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    for name in ("phi_", "mu_", "cov_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(dagmm, name))
    np.testing.assert_array_equal(loaded.component_memberships(planted[1]), dagmm.component_memberships(planted[1]))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(cov_eps=0.0), "cov_eps"),
        (dict(lambda_energy=-1.0), "lambda_energy"),
    ],
)
def test_dagmm_bad_params_rejected(planted, bad, match):
    with pytest.raises(ValueError, match=match):
        DAGMM(epochs=1, **bad).fit(planted[0])


# --------------------------------------------------------------------------- ALAD
@pytest.mark.parametrize("kind", ["fm", "l1"])
def test_alad_score_independent_of_batch_composition(alad, planted, kind):
    _, X_test, _ = planted
    det = copy.deepcopy(alad).set_params(anomaly_score=kind)
    full = det.decision_function(X_test)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(det.decision_function(X_test[perm]), full[perm], rtol=1e-6)
    singles = np.array([det.decision_function(X_test[i : i + 1])[0] for i in range(0, len(X_test), 23)])
    np.testing.assert_allclose(singles, full[::23], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(det.decision_function(X_test), full)  # repeatable: no dropout, no noise


def test_alad_scores_match_their_definitions(alad, planted):
    _, X_test, _ = planted
    rows = X_test[:10]
    module = alad.module_
    with torch.no_grad():
        x = torch.as_tensor(alad._transform(rows))
        rec = module.generator(module.encoder(x))
        f_real = module.d_xx.features(torch.cat([x, x], dim=1))
        f_rec = module.d_xx.features(torch.cat([x, rec], dim=1))
    fm = copy.deepcopy(alad).set_params(anomaly_score="fm")
    np.testing.assert_allclose(fm.decision_function(rows), (f_real - f_rec).abs().sum(1).numpy(), rtol=1e-5)
    l1 = copy.deepcopy(alad).set_params(anomaly_score="l1")
    np.testing.assert_allclose(l1.decision_function(rows), (x - rec).abs().sum(1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        alad.reconstruct(rows), rec.numpy() * alad.scaler_scale_ + alad.scaler_center_, rtol=1e-5, atol=1e-5
    )


def test_alad_training_updates_every_network_and_learns_cycle(planted):
    X_train, _, _ = planted
    snap = Snapshot()
    # enough updates (20 epochs x 13 batches) at a higher lr for the cycle to visibly improve
    params = {**FAST_PARAMS["ALAD"], "epochs": 20, "batch_size": 32, "lr": 1e-3}
    det = ALAD(**params, random_state=0).fit(X_train, callbacks=[snap])
    # fixed-length training: no validation split, no early stopping
    assert det.n_epochs_ == 20
    assert set(det.history_) == {"train_discriminator", "train_generator", "lr"}
    assert all(np.isfinite(det.history_[k]).all() for k in det.history_)
    for part in ("encoder", "generator", "d_xz", "d_xx", "d_zz"):
        before = getattr(snap.initial, part).state_dict()
        after = getattr(det.module_, part).state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{part} did not train"
    # the discriminators learn to separate real from generated pairs: their loss falls below its start
    assert det.history_["train_discriminator"][-1] < det.history_["train_discriminator"][0]
    # adversarial cycle consistency makes G(E(x)) approach x on the training data
    x = torch.as_tensor(det._transform(X_train))
    with torch.no_grad():
        snap.initial.eval()
        err_before = (snap.initial(x) - x).abs().mean().item()
        err_after = (det.module_(x) - x).abs().mean().item()
    assert err_after < 0.9 * err_before


def test_alad_without_spectral_norm_trains_and_round_trips(planted, tmp_path):
    X_train, X_test, _ = planted
    det = ALAD(**{**FAST_PARAMS["ALAD"], "epochs": 3}, spectral_norm=False, random_state=0).fit(X_train)
    assert not any("parametrizations" in k for k in det.module_.state_dict())
    det.save(tmp_path / "m")
    np.testing.assert_array_equal(deepad.load(tmp_path / "m").decision_function(X_test), det.decision_function(X_test))


def test_alad_bad_score_rejected(planted):
    with pytest.raises(ValueError, match="anomaly_score must be one of"):
        ALAD(epochs=1, anomaly_score="logits").fit(planted[0])
