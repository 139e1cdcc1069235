"""Who may call the server: the loopback rule, the API key, and the body-size cap.

- :func:`check_bind`: the server binds a loopback address (127.0.0.1 by default) unless an API
  key is set; any other address without one is refused before anything loads.
- :class:`GuardMiddleware`: with a key set, every route except ``/health`` and the page ``/``
  requires ``Authorization: Bearer <key>`` (401 otherwise; compared in constant time); a body
  larger than the cap is refused with 413 (by its Content-Length, or while it is read when it
  has none), before any route reads it.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException

from embedding_ft.serve.errors import error_response
from embshared.errors import UserError

#: the routes open without the key
OPEN_PATHS = frozenset({"/", "/health"})


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: not known to be loopback
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse (one line) to bind a non-loopback ``host`` without an API key."""
    if not is_loopback(host) and not api_key:
        raise UserError(
            f"refusing to bind {host} without an API key: set API_KEY=<secret> (clients send "
            "'Authorization: Bearer <secret>') or bind 127.0.0.1"
        )


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class GuardMiddleware:
    """The API key and the body-size cap, in front of every route (pure ASGI)."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body_bytes

    def authorized(self, scope) -> bool:
        if self.key is None or scope["path"] in OPEN_PATHS:
            return True
        given = _header(scope, b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.authorized(scope):
            message = "missing or wrong API key: send 'Authorization: Bearer <key>'"
            return await error_response(401, message, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await error_response(413, f"request body over {self.max_body} bytes")(scope, receive, send)
        return await self.app(scope, self._capped(receive), send)

    def _capped(self, receive):
        """``receive``, refusing (413) a body without Content-Length once it grows past the cap."""
        seen = {"bytes": 0}

        async def capped():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body:
                    raise HTTPException(413, f"request body over {self.max_body} bytes")
            return message

        return capped
