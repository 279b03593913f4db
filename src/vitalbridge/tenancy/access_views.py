"""``/api/v1/users/`` and ``/api/v1/tokens/``: who may use the organization's hub (SPEC §2).

Admins only. A new token is shown once in the create response; listings show its prefix, role
and dates, never the token or its hash. Creating users and creating or revoking tokens are
written to the audit trail.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from vitalbridge.api.deps import AdminDep, SessionDep
from vitalbridge.api.types import RefParam
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.db.base import utcnow
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import TokenCreated, TokenIn, TokenOut, UserIn, UserOut
from vitalbridge.tenancy.service import Principal

users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
tokens_router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


def _audit(session: SessionDep, principal: Principal, action: str, resource_type: str, ids: list[str]) -> None:
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=Actor("token", principal.token_id),
        organization_id=principal.organization_id,
        resource_type=resource_type,
        resource_ids=ids,
        correlation_id=current_correlation_id(),
    )


@users_router.post("/", status_code=201, response_model=UserOut)
def create_user(body: UserIn, session: SessionDep, principal: AdminDep) -> UserOut:
    user = service.create_user(session, principal.organization_id, body.email, body.role, body.display_name)
    _audit(session, principal, "user.created", "User", [user.id])
    return UserOut.model_validate(user)


@users_router.get("/", response_model=list[UserOut])
def list_users(session: SessionDep, principal: AdminDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in service.list_users(session, principal.organization_id)]


@users_router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: RefParam, session: SessionDep, principal: AdminDep) -> UserOut:
    return UserOut.model_validate(service.get_user(session, principal.organization_id, user_id))


@tokens_router.post("/", status_code=201, response_model=TokenCreated)
def create_token(body: TokenIn, session: SessionDep, principal: AdminDep) -> TokenCreated:
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, raw = service.create_api_token(
        session, principal.organization_id, body.role, name=body.name, user_id=body.user_id, expires_at=expires
    )
    _audit(session, principal, "token.created", "ApiToken", [row.id])
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=raw)


@tokens_router.get("/", response_model=list[TokenOut])
def list_tokens(session: SessionDep, principal: AdminDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in service.list_api_tokens(session, principal.organization_id)]


@tokens_router.delete("/{token_id}", status_code=204, response_class=Response)
def revoke_token(token_id: RefParam, session: SessionDep, principal: AdminDep) -> Response:
    row = service.revoke_api_token(session, principal.organization_id, token_id)
    _audit(session, principal, "token.revoked", "ApiToken", [row.id])
    return Response(status_code=204)
