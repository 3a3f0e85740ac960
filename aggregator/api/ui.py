"""`/` and `/static/*`: the global-view page, static files shipped in the package.

The page is plain HTML, CSS and JavaScript with no build step; it reads only
the public API (`/api/v1/clusters`, `/api/v1/query`, `/api/v1/query_range`), so
it needs nothing from the server but these files. They are read from the
package once, at the first request, and served from memory; only the names
listed in `_TYPES` are served, so a request can never reach another file.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

_TYPES = {
    "index.html": "text/html",
    "style.css": "text/css",
    "app.js": "text/javascript",
    "plot.js": "text/javascript",
    "queries.js": "text/javascript",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("aggregator").joinpath("web", name).read_bytes()


def _file(name: str) -> web.Response:
    response = web.Response(body=_read(name), content_type=_TYPES[name], charset="utf-8")
    # Small files, changed only by an upgrade: revalidate every time, never stale.
    response.headers["Cache-Control"] = "no-cache"
    return response


async def handle_index(request: web.Request) -> web.Response:
    """The global view."""
    return _file("index.html")


async def handle_static(request: web.Request) -> web.Response:
    """One of the page's files; anything else is 404."""
    name = request.match_info["name"]
    if name not in _TYPES or name == "index.html":
        raise web.HTTPNotFound(text=f"no static file {name!r}\n")
    return _file(name)


def add_ui_routes(app: web.Application) -> None:
    """Route `/` and `/static/{name}` to the page."""
    app.router.add_get("/", handle_index)
    app.router.add_get("/static/{name}", handle_static)
