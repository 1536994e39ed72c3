"""The API reference at ``/docs``: Swagger UI served from here, under the UI's CSP (scenario H14).

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script, so it
cannot run under ``script-src 'self'``. Here the assets come from the pinned
``fastapi-offline`` package and the start-up script is a file of ours; ReDoc is not offered.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from soc_api.errors import problem
from soc_api.ui.mount import SECURITY_HEADERS

DOCS_URL = "/docs"
ASSETS_URL = "/docs/static/{name}"
_SWAGGER_DIR = Path(str(files("fastapi_offline").joinpath("static")))
_OWN_DIR = Path(__file__).parent / "ui" / "static"
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_SWAGGER_DIR / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_SWAGGER_DIR / "swagger-ui.css", "text/css"),
    "favicon.png": (_SWAGGER_DIR / "favicon.png", "image/png"),
    "docs-init.js": (_OWN_DIR / "docs-init.js", "text/javascript"),
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} · API reference</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" href="/docs/static/favicon.png" type="image/png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/docs-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets (plain routes: public, outside the OpenAPI and the policy
    table's API inventory; ``soc_api.policy.DOCS_ROUTES`` names them)."""
    page = PAGE.format(title=app.title, openapi_url=app.openapi_url)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        found = ASSETS.get(request.path_params["name"])
        if found is None:
            return problem(request, 404, "Not found", "no such file")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    app.add_route(DOCS_URL, docs, include_in_schema=False)
    app.add_route(ASSETS_URL, asset, include_in_schema=False)


__all__ = ["ASSETS", "install_docs"]
