"""The device-token registry (SPEC §8): which phones receive a clinician's pushes.

A registration token identifies one app install and lets anyone holding it (with our Firebase
credentials) reach that phone, so it is handled like a credential: sealed at rest, looked up by
its SHA-256, never logged, never returned by the API. A token value lives in one row hub-wide
and belongs to one user. Within an organization, a phone handed to a colleague moves with its
token when the colleague's app registers it after sign-in (pushes still queued for the previous
holder are dropped). Across organizations a registration never moves or deletes the other
organization's row: anyone who learns a token could otherwise silence another organization's
clinician and receive nothing of theirs only by luck. The new holder gets a 409 and a way out
that proves possession of the phone: the previous holder's app signs out (DELETE), or the app
asks FCM for a fresh token (``deleteToken`` then ``getToken``), which registers normally.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.errors import Conflict, Forbidden, NotFound
from vitalbridge.notify.codes import Platform, PushStatus, TokenStatus
from vitalbridge.notify.metrics import PUSH_TOKENS_PRUNED
from vitalbridge.notify.models import PushDevice, PushOutbox
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.tenancy.service import Principal

TOKEN_PURPOSE = "push.registration_token"


TOKEN_HELD_ELSEWHERE = (
    "this push token is registered to another account; sign out of the app there first, "
    "or have the app fetch a fresh FCM registration token and register that"
)


@dataclass(frozen=True)
class Registration:
    device: PushDevice
    created: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_of(principal: Principal) -> str:
    """Push tokens belong to a person: an API token that is not bound to a user cannot have any."""
    if not principal.user_id:
        raise Forbidden(
            "this API token is not linked to a user; push tokens belong to a clinician — "
            "use a token created for a user (POST /api/v1/tokens/ with user_id)"
        )
    return principal.user_id


def _audit(
    session: Session, action: str, device: PushDevice, actor: Actor | str, detail: dict[str, str] | None = None
) -> None:
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=actor,
        organization_id=device.organization_id,
        resource_type="PushDevice",
        resource_ids=[device.id],
        correlation_id=current_correlation_id(),
        detail={"platform": device.platform.value, "user_id": device.user_id, **(detail or {})},
    )


def register(
    session: Session,
    sealer: Sealer,
    *,
    organization_id: str,
    user_id: str,
    token: str,
    platform: Platform,
    actor: Actor | str,
    now: datetime,
) -> Registration:
    digest = token_hash(token)
    existing = session.scalar(select(PushDevice).where(PushDevice.token_hash == digest).with_for_update())
    if existing is not None and existing.user_id == user_id and existing.organization_id == organization_id:
        existing.last_seen_at = now
        existing.platform = platform
        if existing.status is TokenStatus.pruned:
            # The app registered the token again: FCM reissued or revived it; trust the fresh claim.
            existing.status = TokenStatus.active
            existing.pruned_at = None
            existing.prune_reason = None
            _audit(session, "push_device.reactivated", existing, actor)
        return Registration(existing, created=False)
    if existing is not None and existing.organization_id != organization_id:
        # Never touch another organization's binding (issue 10 item 3). The answer names no owner.
        raise Conflict(TOKEN_HELD_ELSEWHERE)
    if existing is not None:
        # A colleague's app registered the phone after sign-in: the previous holder's queued
        # pushes must not reach it.
        _audit(session, "push_device.removed", existing, actor, {"reason": "registered_by_another_user"})
        session.delete(existing)
        session.flush()
    device = PushDevice(
        organization_id=organization_id,
        user_id=user_id,
        platform=platform,
        token_hash=digest,
        token_sealed=sealer.seal_text(token, TOKEN_PURPOSE),
        status=TokenStatus.active,
        created_at=now,
        last_seen_at=now,
    )
    session.add(device)
    session.flush()
    _audit(session, "push_device.registered", device, actor)
    return Registration(device, created=True)


def list_devices(session: Session, organization_id: str, user_id: str) -> list[PushDevice]:
    return list(
        session.scalars(
            select(PushDevice)
            .where(PushDevice.organization_id == organization_id, PushDevice.user_id == user_id)
            .order_by(PushDevice.created_at, PushDevice.id)
        )
    )


def remove(session: Session, *, organization_id: str, user_id: str, device_id: str, actor: Actor | str) -> None:
    """A user removes one of their own devices; anyone else's answers 404 like a missing one."""
    device = session.scalar(
        select(PushDevice).where(
            PushDevice.id == device_id, PushDevice.organization_id == organization_id, PushDevice.user_id == user_id
        )
    )
    if device is None:
        raise NotFound("no such push token of yours")
    _audit(session, "push_device.removed", device, actor, {"reason": "user_request"})
    session.delete(device)


def active_devices(session: Session, user_ids: list[str]) -> list[PushDevice]:
    if not user_ids:
        return []
    return list(
        session.scalars(
            select(PushDevice)
            .where(PushDevice.user_id.in_(user_ids), PushDevice.status == TokenStatus.active)
            .order_by(PushDevice.created_at, PushDevice.id)
        )
    )


def prune(session: Session, device: PushDevice, *, reason: str, now: datetime, actor: Actor | str) -> int:
    """FCM called the token dead: never send to it again, cancel what is queued for it.
    Returns how many queued pushes were cancelled."""
    device.status = TokenStatus.pruned
    device.pruned_at = now
    device.prune_reason = reason
    result = session.execute(
        update(PushOutbox)
        .where(PushOutbox.device_id == device.id, PushOutbox.status == PushStatus.pending)
        .values(status=PushStatus.cancelled, last_error=f"token pruned: {reason}", updated_at=now)
    )
    _audit(session, "push_device.pruned", device, actor, {"reason": reason})
    PUSH_TOKENS_PRUNED.labels(reason).inc()
    return int(getattr(result, "rowcount", 0) or 0)


def open_token(sealer: Sealer, device: PushDevice) -> str:
    return sealer.open_text(device.token_sealed, TOKEN_PURPOSE)
