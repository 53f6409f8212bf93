"""gql.http.pages over HTTP: the pages, their cache and CSP headers, and the hashed assets."""

from __future__ import annotations

import re

import httpx

from gql.http.pages import STATIC


async def test_web_index_is_the_app_and_is_revalidated(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.text == (STATIC / "index.html").read_text()


async def test_web_graphiql_page_for_a_browser(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.text == (STATIC / "graphiql.html").read_text()
    assert "connect-src 'self'" in response.headers["content-security-policy"]


async def test_web_pages_load_only_local_hashed_assets(client: httpx.AsyncClient) -> None:
    for page in ("/", "/graphql"):
        html = (await client.get(page, headers={"accept": "text/html"})).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assets = [url for url in urls if not url.startswith("data:")]
        assert assets, f"{page} names its assets"
        for url in assets:
            assert url.startswith("/static/assets/"), url
            response = await client.get(url)
            assert response.status_code == 200, url
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_web_unknown_asset_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/assets/missing.js")).status_code == 404
