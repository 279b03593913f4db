"""SMART clinical scopes, v1 and v2 syntax (SMART App Launch 2.0 §"Scopes for requesting clinical
data"), and what the hub's work needs of them.

``{context}/{type}.{permissions}``: context ``patient``, ``user`` or ``system``; type a FHIR
resource type or ``*``; permissions v1 ``read`` / ``write`` / ``*`` or v2 any of ``c r u d s`` in
that order, optionally followed by ``?param=value`` restrictions (v2 "finer-grained" scopes).
v1 ``read`` means r+s, ``write`` means c+u+d. Other scopes (``openid``, ``offline_access``,
``launch``…) are not clinical and compared by name.

A token that lacks what a task needs is a warning, not a refusal: the EHR decides, and some
servers grant more than they list (RFC 6749 §3.3 lets them omit ``scope``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CLINICAL = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_V2 = re.compile(r"^c?r?u?d?s?$")


@dataclass(frozen=True)
class Scope:
    context: str
    resource: str
    permissions: frozenset[str]
    restricted: bool  # carries ``?param=value``: allows only part of the type

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        match = _CLINICAL.match(text)
        if match is None:
            return None
        context, resource, perms, query = match.groups()
        if perms in _V1:
            granted = _V1[perms]
        elif perms and _V2.match(perms):
            granted = frozenset(perms)
        else:
            return None
        return cls(context, resource, granted, bool(query))

    def allows(self, resource: str, permission: str, contexts: Iterable[str]) -> bool:
        return self.context in contexts and self.resource in (resource, "*") and permission in self.permissions


def allows(scopes: Iterable[str], resource: str, permission: str, contexts: Iterable[str]) -> bool:
    wanted = tuple(contexts)
    return any(s is not None and s.allows(resource, permission, wanted) for s in map(Scope.parse, scopes))


def not_granted(requested: Iterable[str], granted: Iterable[str]) -> list[str]:
    """Requested scopes the grant does not cover (clinical ones by meaning, so ``.read`` is
    covered by ``.rs`` and by ``*.read``; others by name)."""
    granted_list = list(granted)
    missing = []
    for text in requested:
        scope = Scope.parse(text)
        if scope is None:
            if text not in granted_list:
                missing.append(text)
            continue
        if not all(allows(granted_list, scope.resource, p, (scope.context,)) for p in scope.permissions):
            missing.append(text)
    return missing


@dataclass(frozen=True)
class Need:
    """One thing the hub does, and the permission it takes."""

    task: str
    resource: str
    permission: str
    fhir_delivery_only: bool = False
    # A missing permission that stops the task (error) rather than degrading it (warning).
    essential: bool = True


NEEDS: tuple[Need, ...] = (
    Need("patient search", "Patient", "s"),
    Need("patient import and re-link", "Patient", "r"),
    Need("delivery (Observation create)", "Observation", "c", fhir_delivery_only=True),
    # Finding an Observation by the hub's identifier before a retry; conditional create covers it.
    Need("duplicate check before a retry", "Observation", "s", fhir_delivery_only=True, essential=False),
)


def lacking(granted: Iterable[str], contexts: Iterable[str], *, fhir_delivery: bool) -> list[Need]:
    """The needs the granted scopes do not cover."""
    granted_list, wanted = list(granted), tuple(contexts)
    return [
        n
        for n in NEEDS
        if (fhir_delivery or not n.fhir_delivery_only) and not allows(granted_list, n.resource, n.permission, wanted)
    ]


def scope_warnings(
    requested: Iterable[str], granted: Iterable[str], contexts: Iterable[str], *, fhir_delivery: bool
) -> list[str]:
    """Lines for the status page and the connection test."""
    granted_list = list(granted)
    lines = []
    missing = not_granted(requested, granted_list)
    if missing:
        lines.append(f"the EHR did not grant requested scope(s) {' '.join(missing)}")
    for need in lacking(granted_list, contexts, fhir_delivery=fhir_delivery):
        lines.append(
            f"the granted scopes do not allow {need.task} ({'/'.join(contexts)} {need.resource} "
            f"permission '{need.permission}'): the EHR will refuse it with 403"
        )
    return lines
