"""Scripts, styles and icons served by the app itself; Plotly's script from its wheel."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.util
from functools import cache
from importlib.metadata import version
from os import PathLike, stat_result
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent.parent / "web" / "static"
PLOTLY_PATH = "/static/vendor/plotly.min.js"
# Asset URLs carry a digest of the file, so a browser may keep them for good.
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"

router = APIRouter()


class AppStatic(StaticFiles):
    """The static folder; a URL with the file's version (`?v=`) is cached for good."""

    def file_response(
        self,
        full_path: str | PathLike[str],
        stat: stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = _IMMUTABLE if versioned else _REVALIDATE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@cache
def asset_url(name: str) -> str:
    """`/static/<name>?v=<digest>`: the URL changes whenever the file does."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def plotly_script_file() -> Path:
    """plotly.min.js as shipped inside the installed `plotly` package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@cache
def plotly_url() -> str:
    return f"{PLOTLY_PATH}?v={version('plotly')}"


@cache
def _plotly_gzipped() -> bytes:
    return gzip.compress(plotly_script_file().read_bytes(), compresslevel=6, mtime=0)


async def plotly_script(request: Request) -> Response:
    """Plotly's 4.8 MB bundle, sent gzipped (1.4 MB) to every browser that accepts it."""
    headers = {
        "Cache-Control": _IMMUTABLE,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return FileResponse(plotly_script_file(), media_type="text/javascript", headers=headers)
    body = await asyncio.to_thread(_plotly_gzipped)
    return Response(
        body,
        media_type="text/javascript",
        headers=headers | {"Content-Encoding": "gzip"},
    )


async def favicon(request: Request) -> Response:
    """For the browsers that ask for /favicon.ico whatever the page links to."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


router.add_route("/favicon.ico", favicon, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route(PLOTLY_PATH, plotly_script, methods=["GET", "HEAD"], include_in_schema=False)
router.mount("/static", AppStatic(directory=STATIC_DIR), name="static")
