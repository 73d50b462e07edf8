"""Reading real exports right: decimal commas, thousands separators, extra NA tokens, local date formats, encodings.

Spreadsheets and databases in most of Europe export ``;``-separated files
with decimal commas (``1.234,56``) and dates such as ``31.12.2024``; read
as plain CSV, those columns are text, become categorical, and a detector
learns nothing from them.  :class:`ReadOptions` holds how a *file* is
written (not a property of the model: a file scored later may be written
differently), and :func:`normalize_frame` turns the text columns of a
freshly read table into numbers and datetimes where every value reads as
one.

Detection, per column, when an option is not forced:

numbers
    every non-missing value is a number in one of two conventions:
    decimal point with optional ``,``/space/``'`` thousands groups
    (``1,234.5``), or decimal comma with optional ``.``/space/``'``
    groups (``1.234,5``).  When both conventions fit (``1.234`` alone),
    the file's convention decides: a ``;``-separated file whose sampled
    fields use decimal commas (:func:`sniff_decimal`) reads ``1.234`` as
    1234.
dates
    every value is ISO 8601 or ``D.M.YYYY`` / ``D/M/YYYY`` / ``D-M-YYYY``
    (optionally with a time), at least one not ISO.  Day/month order:
    ``dayfirst`` if given; else a first field above 12 means day first, a
    second one above 12 month first; with neither, ``.`` means day first
    (the German/Nordic convention) and ``/`` follows the file's decimal
    convention (decimal comma -> day first).  A ``date_format`` (strftime
    codes, ``%d.%m.%Y``) reads the columns where every value matches it.

Columns where only *most* values read stay text; schema inference then
warns that the column looks numeric or temporal (see
:func:`looks_numeric_or_temporal`).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "DataReadError",
    "ReadOptions",
    "normalize_frame",
    "sniff_decimal",
    "looks_numeric_or_temporal",
    "ReadWarning",
]


class DataReadError(ValueError):
    """A data file cannot be read: unknown format, damaged, or empty.  The message names the file."""


class ReadWarning(UserWarning):
    """A table was read, but something in it probably needs the user's attention (the message names the column)."""


DELIMITERS = (",", ";", "\t", "|")
_DECIMALS = (".", ",")
_THOUSANDS = ("", ",", ".", " ", "'", "_")
_SPACES = "\u00a0\u202f "  # no-break and narrow no-break spaces: French/Swiss exports group digits with them


@dataclass(frozen=True)
class ReadOptions:
    """How a text file is written.  ``None`` everywhere means: detect (UTF-8 for the encoding).

    ``decimal``: ``"."`` or ``","``.  ``thousands``: ``","``, ``"."``, ``" "``,
    ``"'"``, ``"_"`` or ``""`` (no grouping).  ``na_values``: extra tokens
    read as missing (besides ``NA``, ``N/A``, ``null``, empty, ...).
    ``date_format``: strftime codes such as ``"%d.%m.%Y %H:%M"``.
    ``dayfirst``: day/month order of ambiguous dates.  ``encoding``: any
    Python codec name (``cp1252``, ``latin1``, ``utf-16``).  ``sheet``:
    an Excel sheet name or 0-based position.
    """

    decimal: str | None = None
    thousands: str | None = None
    na_values: tuple[str, ...] = field(default_factory=tuple)
    date_format: str | None = None
    dayfirst: bool | None = None
    encoding: str | None = None
    sheet: str | int | None = None

    def __post_init__(self):
        if self.decimal is not None and self.decimal not in _DECIMALS:
            raise ValueError(f"decimal must be '.' or ',', got {self.decimal!r}.")
        if self.thousands is not None and self.thousands not in _THOUSANDS:
            raise ValueError(
                f"thousands must be one of {', '.join(repr(t) for t in _THOUSANDS)} ('' for none), "
                f"got {self.thousands!r}."
            )
        if self.thousands and self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}; they must differ.")
        if isinstance(self.na_values, str):
            object.__setattr__(self, "na_values", (self.na_values,))
        object.__setattr__(self, "na_values", tuple(str(v) for v in self.na_values))
        if self.date_format is not None and "%" not in self.date_format:
            raise ValueError(f"date_format takes strftime codes such as '%d.%m.%Y', got {self.date_format!r}.")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(
                    f"unknown encoding {self.encoding!r}; use a Python codec name such as utf-8, cp1252, latin1."
                ) from None

    @property
    def is_default(self) -> bool:
        return self == ReadOptions()


