"""What a FHIR server says it can do: its CapabilityStatement (FHIR R4 capabilitystatement.html,
``rest[mode=server]``), read into plain values. No network here (``ehr.capabilities`` fetches it).

Each answer is three-valued: a resource type the statement does not list is ``unsupported`` (the
statement lists every type the server offers); a listed type without an ``interaction`` or
``searchParam`` list is ``undeclared`` — the server did not say, so the hub must not conclude.
Operations may be declared per type (``resource.operation``) or for the whole system
(``rest.operation``), by ``name`` with or without the ``$``, or only by their canonical
``definition`` (Bulk Data IG: ``…/OperationDefinition/patient-export``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Support(enum.StrEnum):
    supported = "supported"
    unsupported = "unsupported"
    undeclared = "undeclared"  # listed type, but the statement does not say

    @classmethod
    def of(cls, flag: bool | None) -> Support:
        if flag is None:
            return cls.undeclared
        return cls.supported if flag else cls.unsupported


def _operation_names(entries: Any) -> frozenset[str]:
    names: set[str] = set()
    for op in entries or []:
        if not isinstance(op, dict):
            continue
        if isinstance(op.get("name"), str):
            names.add(op["name"].lstrip("$"))
        definition = op.get("definition")
        if isinstance(definition, str) and "/OperationDefinition/" in definition:
            tail = definition.rsplit("/", 1)[-1].split("|", 1)[0]
            names.add(tail)
            # Bulk Data names its definitions patient-export / group-export / export.
            if tail.endswith("-export"):
                names.add("export")
    return frozenset(names)


@dataclass(frozen=True)
class ResourceCapability:
    type: str
    interactions: frozenset[str] | None  # None: no interaction list given
    search_params: frozenset[str] | None
    operations: frozenset[str] = frozenset()
    conditional_create: bool = False

    @classmethod
    def parse(cls, entry: dict[str, Any]) -> ResourceCapability:
        raw_interactions = entry.get("interaction")
        interactions = (
            frozenset(str(i.get("code")) for i in raw_interactions if isinstance(i, dict) and i.get("code"))
            if isinstance(raw_interactions, list)
            else None
        )
        raw_params = entry.get("searchParam")
        params = (
            frozenset(str(p.get("name")) for p in raw_params if isinstance(p, dict) and p.get("name"))
            if isinstance(raw_params, list)
            else None
        )
        return cls(
            type=str(entry.get("type")),
            interactions=interactions,
            search_params=params,
            operations=_operation_names(entry.get("operation")),
            conditional_create=entry.get("conditionalCreate") is True,
        )


@dataclass(frozen=True)
class ServerCapabilities:
    fhir_version: str | None
    software: str | None
    resources: dict[str, ResourceCapability] = field(default_factory=dict)
    system_operations: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, body: Any) -> ServerCapabilities | None:
        """None when ``body`` is not a CapabilityStatement."""
        if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
            return None
        resources: dict[str, ResourceCapability] = {}
        system_ops: set[str] = set()
        for rest in body.get("rest") or []:
            if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
                continue
            system_ops |= _operation_names(rest.get("operation"))
            for entry in rest.get("resource") or []:
                if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                    parsed = ResourceCapability.parse(entry)
                    resources[parsed.type] = parsed
        software = body.get("software") if isinstance(body.get("software"), dict) else {}
        implementation = body.get("implementation") if isinstance(body.get("implementation"), dict) else {}
        name = (software or {}).get("name") or (implementation or {}).get("description") or body.get("name")
        version = body.get("fhirVersion")
        return cls(
            fhir_version=str(version) if version else None,
            software=str(name) if name else None,
            resources=resources,
            system_operations=frozenset(system_ops),
        )

    def interaction(self, resource_type: str, code: str) -> Support:
        """``code`` is a TypeRestfulInteraction: read, vread, update, patch, delete,
        history-instance, history-type, create, search-type."""
        resource = self.resources.get(resource_type)
        if resource is None:
            return Support.unsupported
        if resource.interactions is None:
            return Support.undeclared
        return Support.of(code in resource.interactions)

    def search_params(self, resource_type: str, names: tuple[str, ...]) -> tuple[str, ...] | None:
        """The ``names`` the statement does not list for ``resource_type`` (None: it lists none)."""
        resource = self.resources.get(resource_type)
        if resource is None or resource.search_params is None:
            return None
        return tuple(n for n in names if n not in resource.search_params)

    def conditional_create(self, resource_type: str) -> bool:
        resource = self.resources.get(resource_type)
        return resource is not None and resource.conditional_create

    def operation(self, name: str, resource_type: str | None = None) -> bool:
        """Whether ``$name`` is declared for ``resource_type`` or for the whole system."""
        if name in self.system_operations:
            return True
        resource = self.resources.get(resource_type) if resource_type else None
        return resource is not None and name in resource.operations
