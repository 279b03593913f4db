"""SMART on FHIR scopes, v1 and v2 syntax (SMART App Launch 2.0 "Scopes and Launch Context").

``system/Observation.write`` (v1) and ``system/Observation.cu`` (v2) both name a context
(``system``, ``user`` or ``patient``), a resource type or ``*``, and permissions. v1 ``read``
means read + search, ``write`` means create + update + delete, ``*`` means everything; v2 spells
permissions out as an ordered subset of ``cruds``. Scopes with query restrictions
(``patient/Observation.rs?category=…``) are not supported and are refused at registration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

_RESOURCE_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<resource>\*|[A-Z][A-Za-z]+)\.(?P<perm>[^.?]+)$")
_V2_PERMISSIONS = re.compile(r"^c?r?u?d?s?$")

# Launch-context and token-kind scopes the sandbox understands (App Launch 2.0 §scopes).
NON_RESOURCE_SCOPES = frozenset(
    {
        "openid",  # accepted, but the sandbox issues no id_token
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "offline_access",  # refresh token that outlives the session
        "online_access",  # refresh token for the session (same lifetime in the sandbox)
    }
)
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})


class Context(StrEnum):
    system = "system"  # backend services: no user, the client acts for the practice
    user = "user"  # standalone launch: whatever the signed-in user may see
    patient = "patient"  # limited to the launch patient's compartment


class Interaction(StrEnum):
    create = "c"
    read = "r"
    update = "u"
    delete = "d"
    search = "s"


_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
# The v1 word each interaction belongs to, for "you need scope X" messages.
_V1_WORD = {"c": "write", "r": "read", "u": "write", "d": "write", "s": "read"}


@dataclass(frozen=True)
class ResourceScope:
    context: Context
    resource: str
    permissions: frozenset[str]

    def allows(self, resource: str, interaction: Interaction) -> bool:
        return self.resource in ("*", resource) and interaction.value in self.permissions


def parse_resource_scope(scope: str) -> ResourceScope | None:
    """The parsed scope, ``None`` for a non-resource scope; ``ValueError`` when malformed."""
    if scope in NON_RESOURCE_SCOPES:
        return None
    if "?" in scope:
        raise ValueError(f"scope {scope!r}: query-restricted scopes are not supported")
    match = _RESOURCE_SCOPE.match(scope)
    if match is None:
        raise ValueError(f"scope {scope!r} is not context/Resource.permissions nor a known launch scope")
    perm = match["perm"]
    if perm in _V1:
        permissions = _V1[perm]
    elif _V2_PERMISSIONS.match(perm):
        permissions = frozenset(perm)
    else:
        raise ValueError(f"scope {scope!r}: permissions must be read, write, * or an ordered subset of cruds")
    return ResourceScope(Context(match["context"]), match["resource"], permissions)


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """Problems with the given scope strings (empty when all are well formed)."""
    problems = []
    for scope in scopes:
        try:
            parse_resource_scope(scope)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def granting_scope(scopes: Iterable[str], resource: str, interaction: Interaction) -> ResourceScope | None:
    """The broadest granted scope allowing ``interaction`` on ``resource``.

    A system/ or user/ scope wins over a patient/ one, because patient/ scopes confine the
    caller to one patient's compartment.
    """
    best: ResourceScope | None = None
    for scope in scopes:
        try:
            parsed = parse_resource_scope(scope)
        except ValueError:
            continue
        if parsed is None or not parsed.allows(resource, interaction):
            continue
        if parsed.context is not Context.patient:
            return parsed
        best = parsed
    return best


def needed_scope(context: Context, resource: str, interaction: Interaction) -> str:
    """The narrowest scope, in both syntaxes, that would allow the interaction."""
    return f"{context}/{resource}.{_V1_WORD[interaction.value]} (or {context}/{resource}.{interaction.value})"