DEFAULT_OPTIONS = ReadOptions()


# --------------------------------------------------------------------------- numbers
def _group(seps: str) -> str:
    return "[" + re.escape(seps) + "]"


def _number_pattern(decimal: str, thousands: str | None) -> re.Pattern:
    """Full-match pattern of a number written with ``decimal``; ``thousands=None`` allows any grouping but ``decimal``."""
    if thousands is None:
        seps = {".": ",'" + _SPACES + "_", ",": ".'" + _SPACES + "_"}[decimal]
    else:
        seps = thousands + (_SPACES if thousands == " " else "")
    grouped = rf"[1-9]\d{{0,2}}(?:{_group(seps)}\d{{3}})+" if seps else None
    integer = rf"(?:{grouped}|\d+)" if grouped else r"\d+"
    return re.compile(rf"[+-]?(?:{integer}(?:{re.escape(decimal)}\d+)?|{re.escape(decimal)}\d+)")


_NUMBERISH = re.compile(r"[+-]?[\d.,'_" + _SPACES + r"]*\d[\d.,'_" + _SPACES + r"]*")


# numbers as people write them, units included: what makes a categorical column suspicious (never parsed)
_LOOSE_NUMBER = re.compile(
    r"(?:[€$£¥]|EUR|USD|CHF|GBP)?\s*" + _NUMBERISH.pattern + r"\s*(?:%|‰|€|\$|£|EUR|USD|CHF|GBP|kg|km|m|g)?"
)


def _to_float(text: pd.Series, decimal: str) -> np.ndarray:
    strip = "[" + re.escape(("," if decimal == "." else ".") + "'_" + _SPACES) + "]"
    cleaned = text.str.replace(strip, "", regex=True)
    if decimal == ",":
        cleaned = cleaned.str.replace(",", ".", regex=False)
    return pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64)


def _numbers(uniques: pd.Series, options: ReadOptions, file_decimal: str) -> tuple[np.ndarray, str] | None:
    """``(floats, decimal mark)`` for the unique stripped texts of a column when every one is a number, else None."""
    if not uniques.iloc[:100].str.fullmatch(_NUMBERISH).all():  # cheap rejection: all must fit
        return None
    if options.decimal != "," and options.thousands != "." and file_decimal == ".":
        plain = _arrow_floats(uniques)  # what a plain CSV reader makes of it, in C++ (the common case)
        if plain is not None:
            return plain, "."
    if not uniques.str.fullmatch(_NUMBERISH).all():
        return None
    decimals = [options.decimal] if options.decimal else list(_DECIMALS)
    fits = [d for d in decimals if uniques.str.fullmatch(_number_pattern(d, options.thousands)).all()]
    if not fits:
        return None
    decimal = fits[0] if len(fits) == 1 else file_decimal
    values = _to_float(uniques, decimal)
    return None if np.isnan(values).any() else (values, decimal)


def sniff_decimal(lines: list[str], sep: str) -> str:
    """``","`` when the sampled data lines of a ``sep``-separated file write numbers with decimal commas, else ``"."``.

    Only unambiguous fields count: ``482,10`` or ``1.234,5`` for the comma,
    ``482.10`` or ``1,234.5`` for the point (``1,234`` could be either).
    A ``,``-separated file cannot have unquoted decimal commas: ``"."``.
    """
    if sep == ",":
        return "."
    fields = pd.Series([f.strip().strip('"') for line in lines[1:] for f in line.split(sep)], dtype=object)
    if fields.empty:
        return "."
    comma = fields.str.fullmatch(r"[+-]?(?:\d+,(?:\d{1,2}|\d{4,})|[1-9]\d{0,2}(?:\.\d{3})+,\d+|0,\d+)").sum()
    point = fields.str.fullmatch(r"[+-]?(?:\d+\.(?:\d{1,2}|\d{4,})|[1-9]\d{0,2}(?:,\d{3})+\.\d+|0\.\d+)").sum()
    return "," if comma > point else "."


# --------------------------------------------------------------------------- dates
_TIME = r"(?:[ T]+(\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?))?"
_ISO = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?")
_DMY = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{4})" + _TIME)
_YMD = re.compile(r"(\d{4})([./])(\d{1,2})\2(\d{1,2})" + _TIME)
_DATEISH = re.compile(r".*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.*")


