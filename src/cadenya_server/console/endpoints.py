"""/console: the admin console's page and its built assets, shipped inside the package.

The app is built by Vite from `console/` at the repository root into `static/` here
(`make console-check` verifies the committed build matches its sources). Every path under
/console that is not an asset is one of the app's own routes, so it gets the page; the
app reads the path. Asset names carry a hash of their content: they are cached for a
year, the page never (a new build is seen at once). Nothing is fetched from elsewhere:
the policy of kit.http (CONTENT_SECURITY_POLICY) holds for these responses too.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from cadenya_server.auth.dependencies import Public
from cadenya_server.kit.errors import NotFound

router = APIRouter(prefix="/console", include_in_schema=False)

STATIC = resources.files("cadenya_server.console") / "static"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Read once: a handful of files, and only names the build produced are ever served
# (no path from the request reaches the file system).
ASSETS = {
    entry.name: entry.read_bytes()
    for entry in (STATIC / "assets").iterdir()
    if entry.is_file() and entry.name.rsplit(".", 1)[-1] in ("js", "css", "svg")
}
PAGE_HEADERS = {"Cache-Control": "no-cache"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


def _page() -> Response:
    return Response(
        (STATIC / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers=PAGE_HEADERS,
    )


@router.get("", dependencies=[Public])
def console() -> Response:
    """The console's page."""
    return _page()


@router.get("/assets/{name}", dependencies=[Public])
def asset(name: Annotated[str, Path(max_length=200)]) -> Response:
    """A built script, stylesheet or icon, by its hashed name."""
    content = ASSETS.get(name)
    if content is None:
        raise NotFound(f"no console asset {name!r}")
    media_type = MEDIA_TYPES["." + name.rsplit(".", 1)[-1]]
    return Response(content, media_type=media_type, headers=ASSET_HEADERS)


@router.get("/{route:path}", dependencies=[Public])
def console_route(route: Annotated[str, Path(max_length=2000)]) -> Response:
    """A route of the app (`/console/profiles/…`): the same page, which reads the path."""
    return _page()
