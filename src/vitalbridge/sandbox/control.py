"""The control API under ``/_sandbox`` (SPEC §11): register clients, switch faults and
behaviours (profiles), merge patients, inspect what was stored and counted, reset.

SANDBOX ONLY. It has no authentication by design — it exists for tests and demos — and nothing
like it exists on eCW. Never expose a sandbox's port beyond the machine or test network.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vitalbridge.sandbox.faults import FaultPlanIn
from vitalbridge.sandbox.fhir.merges import MergeIn
from vitalbridge.sandbox.fhir.patients import patient_resource
from vitalbridge.sandbox.oauth.clients import ClientIn
from vitalbridge.sandbox.profile import BehaviourIn, apply
from vitalbridge.sandbox.state import sandbox_state

router = APIRouter(prefix="/_sandbox", tags=["sandbox control (no auth, sandbox only)"])


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@router.post("/clients")
async def register_client(request: Request, body: ClientIn) -> Response:
    """Create or replace a client; ``practices`` are where it is activated."""
    state = sandbox_state(request)
    unknown = [p for p in body.practices if p not in state.patients]
    if unknown:
        return _problem(
            422, f"unknown practice(s) {', '.join(unknown)}; this sandbox serves {', '.join(state.patients)}"
        )
    client, created = state.clients.upsert(body)
    if client.jwks_url:
        state.jwks.forget(client.jwks_url)
    state.client_changes += 1
    return JSONResponse(client.public_view(), status_code=201 if created else 200)


@router.get("/clients")
async def list_clients(request: Request) -> dict[str, Any]:
    return {"clients": [c.public_view() for c in sandbox_state(request).clients]}


@router.delete("/clients/{client_id}")
async def delete_client(request: Request, client_id: str) -> Response:
    state = sandbox_state(request)
    if not state.clients.remove(client_id):
        return _problem(404, f"no client {client_id!r}")
    state.client_changes += 1
    return Response(status_code=204)


@router.put("/faults")
async def put_faults(request: Request, body: FaultPlanIn) -> Response:
    """Install a fault plan for one practice (or, without ``practice``, for all of them)."""
    state = sandbox_state(request)
    if body.practice is not None and body.practice not in state.patients:
        return _problem(422, f"unknown practice {body.practice!r}")
    state.faults.put(body)
    return JSONResponse({"faults": [p.model_dump() for p in state.faults.plans()]})


@router.get("/faults")
async def get_faults(request: Request) -> dict[str, Any]:
    return {"faults": [p.model_dump() for p in sandbox_state(request).faults.plans()]}


@router.delete("/faults")
async def delete_faults(request: Request, practice: str | None = Query(default=None)) -> dict[str, Any]:
    """Remove every plan, or only the one for ``?practice=``."""
    state = sandbox_state(request)
    state.faults.clear(practice, everything=practice is None)
    return {"faults": [p.model_dump() for p in state.faults.plans()]}


@router.get("/behaviour")
async def get_behaviour(request: Request) -> dict[str, Any]:
    """The profile and every switch in force (docs/sandbox.md, "profiles")."""
    return sandbox_state(request).behaviour.model_dump(mode="json")


@router.put("/behaviour")
async def put_behaviour(request: Request, body: BehaviourIn) -> Response:
    """Switch profile and/or single behaviours; switches not given keep their value (or the
    given profile's default when ``profile`` is set)."""
    state = sandbox_state(request)
    unknown = [p for p in body.writeback_user_missing or [] if p not in state.patients]
    if unknown:
        return _problem(422, f"unknown practice(s) {', '.join(unknown)}")
    state.set_behaviour(apply(state.behaviour, body))
    return JSONResponse(state.behaviour.model_dump(mode="json"))


@router.get("/observations")
async def stored_observations(request: Request, practice: str | None = Query(default=None)) -> dict[str, Any]:
    """Everything stored, in creation order, for verification."""
    state = sandbox_state(request)
    items = list(state.observations.all(practice))
    return {
        "count": len(items),
        "observations": [{"practice": p, "resource": r} for p, r in items],
    }


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    return sandbox_state(request).stats.snapshot()


@router.post("/patients/merge")
async def merge_patients(request: Request, body: MergeIn) -> Response:
    state = sandbox_state(request)
    if body.practice not in state.patients:
        return _problem(422, f"unknown practice {body.practice!r}")
    try:
        merge = state.merges.merge(body.practice, state.patients[body.practice], body)
    except ValueError as exc:
        return _problem(422, str(exc))
    return JSONResponse(
        {
            "practice": body.practice,
            "from": body.from_,
            "into": body.into,
            "mode": merge.mode.value,
            "survivor": patient_resource(state, body.practice, merge.into_index),
        }
    )


@router.get("/patients")
async def sample_patients(request: Request, practice: str, limit: int = Query(default=10, ge=1, le=100)) -> Response:
    """A few synthetic patients of a practice (id, name, MRN), to pick ids for demos."""
    state = sandbox_state(request)
    if practice not in state.patients:
        return _problem(422, f"unknown practice {practice!r}")
    patients = state.patients[practice]
    rows = []
    for index in range(min(limit, patients.count)):
        s = patients.summary(index)
        rows.append({"id": s.id, "given": s.given, "family": s.family, "birthDate": s.birthdate, "mrn": s.mrn})
    return JSONResponse({"practice": practice, "total": patients.count, "patients": rows})


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: bool = False


@router.post("/reset")
async def reset(request: Request, body: ResetIn | None = Body(default=None)) -> dict[str, Any]:
    """Clear observations, tokens, grants, merges, exports, faults, stats and rate-limit buckets,
    and put the behaviour switches back to the start-up profile's.

    Registered clients stay (they are configuration) unless the body says ``{"clients": true}``.
    """
    sandbox_state(request).reset(clients=bool(body and body.clients))
    return {"reset": True, "clients_cleared": bool(body and body.clients)}
