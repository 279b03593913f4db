"""API shapes of push notifications (SPEC §6, §8). No shape ever returns a registration token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.api.types import REF_PATTERN
from vitalbridge.notify.codes import Platform, TokenStatus
from vitalbridge.notify.models import ProgramAlerting, PushDevice, QuietHours
from vitalbridge.notify.sanitizer import TOKEN_PATTERN

UserRef = Annotated[str, Field(pattern=REF_PATTERN)]


class PushTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(pattern=TOKEN_PATTERN.pattern, max_length=4096, description="the app's FCM registration token")
    platform: Platform


class PushTokenOut(BaseModel):
    """A registered device. The token itself is never shown again."""

    id: str
    platform: Platform
    status: TokenStatus
    created_at: datetime
    last_seen_at: datetime
    pruned_at: datetime | None
    prune_reason: str | None

    @classmethod
    def of(cls, d: PushDevice) -> PushTokenOut:
        return cls(
            id=d.id,
            platform=d.platform,
            status=d.status,
            created_at=d.created_at,
            last_seen_at=d.last_seen_at,
            pruned_at=d.pruned_at,
            prune_reason=d.prune_reason,
        )


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_+\-/]{1,64}$", examples=["America/Chicago"])
    starts: str = Field(pattern=r"^\d\d:\d\d$", examples=["22:00"])
    ends: str = Field(pattern=r"^\d\d:\d\d$", examples=["07:00"])


class QuietHoursOut(BaseModel):
    scope: str  # "user" or "organization"
    time_zone: str
    starts: str
    ends: str
    updated_at: datetime

    @classmethod
    def of(cls, q: QuietHours) -> QuietHoursOut:
        return cls(
            scope="user" if q.user_id else "organization",
            time_zone=q.time_zone,
            starts=q.starts,
            ends=q.ends,
            updated_at=q.updated_at,
        )


class ProgramAlertingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_call_user_ids: list[UserRef] = Field(
        default_factory=list, max_length=50, description="hub user ids, in call order"
    )
    escalation_minutes: int | None = Field(
        default=None, ge=1, le=24 * 60, description="override of VB_ESCALATION_MINUTES; null uses it"
    )


class ProgramAlertingOut(BaseModel):
    program_id: str
    on_call_user_ids: list[str]
    escalation_minutes: int | None
    effective_escalation_minutes: int
    updated_at: datetime | None

    @classmethod
    def of(cls, program_id: str, row: ProgramAlerting | None, default_minutes: int) -> ProgramAlertingOut:
        minutes = row.escalation_minutes if row else None
        return cls(
            program_id=program_id,
            on_call_user_ids=list(row.on_call_user_ids) if row else [],
            escalation_minutes=minutes,
            effective_escalation_minutes=minutes or default_minutes,
            updated_at=row.updated_at if row else None,
        )
