"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served entirely by this process, so they work offline.

Rule: the pages reference nothing outside the API. FastAPI's own pages load Swagger UI and ReDoc
from a CDN (and ReDoc's fonts from Google), which leaves `/docs` blank on a machine without the
internet. The JavaScript and CSS come from the `fastapi-offline` package (MIT), which ships the
Swagger UI and ReDoc bundles as package data; they are served from `/docs-assets/` and the pages
are FastAPI's HTML with those URLs, without Google fonts and without Swagger's online validator.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS = Path(str(files("fastapi_offline") / "static"))
_REQUIRED = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve `/docs` and `/redoc` for `app` (created with docs_url=None, redoc_url=None) from local assets."""
    missing = [name for name in _REQUIRED if not (ASSETS / name).is_file()]
    if missing:
        raise RuntimeError(f"fastapi-offline is installed without {', '.join(missing)} in {ASSETS}")
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    favicon = f"{ASSETS_PATH}/favicon.png"
    oauth_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title}: Swagger UI",
                                   swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css", swagger_favicon_url=favicon,
                                   oauth2_redirect_url=oauth_redirect, swagger_ui_parameters={"validatorUrl": None})

    @app.get(oauth_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title}: ReDoc",
                              redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js", redoc_favicon_url=favicon,
                              with_google_fonts=False)
