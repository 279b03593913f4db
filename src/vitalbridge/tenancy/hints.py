"""How to change a practice's registration, in the words an error message should use (issue 12:
messages told users to edit fields no command could edit)."""

from __future__ import annotations

EDIT_COMMAND = "vitalbridge practices edit PRACTICE --org ORG"
EDIT_ROUTE = "PATCH /api/v1/practices/{id}"


def edit_hint(cli_option: str, json_field: str) -> str:
    """``vitalbridge practices edit … --token-url URL`` or ``PATCH … {"token_url": …}``."""
    return f"`{EDIT_COMMAND} {cli_option}` (or {EDIT_ROUTE} with {json_field})"