def _arrow_floats(text: pd.Series) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(pa.array(text.to_numpy(dtype=object), type=pa.string()), pa.float64()).to_numpy(
            zero_copy_only=False
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _all_match(text: pd.Series, pattern: str) -> bool:
    """Every value fully matches ``pattern`` (RE2 syntax), tested in Arrow's C++ regex engine."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(text.to_numpy(dtype=object), type=pa.string())
    return bool(pc.all(pc.match_substring_regex(arr, "^(?:" + pattern + ")$")).as_py())


def _dates(
    uniques: pd.Series, options: ReadOptions, file_decimal: str, hint: bool | None = None
) -> tuple[pd.Series | None, str]:
    """UTC or naive datetimes for the unique texts when every one reads as a date, else ``None``; and a note.

    ``hint``: the day/month order found in training, used when these values do not tell (no field above 12).
    """
    if options.date_format:
        parsed = pd.to_datetime(uniques, format=options.date_format, errors="coerce")
        if parsed.notna().all():
            return parsed, f"dates as {options.date_format}"
    head = uniques.iloc[:100]
    if not (head.str.fullmatch(_ISO) | head.str.fullmatch(_DMY) | head.str.fullmatch(_YMD)).all():
        return None, ""  # cheap rejection: every value must be a date
    if _all_match(uniques, _ISO.pattern):  # ISO 8601 only: left to the schema's ISO parser, as before
        return None, ""
    iso = uniques.str.fullmatch(_ISO)
    dmy = uniques.str.extract("^" + _DMY.pattern + "$")
    ymd = uniques.str.extract("^" + _YMD.pattern + "$")
    is_dmy, is_ymd = dmy[0].notna(), ymd[0].notna()
    if not (iso | is_dmy | is_ymd).all() or not (is_dmy | is_ymd).any():
        return None, ""
    out = uniques.copy()
    note = "dates"
    if is_dmy.any():
        first = dmy.loc[is_dmy, 0].astype(int)
        second = dmy.loc[is_dmy, 2].astype(int)
        dayfirst = options.dayfirst
        if dayfirst is None:
            if (first > 12).any() and (second > 12).any():
                return None, ""  # both orders occur: not one format; left as text (schema inference warns)
            if (first > 12).any() or (second > 12).any():
                dayfirst = bool((first > 12).any())
            else:
                dot = (dmy.loc[is_dmy, 1] == ".").all()
                dayfirst = hint if hint is not None else bool(dot or file_decimal == ",")
        day, month = (dmy[0], dmy[2]) if dayfirst else (dmy[2], dmy[0])
        time = dmy[4].fillna("").radd(" ").where(dmy[4].notna(), "")
        out[is_dmy] = (dmy[3] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + time)[is_dmy]
        note = "dates day first (D.M.Y)" if dayfirst else "dates month first (M/D/Y)"
    if is_ymd.any():
        time = ymd[4].fillna("").radd(" ").where(ymd[4].notna(), "")
        out[is_ymd] = (ymd[0] + "-" + ymd[2].str.zfill(2) + "-" + ymd[3].str.zfill(2) + time)[is_ymd]
    out = out.str.replace(",", ".", regex=False)  # 12:30:00,5 -> 12:30:00.5
    aware = out.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).any()
    parsed = pd.to_datetime(out, format="ISO8601", errors="coerce", utc=bool(aware))
    if parsed.isna().any():  # 31.02.2024: not a date; left as text
        return None, ""
    if (iso.any() and not iso.all()) or (is_dmy.any() and is_ymd.any()):
        note += ", mixed formats"
    return parsed, note


# --------------------------------------------------------------------------- the frame
def _text_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c].dtype)]


def normalize_frame(
    df: pd.DataFrame,
    options: ReadOptions = DEFAULT_OPTIONS,
    *,
    file_decimal: str = ".",
    keep_text: Iterable[str] = (),
    dayfirst_columns: Mapping[str, bool] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Text columns of ``df`` whose every value is a number / a date, converted; ``(frame, {column: how})``.

    ``options.na_values`` become missing first.  Columns in ``keep_text``
    (categorical and id columns of a model) are left as they are;
    ``dayfirst_columns`` gives the day/month order a model's date columns
    had in training, for chunks whose dates do not tell.  Work is
    per distinct value (``pd.factorize``), so it costs little on long
    columns.  Values that are not text (Python objects) leave the column
    alone.
    """
    if df.columns.has_duplicates:  # the reader reports those
        return df, {}
    keep = set(keep_text)
    hints = dict(dayfirst_columns or {})
    na = set(options.na_values)
    out = None
    how: dict[str, str] = {}
    candidates = _text_columns(df)
    if options.date_format:  # 20240501 is read as an integer; a date format says it is a date
        candidates += [c for c in df.columns if pd.api.types.is_integer_dtype(df[c].dtype) and c not in candidates]
    for name in candidates:
        if name in keep:
            continue
        s = df[name]
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        if len(uniques) == 0:
            continue
        integers = pd.api.types.is_integer_dtype(s.dtype)
        uniques = pd.Series(uniques, dtype=object).map(str) if integers else pd.Series(uniques, dtype=object)
        if pd.api.types.infer_dtype(uniques, skipna=True) != "string":  # Python objects, mixed types
            continue
        stripped = uniques.str.strip()
        if na:
            is_na = stripped.isin(na).to_numpy()
            if is_na.any():
                codes = np.where(is_na[np.maximum(codes, 0)] & (codes >= 0), -1, codes)
                how[name] = "NA tokens"
        valid = codes >= 0
        present = np.zeros(len(uniques), dtype=bool)
        present[codes[valid]] = True
        stripped_present = stripped[present]
        converted = None
        dates = numbers = None
        if len(stripped_present) and (options.date_format or integers):
            dates, note = _dates(stripped_present, options, file_decimal, hints.get(name))
        if len(stripped_present) and dates is None and not integers:
            numbers = _numbers(stripped_present, options, file_decimal)
            if numbers is None:
                dates, note = _dates(stripped_present, options, file_decimal, hints.get(name))
        if numbers is not None or dates is not None:
            if numbers is not None:
                numbers, decimal = numbers
                table = np.full(len(uniques), np.nan)
                table[present] = numbers
                converted = pd.Series(np.where(valid, table[np.maximum(codes, 0)], np.nan), index=s.index)
                plain = pd.to_numeric(stripped_present, errors="coerce").to_numpy(dtype=np.float64)
                if not np.array_equal(plain, numbers, equal_nan=True):  # not what a plain reader makes of it
                    how[name] = "numbers, decimal comma" if decimal == "," else "numbers, thousands separators"
            else:
                if dates is not None:
                    table = pd.Series(pd.NaT, index=range(len(uniques)), dtype=dates.dtype)
                    table[np.flatnonzero(present)] = dates.to_numpy()
                    values = table.to_numpy()[np.maximum(codes, 0)]
                    converted = pd.Series(values, index=s.index, dtype=dates.dtype).where(valid)
                    how[name] = note
        if converted is None and how.get(name) == "NA tokens":
            converted = s.where(valid)
        if converted is not None:
            out = df.copy() if out is None else out
            out[name] = converted
    return (df if out is None else out), how


# --------------------------------------------------------------------------- warnings at inference
def looks_numeric_or_temporal(text: pd.Series) -> tuple[str, float, pd.Series] | None:
    """``("numeric" | "temporal", share of rows, values that do not fit, most common first)`` when at least half
    the non-missing values look like numbers (units allowed) or dates, else ``None``: a column read as categorical
    that should probably not be.  Each distinct value is looked at once."""
    if text.empty:
        return None
    counts = text.value_counts()
    values = pd.Series(counts.index.to_numpy(dtype=object), dtype=object).astype(str).str.strip()
    weights = counts.to_numpy(dtype=np.float64)
    dateish = values.str.fullmatch(_DATEISH).to_numpy()
    numberish = values.str.fullmatch(_LOOSE_NUMBER).to_numpy() & ~dateish
    for kind, hits in (("temporal", dateish), ("numeric", numberish)):
        share = float(weights[hits].sum() / weights.sum())
        if share >= 0.5:
            return kind, share, values[~hits].reset_index(drop=True)
    return None


# --------------------------------------------------------------------------- Excel
def read_excel(path, options: ReadOptions = DEFAULT_OPTIONS, *, header_only: bool = False) -> pd.DataFrame:
    """One sheet of an ``.xlsx`` workbook (openpyxl) as a DataFrame: the first, or ``options.sheet``.

    Cells keep their types (numbers, dates, text); ``options.na_values``
    are missing.  Errors (not a workbook, no such sheet) name the file.
    """
    try:
        import openpyxl  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency
        raise DataReadError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl).") from None
    import zipfile

    sheet = 0 if options.sheet is None else options.sheet
    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            names = list(book.sheet_names)
            if isinstance(sheet, str) and sheet not in names:
                if sheet.isdigit() and int(sheet) < len(names):
                    sheet = int(sheet)
                else:
                    raise DataReadError(f"{path} has no sheet {sheet!r}; its sheets are {names}.")
            if isinstance(sheet, int) and not 0 <= sheet < len(names):
                raise DataReadError(f"{path} has {len(names)} sheet(s) ({names}); sheet {sheet} is out of range.")
            df = pd.read_excel(
                book,
                sheet_name=sheet,
                nrows=0 if header_only else None,
                na_values=list(options.na_values) or None,
                dtype=object,
            )
    except DataReadError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise DataReadError(f"{path}: cannot read as an Excel .xlsx workbook: {' '.join(str(exc).split())}") from None
    df = df.rename(columns=str)
    unnamed = [c for c in df.columns if c.startswith("Unnamed: ")]
    if unnamed and df[unnamed].isna().all().all():  # trailing formatted-but-empty columns
        df = df.drop(columns=unnamed)
    filled = np.flatnonzero(df.notna().any(axis=1).to_numpy())
    # Formatted-but-empty rows *after the last value* are not data; an empty row in the middle stays (a missing row).
    df = df.iloc[: (int(filled[-1]) + 1 if filled.size else 0)]
    return df.infer_objects().reset_index(drop=True)


