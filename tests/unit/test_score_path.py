"""The faster `deepad score` path (issue 18, target 4) computes exactly what the old one did.

Scaling while encoding, column-major matrices for the neural detectors, the reused encoding buffer, the
calendar fields from integer arithmetic and the Parquet writer without dictionary pages for unique values:
each is checked against the arithmetic it replaced, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepad.base import validate_X
from deepad.data.preprocessing import TabularPreprocessor, _datetime_raw
from deepad.data.synthetic import make_fraud_frame
from deepad.detectors import VAE, AutoEncoder, DeepSVDD
from deepad.pipeline import TabularDetector
from deepad.scoring import score_file, score_table


@pytest.fixture(scope="module")
def frames():
    train = make_fraud_frame(1500, seed=2).drop(columns=["is_fraud"])
    new = make_fraud_frame(700, seed=3).drop(columns=["is_fraud"])
    new.loc[::50, "distance_km"] = np.nan  # missing values, imputed with their indicator
    return train, new


def _old_transform(prep: TabularPreprocessor, df: pd.DataFrame) -> np.ndarray:
    """What transform did before: encode unscaled, subtract and divide the whole matrix, make it row-major."""
    Z = prep._encode(df, row_offset=0, report=None)
    Z -= prep.center_
    Z /= prep.scale_
    return np.ascontiguousarray(Z)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"category_encoding": "onehot"},
        {"scaling": None},
        {"scaling": "robust"},
        {"datetime_features": ("hour", "dayofweek", "month", "unix")},
    ],
    ids=["default", "onehot", "unscaled", "robust", "all-datetime-features"],
)
def test_scaling_while_encoding_gives_the_old_matrix(frames, params):
    train, new = frames
    prep = TabularPreprocessor(**params).fit(train)
    expected = _old_transform(prep, new)
    got = prep.transform(new)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    column_major = prep.transform(new, order="F")
    assert column_major.flags.f_contiguous and not column_major.flags.c_contiguous
    np.testing.assert_array_equal(column_major, expected)


def test_the_scratch_buffer_is_reused_and_overwritten(frames):
    train, new = frames
    prep = TabularPreprocessor().fit(train)
    first = prep.transform(new, order="F", scratch=True)
    np.testing.assert_array_equal(first, _old_transform(prep, new))
    second = prep.transform(new.iloc[:300], order="F", scratch=True)
    assert np.shares_memory(first, second)  # no new 37 MB matrix per chunk
    np.testing.assert_array_equal(second, _old_transform(prep, new.iloc[:300]))
    # the row-major result is always a fresh array, never the buffer
    assert not np.shares_memory(prep.transform(new), second)
    with pytest.raises(ValueError, match="order must be"):
        prep.transform(new, order="A")


def _dt_fields(ts: pd.Series, features) -> dict[str, np.ndarray]:
    """The old calendar features, through pandas' .dt accessor."""
    dt, out = ts.dt, {}
    for f in features:
        if f == "hour":
            v = dt.hour + dt.minute / 60.0 + dt.second / 3600.0
        elif f == "dayofweek":
            v = dt.day_of_week + (dt.hour / 24.0)
        elif f == "month":
            v = (dt.month - 1) + (dt.day - 1) / dt.days_in_month
        else:
            v = (ts - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
        out[f] = pd.Series(v).to_numpy(dtype=np.float64, na_value=np.nan)
    return out


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_calendar_features_equal_the_dt_accessor(unit):
    rng = np.random.default_rng(0)
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    seconds = rng.integers(-2_000_000_000, 4_000_000_000, 20_000)  # 1906-2096: before 1970 too, leap years
    values = (seconds * per_second + rng.integers(0, per_second, seconds.size)).astype(f"datetime64[{unit}]")
    values[::97] = np.datetime64("NaT")
    ts = pd.Series(pd.DatetimeIndex(values).tz_localize("UTC"))
    features = ["hour", "dayofweek", "month", "unix"]
    got, expected = _datetime_raw(ts, features), _dt_fields(ts, features)
    for f in features:
        np.testing.assert_array_equal(got[f], expected[f], err_msg=f)
    assert np.isnan(got["hour"][::97]).all()
    empty = pd.Series([pd.NaT] * 3, dtype="datetime64[us, UTC]")
    assert all(np.isnan(v).all() for v in _datetime_raw(empty, features).values())


@pytest.mark.parametrize("make", [AutoEncoder, VAE, DeepSVDD], ids=lambda c: c.__name__)
def test_neural_detectors_score_column_major_rows_like_row_major(make):
    rng = np.random.default_rng(1)
    X_fit, X = rng.standard_normal((300, 7)), rng.standard_normal((500, 7)) * 2
    det = make(epochs=1, random_state=0).fit(X_fit)
    assert det._scores_any_layout
    F = np.asfortranarray(X)
    assert validate_X(F, contiguous=False) is F  # no row-major copy
    assert validate_X(F).flags.c_contiguous
    np.testing.assert_array_equal(det.decision_function(F), det.decision_function(X))


def test_score_file_parquet_writes_unique_values_without_dictionary_pages(frames, tmp_path):
    train, new = frames
    model = TabularDetector(AutoEncoder(epochs=1, random_state=0)).fit(train)
    out = tmp_path / "scores.parquet"
    score_file(model, new, out, batch_size=256)
    meta = pq.ParquetFile(out).metadata
    for rg in range(meta.num_row_groups):
        encodings = {
            meta.schema.column(j).name: set(meta.row_group(rg).column(j).encodings) for j in range(meta.num_columns)
        }
        for col in ("transaction_id", "score", "p_value"):
            assert "RLE_DICTIONARY" not in encodings[col] and "PLAIN_DICTIONARY" not in encodings[col], col
        assert encodings["is_anomaly"] & {"RLE_DICTIONARY", "PLAIN_DICTIONARY"}  # two values: a dictionary pays
    got = pq.read_table(out).to_pandas()
    expected = score_table(model, new).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    np.testing.assert_array_equal(got["score"].to_numpy(), model.decision_function(new))
