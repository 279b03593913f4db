"""``POST /api/v1/ecw/test/connection/`` and ``vitalbridge ecw test-connection`` (SPEC §3; issue 12,
item 3): does this practice's EHR do what the hub will ask of it, with the token it issues?

``GET metadata`` is public on most servers (eCW's too), so answering it proves nothing about the
credentials. The check therefore

1. gets a token now (the practice's grant: backend services or the user's standalone grant) and
   compares the scopes granted with those requested and with what the hub's work needs;
2. reads the CapabilityStatement and checks each interaction the hub uses: Patient ``read`` and
   ``search-type`` with the parameters the hub sends, Observation ``create`` (FHIR delivery),
   conditional create or an identifier search to guard against duplicates, and ``$export`` when
   population sync is in use;
3. makes one authenticated call that returns no PHI (``Patient?_id=`` an id that cannot exist;
   a ``read`` of it when search is not offered) and reports how the EHR took the token.

Each check is one finding ``{check, status: ok|warning|error|skipped, detail}``; the result is
``error`` when any finding is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrForbidden, EhrNotFound, EhrUnsupported, UpstreamError, VitalbridgeError
from vitalbridge.fhir.capabilities import ServerCapabilities, Support
from vitalbridge.smart.models import GrantKind
from vitalbridge.smart.scopes import lacking, not_granted
from vitalbridge.tenancy.hints import edit_hint

ACTOR = "service:connection-test"
# An id no EHR issues (FHIR ids are [A-Za-z0-9.-]{1,64}); searching for it returns no PHI.
PROBE_ID = "vitalbridge-connection-test"
# What the hub's patient search sends (patients/ehr_reads.py, relink by identifier).
PATIENT_SEARCH_PARAMS = ("name", "birthdate", "identifier")


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warning | error | skipped
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def contexts_for(grant: GrantKind) -> tuple[str, ...]:
    return ("system",) if grant is GrantKind.backend else ("user",)


def scope_findings(
    requested: tuple[str, ...], granted: list[str], grant: GrantKind, *, fhir_delivery: bool
) -> list[Finding]:
    findings = []
    missing = not_granted(requested, granted)
    findings.append(
        Finding("scopes.granted", "warning", f"requested but not granted: {' '.join(missing)}")
        if missing
        else Finding("scopes.granted", "ok", "every requested scope was granted")
    )
    for need in lacking(granted, contexts_for(grant), fhir_delivery=fhir_delivery):
        findings.append(
            Finding(
                f"scopes.{need.resource}.{need.permission}",
                "warning",
                f"the token does not allow {need.task} ({'/'.join(contexts_for(grant))}/{need.resource} "
                f"permission '{need.permission}'); the EHR will refuse it with 403",
            )
        )
    return findings


def _interaction(caps: ServerCapabilities, rtype: str, code: str, why: str, *, essential: bool = True) -> Finding:
    support = caps.interaction(rtype, code)
    name = f"{rtype}.{code}"
    if support is Support.supported:
        return Finding(name, "ok", f"offered ({why})")
    if support is Support.undeclared:
        return Finding(name, "warning", f"the CapabilityStatement lists {rtype} without its interactions ({why})")
    return Finding(
        name,
        "error" if essential else "warning",
        f"the EHR does not support {rtype} {code} (not in its CapabilityStatement); needed for {why}",
    )


def capability_findings(caps: ServerCapabilities, *, fhir_delivery: bool, population_sync: bool) -> list[Finding]:
    findings = []
    version = caps.fhir_version or ""
    findings.append(
        Finding("fhir_version", "ok", f"FHIR {version}")
        if version.startswith("4.0")
        else Finding("fhir_version", "warning", f"FHIR {version or 'version not stated'}; the hub speaks R4 (4.0.1)")
    )
    findings.append(_interaction(caps, "Patient", "read", "import and re-link"))
    search = _interaction(caps, "Patient", "search-type", "patient search and re-link by MRN")
    findings.append(search)
    if search.status == "ok":
        missing = caps.search_params("Patient", PATIENT_SEARCH_PARAMS)
        if missing:
            findings.append(
                Finding("Patient.search-params", "warning", f"search parameters not listed: {', '.join(missing)}")
            )
        elif missing is not None:
            findings.append(Finding("Patient.search-params", "ok", ", ".join(PATIENT_SEARCH_PARAMS)))
    if not fhir_delivery:
        findings.append(Finding("Observation.create", "skipped", "the practice takes readings by HL7 v2"))
    else:
        findings.append(_interaction(caps, "Observation", "create", "delivery"))
        searchable = caps.interaction("Observation", "search-type") is not Support.unsupported and not (
            caps.search_params("Observation", ("identifier",))
        )
        if caps.conditional_create("Observation"):
            findings.append(Finding("Observation.conditional-create", "ok", "If-None-Exist prevents duplicates"))
        elif searchable:
            findings.append(
                Finding(
                    "Observation.conditional-create",
                    "warning",
                    "not advertised: the hub searches Observation?identifier= before each create instead",
                )
            )
        else:
            findings.append(
                Finding(
                    "Observation.conditional-create",
                    "error",
                    "neither conditional create nor Observation search by identifier: a retry could duplicate "
                    "a reading, so such deliveries are dead-lettered (duplicate_risk)",
                )
            )
    if not population_sync:
        findings.append(Finding("$export", "skipped", "population sync is not in use for this practice"))
    elif caps.operation("export", "Patient") or caps.operation("export", "Group"):
        findings.append(Finding("$export", "ok", "Bulk Data export offered"))
    else:
        findings.append(
            Finding("$export", "error", "population sync is in use but the EHR does not offer Bulk Data $export")
        )
    return findings


def _probe(client: EhrClient, conn: PracticeConnection, caps: ServerCapabilities | None) -> Finding:
    """One authenticated call that cannot return PHI."""
    if caps is None or caps.interaction("Patient", "search-type") is not Support.unsupported:
        path, params = "Patient", {"_id": PROBE_ID}
    else:
        path, params = f"Patient/{PROBE_ID}", None
    shown = f"GET {path}" + ("?_id=…" if params else "")
    try:
        resp = client.get(conn, path, params=params, resource_type="Patient", actor=ACTOR)
    except EhrNotFound:
        return Finding("authenticated_call", "ok", f"{shown}: the EHR accepted the token (404 for the probe id)")
    except EhrForbidden as exc:
        return Finding("authenticated_call", "error", f"{shown}: the token was refused for Patient (403): {exc}")
    except EhrUnsupported as exc:
        return Finding("authenticated_call", "error", f"{shown}: {exc}")
    except VitalbridgeError as exc:
        return Finding("authenticated_call", "error", f"{shown}: {exc}")
    return Finding("authenticated_call", "ok", f"{shown}: the EHR accepted the token (HTTP {resp.status_code})")


def check_connection(
    client: EhrClient, conn: PracticeConnection, *, fhir_delivery: bool = True, population_sync: bool = False
) -> dict[str, Any]:
    """Run every check; raises only when no token can be had or the base URL is not FHIR."""
    grant = GrantKind(conn.grant.value)
    started = time.perf_counter()
    token = (
        client.smart.backend.token(conn, force=True)
        if grant is GrantKind.backend
        else client.smart.standalone.token(conn)
    )
    findings = [Finding("token", "ok", f"{grant.value} token issued for {token.lifetime_s or '?'} s")]
    findings += scope_findings(conn.scopes, token.scope.split(), grant, fhir_delivery=fhir_delivery)
    resp = client.get(conn, "metadata", actor=ACTOR)
    caps = ServerCapabilities.parse(resp.body)
    if caps is None:
        raise UpstreamError(
            f"GET metadata of practice {conn.practice_code} did not return a CapabilityStatement; "
            "correct the practice's FHIR base URL with " + edit_hint("--fhir-base-url URL", '"fhir_base_url"'),
            status_code=resp.status_code,
        )
    findings += capability_findings(caps, fhir_delivery=fhir_delivery, population_sync=population_sync)
    findings.append(_probe(client, conn, caps))
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    errors = [f for f in findings if f.status == "error"]
    warnings = [f for f in findings if f.status == "warning"]
    result: dict[str, Any] = {
        "status": "error" if errors else "success",
        "practice": conn.practice_code,
        "grant": grant.value,
        "fhir_server": caps.software,
        "fhir_version": caps.fhir_version,
        "capabilities": sorted(caps.resources),
        "granted_scopes": token.scope.split(),
        "findings": [f.as_dict() for f in findings],
        "warnings": [f"{f.check}: {f.detail}" for f in warnings],
        "response_time_ms": elapsed_ms,
    }
    if errors:
        result["detail"] = "; ".join(f"{f.check}: {f.detail}" for f in errors)
    return result
