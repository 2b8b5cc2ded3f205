"""Issue 15 #4: Swagger UI (`/docs`) and ReDoc (`/redoc`) work offline. Their HTML names no external
URL, and every asset they reference (scripts, styles, favicon, the OpenAPI document) is served by
the running API itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.found.append(value)


def references(html: str) -> list[str]:
    """Every URL the page loads: src/href/spec-url attributes and the OpenAPI URL its script passes."""
    parser = _References()
    parser.feed(html)
    return parser.found + re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_from_the_api(mirror, page):
    with httpx.Client(base_url=mirror.url, timeout=30) as client:
        response = client.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        html = response.text
        assert not re.search(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", html), "an external URL in the page"
        found = references(html)
        assert "/openapi.json" in found
        assert any(url.endswith(".js") for url in found)
        for url in found:
            assert url.startswith("/"), url
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url
            if url.endswith(".js"):
                assert "javascript" in asset.headers["content-type"] and len(asset.content) > 100_000, url
            if url.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), url
        assert client.get("/openapi.json").json()["info"]["title"] == "negawatt dApp API"
