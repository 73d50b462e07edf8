"""The fraud-like test table lives in the package (deepad.data.synthetic); tests and benchmarks import it from here."""

from deepad.data.synthetic import CATEGORIES, COUNTRIES, make_fraud_frame, write_fraud_csv  # noqa: F401
