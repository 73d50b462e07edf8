"""Reading tables: CSV, Excel, Parquet, JSON Lines, NumPy, pandas and pyarrow, whole or in chunks.

Two entry points:

* :func:`read_table` -- the whole table as a pandas ``DataFrame`` (training);
* :func:`iter_batches` -- the table as a stream of ``DataFrame`` chunks of at
  most ``batch_size`` rows (scoring), so memory stays flat however many rows
  the file has.  Parquet is streamed with ``ParquetFile.iter_batches`` and
  CSV with ``pyarrow.csv.open_csv``; NumPy ``.npy`` files are memory-mapped.
  JSON Lines is streamed with ``pyarrow.json.open_json`` (which fixes column
  types from the first 1 MiB block; a later value of another type is a
  :class:`DataReadError` naming the file).  Plain ``.json``
  (one array of records) and ``.npz`` cannot be streamed and are read whole.

The format comes from the file extension: ``.csv``, ``.tsv``, ``.txt``
(any of ``,`` ``;`` tab ``|``, sniffed), optionally compressed (``.gz``, ``.bz2``, ``.zst``,
``.lz4``); ``.xlsx`` / ``.xlsm`` (one sheet, openpyxl); ``.parquet`` / ``.pq``;
``.jsonl`` / ``.ndjson``; ``.json``; ``.npy``; ``.npz`` (the array ``X``,
or the only array in the file).  NumPy columns are named ``"0"``, ``"1"``,
... unless the array is structured.  A binary file given as CSV is named as what it is.

Text formats (CSV, Excel, JSON) come in many conventions (decimal comma, NA tokens, date formats,
encodings): :class:`~deepad.data.exports.ReadOptions` forces them, else they are detected per column
(:func:`~deepad.data.exports.normalize_frame`).  Parquet and NumPy are typed and read as they are.

Every error names the file: a missing file raises :class:`FileNotFoundError`,
an unreadable or empty one :class:`DataReadError` (a ``ValueError``).

Streaming CSV infers column types from the first block only, so a column
that looks numeric early and holds text later would fail mid-file;
``text_columns`` reads the named columns as text instead and leaves the
parsing (with row-level error messages) to
:class:`~deepad.data.TabularPreprocessor`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from deepad.data.exports import (  # DataReadError lives there (below this module); re-exported
    DEFAULT_OPTIONS,
    DataReadError,
    ReadOptions,
    encoding_hint as _encoding_hint,
    normalize_frame,
    read_excel,
    sniff_csv as _sniff_csv,
    sniff_decimal,
)

__all__ = [
    "DataReadError",
    "read_table",
    "iter_batches",
    "table_columns",
    "count_rows",
    "detect_format",
    "to_frame",
    "DEFAULT_BATCH_ROWS",
]

DEFAULT_BATCH_ROWS = 65_536

_COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")
_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".npy": "npy",
    ".npz": "npz",
    ".xlsx": "excel",
    ".xlsm": "excel",
}


# --------------------------------------------------------------------------- format detection
def detect_format(path: str | os.PathLike) -> str:
    """``"csv"``, ``"tsv"``, ``"parquet"``, ``"jsonl"``, ``"json"``, ``"npy"``, ``"npz"`` or ``"excel"`` (extension)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None and suffixes and suffixes[-1] == ".xls":
        raise DataReadError(
            f"{path} is an old Excel .xls workbook, which deepad does not read; save it as .xlsx or .csv."
        )
    if fmt is None:
        raise DataReadError(
            f"{path}: cannot tell the format from the extension "
            f"{''.join(Path(path).suffixes) or '(none)'!r}; use one of "
            f"{', '.join(sorted(_FORMATS))} (CSV may be compressed: {', '.join(_COMPRESSION)})."
        )
    return fmt


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataReadError(f"{path} is a directory, not a data file.")
    if path.stat().st_size == 0:
        raise DataReadError(f"{path} is empty (0 bytes).")


def _is_path(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike))


