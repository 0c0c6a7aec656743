"""Data: built-in datasets, the user's CSV/Parquet files, and per-seed splits."""

from .builtin import BUILTINS, GENERATORS, Dataset, load_builtin
from .splits import METHODS, SplitSpec, split_indices, standardizer
from .tabular import load_table

__all__ = ["BUILTINS", "GENERATORS", "METHODS", "Dataset", "SplitSpec", "load_builtin", "load_table", "split_indices", "standardizer"]
