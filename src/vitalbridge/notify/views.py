"""Push notification routes (SPEC §6, §8), all scoped to the caller's organization.

    POST   /api/v1/me/push-tokens/              register this user's device (clinician)
    GET    /api/v1/me/push-tokens/              this user's devices (never the token values)
    DELETE /api/v1/me/push-tokens/{push_token_id}    remove one of them
    GET|PUT|DELETE /api/v1/me/quiet-hours       this user's quiet hours
    GET|PUT|DELETE /api/v1/notifications/quiet-hours   the organization's default (PUT/DELETE: admin)
    GET|PUT /api/v1/programs/{program_id}/alerting     on-call list, escalation delay (PUT: admin)

``/me`` routes need an API token bound to a user (403 otherwise: a device belongs to a person).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from vitalbridge.api.actors import actor_of
from vitalbridge.api.deps import HubDep, SessionDep, require_role
from vitalbridge.api.types import RefParam
from vitalbridge.audit import Outcome, record
from vitalbridge.db.base import utcnow
from vitalbridge.notify import quiet, registry, routing
from vitalbridge.notify.models import QuietHours
from vitalbridge.notify.schemas import (
    ProgramAlertingIn,
    ProgramAlertingOut,
    PushTokenIn,
    PushTokenOut,
    QuietHoursIn,
    QuietHoursOut,
)
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal

me_router = APIRouter(prefix="/api/v1/me", tags=["push notifications"])
notify_router = APIRouter(prefix="/api/v1", tags=["push notifications"])

ClinicianDep = Annotated[Principal, Depends(require_role(Role.clinician))]
AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]


@me_router.post(
    "/push-tokens/",
    response_model=PushTokenOut,
    status_code=201,
    responses={
        200: {"description": "already registered: last_seen_at refreshed"},
        403: {"description": "token without a user"},
        409: {"description": "the token is registered to an account in another organization; left untouched"},
    },
)
def register_push_token(
    body: PushTokenIn, response: Response, session: SessionDep, hub: HubDep, principal: ClinicianDep
) -> PushTokenOut:
    """Register the FCM registration token of this user's phone (call it at every app start)."""
    user_id = registry.user_of(principal)
    result = registry.register(
        session,
        hub.sealer,
        organization_id=principal.organization_id,
        user_id=user_id,
        token=body.token,
        platform=body.platform,
        actor=actor_of(principal),
        now=utcnow(),
    )
    if not result.created:
        response.status_code = 200
    return PushTokenOut.of(result.device)


@me_router.get("/push-tokens/", response_model=list[PushTokenOut])
def list_push_tokens(session: SessionDep, principal: ClinicianDep) -> list[PushTokenOut]:
    user_id = registry.user_of(principal)
    return [PushTokenOut.of(d) for d in registry.list_devices(session, principal.organization_id, user_id)]


@me_router.delete("/push-tokens/{push_token_id}", status_code=204)
def delete_push_token(push_token_id: RefParam, session: SessionDep, principal: ClinicianDep) -> Response:
    """Stop pushes to this device (e.g. at sign-out). Queued pushes for it are dropped."""
    registry.remove(
        session,
        organization_id=principal.organization_id,
        user_id=registry.user_of(principal),
        device_id=push_token_id,
        actor=actor_of(principal),
    )
    return Response(status_code=204)


def _quiet_out(row: QuietHours | None) -> QuietHoursOut | None:
    return QuietHoursOut.of(row) if row is not None else None


def _audit_setting(session: SessionDep, principal: Principal, action: str, resource_type: str, ids: list[str]) -> None:
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=actor_of(principal),
        organization_id=principal.organization_id,
        resource_type=resource_type,
        resource_ids=ids,
        correlation_id=current_correlation_id(),
    )


@me_router.get("/quiet-hours", response_model=QuietHoursOut | None)
def get_my_quiet_hours(session: SessionDep, principal: ClinicianDep) -> QuietHoursOut | None:
    """This user's own window (null: the organization's default applies, if any)."""
    return _quiet_out(quiet.get(session, principal.organization_id, registry.user_of(principal)))


@me_router.put("/quiet-hours", response_model=QuietHoursOut)
def put_my_quiet_hours(body: QuietHoursIn, session: SessionDep, principal: ClinicianDep) -> QuietHoursOut | None:
    """Non-critical pushes wait until the window ends; critical alerts always come through."""
    user_id = registry.user_of(principal)
    window = quiet.Window.parse(body.time_zone, body.starts, body.ends)
    row = quiet.put(session, principal.organization_id, user_id, window, now=utcnow())
    _audit_setting(session, principal, "quiet_hours.updated", "User", [user_id])
    return _quiet_out(row)


@me_router.delete("/quiet-hours", status_code=204)
def delete_my_quiet_hours(session: SessionDep, principal: ClinicianDep) -> Response:
    user_id = registry.user_of(principal)
    quiet.put(session, principal.organization_id, user_id, None, now=utcnow())
    _audit_setting(session, principal, "quiet_hours.removed", "User", [user_id])
    return Response(status_code=204)


@notify_router.get("/notifications/quiet-hours", response_model=QuietHoursOut | None)
def get_org_quiet_hours(session: SessionDep, principal: ClinicianDep) -> QuietHoursOut | None:
    """The organization's default window, for users without their own."""
    return _quiet_out(quiet.get(session, principal.organization_id, None))


@notify_router.put("/notifications/quiet-hours", response_model=QuietHoursOut)
def put_org_quiet_hours(body: QuietHoursIn, session: SessionDep, principal: AdminDep) -> QuietHoursOut | None:
    window = quiet.Window.parse(body.time_zone, body.starts, body.ends)
    row = quiet.put(session, principal.organization_id, None, window, now=utcnow())
    _audit_setting(session, principal, "quiet_hours.updated", "Organization", [principal.organization_id])
    return _quiet_out(row)


@notify_router.delete("/notifications/quiet-hours", status_code=204)
def delete_org_quiet_hours(session: SessionDep, principal: AdminDep) -> Response:
    quiet.put(session, principal.organization_id, None, None, now=utcnow())
    _audit_setting(session, principal, "quiet_hours.removed", "Organization", [principal.organization_id])
    return Response(status_code=204)


@notify_router.get("/programs/{program_id}/alerting", response_model=ProgramAlertingOut)
def get_program_alerting(
    program_id: RefParam, session: SessionDep, hub: HubDep, principal: ClinicianDep
) -> ProgramAlertingOut:
    """The program's on-call list (who gets alerts without an assignee, and escalations)."""
    program = routing.get_program(session, principal.organization_id, program_id)
    row = routing.program_alerting(session, principal.organization_id, program.id)
    return ProgramAlertingOut.of(program.id, row, hub.settings.escalation_minutes)


@notify_router.put("/programs/{program_id}/alerting", response_model=ProgramAlertingOut)
def put_program_alerting(
    program_id: RefParam, body: ProgramAlertingIn, session: SessionDep, hub: HubDep, principal: AdminDep
) -> ProgramAlertingOut:
    program = routing.get_program(session, principal.organization_id, program_id)
    row = routing.put_program_alerting(
        session,
        principal.organization_id,
        program,
        on_call_user_ids=list(body.on_call_user_ids),
        escalation_minutes=body.escalation_minutes,
        actor=str(actor_of(principal)),
        now=utcnow(),
    )
    _audit_setting(session, principal, "program.alerting_updated", "Program", [program.id])
    return ProgramAlertingOut.of(program.id, row, hub.settings.escalation_minutes)
