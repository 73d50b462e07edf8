"""Data in: bundled data sets, readers, schema and preprocessing."""

from deepad.data.bundled_sets import load_cardio
from deepad.data.preprocessing import ScoringReport, TabularPreprocessor
from deepad.data.readers import DataReadError, iter_batches, read_table
from deepad.data.schema import DataValidationError, Schema, infer_schema

__all__ = [
    "load_cardio",
    "read_table",
    "iter_batches",
    "infer_schema",
    "Schema",
    "TabularPreprocessor",
    "ScoringReport",
    "DataReadError",
    "DataValidationError",
]
