"""The OpenAPI docs pages work on a network that reaches only the hub: no CDN, every asset served
by the hub (or the sandbox) itself, and a Content-Security-Policy that forbids other hosts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from tests.support import api_client
from vitalbridge.runtime import Hub
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.servers import ServerThread


class References(HTMLParser):
    """Every URL a page makes the browser load: src, href, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data-openapi-url") and value:
                self.urls.append(value)


def references(page: str) -> list[str]:
    parser = References()
    parser.feed(page)
    return parser.urls


def csp_sources(policy: str) -> list[str]:
    return [source for directive in policy.split(";") for source in directive.split()[1:]]


@pytest.fixture
def hub_http(hub: Hub) -> Iterator[httpx.Client]:
    with api_client(hub) as client:
        yield client


@pytest.fixture
def sandbox_http() -> Iterator[httpx.Client]:
    with (
        ServerThread(create_sandbox_app(SandboxConfig(practices=("JAFJCD",)))) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def check_page(client: httpx.Client, page: str, openapi: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+", resp.text, flags=re.I), "the page names another host"
    urls = references(resp.text)
    assert openapi in urls
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, "the page loads no script"
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert client.get(openapi).json()["openapi"].startswith("3.")
    # The browser is told so too: only 'self', keywords and data:/blob: are allowed.
    policy = resp.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    for source in csp_sources(policy):
        assert source.startswith("'") or source in ("data:", "blob:"), source


def check_assets(client: httpx.Client, prefix: str) -> None:
    assert client.get(f"{prefix}/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    for name in ("nope.js", "..%2Fpyproject.toml", "__init__.py"):
        assert client.get(f"{prefix}/{name}").status_code == 404, name


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_hub_docs_load_everything_from_the_hub(hub_http: httpx.Client, page: str) -> None:
    check_page(hub_http, page, "/openapi.json")


@pytest.mark.parametrize("page", ["/_sandbox/docs", "/_sandbox/redoc"])
def test_sandbox_docs_load_everything_from_the_sandbox(sandbox_http: httpx.Client, page: str) -> None:
    check_page(sandbox_http, page, "/_sandbox/openapi.json")


def test_only_the_docs_assets_are_served(hub_http: httpx.Client, sandbox_http: httpx.Client) -> None:
    check_assets(hub_http, "/docs/assets")
    check_assets(sandbox_http, "/_sandbox/docs/assets")
