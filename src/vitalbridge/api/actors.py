"""Who an API caller is, as the audit trail and alert history name them."""

from __future__ import annotations

from vitalbridge.audit import Actor
from vitalbridge.tenancy.service import Principal


def actor_of(principal: Principal) -> Actor:
    """``user:<id>`` for a user's token, else ``token:<id>`` (integration tokens have no user)."""
    if principal.user_id:
        return Actor("user", principal.user_id)
    return Actor("token", principal.token_id)