# --------------------------------------------------------------------------- in-memory objects
def to_frame(data: Any, *, name: str = "X") -> pd.DataFrame:
    """A pandas ``DataFrame`` from a DataFrame, pyarrow Table/RecordBatch, NumPy array or path.

    Column names become strings.  A path is read with :func:`read_table`.
    """
    if _is_path(data):
        return read_table(data)
    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, pd.Series):
        raise ValueError(f"{name} is a 1-D pandas Series; pass a DataFrame (e.g. series.to_frame()).")
    elif _is_arrow(data):
        df = _arrow_to_pandas(data)
    elif isinstance(data, np.ndarray) or isinstance(data, (list, tuple)):
        df = _numpy_frame(np.asarray(data), name)
    elif isinstance(data, dict):
        df = pd.DataFrame(data)
    else:
        raise TypeError(
            f"{name} must be a pandas DataFrame, pyarrow Table, NumPy array or a file path, not {type(data).__name__}."
        )
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        raise ValueError(f"{name} has duplicate column names: {dup[:10]}.")
    return df


def _is_arrow(data: Any) -> bool:
    import pyarrow as pa

    return isinstance(data, (pa.Table, pa.RecordBatch))


def _arrow_to_pandas(table, use_threads: bool = True) -> pd.DataFrame:
    # Dates (date32) become datetime64 so schema inference sees them as datetimes.
    return table.to_pandas(date_as_object=False, use_threads=use_threads)


def _numpy_frame(arr: np.ndarray, name: str) -> pd.DataFrame:
    if arr.dtype.names:  # structured array: named fields become named columns
        return pd.DataFrame.from_records(arr)
    if arr.ndim == 1:
        raise ValueError(f"{name} is a 1-D array of shape {arr.shape}; pass a 2-D array (n_samples, n_features).")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}.")
    return pd.DataFrame(arr, columns=[str(j) for j in range(arr.shape[1])])


def _slices(df: pd.DataFrame, batch_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(df), batch_size):
        yield df.iloc[start : start + batch_size]


# --------------------------------------------------------------------------- CSV


def csv_delimiter(path: Path, fmt: str = "csv", encoding: str | None = None) -> str:
    """The field delimiter of a CSV file: ``,`` unless its header line has none and another is clearly used.

    Why: spreadsheets in many locales export ``;``-separated "CSV"; read with ``,`` the whole header becomes one
    column.  A delimiter counts only if every sampled line has the header's number of it.
    """
    return _sniff_csv(path, fmt, encoding)[0]


def _check_text(table, path: Path):
    """Arrow reads invalid UTF-8 as binary; name the column and row instead of failing later in pandas.

    The hint names the likely encoding: cp1252 (Windows, Western Europe) when a byte in 0x80-0x9f occurs --
    0x80 is the euro sign there and a control code in latin1 --, else latin1.
    """
    import pyarrow as pa

    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            for i, value in enumerate(col.to_pylist()):
                if value is None:
                    continue
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataReadError(
                        f"{path}: column {name!r} is not UTF-8 text (row {i}: {value[:40]!r}, byte "
                        f"{value[exc.start]:#04x}); {_encoding_hint(col)}"
                    ) from None
    return table


def _csv_options(
    fmt: str,
    columns: Sequence[str] | None,
    text_columns: Iterable[str] | None,
    block_size: int | None,
    delimiter: str = ",",
    options: ReadOptions = DEFAULT_OPTIONS,
    decimal: str = ".",
):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(encoding=options.encoding or "utf8")
    if block_size:
        read.block_size = block_size
    parse = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else delimiter)
    convert = pcsv.ConvertOptions(
        include_columns=list(columns) if columns is not None else None,
        column_types={c: pa.string() for c in (text_columns or ())},
        strings_can_be_null=True,
        decimal_point=decimal,
    )
    if options.na_values:
        convert.null_values = [*convert.null_values, *options.na_values]
    return read, parse, convert


def _arrow_error(path: Path, what: str, exc: Exception) -> DataReadError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Empty CSV file" in msg:
        return DataReadError(f"{path} is empty: no header line.")
    return DataReadError(f"{path}: cannot read as {what}: {msg}")


