"""Detector-specific tests for VAE (common random numbers) and DeepSVDD (collapse guards, objectives)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepad
from deepad.detectors import VAE, DeepSVDD

from conftest import FAST_PARAMS


@pytest.fixture(scope="module")
def vae(planted):
    return VAE(**FAST_PARAMS["VAE"], random_state=0).fit(planted[0])


@pytest.fixture(scope="module")
def svdd(planted):
    # no pre-training, so the network training starts from is reproducible from the seed alone
    return DeepSVDD(**{**FAST_PARAMS["DeepSVDD"], "pretrain_epochs": 0}, random_state=0).fit(planted[0])


# ----------------------------------------------------------------------------- VAE
def test_vae_score_independent_of_batch_composition(vae, planted):
    _, X_test, _ = planted
    batch = vae.decision_function(X_test)
    alone = np.array([vae.decision_function(X_test[i : i + 1])[0] for i in range(10)])
    np.testing.assert_allclose(alone, batch[:10], rtol=1e-5, atol=1e-6)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(vae.decision_function(X_test[perm]), batch[perm], rtol=1e-5, atol=1e-6)
    # repeated scoring is deterministic although the score is a Monte-Carlo estimate
    np.testing.assert_array_equal(vae.decision_function(X_test), batch)


def test_vae_noise_is_common_random_numbers_from_the_seed(vae, planted):
    params = FAST_PARAMS["VAE"]
    assert vae.mc_noise_.shape == (params["n_samples"], params["latent_dim"])
    assert np.isfinite(vae.mc_noise_).all() and vae.mc_noise_.std() > 0.2
    other = VAE(**{**params, "epochs": 1}, random_state=1).fit(planted[0])
    assert not np.array_equal(other.mc_noise_, vae.mc_noise_)
    same = VAE(**{**params, "epochs": 1}, random_state=0).fit(planted[0])
    np.testing.assert_array_equal(same.mc_noise_, vae.mc_noise_)


def test_vae_noise_matters_and_is_saved(vae, planted, tmp_path):
    _, X_test, _ = planted
    vae.save(tmp_path / "vae")
    loaded = deepad.load(tmp_path / "vae")
    np.testing.assert_array_equal(loaded.mc_noise_, vae.mc_noise_)
    np.testing.assert_array_equal(loaded.decision_function(X_test), vae.decision_function(X_test))
    # the stored draws are really used: other draws give other scores
    loaded.mc_noise_ = loaded.mc_noise_ + 1.0
    assert not np.allclose(loaded.decision_function(X_test), vae.decision_function(X_test))


def test_vae_score_is_reconstruction_plus_nonnegative_kl(vae, planted):
    _, X_test, _ = planted
    errors = vae.feature_errors(X_test)
    assert errors.shape == X_test.shape and (errors >= 0).all()
    kl = vae.decision_function(X_test) - 0.5 * errors.sum(axis=1)
    assert (kl >= -1e-4).all()
    assert kl.max() > 1e-3  # the KL term is part of the score


def test_vae_feature_errors_point_at_the_broken_feature(vae, planted):
    X_train, _, _ = planted
    rows = X_train[:20].copy()
    rows[:, 2] += 8 * X_train[:, 2].std()
    errors = vae.feature_errors(rows)
    assert (errors.argmax(axis=1) == 2).mean() >= 0.9
    assert vae.decision_function(rows).mean() > vae.decision_scores_.max()


def test_vae_encode_returns_posterior_mean(vae, planted):
    z = vae.encode(planted[1])
    assert z.shape == (planted[1].shape[0], FAST_PARAMS["VAE"]["latent_dim"])


@pytest.mark.parametrize("bad", [dict(n_samples=0), dict(latent_dim=0), dict(beta=-1.0), dict(beta=float("nan"))])
def test_vae_bad_params_rejected(bad, planted):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        VAE(**{**FAST_PARAMS["VAE"], **bad}).fit(planted[0])


# ----------------------------------------------------------------------------- DeepSVDD
def test_svdd_has_no_bias_and_no_bounded_activation(svdd):
    names = [n for n, _ in svdd.module_.named_parameters()]
    assert names and not any("bias" in n for n in names), names
    linears = [m for m in svdd.module_.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.bias is None for m in linears)
    assert not any(isinstance(m, (torch.nn.Sigmoid, torch.nn.Tanh)) for m in svdd.module_.modules())


def _initial_network(det, X):
    """The untrained network fit() started from: same seed, built first thing inside the seeded context."""
    with torch.random.fork_rng():
        torch.manual_seed(det.seed_)
        net = det._build_module(X.shape[1]).eval()
    with torch.no_grad():
        return net(torch.as_tensor(det._transform(X)))


def test_svdd_center_is_initial_mean_without_near_zero_coordinates(svdd, planted):
    X_train = planted[0]
    c = svdd.center_
    assert c.shape == (FAST_PARAMS["DeepSVDD"]["latent_dim"],)
    assert (np.abs(c) >= DeepSVDD.center_eps - 1e-7).all()
    mean = _initial_network(svdd, X_train).mean(dim=0).numpy()
    far = np.abs(mean) >= DeepSVDD.center_eps
    np.testing.assert_allclose(c[far], mean[far], rtol=1e-5)
    np.testing.assert_array_equal(c[~far], np.where(mean[~far] < 0, -0.1, 0.1).astype(np.float32))


def test_svdd_training_pulls_rows_towards_center(svdd, planted):
    X_train = planted[0]
    before = ((_initial_network(svdd, X_train).numpy() - svdd.center_) ** 2).sum(axis=1).mean()
    after = svdd.decision_scores_.mean()
    assert after < 0.5 * before, (before, after)
    losses = svdd.history_["train_loss"]
    assert losses[-1] < losses[0]


def test_svdd_center_saved_and_used(svdd, planted, tmp_path):
    _, X_test, _ = planted
    svdd.save(tmp_path / "svdd")
    loaded = deepad.load(tmp_path / "svdd")
    np.testing.assert_array_equal(loaded.center_, svdd.center_)
    assert loaded.radius_ == svdd.radius_ == 0.0
    loaded.center_ = loaded.center_ + 1.0
    assert not np.allclose(loaded.decision_function(X_test), svdd.decision_function(X_test))


@pytest.mark.parametrize("nu", [0.05, 0.2])
def test_svdd_soft_boundary_radius_leaves_nu_outside(nu, planted, tmp_path):
    X_train, X_test, _ = planted
    det = DeepSVDD(**FAST_PARAMS["DeepSVDD"], objective="soft-boundary", nu=nu, random_state=0).fit(X_train)
    assert det.radius_ > 0
    outside = (det.decision_scores_ > 0).mean()
    assert abs(outside - nu) <= 0.01, outside
    # score = squared distance - R^2
    one_class_view = det.decision_function(X_test) + det.radius_**2
    assert (one_class_view >= -1e-6).all()
    det.save(tmp_path / "sb")
    np.testing.assert_array_equal(deepad.load(tmp_path / "sb").decision_function(X_test), det.decision_function(X_test))


def test_svdd_pretraining_uses_trainer_and_changes_the_start(planted):
    X_train = planted[0]
    params = {**FAST_PARAMS["DeepSVDD"], "epochs": 3}
    plain = DeepSVDD(**params, pretrain_epochs=0, random_state=0).fit(X_train)
    pre = DeepSVDD(**params, pretrain_epochs=4, random_state=0).fit(X_train)
    hist = pre.pretrain_history_["train_reconstruction"]
    assert len(hist) == 4 and hist[-1] < hist[0]
    assert not hasattr(plain, "pretrain_history_")
    # same seed, same initial weights: only the pre-training can make the trained networks differ
    assert not np.allclose(pre.decision_scores_, plain.decision_scores_)
    assert not any("bias" in n for n, _ in pre.module_.named_parameters())


@pytest.mark.parametrize(
    "bad", [dict(objective="hard"), dict(nu=0.0), dict(nu=1.5), dict(pretrain_epochs=-1), dict(latent_dim=0)]
)
def test_svdd_bad_params_rejected(bad, planted):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        DeepSVDD(**{**FAST_PARAMS["DeepSVDD"], **bad}).fit(planted[0])
