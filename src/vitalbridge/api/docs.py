"""The OpenAPI docs pages (Swagger UI and ReDoc), served with their assets from the hub itself.

FastAPI's default pages load their scripts from a CDN, which a clinic network often blocks: the
pages come up blank. Here the scripts and styles come from the ``fastapi-offline`` package (pinned
in pyproject; it ships the swagger-ui and redoc dist files, MIT) and one small start-up script of
ours, under ``{assets_url}/``. A Content-Security-Policy on the pages forbids every other host.
Used by the hub (``/docs``, ``/redoc``) and by the sandbox EHR (``/_sandbox/docs``, ``/_sandbox/redoc``).
"""

from __future__ import annotations

import html
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

# 'unsafe-inline' styles only: Swagger UI sets style attributes and ReDoc injects <style> tags.
# Scripts only from the hub; ReDoc's search runs in a blob: worker; icons are data: URIs.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}


def _asset_files() -> dict[str, Traversable]:
    vendored = resources.files("fastapi_offline") / "static"
    ours = resources.files("vitalbridge.api") / "docs_assets"
    files = {name: vendored / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")}
    files["favicon.png"] = vendored / "favicon.png"
    files["swagger-init.js"] = ours / "swagger-init.js"
    return files


def _swagger_page(title: str, openapi_url: str, assets: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="{assets}/favicon.png"><link rel="stylesheet" href="{assets}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script><script src="{assets}/swagger-init.js"></script>
</body></html>"""


def _redoc_page(title: str, openapi_url: str, assets: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="{assets}/favicon.png">
</head><body><redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{assets}/redoc.standalone.js"></script></body></html>"""


def install_docs(
    app: FastAPI,
    *,
    docs_url: str = "/docs",
    redoc_url: str = "/redoc",
    openapi_url: str = "/openapi.json",
    assets_url: str = "/docs/assets",
) -> None:
    """Serve the two docs pages and their assets on ``app`` (built with docs_url=None, redoc_url=None)."""
    files = _asset_files()
    headers = {"Content-Security-Policy": DOCS_CSP}

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_swagger_page(f"{app.title} - Swagger UI", openapi_url, assets_url), headers=headers)

    @app.get(redoc_url, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(_redoc_page(f"{app.title} - ReDoc", openapi_url, assets_url), headers=headers)

    @app.get(assets_url + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        source = files.get(name)
        if source is None:
            return Response(status_code=404)
        return Response(
            source.read_bytes(),
            media_type=_TYPES[name[name.rindex(".") :]],
            # The files change only with the package version.
            headers={"Cache-Control": "public, max-age=86400"},
        )
