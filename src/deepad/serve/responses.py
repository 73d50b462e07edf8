"""The answers of the scoring service as the OpenAPI document describes them.

Holds the pydantic response models (:class:`ScoreResponse` and its
:class:`ScoreResult` rows, :class:`StreamResponse`,
:class:`StreamResetResponse`, the ``{"detail": ...}`` error bodies) and the
error answers each route documents (``_ERRORS``: 408, 413, 415, 422, 500;
``_AUTH_ERROR``: 401 when an API key is set).  They document the answers;
the service builds its JSON itself (see :mod:`deepad.serve.scoring`).
"""

from __future__ import annotations

from typing import Any

try:
    from pydantic import BaseModel, Field
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError("deepad serve needs the 'serve' extra: pip install 'deepad[serve]'") from _exc


class Contribution(BaseModel):
    column: str
    attribution: float | None = Field(description="How much this column raised the score (see deepad.explain).")


class ScoreResult(BaseModel):
    score: float | None = Field(description="Anomaly score, higher = more anomalous (null if not a finite number).")
    p_value: float = Field(description="Conformal p-value against the training scores: small = unusual.")
    is_anomaly: bool = Field(description="score > threshold.")
    ids: dict[str, Any] | None = Field(None, description="The row's id columns, when the model has them.")
    top_features: list[Contribution] | None = Field(
        None,
        description="With ?explain=anomalies (flagged rows) or ?explain=all: the columns that contributed "
        "most to the score, largest first.",
    )


class ScoreResponse(BaseModel):
    model: str
    version: str
    threshold: float
    n: int
    n_anomalies: int
    results: list[ScoreResult]
    notes: list[str] = []
    explanation_method: str | None = None


class StreamResult(BaseModel):
    timestamp: str | int | None = None
    score: float | None
    threshold: float | None
    alarm: bool
    alert: bool


class StreamResponse(BaseModel):
    model: str
    version: str
    n: int
    n_seen: int
    n_alerts: int
    refractory: int
    rearm: int
    results: list[StreamResult]
    notes: list[str] = []


class StreamResetResponse(BaseModel):
    model: str
    version: str
    reset: bool
    refractory: int
    rearm: int


class ErrorEntry(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorEntry]


class MessageResponse(BaseModel):
    detail: str


_ERRORS = {
    408: {
        "model": MessageResponse,
        "description": "The request body did not arrive within the body timeout "
        "(default 30 s); the connection is closed.",
    },
    413: {
        "model": MessageResponse,
        "description": "Request body too large: over the body size limit (default "
        "32 MiB), more rows than max_rows (default 100,000), or a "
        "Parquet body that decompresses to more than "
        "max_decompressed_bytes (default 256 MiB).",
    },
    415: {"model": MessageResponse, "description": "Unsupported Content-Type."},
    422: {
        "model": ValidationErrorResponse,
        "description": "The body does not fit the model's input schema (or, "
        "for a stream, a row is out of time order), or a "
        "query parameter does not apply to this model.",
    },
    500: {"model": MessageResponse, "description": "Internal server error (details in the server log)."},
}
_AUTH_ERROR = {401: {"model": MessageResponse, "description": "Missing or wrong X-API-Key header."}}