def _csv_setup(path: Path, fmt: str, columns, text_columns, block_size, options: ReadOptions):
    """Arrow's options for this file, and its decimal convention (forced, or sniffed from the sampled lines)."""
    sep, lines = _sniff_csv(path, fmt, options.encoding)
    decimal = options.decimal or sniff_decimal(lines, sep)
    return _csv_options(fmt, columns, text_columns, block_size, sep, options, decimal), decimal


def _read_csv(path: Path, fmt: str, columns, text_columns, options: ReadOptions, keep_text, dayfirst) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    (read, parse, convert), decimal = _csv_setup(path, fmt, columns, text_columns, None, options)
    try:
        table = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError) as exc:
        raise _arrow_error(path, fmt.upper(), exc) from None
    return _normalized(_arrow_to_pandas(_check_text(table, path)), options, decimal, keep_text, dayfirst)


def _normalized(df: pd.DataFrame, options: ReadOptions, decimal: str, keep_text, dayfirst=None) -> pd.DataFrame:
    df, how = normalize_frame(df, options, file_decimal=decimal, keep_text=keep_text or (), dayfirst_columns=dayfirst)
    if how:
        df.attrs["deepad_read"] = how
    return df


def _iter_csv(
    path: Path, fmt: str, batch_size: int, columns, text_columns, options: ReadOptions, keep_text, dayfirst
) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # Arrow's streaming reader yields one record batch per block and reads about 32 blocks ahead,
    # so the block size bounds the read-ahead memory: 1 MiB blocks -> ~35 MiB (4 MiB blocks: ~150 MiB).
    (read, parse, convert), decimal = _csv_setup(path, fmt, columns, text_columns, 1 << 20, options)
    try:
        reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError) as exc:
        raise _arrow_error(path, fmt.upper(), exc) from None
    pending: list = []
    n_pending = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise _arrow_error(path, fmt.upper(), exc) from None
        pending.append(batch)
        n_pending += batch.num_rows
        while n_pending >= batch_size:
            table = pa.Table.from_batches(pending)
            yield _normalized(
                _arrow_to_pandas(_check_text(table.slice(0, batch_size), path)), options, decimal, keep_text, dayfirst
            )
            rest = table.slice(batch_size)
            pending, n_pending = rest.to_batches(), rest.num_rows
    if n_pending:
        yield _normalized(
            _arrow_to_pandas(_check_text(pa.Table.from_batches(pending), path)), options, decimal, keep_text, dayfirst
        )


# --------------------------------------------------------------------------- other formats
def _read_parquet(path: Path, columns) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise _arrow_error(path, "Parquet", exc) from None
    return _arrow_to_pandas(table)


def _iter_parquet(path: Path, batch_size: int, columns) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer=False: with pre-buffering, Arrow keeps the byte ranges it has read until the file is
        # closed, so memory grows with the file (measured: +80 MiB over 5 million rows); local files do not need it.
        pf = pq.ParquetFile(path, pre_buffer=False)
        batches = pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns is not None else None)
        for batch in batches:
            yield _arrow_to_pandas(batch)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise _arrow_error(path, "Parquet", exc) from None


def _read_json(path: Path, fmt: str, columns) -> pd.DataFrame:
    import pyarrow as pa

    if fmt == "jsonl":
        import pyarrow.json as pjson

        try:
            df = _arrow_to_pandas(pjson.read_json(path))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise _arrow_error(path, "JSON Lines", exc) from None
    else:
        try:
            df = pd.read_json(path, orient="records", dtype=False, convert_dates=False)
        except ValueError as exc:
            raise DataReadError(f"{path}: cannot read as JSON (an array of records expected): {exc}") from None
    return _select(df, columns, path)


def _iter_jsonl(path: Path, batch_size: int, columns) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.json as pjson

    try:
        reader = pjson.open_json(
            path, read_options=pjson.ReadOptions(block_size=1 << 20)
        )  # bounds read-ahead, as for CSV
        for batch in reader:
            df = _select(_arrow_to_pandas(batch), columns, path)
            yield from _slices(df, batch_size)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise _arrow_error(path, "JSON Lines", exc) from None


