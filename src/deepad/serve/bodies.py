"""Request bodies of the scoring service: receiving them and turning them into a table.

Holds the per-request limits and their defaults (``max_body_bytes`` on the
wire, ``max_rows`` rows, ``max_decompressed_bytes`` for a Parquet body,
``body_timeout`` to receive a body), :func:`_read_body` (size limit, 413;
timeout, 408; client disconnects logged in one line), the media types the
service accepts, and the readers: JSON through the model's
:class:`~deepad.serve.spec.InputSpec`, CSV through Arrow (one block for the
whole body) and Parquet, whose row count and decoded size are checked from
its footer before its data is read (:func:`_check_parquet_metadata`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pandas as pd

try:
    from fastapi import HTTPException, Request
    from starlette.requests import ClientDisconnect
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc

from deepad.serve.registry import LoadedModel
from deepad.serve.spec import BodyError, RowLimitError

log = logging.getLogger("deepad.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
PARQUET_TYPES = (
    "application/vnd.apache.parquet",
    "application/x-parquet",
    "application/parquet",
    "application/octet-stream",
)


async def _read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes (413 above), received within ``timeout`` seconds (408 after).

    A client that disconnects while sending is logged in one line (no traceback) and gets a 400 nobody reads.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request body is {int(length):,} bytes; the limit is {limit:,}")

    async def receive() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    where = f"{request.method} {request.url.path}"
    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    try:
        if timeout is not None and timeout > 0:
            return await asyncio.wait_for(receive(), timeout)
        return await receive()
    except asyncio.TimeoutError:
        log.info("%s: the body of %s did not arrive within %g s (body timeout); answered 408", client, where, timeout)
        raise HTTPException(
            408,
            f"the request body did not arrive within {timeout:g} s (the body timeout)",
            headers={"Connection": "close"},
        ) from None
    except ClientDisconnect:
        log.info("%s disconnected while sending the body of %s", client, where)
        raise HTTPException(400, "the client disconnected while sending the body") from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


@dataclass(frozen=True)
class _Limits:
    """What one request may decode to (see :func:`~deepad.serve.app.create_app`)."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES


#: Arrow reads a request body in the thread that scores it, not in Arrow's pool: a request is one thread's work and
#: the service runs requests side by side (``--concurrency``, ``--workers``).  A 1,000-row Parquet body: reading
#: 1.1 ms of CPU instead of 2.0, to pandas 0.5 instead of 0.95 (medians of 300, in process).
_USE_THREADS = False


def _read_csv(body: bytes, loaded: LoadedModel, limits: _Limits = _Limits()) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from deepad.data.readers import _arrow_to_pandas, _csv_options

    if not body.strip():
        raise BodyError(
            [
                {
                    "loc": ["body"],
                    "type": "csv_error",
                    "msg": "the body is empty: send a CSV header line and at least one row",
                }
            ]
        )
    # Schema columns as text: the preprocessor parses them with row-level error messages (as `deepad score`).
    text = [c.name for c in loaded.spec.columns] if loaded.spec.tabular else None
    read, parse, convert = _csv_options("csv", None, text, None)
    # One block for the whole body (at most max_body_bytes): Arrow's default 1 MiB blocks cannot hold a header
    # line (or a row) longer than that, and it then reports "Empty CSV file or block".
    read.block_size = int(min(max(len(body) + 2, 1 << 20), 2**31 - 1))
    read.use_threads = _USE_THREADS
    if not body.endswith(b"\n"):
        body += b"\n"  # Arrow cannot read a last line, header or row, without its end of line
    try:
        table = pcsv.read_csv(pa.BufferReader(body), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError) as exc:
        msg = _first_line(exc)
        if "Empty CSV file" in msg:
            msg = "no header line"
        raise BodyError(
            [{"loc": ["body"], "type": "csv_error", "msg": f"cannot read the body as CSV: {msg}"}]
        ) from None
    if table.num_rows > limits.max_rows:  # before the (larger) pandas copy and any scoring
        raise RowLimitError(table.num_rows, limits.max_rows)
    if loaded.spec.tabular:
        table = _numbers_read(table, [c.name for c in loaded.spec.columns if c.kind == "numeric"])
    return _arrow_to_pandas(table, use_threads=_USE_THREADS)


