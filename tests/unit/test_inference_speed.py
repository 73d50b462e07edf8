"""Neural scoring standardises batch by batch (issue 18, target 3): same scores, same errors as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepad.detectors import VAE, AutoEncoder, DeepSVDD
from deepad.training import batched_apply, torch_context

DETECTORS = [
    lambda: AutoEncoder(epochs=1, random_state=0),
    lambda: VAE(epochs=1, random_state=0),
    lambda: DeepSVDD(epochs=1, pretrain_epochs=1, random_state=0),
]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.5, 4.0, 6)
    return rng.standard_normal((300, 6)) * scale + 2.0, rng.standard_normal((1000, 6)) * scale + 2.0


def _whole_array(det, X: np.ndarray) -> np.ndarray:
    """The old standardisation, written out: the whole float64 array scaled, then cast to float32."""
    return ((X - det.scaler_center_) / det.scaler_scale_).astype(np.float32)


def _whole_array_scores(det, X: np.ndarray) -> np.ndarray:
    """The old path: standardise the whole array, then batch the float32 rows."""
    with torch_context(None, det._device, det.n_threads, work=det._inference_work):
        return batched_apply(lambda xb: det._score_batch(det.module_, xb), _whole_array(det, X), device=det._device)


@pytest.mark.parametrize("make", DETECTORS, ids=["AutoEncoder", "VAE", "DeepSVDD"])
def test_streamed_standardisation_scores_like_the_whole_array(make, data):
    X_fit, X = data
    det = make().fit(X_fit)
    np.testing.assert_array_equal(det.decision_function(X), _whole_array_scores(det, X))


@pytest.mark.parametrize("make", DETECTORS, ids=["AutoEncoder", "VAE", "DeepSVDD"])
@pytest.mark.parametrize("batch", [2, 97, 1000, 5000])
def test_scores_do_not_depend_on_the_inference_batch_size(make, batch, data):
    """Within float32 rounding: BLAS picks its kernel (and summation order) by batch size, so not bit for bit."""
    X_fit, X = data
    det = make().fit(X_fit)
    reference = det.decision_function(X)
    det._inference_batch_size = batch
    np.testing.assert_allclose(det.decision_function(X), reference, rtol=2e-6, atol=1e-6)
    # a last batch of one row is scored as in any other batch
    np.testing.assert_allclose(det.decision_function(X[: batch + 1]), reference[: batch + 1], rtol=2e-6, atol=1e-6)


def test_a_value_too_large_for_float32_in_a_later_batch_names_its_row(data):
    X_fit, X = data
    det = AutoEncoder(epochs=1, random_state=0).fit(X_fit)
    det._inference_batch_size = 64
    X = X.copy()
    X[200, 4] = 1e300
    with pytest.raises(ValueError, match=r"too large for this model at row 200, column 4"):
        det.decision_function(X)
    X[200, 4] = -1e300
    with pytest.raises(ValueError, match=r"row 200, column 4"):
        det.decision_function(X)


def test_a_value_just_inside_float32_still_scores(data):
    """Only values beyond float32 are errors: one at the float32 limit after scaling is scored (as +inf or finite)."""
    X_fit, X = data
    det = AutoEncoder(epochs=1, random_state=0).fit(X_fit)
    X = X[:10].copy()
    X[3, 0] = det.scaler_center_[0] + float(np.finfo(np.float32).max) * det.scaler_scale_[0] * 0.5
    scores = det.decision_function(X)
    assert scores.shape == (10,) and not np.isnan(scores).any()


def test_batched_apply_prepare_gets_each_batch_and_its_first_row():
    seen = []

    def prepare(rows, start):
        seen.append((start, rows.shape[0]))
        return rows.astype(np.float32)

    X = np.arange(20.0).reshape(10, 2)
    out = batched_apply(lambda xb: xb.sum(dim=1), X, device=torch.device("cpu"), batch_size=4, prepare=prepare)
    assert seen == [(0, 4), (4, 4), (8, 2)]
    np.testing.assert_array_equal(out, X.sum(axis=1))


@pytest.mark.parametrize("make", DETECTORS[:2], ids=["AutoEncoder", "VAE"])
def test_feature_errors_stream_like_the_whole_array(make, data):
    X_fit, X = data
    det = make().fit(X_fit)
    module = det.module_
    if isinstance(det, VAE):

        def errors(xb):
            mu, logvar = module.encode(xb)
            return (module.decode_shared(mu, logvar, det._noise(xb.device)) - xb.unsqueeze(1)).pow(2).mean(dim=1)

        context = torch_context(None, det._device, det.n_threads)
    else:

        def errors(xb):
            return (module(xb) - xb) ** 2

        context = torch_context(None, det._device, det.n_threads, work=det._inference_work)
    with context:
        expected = batched_apply(errors, _whole_array(det, X), device=det._device)
    np.testing.assert_array_equal(det.feature_errors(X), expected)


def _validation_error(X) -> str:
    from deepad.base import validate_X

    with pytest.raises(ValueError) as info:
        validate_X(X)
    return str(info.value)


@pytest.mark.parametrize("make", DETECTORS, ids=["AutoEncoder", "VAE", "DeepSVDD"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_value_in_a_later_batch_gets_the_validation_error(make, bad, data):
    """The finiteness test moved into the batches' range check: same words, row, column and count as before."""
    X_fit, X = data
    det = make().fit(X_fit)
    det._inference_batch_size = 64
    X = X.copy()
    X[200, 4] = bad
    X[731, 1] = bad
    with pytest.raises(ValueError) as info:
        det.decision_function(X)
    assert str(info.value) == _validation_error(X)
    assert "first at row 200, column 4; 2 non-finite values in total" in str(info.value)


def test_a_nan_after_a_value_too_large_is_reported_first_as_before(data):
    """Validation used to run before the range check, so a NaN anywhere wins over a too-large value earlier on."""
    X_fit, X = data
    det = AutoEncoder(epochs=1, random_state=0).fit(X_fit)
    det._inference_batch_size = 64
    X = X.copy()
    X[3, 0] = 1e300
    X[900, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at row 900, column 2; 1 non-finite"):
        det.decision_function(X)


def test_a_dataframe_with_nan_still_names_its_column(data):
    import pandas as pd

    X_fit, X = data
    columns = [f"f{j}" for j in range(X.shape[1])]
    det = DeepSVDD(epochs=1, pretrain_epochs=1, random_state=0).fit(pd.DataFrame(X_fit, columns=columns))
    frame = pd.DataFrame(X, columns=columns)
    frame.iloc[17, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at row 17, column 'f3'"):
        det.decision_function(frame)


@pytest.mark.parametrize("make", DETECTORS, ids=["AutoEncoder", "VAE", "DeepSVDD"])
def test_tiles_and_column_major_rows_give_the_same_float32_rows_and_scores(make, data):
    """The tiled, the column-by-column and the record-by-record arithmetic are the same IEEE operations."""
    X_fit, X = data
    det = make().fit(X_fit)
    reference = det.decision_function(X)
    expected = _whole_array(det, X)
    for tile in (1, 7 * X.shape[1], 10**6):
        det._tile_values = tile
        for rows in (X, np.asfortranarray(X), np.asfortranarray(np.vstack([X, X]))[: X.shape[0]]):
            for batch in (1, 97, 4096):
                prepare = det._batch_transform(batch, rows)
                got = np.concatenate([prepare(rows[s : s + batch], s).copy() for s in range(0, len(rows), batch)])
                np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(det.decision_function(rows), reference)
