"""FastAPI dependencies: the database session, the caller's principal and role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from vitalbridge.errors import Forbidden, Unauthorized
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="Hub API token (`vitalbridge tokens create`)")


def get_hub(request: Request) -> Hub:
    hub = request.app.state.hub
    assert isinstance(hub, Hub)
    return hub


def get_session(hub: Annotated[Hub, Depends(get_hub)]) -> Iterator[Session]:
    """One transaction per request, committed when the handler returns without error."""
    with hub.sessions() as session, session.begin():
        yield session


def get_principal(
    hub: Annotated[Hub, Depends(get_hub)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Unauthorized("missing bearer token: send `Authorization: Bearer <API token>`")
    # Its own short transaction so last_used_at is recorded even when the route then fails.
    with hub.sessions() as session, session.begin():
        return authenticate(session, creds.credentials)


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """Route dependency: admins may do everything; other roles only what the route names."""
    allowed = set(roles) | {Role.admin}

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"this route needs one of the roles {sorted(r.value for r in allowed)}; "
                f"the token has {principal.role.value!r}"
            )
        return principal

    return check


SessionDep = Annotated[Session, Depends(get_session)]
HubDep = Annotated[Hub, Depends(get_hub)]
