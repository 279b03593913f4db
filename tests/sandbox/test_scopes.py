"""SMART scope parsing, v1 and v2 syntax (SMART App Launch 2.0 "Scopes and Launch Context")."""

from __future__ import annotations

import pytest

from vitalbridge.sandbox.oauth.scopes import Context, Interaction, granting_scope, parse_resource_scope


@pytest.mark.parametrize(
    ("scope", "context", "resource", "permissions"),
    [
        ("system/Observation.write", Context.system, "Observation", "cud"),
        ("system/Patient.read", Context.system, "Patient", "rs"),
        ("user/*.*", Context.user, "*", "cruds"),
        ("patient/Observation.rs", Context.patient, "Observation", "rs"),
        ("system/Observation.c", Context.system, "Observation", "c"),
    ],
)
def test_resource_scopes(scope: str, context: Context, resource: str, permissions: str) -> None:
    parsed = parse_resource_scope(scope)
    assert parsed is not None
    assert (parsed.context, parsed.resource, parsed.permissions) == (context, resource, frozenset(permissions))


@pytest.mark.parametrize("scope", ["system/Observation.rc", "system/observation.read", "admin/Patient.read", "read"])
def test_malformed_scopes(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        parse_resource_scope(scope)


def test_launch_scopes_are_not_resource_scopes() -> None:
    assert parse_resource_scope("offline_access") is None
    assert parse_resource_scope("launch/patient") is None


def test_system_scope_wins_over_patient_scope() -> None:
    scopes = ["patient/Patient.read", "system/Patient.rs"]
    granted = granting_scope(scopes, "Patient", Interaction.read)
    assert granted is not None
    assert granted.context is Context.system
    assert granting_scope(["system/Patient.read"], "Patient", Interaction.create) is None
