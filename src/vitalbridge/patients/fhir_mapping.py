"""FHIR R4 ``Patient`` → registry demographics (SPEC §4 "Patient import").

Parsing and validation are fhir.resources' (its R4B models, whose Patient matches R4 4.0.1);
this module only decides which of a Patient's many names, identifiers and phones the registry
keeps:

- **MRN**: the identifier typed ``MR`` (HL7 v2-0203, under its R4 system
  ``http://terminology.hl7.org/CodeSystem/v2-0203`` or the pre-R4 ``http://hl7.org/fhir/v2/0203``
  that many servers still send) or, when the practice configures one, the identifier in the
  practice's MRN system; ``use: old`` identifiers are never the current MRN.
- **SSN**: never kept, whether typed ``SS`` or only identified by its system
  ``http://hl7.org/fhir/sid/us-ssn`` (FHIR R4 §identifier-registry).
- **name**: the ``official`` name, else ``usual``, else the first one without an ended period;
  names with nothing in them are skipped. A name given only as ``HumanName.text`` (R4 allows a
  name to be text alone) is kept whole in ``family_name`` — splitting free text into given and
  family names would guess wrong for many names; the display name shows it unchanged.
- **phone**: the first ``telecom`` with system ``phone`` (home, then mobile, then any).
- **replaced-by**: ``link[type=replaced-by]`` names the record that now stands for this one (the
  EHR merged it away), usually together with ``active: false``.

Errors name the element at fault and never quote its value (the value is PHI).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError

from vitalbridge.errors import FieldError, ValidationFailed

# HL7 v2 table 0203 (identifier type), the code system FHIR uses for Identifier.type.
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
# The same code system's URI before R4 moved it to terminology.hl7.org (DSTU2/STU3 servers, and
# R4 servers that never updated their data).
LEGACY_IDENTIFIER_TYPE_SYSTEM = "http://hl7.org/fhir/v2/0203"
_IDENTIFIER_TYPE_SYSTEMS = (None, IDENTIFIER_TYPE_SYSTEM, LEGACY_IDENTIFIER_TYPE_SYSTEM)
# US Social Security numbers (FHIR identifier registry).
US_SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


class IdentifierType(enum.StrEnum):
    """The v2-0203 identifier type codes the registry looks at."""

    mrn = "MR"  # medical record number
    ssn = "SS"  # social security number: never stored (not needed for RPM)


class LinkType(enum.StrEnum):
    """FHIR R4 ``Patient.link.type`` (link-type value set)."""

    replaced_by = "replaced-by"  # this record was merged away into ``other``
    replaces = "replaces"  # this record absorbed ``other``
    refer = "refer"
    seealso = "seealso"


class Gender(enum.StrEnum):
    """FHIR administrative-gender."""

    male = "male"
    female = "female"
    other = "other"
    unknown = "unknown"


@dataclass(frozen=True)
class EhrPatient:
    """What the registry keeps of one FHIR Patient."""

    ehr_id: str
    given_name: str = ""
    family_name: str = ""
    birth_date: date | None = None
    gender: str | None = None
    mrn: str | None = None
    mrn_system: str | None = None
    phone: str | None = None
    address: dict[str, Any] | None = None
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    active: bool = True
    replaced_by: str | None = None  # the EHR id of the record that replaced this one

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()


def _invalid(where: str, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"the EHR sent a Patient the hub cannot read ({where}: {why})",
        [FieldError(("Patient", *where.split(".")[1:]), why)],
    )


def parse_patient(data: dict[str, Any] | str | bytes) -> FhirPatient:
    """Validate one Patient resource (a dict, or JSON text as in an NDJSON line)."""
    try:
        if isinstance(data, dict):
            if data.get("resourceType") != "Patient":
                raise _invalid("Patient.resourceType", "not a Patient")
            return FhirPatient.model_validate(data)
        return FhirPatient.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(["Patient", *(str(p) for p in first["loc"] if not isinstance(p, int))])
        raise _invalid(where, str(first["type"])) from None


def _reference_id(reference: str | None) -> str | None:
    """``Patient/123`` or ``https://ehr/fhir/Patient/123[/_history/2]`` → ``123``."""
    if not reference:
        return None
    parts = [p for p in reference.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient":
        return parts[-1]
    return None


def _coding_codes(concept: Any) -> set[str]:
    codings = getattr(concept, "coding", None) or []
    return {c.code for c in codings if c.code and c.system in _IDENTIFIER_TYPE_SYSTEMS}


def _is_ssn(ident: Any) -> bool:
    return ident.system == US_SSN_SYSTEM or IdentifierType.ssn in _coding_codes(ident.type)


def _identifier_json(ident: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"system": ident.system or "", "value": ident.value or ""}
    codes = _coding_codes(ident.type)
    if codes:
        entry["type"] = sorted(codes)[0]
    if ident.use:
        entry["use"] = ident.use
    return entry


def _pick_mrn(identifiers: list[Any], mrn_system: str | None) -> tuple[str | None, str | None]:
    current = [i for i in identifiers if i.value and i.use != "old" and not _is_ssn(i)]
    if mrn_system:
        for ident in current:
            if ident.system == mrn_system:
                return ident.value, ident.system
    for ident in current:
        if IdentifierType.mrn in _coding_codes(ident.type):
            return ident.value, ident.system
    return None, None


def _name_parts(name: Any) -> tuple[str, str]:
    given = " ".join(g.strip() for g in name.given or [] if g and g.strip())
    family = (name.family or "").strip()
    if not given and not family and name.text:
        return "", " ".join(name.text.split())
    return given, family


def _pick_name(names: list[Any]) -> tuple[str, str]:
    usable = [n for n in names if any(_name_parts(n))]
    live = [n for n in usable if not (n.period and n.period.end)]
    for use in ("official", "usual"):
        for n in live:
            if n.use == use:
                return _name_parts(n)
    pick = live[0] if live else (usable[0] if usable else None)
    if pick is None:
        return "", ""
    return _name_parts(pick)


def _pick_phone(telecom: list[Any]) -> str | None:
    phones = [t for t in telecom if t.system == "phone" and t.value and not (t.period and t.period.end)]
    for use in ("home", "mobile"):
        for t in phones:
            if t.use == use:
                return str(t.value)
    return str(phones[0].value) if phones else None


def _pick_address(addresses: list[Any]) -> dict[str, Any] | None:
    live = [a for a in addresses if not (a.period and a.period.end)]
    pick = next((a for a in live if a.use == "home"), live[0] if live else None)
    if pick is None:
        return None
    out = {
        "line": list(pick.line or []),
        "city": pick.city,
        "state": pick.state,
        "postal_code": pick.postalCode,
        "country": pick.country,
    }
    return {k: v for k, v in out.items() if v}


def to_registry(patient: FhirPatient, *, mrn_system: str | None = None) -> EhrPatient:
    """Map a validated Patient. ``mrn_system`` is the practice's MRN identifier system, if set."""
    if not patient.id:
        raise _invalid("Patient.id", "missing: the EHR's Patient id is the link to the registry")
    identifiers = list(patient.identifier or [])
    mrn, system = _pick_mrn(identifiers, mrn_system)
    given, family = _pick_name(list(patient.name or []))
    replaced_by = None
    for link in patient.link or []:
        if link.type == LinkType.replaced_by:
            replaced_by = _reference_id(link.other.reference if link.other else None)
            if replaced_by:
                break
    return EhrPatient(
        ehr_id=str(patient.id),
        given_name=given[:200],
        family_name=family[:200],
        birth_date=patient.birthDate if isinstance(patient.birthDate, date) else None,
        gender=patient.gender if patient.gender in Gender.__members__ else None,
        mrn=mrn,
        mrn_system=system,
        phone=_pick_phone(list(patient.telecom or [])),
        address=_pick_address(list(patient.address or [])),
        identifiers=[
            _identifier_json(i)
            for i in identifiers
            if i.value and not _is_ssn(i)  # an SSN has no place in RPM
        ],
        active=patient.active is not False,
        replaced_by=replaced_by,
    )


def map_patient(data: dict[str, Any] | str | bytes, *, mrn_system: str | None = None) -> EhrPatient:
    """Parse and map in one step."""
    return to_registry(parse_patient(data), mrn_system=mrn_system)
