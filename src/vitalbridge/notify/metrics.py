"""Prometheus counters for push notifications (SPEC §10). Labels are codes only."""

from __future__ import annotations

from prometheus_client import Counter

PUSHES = Counter(
    "vitalbridge_pushes",
    "Push attempts by FCM, by action and outcome (sent, retry, prune_token, permanent)",
    ["action", "outcome"],
)
PUSH_TOKENS_PRUNED = Counter("vitalbridge_push_tokens_pruned", "Device tokens FCM called dead", ["reason"])
FCM_TOKEN_REFRESHES = Counter("vitalbridge_fcm_token_refreshes", "OAuth2 access tokens fetched for FCM")
