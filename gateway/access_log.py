"""The access log: one structured line per request, tokens and secret-looking query values
redacted (the log must never hold a credential)."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .keys import PRINCIPAL, REQUEST_ID

REDACTED = "[redacted]"

# A camgw token (`cgw_<id>_<secret>`, gateway.auth), also percent-encoded; the id stays, it names
# the token without granting anything.
_TOKEN = re.compile(r"(cgw(?:_|%5f))([0-9a-f]{1,32})(?:_|%5f)[A-Za-z0-9_%-]+", re.IGNORECASE)
# Query parameters whose name suggests a secret: token, access_token, api_key, key, secret,
# password, auth, sig, X-Amz-Signature, session_id, ...
_SECRET_NAME = re.compile(
    r"token|key|secret|pass|pwd|auth|sig|credential|session|cookie|jwt|bearer|otp|code",
    re.IGNORECASE,
)


def redact_target(path_qs: str) -> str:
    """The request target with secrets replaced: the value of every query parameter whose name
    suggests a secret, and any camgw token anywhere in the path or the query."""
    path, sep, query = path_qs.partition("?")
    if sep:
        params = []
        for param in query.split("&"):
            name, eq, _value = param.partition("=")
            secret = eq and _SECRET_NAME.search(unquote_plus(name))
            params.append(f"{name}={REDACTED}" if secret else param)
        path = f"{path}?{'&'.join(params)}"
    return _TOKEN.sub(rf"\g<1>\g<2>_{REDACTED}", path)


class AccessLogger(AbstractAccessLogger):
    """Who asked for what, and how it went. Tokens belong in the Authorization header, which is
    never logged; but a client may still put one in a URL (`?access_token=`, a copied link), so
    the logged target has secret-looking query values and any camgw token redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        principal = request.get(PRINCIPAL)
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "path": redact_target(request.path_qs)[:512],
                "status": response.status,
                "bytes": response.body_length,
                "ms": round(time * 1000, 2),
                "actor": principal.actor if principal else None,
                "request_id": request.get(REQUEST_ID),
                "remote": request.remote,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
