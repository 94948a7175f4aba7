"""What pages load comes from this app: styles, scripts, Plotly from its wheel, the icon."""

from __future__ import annotations

import re

import httpx
from page_client import SignIn

from coursedesk.accounts.roles import Role
from coursedesk.pages.assets import plotly_script_file

_LINKED = re.compile(r'(?:src|href)="(/static/[^"]+)"')


async def test_every_linked_asset_is_served_and_kept_by_its_version(signed_in: SignIn) -> None:
    client = await signed_in(Role.admin)
    linked: set[str] = set()
    for path in ("/", "/users", "/broadcasts", "/broadcasts/new", "/system", "/login"):
        page = await client.get(path)
        assert "default-src 'self'" in page.headers["content-security-policy"], path
        assert "http://" not in page.text and "https://" not in page.text, path
        linked |= {url.replace("&amp;", "&") for url in _LINKED.findall(page.text)}
    assert {"css", "js", "svg"} <= {url.split("?")[0].rsplit(".", 1)[1] for url in linked}
    for url in linked:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", url


async def test_plotly_comes_from_its_wheel_gzipped(client: httpx.AsyncClient) -> None:
    shipped = plotly_script_file().read_bytes()
    zipped = await client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-type"].startswith("text/javascript")
    assert len(zipped.content) == len(shipped), "httpx unzips it back to the shipped file"
    assert int(zipped.headers["content-length"]) < len(shipped) // 2

    plain = await client.get(
        "/static/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert plain.content == shipped


async def test_the_icon_and_a_missing_file(client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert (await client.get("/static/no-such.css")).status_code == 404
    assert (await client.get("/static/../pages/assets.py")).status_code == 404
