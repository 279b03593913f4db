"""API shapes of the audit trail (SPEC §9, ``GET /api/v1/audit/``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor: str
    organization_id: str | None
    practice_id: str | None
    action: str
    resource_type: str | None
    resource_ids: list[str]
    outcome: str
    status_code: int | None
    latency_ms: float | None
    correlation_id: str | None
    detail: dict[str, Any]
    prev_hash: str
    entry_hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    # Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: int | None
