"""The operations-center dashboard: static files shipped in `gateway/web/`, served at `/` and
`/static/...` without a token (the page asks for one and sends it as `Authorization: Bearer`
with each API call, like any other client), under a Content-Security-Policy that allows nothing
from outside but the configured map tiles (docs/dashboard.md).

The files are read once, at start; each answer carries a strong ETag, so that a browser
revalidates them with a 304 instead of downloading them again.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .settings import DashboardConfig

WEB_DIR = Path(__file__).resolve().parent / "web"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def content_security_policy(config: DashboardConfig) -> str:
    """Scripts, styles and API calls from the gateway only; pictures from the gateway, from
    blob: URLs the page makes of snapshots it fetched, and from the tile service if one is set."""
    img = " ".join(filter(None, ("'self'", "blob:", "data:", config.tile_origin)))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None  # when it is worth it: the browser's first load is a quarter the size


def _asset(body: bytes, content_type: str) -> Asset:
    packed = gzip.compress(body, 9, mtime=0)
    return Asset(
        body,
        content_type,
        '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        packed if len(packed) < len(body) * 0.9 else None,
    )


def load_assets(config: DashboardConfig, root: Path = WEB_DIR) -> dict[str, Asset]:
    """Every shipped file by its URL path; index.html with the settings the page reads put in
    its `<meta>` tags (no inline script: the CSP forbids them)."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        kind = _TYPES.get(path.suffix)
        if not path.is_file() or kind is None:
            continue
        rel = path.relative_to(root).as_posix()
        body = path.read_bytes()
        if rel == "index.html":
            body = (
                body.decode()
                .replace("{{tile_url}}", html.escape(config.tile_url, quote=True))
                .replace("{{tile_max_zoom}}", str(config.tile_max_zoom))
                .encode()
            )
            assets["/"] = _asset(body, kind)
        else:
            assets[f"/static/{rel}"] = _asset(body, kind)
    return assets


def add_dashboard(app: web.Application, config: DashboardConfig) -> None:
    if not config.enabled:
        return
    assets = load_assets(config)
    headers = {
        "Content-Security-Policy": content_security_policy(config),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Vary": "Accept-Encoding",
    }

    async def serve(request: web.Request) -> web.StreamResponse:
        asset = assets.get(request.path)
        if asset is None:
            raise web.HTTPNotFound()
        gz = asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", "")
        # a strong ETag per representation; If-None-Match compares weakly (either matches)
        answer = {**headers, "ETag": asset.etag[:-1] + '-gz"' if gz else asset.etag}
        inm = request.headers.get("If-None-Match")
        if inm is not None and asset.etag[1:-1] in inm:
            return web.Response(status=304, headers=answer)
        answer["Content-Type"] = asset.content_type
        if gz and asset.gzipped is not None:
            answer["Content-Encoding"] = "gzip"
            return web.Response(body=asset.gzipped, headers=answer)
        return web.Response(body=asset.body, headers=answer)

    app.router.add_get("/", serve, name="dashboard")
    app.router.add_get("/static/{path:.+}", serve, name="dashboard_static")
