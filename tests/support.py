"""Small helpers for tests that need a tenant and an API client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Role


@dataclass
class Tenant:
    org_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(hub: Hub, name: str, role: Role = Role.admin) -> Tenant:
    with hub.sessions() as session, session.begin():
        org = service.create_organization(session, name)
        _row, raw = service.create_api_token(session, org.id, role)
    return Tenant(org.id, raw)


def token_for(hub: Hub, org_id: str, role: Role) -> str:
    with hub.sessions() as session, session.begin():
        _row, raw = service.create_api_token(session, org_id, role)
    return raw


@contextmanager
def api_client(hub: Hub, *, background: bool = False) -> Iterator[httpx.Client]:
    """The hub served on a real loopback socket, and an HTTP client pointed at it."""
    from vitalbridge.app import create_app

    with (
        ServerThread(create_app(hub=hub, background=background)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client
