"""Data in: bundled data sets, readers, schema and preprocessing."""

from deepad.data.bundled_sets import load_cardio

__all__ = ["load_cardio"]
