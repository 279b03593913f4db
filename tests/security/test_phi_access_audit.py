"""Routes declared ``phi=True`` write ``phi.access`` before the response leaves, or send no PHI."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from tests.support import make_tenant
from vitalbridge.api.deps import require_role
from vitalbridge.app import create_app
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.engine import make_engine
from vitalbridge.errors import NotFound
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal

PHI = "Quackenbush, Zebediah"
PATIENT_ID = "0b7f6d2e-1c3a-4f5e-9a8b-7c6d5e4f3a2b"
Clinician = Annotated[Principal, Depends(require_role(Role.clinician, phi=True))]


def _app(hub: Hub) -> object:
    app = create_app(hub=hub, background=False)
    router = APIRouter(prefix="/api/v1/charts")

    @router.get("/{patient_id}")
    def chart(patient_id: str, principal: Clinician) -> dict[str, str]:
        if patient_id == "missing":
            raise NotFound("no such patient")
        if patient_id == "break-audit":
            # From here on the audit write fails (the database is gone, say).
            hub.sessions = sessionmaker(make_engine("postgresql://nobody@127.0.0.1:1/none"))
        return {"patient": PHI}

    app.include_router(router)
    return app


def test_phi_reads_are_audited_with_status_and_correlation(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    rid = "11111111-2222-4333-8444-555555555555"
    with ServerThread(_app(hub)) as url, httpx.Client(base_url=url, headers=tenant.headers) as client:
        assert client.get(f"/api/v1/charts/{PATIENT_ID}", headers={"X-Request-ID": rid}).json() == {"patient": PHI}
        assert client.get("/api/v1/charts/missing").status_code == 404
        # A route that answers for a reference that is not a hub id (an MRN typed into the path).
        assert client.get("/api/v1/charts/MRN-4417PHI").status_code == 200
    with hub.sessions() as session:
        rows = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "phi.access").order_by(AuditEntry.seq))
        )
    assert [(r.status_code, r.outcome, r.resource_ids) for r in rows] == [
        (200, "success", [PATIENT_ID]),
        # Only resolved hub ids are stored: what the caller typed is not (the route template is).
        (404, "failure", []),
        (200, "success", []),
    ]
    assert all("MRN-4417PHI" not in str(r.detail) for r in rows)
    assert rows[0].correlation_id == rid
    assert rows[0].organization_id == tenant.org_id
    assert rows[0].detail == {"route": "/api/v1/charts/{patient_id}", "method": "GET", "role": "admin"}
    assert rows[0].latency_ms is not None
    assert rows[0].actor.startswith("token:")


def test_no_phi_leaves_when_the_access_cannot_be_audited(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    working = hub.sessions
    try:
        with ServerThread(_app(hub)) as url, httpx.Client(base_url=url, headers=tenant.headers) as client:
            resp = client.get("/api/v1/charts/break-audit")
    finally:
        hub.sessions = working
    assert resp.status_code == 500
    assert resp.json()["error"] == "audit_unavailable"
    assert PHI not in resp.text
