"""The scoring service's OpenAPI document: FastAPI's, plus what only the loaded models know.

:func:`_openapi_hook` builds ``app.openapi``: each model's request bodies (JSON from its input schema, CSV,
Parquet, with the row and size limits), the ``explain`` values a model can answer, the stream bodies of
time-series models and the API key scheme; built once, rebuilt after a reload (``app.openapi_schema = None``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from deepad.serve.bodies import _Limits
from deepad.serve.registry import ModelRegistry
from deepad.serve.scoring import _can_explain
from deepad.serve.security import API_KEY_HEADER, OPEN_PATHS

__all__ = ["_openapi_hook"]


def _openapi_hook(app: FastAPI, registry: ModelRegistry, limits: _Limits, api_key: str | None):
    """``app.openapi``: FastAPI's document plus each model's request bodies (from its input schema), the
    ``explain`` values a model can answer, and the API key scheme; built once, rebuilt after a reload."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        rows = f"at most {limits.max_rows:,} rows"
        for path, name in app.state.score_paths.items():
            loaded = registry.get(name)
            body, defs = loaded.spec.openapi_body(max_rows=limits.max_rows)
            components.update(defs)
            op = schema["paths"][path]["post"]
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": body},
                    "text/csv": {
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "description": "CSV with a header line "
                            f"and at least one row ({rows}); an empty body is a 422",
                        }
                    },
                    "application/vnd.apache.parquet": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "minLength": 1,
                            "description": f"a Parquet file ({rows}, decoding to at most "
                            f"{limits.max_decompressed_bytes:,} bytes; flat columns)",
                        }
                    },
                },
            }
            if not _can_explain(loaded.model):
                for param in op.get("parameters", []):
                    if param.get("name") == "explain" and param.get("in") == "query":
                        param["schema"] = {"type": "string", "enum": ["none"], "default": "none", "title": "Explain"}
                        param["description"] = (
                            f"{type(loaded.model).__name__} cannot explain its scores (it keeps "
                            "no training data to compare a row with): only none (other values "
                            "are a 422)."
                        )
        for path, name in app.state.stream_paths.items():
            loaded = registry.get(name)
            timestamp = (getattr(loaded.model, "series_input_", None) or {}).get("timestamp")
            records, defs = loaded.spec.openapi_stream_body(timestamp, max_rows=limits.max_rows)
            components.update(defs)
            schema["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": records}},
            }
        if api_key:
            schema["components"]["securitySchemes"] = {
                "APIKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
            }
            for path, ops in schema["paths"].items():
                if path not in OPEN_PATHS:
                    for op in ops.values():
                        op["security"] = [{"APIKey": []}]
        app.openapi_schema = schema
        return schema

    return openapi
