"""Image input: the image detector contract, image readers and preprocessing, the MNIST benchmark protocol."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import deepad
import deepad.detectors as D
from deepad.detectors._image import validate_images

from conftest import FAST_PARAMS

import image_data
from image_data import MNIST, blobs, make

image_folders = image_data.image_folders  # the module-scoped fixture: train/ and test/ folders of PNGs

IMAGE_NAMES = sorted(n for n in D.__all__ if n != "DEFAULT" and getattr(getattr(D, n), "_image_input", False))


@pytest.fixture(scope="module")
def images():
    X_train = blobs(160, 1)
    X_test = np.concatenate([blobs(60, 2), blobs(12, 3, patch=True)])
    y_test = np.r_[np.zeros(60, int), np.ones(12, int)]
    return X_train, X_test, y_test


@pytest.fixture(scope="module")
def fitted(images):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make(name).fit(images[0])
        return cache[name]

    return get


def test_image_detectors_exported_and_skipped_by_tabular_suite():
    import test_contract

    assert {"ConvAutoEncoder", "ConvVAE", "ConvDeepSVDD"} <= set(IMAGE_NAMES)
    assert not set(IMAGE_NAMES) & set(test_contract.NAMES)
    assert set(IMAGE_NAMES) <= set(FAST_PARAMS)


def _assert_training_scores(det, X):
    """Rescoring the training images reproduces decision_scores_ -- unless they are leave-one-out (latent kNN)."""
    rescored = det.decision_function(X)
    if det.training_scores_kind() == "leave-one-out training scores":
        assert not np.array_equal(rescored, det.decision_scores_)  # each image finds its own code
        np.testing.assert_array_equal(det.labels_, det.decision_scores_ > det.threshold_)
    else:
        np.testing.assert_array_equal(rescored, det.decision_scores_)


@pytest.mark.parametrize("name", IMAGE_NAMES)
class TestImageContract:
    def test_fit_learned_attributes(self, name, images, fitted):
        X_train = images[0]
        det = fitted(name)
        assert det.image_shape_ == [1, 16, 16] and det.n_features_in_ == 256
        assert det.decision_scores_.shape == (len(X_train),) and np.isfinite(det.decision_scores_).all()
        assert 0.05 <= det.labels_.mean() <= 0.15
        assert det.n_epochs_ == FAST_PARAMS[name]["epochs"]

    def test_rescoring_reproduces_decision_scores_and_is_batch_independent(self, name, images, fitted):
        X_train, X_test, _ = images
        det = fitted(name)
        _assert_training_scores(det, X_train)
        full = det.decision_function(X_test)
        # an image's score does not depend on the other images in its batch
        np.testing.assert_array_equal(det.decision_function(X_test[5:9]), full[5:9])
        np.testing.assert_array_equal(det.decision_function(X_test[::-1]), full[::-1])
        # (N, H, W) and (N, 1, H, W) are the same images
        np.testing.assert_array_equal(det.decision_function(X_test[:, None]), full)

    def test_planted_anomalies_found_and_located(self, name, images, fitted):
        _, X_test, y_test = images
        det = fitted(name)
        s = det.decision_function(X_test)
        auc = roc_auc_score(y_test, s)
        assert auc > 0.9, f"{name}: ROC-AUC {auc:.3f} on planted image anomalies"
        maps = det.anomaly_map(X_test)
        assert maps.shape == (len(X_test), 16, 16) and np.isfinite(maps).all()
        # the map of an anomalous image is concentrated on the planted patch
        patch = np.zeros((16, 16), bool)
        patch[1:5, 10:14] = True
        anomalous = maps[y_test == 1]
        assert (anomalous[:, patch].mean(axis=1) > anomalous[:, ~patch].mean(axis=1)).all()

    def test_same_seed_same_scores_and_global_rng_untouched(self, name, images):
        X_train, X_test, _ = images
        np_state = np.random.get_state()[1].copy()
        torch_state = torch.get_rng_state().clone()
        a = make(name).fit(X_train)
        assert np.array_equal(np.random.get_state()[1], np_state)
        assert torch.equal(torch.get_rng_state(), torch_state)
        b = make(name).fit(X_train)
        np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))

    def test_save_load_identical(self, name, images, fitted, tmp_path):
        _, X_test, _ = images
        det = fitted(name)
        det.save(tmp_path / "m")
        loaded = deepad.load(tmp_path / "m")
        assert type(loaded) is type(det) and loaded.get_params() == det.get_params()
        np.testing.assert_array_equal(loaded.decision_function(X_test), det.decision_function(X_test))
        np.testing.assert_array_equal(loaded.anomaly_map(X_test[:4]), det.anomaly_map(X_test[:4]))
        np.testing.assert_array_equal(loaded.predict_proba(X_test), det.predict_proba(X_test))
        assert loaded.threshold_ == det.threshold_ and loaded.image_shape_ == det.image_shape_

    def test_clone_round_trip(self, name):
        det = make(name)
        assert clone(det).get_params() == det.get_params()
        assert type(det)(**det.get_params()).get_params() == det.get_params()

    def test_colour_images_of_odd_size(self, name):
        X = blobs(40, 5, size=13, channels=3)[:, :, :, :11]  # (N, 3, 13, 11)
        det = make(name, epochs=2, preprocessing="standard").fit(X)
        assert det.image_shape_ == [3, 13, 11]
        assert det.anomaly_map(X[:3]).shape == (3, 13, 11)
        _assert_training_scores(det, X)

    def test_bad_input_rejected_with_clear_messages(self, name, images, fitted):
        X_train, X_test, _ = images
        det = fitted(name)
        with pytest.raises(ValueError, match=r"must be images of shape \(N, H, W\) or \(N, C, H, W\), got 2-D"):
            make(name).fit(X_train.reshape(len(X_train), -1))
        bad = X_train.copy()
        bad[7, 3, 4] = np.nan
        with pytest.raises(ValueError, match=r"NaN \(first in image 7, channel 0, pixel row 3, column 4"):
            make(name).fit(bad)
        bad = X_test.copy()
        bad[2, 0, 1] = np.inf
        with pytest.raises(ValueError, match=r"infinity \(first in image 2"):
            det.decision_function(bad)
        with pytest.raises(ValueError, match=r"\(C, H, W\) = \(1, 12, 12\), but this .* was fitted on \(1, 16, 16\)"):
            det.decision_function(X_test[:, :12, :12])
        with pytest.raises(ValueError, match="looks channel-last"):
            det.decision_function(np.repeat(X_test[..., None], 3, axis=-1))
        with pytest.raises(ValueError, match="empty"):
            det.decision_function(X_test[:0])
        with pytest.raises(ValueError, match=r"has 1 images, but this .* needs at least"):
            make(name).fit(X_train[:1])
        with pytest.raises(TypeError, match="cannot be read as pixel values"):
            make(name).fit(np.full((5, 4, 4), "a", dtype=object))
        with pytest.raises(ValueError, match="hidden_dims"):
            make(name, hidden_dims=()).fit(X_train)


def test_validate_images_shapes():
    X = np.zeros((3, 5, 6), dtype=np.uint8)
    assert validate_images(X).shape == (3, 1, 5, 6) and validate_images(X).dtype == np.float32
    with pytest.raises(ValueError, match="single image"):
        validate_images(np.zeros((5, 6)))
    with pytest.raises(TypeError, match="pandas"):
        import pandas as pd

        validate_images(pd.DataFrame(np.zeros((3, 3))))


def test_autoencoder_reconstruction_scoring_is_map_mean(images):
    X_train, X_test, y_test = images
    det = make("ConvAutoEncoder", scoring="reconstruction").fit(X_train)
    s = det.decision_function(X_test)
    np.testing.assert_allclose(det.anomaly_map(X_test).mean(axis=(1, 2)), s, rtol=1e-5)
    assert roc_auc_score(y_test, s) > 0.9
    assert det.reconstruct(X_test[:3]).shape == (3, 1, 16, 16)
    assert not hasattr(det, "train_codes_")


def test_autoencoder_latent_knn_scoring(images, fitted, tmp_path):
    from sklearn.neighbors import NearestNeighbors

    X_train, X_test, _ = images
    det = fitted("ConvAutoEncoder")
    assert det.scoring == "latent_knn" and det.train_codes_.shape == (
        len(X_train),
        FAST_PARAMS["ConvAutoEncoder"]["latent_dim"],
    )
    # the score is the mean cosine distance to the 5 nearest training codes (checked against scikit-learn)
    nn = NearestNeighbors(n_neighbors=5, metric="cosine").fit(det.train_codes_.astype(np.float64))
    np.testing.assert_allclose(
        det.decision_function(X_test), nn.kneighbors(det.encode(X_test))[0].mean(axis=1), rtol=1e-4, atol=1e-6
    )
    # thresholds use leave-one-out distances: a training image is its own nearest neighbour
    loo = nn.kneighbors(det.train_codes_.astype(np.float64), n_neighbors=6)[0][:, 1:].mean(axis=1)
    np.testing.assert_allclose(det._reference_scores_, loo, rtol=1e-4, atol=1e-6)
    assert (det._reference_scores_ >= det.decision_scores_ - 1e-12).all()
    with pytest.raises(ValueError, match="scoring must be one of"):
        make("ConvAutoEncoder", scoring="ssim").fit(X_train)
    with pytest.raises(ValueError, match="needs more than 5"):
        make("ConvAutoEncoder").fit(X_train[:5])


def test_vae_scores_use_saved_common_noise(images, fitted):
    det = fitted("ConvVAE")
    assert det.mc_noise_.shape == (FAST_PARAMS["ConvVAE"]["n_samples"], FAST_PARAMS["ConvVAE"]["latent_dim"])
    with pytest.raises(ValueError, match="beta"):
        make("ConvVAE", beta=0).fit(images[0])


def test_deep_svdd_is_bias_free_with_centre(fitted):
    det = fitted("ConvDeepSVDD")
    assert not any(name.endswith("bias") for name, _ in det.module_.named_parameters())
    assert det.center_.shape == (FAST_PARAMS["ConvDeepSVDD"]["latent_dim"],)
    assert (np.abs(det.center_) >= det.center_eps - 1e-7).all()
    assert "train_reconstruction" in det.pretrain_history_


# --------------------------------------------------------------------------- reading images
def _png(path, arr, mode=None):
    from PIL import Image

    Image.fromarray(arr, mode=mode).save(path)


def test_read_flat_folder_and_class_folders(tmp_path):
    from deepad.data.images import ImagePreprocessor, read_images

    rng = np.random.default_rng(0)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        _png(flat / f"img{i}.png", rng.integers(0, 256, (8, 10), dtype=np.uint8))
    (flat / "notes.txt").write_text("ignored")
    s = read_images(flat)
    assert len(s) == 3 and s.labels is None and s.names == ["img0.png", "img1.png", "img2.png"]
    assert s.images[0].shape == (8, 10, 1) and 0 <= s.images[0].min() and s.images[0].max() <= 1

    classes = tmp_path / "classes"
    for cls in ("cat", "dog"):
        (classes / cls).mkdir(parents=True)
        for i in range(2):
            rgb = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
            _png(classes / cls / f"{i}.png", rgb)
    (classes / "dog" / "x.jpg").write_bytes(b"")  # placeholder replaced below
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(classes / "dog" / "x.jpg")
    s = read_images(classes)
    assert list(s.labels) == ["cat", "cat", "dog", "dog", "dog"]
    prep = ImagePreprocessor()
    X = prep.fit_transform(s.images, s.names)
    assert X.shape == (5, 3, 8, 10) and X.dtype == np.float32
    np.testing.assert_allclose(X.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # JSON state round trip gives the same transform
    again = ImagePreprocessor.from_state(json.loads(json.dumps(prep.to_state())))
    np.testing.assert_array_equal(again.transform(s.images), X)


def test_mixed_sizes_need_target_size_and_are_resized(tmp_path):
    from deepad.data.images import ImagePreprocessor, read_images

    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b.png", np.full((12, 6), 255, np.uint8))
    s = read_images(tmp_path)
    with pytest.raises(ValueError, match=r"b\.png is 12x6 but the images are 8x8; .*target size.*--image-size 8x8\)"):
        ImagePreprocessor().fit(s.images, s.names)
    X = ImagePreprocessor(target_size=(10, 10), standardize=False).fit_transform(s.images, s.names)
    assert X.shape == (2, 1, 10, 10)
    np.testing.assert_allclose(X[1], 1.0, atol=1e-6)
    # grey training images, colour at scoring: converted to the fitted channel count
    prep = ImagePreprocessor(target_size=(10, 10), color="grey").fit(s.images)
    assert prep.transform([np.ones((5, 5, 3), np.float32)]).shape == (1, 1, 10, 10)


def test_read_errors_name_the_file_or_folder(tmp_path):
    from deepad.data.images import ImageReadError, read_images

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match=r"empty holds no image files"):
        read_images(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match=r"cannot read image file .*bad\.png"):
        read_images(broken)
    cls = tmp_path / "cls"
    (cls / "a").mkdir(parents=True)
    (cls / "b").mkdir()
    _png(cls / "a" / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageReadError, match=r"class folder .*b holds no image files"):
        read_images(cls)
    with pytest.raises(ImageReadError, match="no such file"):
        read_images(tmp_path / "missing")


def test_numpy_arrays_and_idx(tmp_path):
    from deepad.data.images import ImageReadError, as_images, read_idx, read_images, read_mnist

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (4, 6, 7, 3), dtype=np.uint8)
    chw = as_images(hwc)
    assert chw.shape == (4, 3, 6, 7) and chw.max() <= 1.0
    np.testing.assert_allclose(chw[1, 2], hwc[1, :, :, 2] / 255.0, rtol=1e-6)
    assert as_images(np.zeros((4, 3, 6, 7), np.float32)).shape == (4, 3, 6, 7)
    assert as_images(np.zeros((4, 6, 7))).shape == (4, 1, 6, 7)
    np.savez(tmp_path / "imgs.npz", X=hwc, y=np.arange(4))
    s = read_images(tmp_path / "imgs.npz")
    assert s.images.shape == (4, 3, 6, 7) and list(s.labels) == [0, 1, 2, 3]

    raw = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in raw.shape)
    with gzip.open(tmp_path / "x-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + raw.tobytes())
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    with gzip.open(tmp_path / "x-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 1]) + (5).to_bytes(4, "big") + labels.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "x-images-idx3-ubyte.gz"), raw)
    X, y = read_mnist(tmp_path / "x-images-idx3-ubyte.gz")
    assert X.shape == (5, 1, 4, 3) and list(y) == [3, 1, 4, 1, 5]
    np.testing.assert_allclose(X[2, 0], raw[2] / 255.0, rtol=1e-6)
    (tmp_path / "trunc-images-idx3-ubyte").write_bytes(header + raw.tobytes()[:-3])
    with pytest.raises(ImageReadError, match=r"trunc-images-idx3-ubyte is damaged"):
        read_idx(tmp_path / "trunc-images-idx3-ubyte")


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST data not available")
def test_read_real_mnist_and_split():
    from deepad.bench.images import mnist_split
    from deepad.data.images import read_mnist

    X, y = read_mnist(MNIST)
    assert X.shape == (10000, 1, 28, 28) and y.shape == (10000,) and set(y) == set(range(10))
    train, test, y_test = mnist_split(y, 3, seed=0)
    n3 = int((y == 3).sum())
    assert len(train) == round(0.8 * n3) and (y[train] == 3).all()
    assert not set(train) & set(test) and len(train) + len(test) == 10000
    assert y_test.sum() == 10000 - n3
    again, _, _ = mnist_split(y, 3, seed=0)
    other, _, _ = mnist_split(y, 3, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    from deepad.bench.images import run_mnist_benchmark

    with pytest.raises(ValueError, match="gives no seeds"):
        run_mnist_benchmark(MNIST, "ConvAutoEncoder", seeds=0)
    with pytest.raises(ValueError, match="not an image detector"):
        run_mnist_benchmark(MNIST, "KNN", seeds=1)


# --------------------------------------------------------------------------- pipeline on image folders
def test_image_pipeline_save_load(image_folders, tmp_path):
    from deepad.image_pipeline import ImagePipeline

    model = ImagePipeline(make("ConvAutoEncoder", epochs=4), target_size=(16, 16)).fit(image_folders / "train")
    assert model.image_shape_ == [1, 16, 16]
    s = model.decision_function(image_folders / "test")
    assert s.shape == (14,) and s[10:].min() > s[:10].max()
    _assert_training_scores(model, image_folders / "train")
    model.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    assert loaded.preprocessor.to_state() == model.preprocessor.to_state()
    np.testing.assert_array_equal(loaded.decision_function(image_folders / "test"), s)
    assert loaded.anomaly_map(image_folders / "test").shape == (14, 16, 16)
    with pytest.raises(TypeError, match="image detector"):
        ImagePipeline(D.AutoEncoder()).fit(image_folders / "train")
