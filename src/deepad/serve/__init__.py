"""HTTP scoring service for saved deepad models (FastAPI on Uvicorn): ``deepad serve MODEL_DIR``.

Needs the ``serve`` extra: ``pip install 'deepad[serve]'``.  See
``docs/serving.md`` for the endpoints, security settings and hot reload.

* :func:`create_app` -- the ASGI application for a model directory (or a
  directory of model directories);
* :class:`ModelRegistry` -- loads models, fingerprints their directories and
  swaps in new versions atomically;
* :func:`input_spec` -- the request models (pydantic) derived from a model's
  saved input schema.
"""

from deepad.serve.registry import LoadedModel, ModelRegistry, discover_models
from deepad.serve.spec import InputSpec, input_spec

__all__ = [
    "create_app",
    "serve",
    "ServeConfig",
    "ModelRegistry",
    "LoadedModel",
    "discover_models",
    "InputSpec",
    "input_spec",
]


def __getattr__(name):  # the app module imports FastAPI: only on demand
    if name in ("create_app", "serve", "ServeConfig"):
        from deepad.serve import app as _app

        return getattr(_app, name)
    raise AttributeError(name)
