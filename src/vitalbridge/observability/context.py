"""The correlation id of the work in hand (SPEC §9: every audit entry carries one).

The HTTP middleware sets it per request (from a safe ``X-Request-ID`` or a fresh one); workers
set it per job. It is bound into structlog's context so every log line of the request has it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

_CORRELATION_ID: ContextVar[str | None] = ContextVar("vb_correlation_id", default=None)
# Inbound ids are echoed into logs and the audit trail: only UUID/hex shapes are taken, which
# cannot spell a name or a date of birth.
_SAFE_ID = re.compile(r"^[0-9A-Fa-f-]{16,64}$")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(inbound: str | None) -> str:
    """The caller's id when it is a plain token, else a fresh one (never echo arbitrary text)."""
    if inbound and _SAFE_ID.match(inbound):
        return inbound
    return new_correlation_id()


def current_correlation_id() -> str | None:
    return _CORRELATION_ID.get()


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block (a request, a job) under one correlation id, in logs too."""
    cid = correlation_id or new_correlation_id()
    token = _CORRELATION_ID.set(cid)
    with structlog.contextvars.bound_contextvars(correlation_id=cid):
        try:
            yield cid
        finally:
            _CORRELATION_ID.reset(token)
