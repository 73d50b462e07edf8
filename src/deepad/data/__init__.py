"""Data in: bundled data sets, readers, schema and preprocessing."""

from deepad.data.bundled_sets import load_cardio
from deepad.data.exports import ReadOptions, ReadWarning
from deepad.data.preprocessing import ScoringReport, TabularPreprocessor, UnseenCategoryWarning
from deepad.data.readers import DataReadError, iter_batches, read_table
from deepad.data.schema import DataValidationError, Schema, infer_schema

__all__ = [
    "load_cardio",
    "read_table",
    "ReadOptions",
    "ReadWarning",
    "UnseenCategoryWarning",
    "iter_batches",
    "infer_schema",
    "Schema",
    "TabularPreprocessor",
    "ScoringReport",
    "DataReadError",
    "DataValidationError",
]