def _load_numpy(path: Path, fmt: str, mmap: bool) -> np.ndarray:
    try:
        if fmt == "npy":
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            if "X" in keys:
                return npz["X"]
            if len(keys) == 1:
                return npz[keys[0]]
            raise DataReadError(
                f"{path} holds arrays {keys}; deepad reads the one named 'X' (or the only array in the file)."
            )
    except DataReadError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataReadError(
                f"{path} holds Python objects (pickled); deepad reads only plain numeric "
                "arrays and never unpickles data files."
            ) from None
        raise DataReadError(f"{path}: cannot read as NumPy {fmt}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise DataReadError(f"{path}: cannot read as NumPy {fmt}: {exc}") from None


def _select(df: pd.DataFrame, columns, path) -> pd.DataFrame:
    df = df.rename(columns=str) if not all(isinstance(c, str) for c in df.columns) else df
    if columns is None:
        return df
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataReadError(f"{path} has no column(s) {missing}.")
    return df[list(columns)]


def _check_rows(df: pd.DataFrame, path) -> pd.DataFrame:
    if df.shape[1] == 0:
        raise DataReadError(f"{path} has no columns.")
    if len(df) == 0:
        raise DataReadError(f"{path} has a header but no data rows.")
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        where = [j + 1 for j, c in enumerate(df.columns) if c == dup[0]]
        raise DataReadError(
            f"{path} has duplicate column names: {dup[:10]} ({dup[0]!r} is column "
            f"{' and '.join(map(str, where))}); rename them so each column is unambiguous."
        )
    return df


# --------------------------------------------------------------------------- public API
def read_table(
    source: Any,
    *,
    columns: Sequence[str] | None = None,
    text_columns: Iterable[str] | None = None,
    options: ReadOptions | None = None,
    keep_text: Iterable[str] = (),
    dayfirst_columns: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """Read a whole table into a pandas ``DataFrame`` with string column names.

    ``source`` is a path (format from the extension, see the module
    docstring), a pandas DataFrame, a pyarrow Table or a NumPy array.
    ``columns`` selects columns; ``text_columns`` (CSV only) reads those
    columns as text instead of inferring their type.  ``options``
    (:class:`~deepad.data.exports.ReadOptions`) says how the file is
    written -- decimal comma, thousands separator, NA tokens, date format,
    encoding, Excel sheet; by default all are detected -- and text columns
    whose every value is a number or a date in such a convention are
    converted (:func:`~deepad.data.exports.normalize_frame`), except those
    in ``keep_text``; ``df.attrs["deepad_read"]`` says which and how.
    ``dayfirst_columns`` (column -> day first?) settles the order of dates
    whose values do not tell (a model's training order, for scoring).
    Raises :class:`FileNotFoundError` or :class:`DataReadError` naming the file.
    """
    options = options or DEFAULT_OPTIONS
    if not _is_path(source):
        df = to_frame(source)
        return _select(df, columns, "the table") if columns is not None else df
    path = Path(source)
    _check_file(path)
    fmt = detect_format(path)
    if fmt in ("csv", "tsv"):
        df = _read_csv(path, fmt, columns, text_columns, options, keep_text, dayfirst_columns)
    elif fmt == "excel":
        df = _select(read_excel(path, options), columns, path)
        df = _normalized(df, options, options.decimal or ".", keep_text, dayfirst_columns)
    elif fmt == "parquet":
        df = _read_parquet(path, columns)
    elif fmt in ("jsonl", "json"):
        df = _normalized(_read_json(path, fmt, columns), options, options.decimal or ".", keep_text, dayfirst_columns)
    else:
        try:
            df = _select(_numpy_frame(np.asarray(_load_numpy(path, fmt, mmap=False)), str(path)), columns, path)
        except ValueError as exc:
            if isinstance(exc, DataReadError):
                raise
            raise DataReadError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    return _check_rows(df, path)


def iter_batches(
    source: Any,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    text_columns: Iterable[str] | None = None,
    options: ReadOptions | None = None,
    keep_text: Iterable[str] = (),
    dayfirst_columns: Mapping[str, bool] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the table as consecutive ``DataFrame`` chunks of at most ``batch_size`` rows.

    Row order is preserved, so the chunks concatenated equal
    :func:`read_table`'s result (CSV with ``text_columns`` aside, where
    those columns stay text).  ``options``, ``keep_text`` and ``dayfirst_columns``: as for
    :func:`read_table`, applied to every chunk.  An empty file raises
    :class:`DataReadError` before anything is yielded.
    """
    options = options or DEFAULT_OPTIONS
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive number of rows, got {batch_size}.")
    batch_size = int(batch_size)
    if not _is_path(source):
        df = to_frame(source)
        if columns is not None:
            df = _select(df, columns, "the table")
        _check_rows(df, "the table")
        yield from _slices(df, batch_size)
        return
    path = Path(source)
    _check_file(path)
    fmt = detect_format(path)
    if fmt in ("csv", "tsv"):
        chunks = _iter_csv(path, fmt, batch_size, columns, text_columns, options, keep_text, dayfirst_columns)
    elif fmt == "parquet":
        chunks = _iter_parquet(path, batch_size, columns)
    elif fmt == "jsonl":
        chunks = (
            _normalized(c, options, options.decimal or ".", keep_text, dayfirst_columns)
            for c in _iter_jsonl(path, batch_size, columns)
        )
    elif fmt == "npy":
        arr = _load_numpy(path, fmt, mmap=True)
        chunks = (
            _select(_numpy_frame(np.asarray(arr[s : s + batch_size]), str(path)), columns, path)
            for s in range(0, arr.shape[0] if arr.ndim else 0, batch_size)
        )
        if arr.ndim != 2 and not arr.dtype.names:
            raise DataReadError(f"{path} holds an array of shape {arr.shape}; a 2-D table is expected.")
    else:
        whole = read_table(
            path, columns=columns, options=options, keep_text=keep_text, dayfirst_columns=dayfirst_columns
        )
        chunks = _slices(whole, batch_size)
    any_rows = False
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        any_rows = True
        yield chunk
    if not any_rows:
        raise DataReadError(
            f"{path} has a header but no data rows."
            if fmt in ("csv", "tsv", "parquet")
            else f"{path} has no data rows."
        )


def table_columns(source: Any, options: ReadOptions | None = None) -> list[str]:
    """Column names of a table without reading its rows (reads only the header / metadata)."""
    options = options or DEFAULT_OPTIONS
    if not _is_path(source):
        return list(to_frame(source).columns)
    path = Path(source)
    _check_file(path)
    fmt = detect_format(path)
    if fmt in ("csv", "tsv"):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        read, parse, _ = _csv_options(fmt, None, None, 1 << 16, csv_delimiter(path, fmt, options.encoding), options)
        try:
            reader = pcsv.open_csv(
                path,
                read_options=read,
                parse_options=parse,
                convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise _arrow_error(path, fmt.upper(), exc) from None
        return list(reader.schema.names)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _arrow_error(path, "Parquet", exc) from None
    if fmt == "npy":
        arr = _load_numpy(path, fmt, mmap=True)
        if arr.dtype.names:
            return list(arr.dtype.names)
        if arr.ndim != 2:
            raise DataReadError(f"{path} holds an array of shape {arr.shape}; a 2-D table is expected.")
        return [str(j) for j in range(arr.shape[1])]
    if fmt == "jsonl":
        return list(next(iter_batches(path, batch_size=1)).columns)
    if fmt == "excel":
        return list(read_excel(path, options, header_only=True).columns)
    return list(read_table(path, options=options).columns)


def count_rows(source: Any) -> int | None:
    """Number of rows when it is cheap to know (Parquet metadata, NumPy header, in-memory tables), else ``None``."""
    if not _is_path(source):
        return len(to_frame(source))
    path = Path(source)
    try:
        fmt = detect_format(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if fmt == "npy":
            return int(_load_numpy(path, fmt, mmap=True).shape[0])
    except (DataReadError, OSError, ValueError):
        return None
    return None
