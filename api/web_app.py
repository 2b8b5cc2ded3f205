"""The web app (`web/`, built by `make setup` into `web/dist`), served by the API at `/`.

The rule: the page is static files from one folder, `index.html` at `/` and Vite's hashed bundles under
`/assets/`; everything else stays the API's, so an unknown `/v1/...` path is still a problem+json 404.
A tree without the build answers `/` with a page saying how to build it (503), never a blank page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "dist"
_NOT_BUILT = ("<!doctype html><html lang=en><meta charset=utf-8><title>negawatt</title>"
              "<body><h1>The negawatt web app is not built</h1><p>Run <code>make setup</code> in the repository "
              "(it builds <code>web/dist</code> from <code>web/package-lock.json</code>), then reload. The API "
              "itself is at <a href=/docs>/docs</a>.</p></body></html>")


def install_web_app(app: FastAPI, web_dir: Path | None = None) -> bool:
    """Serve the built app at `/` and `/assets/`; returns whether a build was found."""
    folder = (web_dir or DEFAULT_WEB_DIR).resolve()
    index = folder / "index.html"
    built = index.is_file()

    @app.get("/", include_in_schema=False)
    async def web_index():
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503)
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache",
                                                                    "X-Content-Type-Options": "nosniff"})

    if (folder / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=folder / "assets"), name="web-assets")
    return built
