"""GANomaly: networks for any image size, training, scoring rule, anomaly maps, persistence, sample grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import deepad
from deepad.detectors import GANomaly
from deepad.detectors.gan import sample_grid_image
from deepad.nn.gan import GANomalyNet, down_sizes

from conftest import FAST_PARAMS
from test_images import blobs


def make(**extra):
    # n_threads=1: module-scoped fixtures are built before the autouse DEEPAD_NUM_THREADS fixture applies
    return GANomaly(**{**FAST_PARAMS["GANomaly"], "random_state": 0, "device": "cpu", "n_threads": 1, **extra})


@pytest.fixture(scope="module")
def data():
    X_train = blobs(160, 1)
    X_test = np.concatenate([blobs(60, 2), blobs(12, 3, patch=True)])
    y_test = np.r_[np.zeros(60, int), np.ones(12, int)]
    return X_train, X_test, y_test


@pytest.fixture(scope="module")
def fitted(data):
    return make().fit(data[0])


# --------------------------------------------------------------------------- networks
@pytest.mark.parametrize(
    "shape,channels", [((1, 28, 28), (32, 64)), ((3, 13, 11), (8, 16)), ((3, 64, 48), (8, 16, 32)), ((1, 16, 16), (4,))]
)
def test_network_restores_any_image_size(shape, channels):
    c, h, w = shape
    net = GANomalyNet(c, (h, w), channels, 5, disc_channels=(6, 12)).eval()
    x = torch.randn(3, c, h, w)
    x_hat, z, z_hat = net(x)
    assert x_hat.shape == x.shape and z.shape == (3, 5) and z_hat.shape == (3, 5)
    assert x_hat.abs().max() <= 1.0  # tanh output
    logit, features = net.discriminate(x)
    assert logit.shape == (3,) and features.shape[:2] == (3, 12)
    assert {id(p) for p in net.generator_parameters()}.isdisjoint({id(p) for p in net.discriminator_parameters()})
    n_params = sum(p.numel() for p in net.parameters())
    assert len(net.generator_parameters()) + len(net.discriminator_parameters()) == len(list(net.parameters()))
    assert n_params > 0


def test_too_small_images_are_a_clear_error():
    assert down_sizes(28, 28, 2) == [(28, 28), (14, 14), (7, 7)]
    with pytest.raises(ValueError, match="too small for 3 stride-2 stages"):
        GANomalyNet(1, (4, 4), (8, 8, 8), 4)


# --------------------------------------------------------------------------- training and scoring
def test_training_losses_finite_and_epochs_exact(fitted):
    h = fitted.history_
    n = FAST_PARAMS["GANomaly"]["epochs"]
    assert set(h) >= {"train_discriminator", "train_generator"}
    assert len(h["train_discriminator"]) == len(h["train_generator"]) == n == fitted.n_epochs_
    assert all(math.isfinite(v) for v in h["train_discriminator"] + h["train_generator"])
    # the generator learns: its loss falls (contextual L1 dominates with weight 50)
    assert h["train_generator"][-1] < h["train_generator"][0]


def test_minmax_preprocessing_maps_training_range_to_tanh_range(data, fitted):
    X_train = data[0]
    lo, hi = X_train.min(), X_train.max()
    np.testing.assert_allclose(fitted.scaler_center_, [(lo + hi) / 2], rtol=1e-6)
    np.testing.assert_allclose(fitted.scaler_scale_, [(hi - lo) / 2], rtol=1e-6)
    Xt = fitted._transform(X_train[:, None])
    assert Xt.min() == pytest.approx(-1.0, abs=1e-6) and Xt.max() == pytest.approx(1.0, abs=1e-6)


def test_score_is_documented_combination_of_residuals(data, fitted):
    X_train, X_test, _ = data
    np.testing.assert_array_equal(fitted.decision_function(X_train), fitted.decision_scores_)
    parts = fitted.score_parts(X_test)
    assert parts.shape == (len(X_test), 2) and (parts >= 0).all()
    expected = parts[:, 0] / fitted.score_scale_[0] + fitted.feature_weight * parts[:, 1] / fitted.score_scale_[1]
    np.testing.assert_allclose(fitted.decision_function(X_test), expected, rtol=1e-6)
    # the scale is the training mean of each term, so training scores average 1 + feature_weight
    np.testing.assert_allclose(fitted.score_parts(X_train).mean(axis=0), fitted.score_scale_, rtol=1e-4)
    assert fitted.decision_scores_.mean() == pytest.approx(1 + fitted.feature_weight, rel=1e-4)
    # the pixel residual is the mean squared difference to the reconstruction (network units)
    rec = fitted.reconstruct(X_test)
    resid = ((X_test[:, None] - rec) / fitted.scaler_scale_[0]) ** 2
    np.testing.assert_allclose(parts[:, 0], resid.mean(axis=(1, 2, 3)), rtol=1e-3, atol=1e-7)


def test_planted_anomalies_found_and_map_is_abs_residual(data, fitted):
    _, X_test, y_test = data
    s = fitted.decision_function(X_test)
    assert roc_auc_score(y_test, s) > 0.95
    # both score terms on their own separate the patch images too
    parts = fitted.score_parts(X_test)
    assert roc_auc_score(y_test, parts[:, 0]) > 0.9
    maps = fitted.anomaly_map(X_test)
    rec = fitted.reconstruct(X_test)
    np.testing.assert_allclose(maps, np.abs(X_test - rec[:, 0]) / fitted.scaler_scale_[0], rtol=1e-3, atol=1e-6)


def test_same_seed_same_model_other_seed_differs(data, fitted):
    X_train, X_test, _ = data
    again = make().fit(X_train)
    np.testing.assert_array_equal(again.decision_function(X_test), fitted.decision_function(X_test))
    other = make(random_state=1).fit(X_train)
    assert not np.array_equal(other.decision_function(X_test), fitted.decision_function(X_test))


def test_save_load_identical(data, fitted, tmp_path):
    _, X_test, _ = data
    fitted.save(tmp_path / "gan")
    loaded = deepad.load(tmp_path / "gan")
    assert type(loaded) is GANomaly and loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.decision_function(X_test), fitted.decision_function(X_test))
    np.testing.assert_array_equal(loaded.score_parts(X_test), fitted.score_parts(X_test))
    np.testing.assert_array_equal(loaded.anomaly_map(X_test[:5]), fitted.anomaly_map(X_test[:5]))
    np.testing.assert_array_equal(loaded.score_scale_, fitted.score_scale_)
    np.testing.assert_array_equal(loaded.encode(X_test[:5]), fitted.encode(X_test[:5]))


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(feature_weight=-1.0), "feature_weight must be a finite number >= 0"),
        (dict(contextual_weight=float("nan")), "contextual_weight"),
        (dict(preprocessing="robust"), "preprocessing must be 'minmax'"),
        (dict(output_activation="sigmoid"), "output_activation must be 'tanh' or None"),
        (dict(disc_hidden_dims=()), "disc_hidden_dims"),
        (dict(sample_every=0), "sample_every must be a positive integer"),
        (dict(latent_dim=0), "latent_dim"),
    ],
)
def test_bad_parameters_rejected(data, params, match):
    with pytest.raises(ValueError, match=match):
        make(**params).fit(data[0][:20])


# --------------------------------------------------------------------------- sample grids
def test_sample_grid_png_written_every_n_epochs_without_changing_training(data, fitted, tmp_path):
    from PIL import Image

    X_train, X_test, _ = data
    out = tmp_path / "samples"
    det = make(sample_dir=str(out), sample_every=3).fit(X_train)
    # epochs 3 and 6, and the last one (8)
    assert [p.rsplit("/", 1)[-1] for p in det.sample_paths_] == [
        "samples_epoch0003.png",
        "samples_epoch0006.png",
        "samples_epoch0008.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "samples_epoch0003.png",
        "samples_epoch0006.png",
        "samples_epoch0008.png",
    ]
    grid = np.asarray(Image.open(out / "samples_epoch0008.png").convert("RGB"))
    # 3 rows (inputs, reconstructions, generated) x 8 columns of 16x16 images zoomed 2x, 2-pixel gaps
    assert grid.shape == (3 * (32 + 2) + 2, 8 * (32 + 2) + 2, 3)
    cells = [
        grid[2 + r * 34 : 2 + r * 34 + 32, 2 + c * 34 : 2 + c * 34 + 32, 0].astype(float)
        for r in range(3)
        for c in range(8)
    ]
    assert all(cell.std() > 10 for cell in cells), "every cell shows an image, not a flat colour"
    inputs, recs, gens = (np.stack(cells[r * 8 : (r + 1) * 8]) for r in range(3))
    # reconstructions resemble their inputs more than other inputs do
    err_own = np.abs(inputs - recs).mean()
    err_other = np.abs(inputs - np.roll(recs, 1, axis=0)).mean()
    assert err_own < err_other
    assert not np.array_equal(gens, recs)
    # drawing the grids does not touch training: same model as without them
    np.testing.assert_array_equal(det.decision_function(X_test), fitted.decision_function(X_test))
    assert fitted.sample_paths_ == []


def test_sample_grid_goes_to_tensorboard(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    from deepad.training import TensorBoardLogger

    make(epochs=4, sample_every=2).fit(data[0], callbacks=[TensorBoardLogger(str(tmp_path / "tb"))])
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={IMAGES: 0}).Reload()
    assert "samples" in acc.Tags()["images"]
    events = acc.Images("samples")
    assert [e.step for e in events] == [2, 4]
    assert events[-1].width == 8 * 34 + 2 and events[-1].height == 3 * 34 + 2
    assert "train_generator" in acc.Tags()["scalars"]


def test_sample_grid_image_scaling_and_layout():
    a = np.zeros((2, 1, 4, 4))
    a[1] = 1.0
    rgb = np.stack([np.full((3, 4, 4), v) for v in (0.0, 0.5)])
    grid = sample_grid_image([a, np.clip(a * 2, 0, 2)], pad=1, min_cell=4)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3) and grid.dtype == np.uint8
    assert (grid[1:5, 1:5] == 0).all() and (grid[1:5, 6:10] == 255).all()
    assert (grid[6:10, 6:10] == 255).all()  # values above the first row's range are clipped
    zoomed = sample_grid_image([rgb], lo=0, hi=1, pad=0, min_cell=8)
    assert zoomed.shape == (8, 16, 3) and (zoomed[:, 8:] == 128).all()
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        sample_grid_image([np.zeros((4, 4))])
