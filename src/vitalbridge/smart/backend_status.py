"""The last backend-services outcome per practice, for the status page (SPEC §3 ``jwt_last_success``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.db.base import utcnow
from vitalbridge.db.locking import get_or_create_locked
from vitalbridge.errors import VitalbridgeError
from vitalbridge.smart.models import BackendAuthStatus


def record_backend_outcome(
    session: Session, practice_id: str, *, success: bool, kid: str | None = None, error: Exception | None = None
) -> None:
    status = get_or_create_locked(
        session,
        select(BackendAuthStatus).where(BackendAuthStatus.practice_id == practice_id),
        lambda: BackendAuthStatus(practice_id=practice_id),
    )
    now = utcnow()
    if success:
        status.last_success_at = now
        status.last_kid = kid
        status.last_error = None
        status.last_error_detail = None
    else:
        status.last_error_at = now
        if isinstance(error, VitalbridgeError):
            status.last_error = getattr(error, "oauth_error", None) or error.error_code
            # Messages in the error tree never carry secrets (STYLE 5, errors.py).
            status.last_error_detail = str(error)[:500]
        else:
            status.last_error = "internal_error"
            status.last_error_detail = type(error).__name__
