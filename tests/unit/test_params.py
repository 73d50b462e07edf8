"""One integer-parameter check (deepad.base.check_int_param) behind every detector's integer settings."""

from __future__ import annotations

import numpy as np
import pytest

from deepad.base import ParameterTypeError, check_int_param


def test_check_int_param_accepts_integers_from_low():
    assert check_int_param(3, "k") == 3 and check_int_param(np.int64(2), "k", 2) == 2
    assert check_int_param(0, "pretrain_epochs", 0) == 0


@pytest.mark.parametrize("value", [2.5, "3", None, True, np.bool_(True)])
def test_a_non_integer_is_both_a_type_and_a_value_error(value):
    with pytest.raises(TypeError, match="k must be an integer >= 1"):
        check_int_param(value, "k")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        check_int_param(value, "k")
    assert issubclass(ParameterTypeError, TypeError) and issubclass(ParameterTypeError, ValueError)


def test_the_message_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"latent_dim must be a positive integer, got 0\."):
        check_int_param(0, "latent_dim", allowed="a positive integer")
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2 or 'auto', got 1"):
        check_int_param(1, "n_bins", 2, allowed="an integer >= 2 or 'auto'")


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("KNN", dict(n_neighbors=2.5), "n_neighbors must be an integer >= 1"),
        ("HBOS", dict(n_bins=1), "n_bins must be an integer >= 2 or 'auto'"),
        ("BoostedDetector", dict(depth=0), "depth must be a positive integer"),
    ],
)
def test_detectors_use_it(name, params, message):
    import deepad.detectors as D

    X = np.random.default_rng(0).normal(size=(60, 3))
    with pytest.raises(ValueError, match=message):
        D.detector_class(name)(**params).fit(X)
