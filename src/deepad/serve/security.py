"""Who may call the scoring service, and what reaches the client.

Holds the start-up checks (:func:`check_bind`: no listening beyond the
loopback interface without an API key unless ``insecure``; :func:`_api_key`
and :func:`_check_key`: no blank, padded or short keys), the two pure-ASGI
middlewares (:class:`_APIKeyMiddleware`: ``X-API-Key`` on every path but the
health probes, compared in constant time; :class:`_InternalErrors`: an
unhandled exception becomes a logged, generic JSON 500 that keeps the
connection usable) and :func:`_client_text`, which takes the server's
directories out of an error message before a client sees it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("deepad.serve")

API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen beyond the loopback interface without an API key, unless ``insecure``.

    An empty or all-whitespace key counts as no key (and is refused by :func:`_api_key` and
    :func:`~deepad.serve.app.create_app`).
    """
    if api_key is not None and not api_key.strip():
        raise ValueError(
            "the API key is empty or only whitespace: set a real key (at least 16 characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    if api_key is None and not insecure and not _is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host} without an API key: anyone who can reach this host could "
            "score data and read the model's schema. Set a key with --api-key-env VAR, bind to "
            "127.0.0.1, or pass --insecure if a proxy in front of this service authenticates."
        )


def _api_key(env: str | None) -> str | None:
    if not env:
        return None
    key = os.environ.get(env)
    if not key:
        raise ValueError(f"--api-key-env {env}: the environment variable {env} is not set or empty.")
    _check_key(key, f"the API key in {env}")
    return key


def _check_key(key: str, what: str = "the API key") -> None:
    """Refuse keys that are blank, padded with whitespace (HTTP strips it from header values: it could never
    match) or shorter than 16 characters."""
    if not key.strip():
        raise ValueError(
            f"{what} is empty or only whitespace ({len(key)} character(s)); set a real key "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    if key != key.strip():
        raise ValueError(
            f"{what} has leading or trailing whitespace, which HTTP strips from header values, so "
            "no client could send it; remove the whitespace."
        )
    if len(key) < 16:
        raise ValueError(
            f"{what} is {len(key)} characters long; use at least 16 "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )


def _check_app_key(api_key: str | None) -> None:
    """:func:`~deepad.serve.app.create_app`'s check of its ``api_key``: none, or a key HTTP can carry."""
    if api_key is not None:
        if not api_key.strip():
            raise ValueError("the API key is empty or only whitespace; set a real key or none.")
        if api_key != api_key.strip():
            raise ValueError(
                "the API key has leading or trailing whitespace, which HTTP strips from header "
                "values, so no client could send it."
            )


class _APIKeyMiddleware:
    """Pure ASGI: every HTTP path but the health probes needs ``X-API-Key`` (compared in constant time)."""

    def __init__(self, app, key: str):
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            got = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
            if got is None or not hmac.compare_digest(got, self.key):
                body = json.dumps({"detail": f"missing or wrong {API_KEY_HEADER} header"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"APIKey"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class _InternalErrors:
    """Pure ASGI: an unhandled exception becomes a logged, generic JSON 500 that keeps the connection usable.

    Why not ``@app.exception_handler(Exception)``: Starlette runs that handler in its outermost
    ``ServerErrorMiddleware``, which sends the 500 and then *re-raises*, so Uvicorn logs a second traceback and
    drops the connection without ``Connection: close``; a keep-alive client's next request on it then fails
    (ECONNRESET).  Here the exception ends with the answer.  If the answer had already started, nothing can be
    sent: the exception goes on to Uvicorn, which closes the connection.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = json.dumps({"detail": "internal server error"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


_ABSOLUTE_DIRS = re.compile(r"(?<![\w.~/-])(?:/[^/\s'\"(),;:]+)+/(?=[^/\s'\"(),;:])")


def _client_text(text: str, name: str, path: str | os.PathLike) -> str:
    """``text`` (an error message) without the server's directories: the model directory becomes the model's name,
    any other absolute path its last component.  The log keeps the full text."""
    path = Path(path)
    dirs = {str(path), str(path.absolute()), os.path.realpath(path)}
    for d in sorted((d.rstrip("/") for d in dirs), key=len, reverse=True):
        if d and d not in (".", "/"):
            text = text.replace(d, name)
    return _ABSOLUTE_DIRS.sub("", text)