def _numbers_read(table, names: list[str]):
    """``table`` with each numeric column of ``names`` cast from its text to float64 here, where every value reads
    as a finite number; any other column stays text, for the preprocessor to name the bad row in its 422.

    The cast is the one :func:`deepad.data.schema.parse_numbers` makes on the same text (Arrow's string to
    float64), so the values are the same; it saves the text's copy into pandas and back into Arrow (1,000 rows
    of the fraud table, 4 numeric columns: about 1 ms of the 14 ms a CSV body costs, ``benchmarks/serve_batch_path.py``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in names:
        i = table.schema.get_field_index(name)
        if i < 0 or not pa.types.is_string(table.schema.field(i).type):
            continue
        try:
            values = pc.cast(table.column(i), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if pc.all(pc.is_finite(values)).as_py() is not False:  # True, or None for a column of nulls alone
            table = table.set_column(i, pa.field(name, pa.float64()), values)
    return table


# Bytes per value of each Parquet physical type once decoded (BYTE_ARRAY: the offsets; the bytes themselves are
# in the column chunk's uncompressed size, or, dictionary-encoded, checked after reading).
_PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8, "BYTE_ARRAY": 4}


def _too_big(size: int, limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"the Parquet body decompresses to about {size:,} bytes; the limit is {limit:,} "
        "bytes (max_decompressed_bytes): send fewer rows per request",
    )


def _check_parquet_metadata(meta, schema, limits: _Limits) -> None:
    """Rows and decoded size of a Parquet body from its footer alone: 413 before any data is read."""
    import pyarrow.types as pat

    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    rows = max(int(meta.num_rows), sum(int(g.num_rows) for g in groups))
    if rows > limits.max_rows:
        raise RowLimitError(rows, limits.max_rows)
    nested = [f.name for f in schema if pat.is_nested(f.type)]
    if nested:
        raise BodyError(
            [
                {
                    "loc": ["body", nested[0]],
                    "type": "parquet_error",
                    "msg": f"column {nested[0]!r} has a nested type ({schema.field(nested[0]).type}); "
                    "the service scores flat tables",
                }
            ]
        )
    size = 0
    for g in groups:
        columns = 0
        for j in range(g.num_columns):
            c = g.column(j)
            width = _PARQUET_WIDTH.get(c.physical_type) or max(int(meta.schema.column(j).length or 0), 1)
            columns += max(int(c.total_uncompressed_size), int(c.num_values) * width)
        size += max(int(g.total_byte_size), columns)
    if size > limits.max_decompressed_bytes:
        raise _too_big(size, limits.max_decompressed_bytes)


def _decoded_nbytes(table) -> int:
    """Arrow bytes of ``table`` with its dictionary columns decoded, computed without decoding them."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    total = 0
    for col in table.columns:
        if not pat.is_dictionary(col.type):
            total += col.nbytes
            continue
        for chunk in col.chunks:
            values = chunk.dictionary
            if (
                pat.is_string(values.type)
                or pat.is_large_string(values.type)
                or pat.is_binary(values.type)
                or pat.is_large_binary(values.type)
            ):
                lengths = pc.take(pc.binary_length(values), chunk.indices)
                total += int(pc.sum(lengths).as_py() or 0) + 8 * len(chunk)
            else:
                total += (values.nbytes // max(len(values), 1) + 1) * len(chunk)
    return total


def _read_parquet(body: bytes, limits: _Limits = _Limits()) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    from deepad.data.readers import _arrow_to_pandas

    if body[:4] != b"PAR1":
        raise BodyError(
            [{"loc": ["body"], "type": "parquet_error", "msg": "the body is not a Parquet file (no PAR1 magic bytes)"}]
        )
    try:
        footer = pq.ParquetFile(pa.BufferReader(body))
        meta, schema = footer.metadata, footer.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError(
            [{"loc": ["body"], "type": "parquet_error", "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]
        ) from None
    _check_parquet_metadata(meta, schema, limits)
    # Text columns are read dictionary-encoded, as stored: one long value repeated in every row is a few bytes in
    # the file and in the footer's sizes; its decoded size is checked before it is expanded.
    text = [
        f.name
        for f in schema
        if pat.is_string(f.type) or pat.is_large_string(f.type) or pat.is_binary(f.type) or pat.is_large_binary(f.type)
    ]
    try:
        table = pq.read_table(pa.BufferReader(body), read_dictionary=text or None, use_threads=_USE_THREADS)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError(
            [{"loc": ["body"], "type": "parquet_error", "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]
        ) from None
    if table.num_rows > limits.max_rows:  # the footer said otherwise
        raise RowLimitError(table.num_rows, limits.max_rows)
    size = _decoded_nbytes(table)
    if size > limits.max_decompressed_bytes:
        raise _too_big(size, limits.max_decompressed_bytes)
    for i, f in enumerate(table.schema):  # back to the stored types (what reading without read_dictionary gives)
        if (
            pat.is_dictionary(f.type)
            and i < len(schema)
            and schema.field(i).name == f.name
            and not pat.is_dictionary(schema.field(i).type)
        ):
            table = table.set_column(i, schema.field(i), table.column(i).cast(schema.field(i).type))
    try:
        return _arrow_to_pandas(table, use_threads=_USE_THREADS)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BodyError(
            [{"loc": ["body"], "type": "parquet_error", "msg": f"cannot read the body as Parquet: {_first_line(exc)}"}]
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _table(body: bytes, media: str, loaded: LoadedModel, limits: _Limits = _Limits()) -> tuple[pd.DataFrame, str]:
    if media in JSON_TYPES or media.endswith("+json"):
        return (
            loaded.spec.parse_json(body, max_rows=limits.max_rows),
            "columns" if body.lstrip()[:1] == b"{" else "records",
        )
    if media in CSV_TYPES:
        return _read_csv(body, loaded, limits), "file"
    if media in PARQUET_TYPES:
        return _read_parquet(body, limits), "file"
    raise HTTPException(
        415, f"unsupported Content-Type {media!r}: send application/json, text/csv or application/vnd.apache.parquet"
    )