# --------------------------------------------------------------------------- what a file is
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one: name it .xlsx)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls / Office file (save it as .xlsx or .csv)"),
    (b"PAR1", "a Parquet file (name it .parquet)"),
    (b"\x93NUMPY", "a NumPy .npy file (name it .npy)"),
    (b"%PDF", "a PDF document"),
)


def check_not_binary(path: Path, sample: bytes, encoding: str | None) -> None:
    """A binary file given as CSV: say what it looks like instead of reading garbage."""
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            raise DataReadError(f"{path} is not a text table: it is {what}.")
    wide = (encoding or "").lower().replace("-", "").startswith(("utf16", "utf32"))
    if b"\x00" in sample[:4096] and not wide:
        hint = (
            " It looks like UTF-16 text: read it with --encoding utf-16 (encoding='utf-16')."
            if sample[:2] in (b"\xff\xfe", b"\xfe\xff") or sample[1:8:2] == b"\x00\x00\x00\x00"
            else ""
        )
        raise DataReadError(f"{path} is a binary file, not CSV text (it holds NUL bytes).{hint}")


def encoding_hint(col) -> str:
    raw = b"".join(v for v in col.to_pylist()[:100_000] if v)
    enc = "cp1252" if not raw or any(0x80 <= b <= 0x9F for b in raw) else "latin1"
    why = " (byte 0x80 is the euro sign there)" if 0x80 in raw else ""
    return (
        f"it looks like {enc} text{why}: read it with --encoding {enc} (encoding={enc!r}), or save the file as UTF-8."
    )


def sniff_csv(path: Path, fmt: str, encoding: str | None) -> tuple[str, list[str]]:
    """The delimiter (see :func:`csv_delimiter`) and the sampled lines; a binary file raises :class:`DataReadError`."""
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as fh:  # .csv.gz and friends too
        sample = fh.read(1 << 16)
    check_not_binary(path, sample, encoding)
    lines = sample.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff").splitlines()
    truncated = len(sample) == 1 << 16  # the last sampled line may be cut short
    body = [line for line in lines[1 : -1 if truncated else None] if line.strip()][:200]
    if fmt == "tsv":
        return "\t", [lines[0], *body] if lines else []
    if not lines or "," in lines[0]:
        return ",", [lines[0], *body] if lines else []
    for sep in DELIMITERS[1:]:
        k = lines[0].count(sep)
        if k and all(line.count(sep) == k for line in body[:50]):
            return sep, [lines[0], *body]
    return ",", [lines[0], *body]
