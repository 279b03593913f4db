"""FastAPI dependencies: the database session, the caller's principal and role checks (SPEC §2, §9).

Every ``/api/v1`` route declares who may call it, by one of two dependencies:

- ``require_role(Role.x, …)``: a hub API token with one of these roles (admins always pass);
  ``phi=True`` also writes every call of the route to the audit trail (SPEC §9: user action on PHI);
- ``open_route("why")``: the route authenticates by other means (a gateway's HMAC signature,
  an OAuth ``state``); the reason is shown in docs and checked by tests.

Refused tokens (401) and roles (403) are written to the audit trail as ``auth.denied``, in their
own transaction so the entry survives the failed request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from vitalbridge.api.throttle import AuthFailureThrottle, client_ip
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.errors import Forbidden, RateLimited
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal, TokenRefused, authenticate

_bearer = HTTPBearer(auto_error=False, description="Hub API token (`vitalbridge tokens create`)")

ROLES_MARK = "__vitalbridge_roles__"
OPEN_MARK = "__vitalbridge_open_route__"
ACCESS_STATE_KEY = "vitalbridge_access"


@dataclass(frozen=True)
class AccessNote:
    """Left in the request state by a ``phi=True`` route; the access middleware records it."""

    principal: Principal
    route: str
    method: str
    path_params: tuple[str, ...]


def get_hub(request: Request) -> Hub:
    hub = request.app.state.hub
    assert isinstance(hub, Hub)
    return hub


def get_session(hub: Annotated[Hub, Depends(get_hub)]) -> Iterator[Session]:
    """One transaction per request, committed when the handler returns without error."""
    with hub.sessions() as session, session.begin():
        yield session


def route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    # The template, never the concrete path: ids stay out of this field, values out of logs.
    return path if isinstance(path, str) else "<unrouted>"


def record_denied(
    hub: Hub,
    request: Request,
    *,
    status: int,
    reason: str,
    token_id: str | None = None,
    principal: Principal | None = None,
) -> None:
    """``auth.denied`` in its own transaction: the request itself is about to fail."""
    known = principal.token_id if principal else token_id
    actor: Actor | str = Actor("token", known) if known else "anonymous"
    detail: dict[str, Any] = {"reason": reason, "route": route_template(request), "method": request.method}
    if principal is not None:
        detail["role"] = principal.role.value
    with hub.sessions() as session, session.begin():
        record(
            session,
            action="auth.denied",
            outcome=Outcome.denied,
            actor=actor,
            organization_id=principal.organization_id if principal else None,
            status_code=status,
            correlation_id=current_correlation_id(),
            detail=detail,
        )


def _throttle(request: Request) -> AuthFailureThrottle | None:
    throttle = getattr(request.app.state, "auth_throttle", None)
    return throttle if isinstance(throttle, AuthFailureThrottle) else None


def get_principal(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    throttle = _throttle(request)
    ip = client_ip(request.scope)
    if throttle is not None:
        wait = throttle.blocked_for(ip)
        if wait > 0:
            # Token guessing: stop before touching the database.
            raise RateLimited("too many refused API tokens from this address", retry_after=wait)
    try:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise TokenRefused("missing bearer token: send `Authorization: Bearer <API token>`", reason="missing")
        # Its own short transaction so last_used_at is recorded even when the route then fails.
        with hub.sessions() as session, session.begin():
            return authenticate(session, creds.credentials)
    except TokenRefused as exc:
        if throttle is not None:
            throttle.note_failure(ip)
        record_denied(hub, request, status=401, reason=exc.reason, token_id=exc.token_id)
        raise


def require_role(*roles: Role, phi: bool = False) -> Callable[..., Principal]:
    """Route dependency: admins may do everything; other roles only what the route names.

    ``phi=True``: the route reads or changes PHI, so each call (with its status and latency) is
    written to the audit trail as ``phi.access``.
    """
    allowed = frozenset(roles) | {Role.admin}

    def check(
        request: Request,
        hub: Annotated[Hub, Depends(get_hub)],
        principal: Annotated[Principal, Depends(get_principal)],
    ) -> Principal:
        if principal.role not in allowed:
            record_denied(hub, request, status=403, reason="role", principal=principal)
            raise Forbidden(
                f"this route needs one of the roles {sorted(r.value for r in allowed)}; "
                f"the token has {principal.role.value!r}"
            )
        if phi:
            params = tuple(str(v) for v in request.path_params.values())
            request.scope.setdefault("state", {})[ACCESS_STATE_KEY] = AccessNote(
                principal, route_template(request), request.method, params
            )
        return principal

    setattr(check, ROLES_MARK, allowed)
    return check


def open_route(reason: str) -> Callable[[], None]:
    """Mark a route that needs no hub API token because it authenticates otherwise."""

    def no_token() -> None:
        return None

    setattr(no_token, OPEN_MARK, reason)
    return no_token


def route_access(dependant: Any) -> frozenset[Role] | str | None:
    """What a route declares: its roles, an open-route reason, or None (a defect)."""
    for dep in getattr(dependant, "dependencies", []):
        call = getattr(dep, "call", None)
        roles = getattr(call, ROLES_MARK, None)
        if roles is not None:
            return frozenset(roles)
        reason = getattr(call, OPEN_MARK, None)
        if isinstance(reason, str):
            return reason
        found = route_access(dep)
        if found is not None:
            return found
    return None


SessionDep = Annotated[Session, Depends(get_session)]
HubDep = Annotated[Hub, Depends(get_hub)]
AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
