"""The pages for browsers: the web app at / and the offline GraphiQL page, both from gql/static.

The assets are built from web/ by Vite and committed, so serving them needs no node and no
internet: every script, stylesheet, font and worker comes from this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent.parent / "static"

# Vite puts a content hash in every name under assets/, so a new build never reuses a URL:
# browsers may keep those files for a year. The HTML pages name the current hashes, so they
# are revalidated on every load.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

# The pages load nothing from other hosts; the browser enforces it, which also keeps a
# dependency from quietly reaching for a CDN. Inline styles are needed by GraphiQL's editor.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
    ]
)


class _Assets(StaticFiles):
    """StaticFiles with cache headers: long-lived for hashed assets, revalidated otherwise."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        hashed = Path(full_path).parent.name == "assets"
        response.headers["cache-control"] = IMMUTABLE if hashed else REVALIDATE
        return response


def _page(name: str) -> Response:
    return FileResponse(
        STATIC / name,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": REVALIDATE, "content-security-policy": CONTENT_SECURITY_POLICY},
    )


async def _index(request: Request) -> Response:
    return _page("index.html")


def graphiql_response(request: Request) -> Response:
    """The GraphiQL page, for a browser that GETs /graphql without a query."""
    return _page("graphiql.html")


def routes() -> list[BaseRoute]:
    """GET / (the app; its views are hash routes, so no other path is needed) and /static."""
    return [
        Route("/", _index, methods=["GET"]),
        Mount("/static", app=_Assets(directory=STATIC), name="static"),
    ]
