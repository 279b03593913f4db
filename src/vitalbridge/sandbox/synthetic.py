"""Deterministic synthetic patients (SPEC §11: "Patient search/read with synthetic patients").

Nothing is stored: a patient is computed from (seed, practice, index) whenever it is needed, so
100,000 patients per practice cost no memory and a Bulk export can stream them. Each field comes
from a BLAKE2b digest of that triple (fast, stable across Python versions, unlike ``hash()``).

Ids are opaque-looking but invertible: a per-practice prefix plus the index scrambled by an odd
multiplier modulo 2**32. The prefix differs per practice, so an id from practice A is simply not
found at practice B — as in eCW, where patient ids are per practice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

_MULTIPLIER = 0x9E3779B1  # odd, so multiplication modulo 2**32 is a bijection
_INVERSE = pow(_MULTIPLIER, -1, 2**32)
_MASK = 2**32 - 1

GIVEN_FEMALE = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia",
    "Maria", "Ana", "Rosa", "Mei", "Aisha", "Fatima", "Priya", "Nguyen", "Olga", "Ingrid",
)  # fmt: skip
GIVEN_MALE = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles",
    "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward", "Jason", "Jeffrey", "Ryan",
    "Jose", "Carlos", "Luis", "Wei", "Omar", "Ahmed", "Raj", "Minh", "Ivan", "Lars",
)  # fmt: skip
FAMILY = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "O'Brien", "Chen", "Patel", "Kowalski", "Schmidt", "Ivanova", "Okafor", "Haddad", "Yamamoto", "Larsen",
)  # fmt: skip
STREETS = ("Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pine Rd", "Washington Blvd", "Lake View Ct")
CITIES = (("Westborough", "MA", "015"), ("Worcester", "MA", "016"), ("Springfield", "MA", "011"),
          ("Providence", "RI", "029"), ("Hartford", "CT", "061"), ("Albany", "NY", "122"))  # fmt: skip
# A fixed epoch for meta.lastUpdated, so `_since` filters are reproducible.
LAST_UPDATED_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PatientSummary:
    """The searchable fields of one synthetic patient."""

    index: int
    id: str
    given: str
    family: str
    gender: str
    birthdate: str
    mrn: str
    phone: str
    last_updated: datetime


class SyntheticPatients:
    """All synthetic patients of one practice, computed on demand."""

    def __init__(self, seed: int, practice: str, count: int) -> None:
        self.practice = practice
        self.count = count
        self._seed = seed
        tag = hashlib.blake2b(f"{seed}:{practice}".encode(), digest_size=8).digest()
        self._prefix = tag[:2].hex()
        self._offset = int.from_bytes(tag[2:6], "big")
        self.mrn_system = f"urn:vitalbridge:sandbox:{practice}:mrn"

    def id_for(self, index: int) -> str:
        scrambled = (index * _MULTIPLIER + self._offset) & _MASK
        return f"{self._prefix}{scrambled:08x}"

    def index_of(self, patient_id: str) -> int | None:
        if len(patient_id) != 12 or not patient_id.startswith(self._prefix):
            return None
        try:
            scrambled = int(patient_id[4:], 16)
        except ValueError:
            return None
        index = ((scrambled - self._offset) * _INVERSE) & _MASK
        return index if index < self.count and self.id_for(index) == patient_id else None

    def mrn_for(self, index: int) -> str:
        return f"MRN-{index + 1:07d}"

    def index_of_mrn(self, mrn: str) -> int | None:
        if not mrn.startswith("MRN-") or not mrn[4:].isdigit():
            return None
        index = int(mrn[4:]) - 1
        return index if 0 <= index < self.count and self.mrn_for(index) == mrn else None

    def _digest(self, index: int) -> bytes:
        return hashlib.blake2b(f"{self._seed}:{self.practice}:{index}".encode(), digest_size=32).digest()

    def summary(self, index: int) -> PatientSummary:
        d = self._digest(index)
        gender = "female" if d[0] % 2 == 0 else "male"
        names = GIVEN_FEMALE if gender == "female" else GIVEN_MALE
        birth = date(1930, 1, 1) + timedelta(days=int.from_bytes(d[3:6], "big") % (75 * 365))
        return PatientSummary(
            index=index,
            id=self.id_for(index),
            given=names[d[1] % len(names)],
            family=FAMILY[d[2] % len(FAMILY)],
            gender=gender,
            birthdate=birth.isoformat(),
            mrn=self.mrn_for(index),
            # 555-0100..0199 are reserved for fiction.
            phone=f"508-555-{100 + d[6] % 100:04d}",
            last_updated=LAST_UPDATED_EPOCH + timedelta(minutes=int.from_bytes(d[7:9], "big")),
        )

    def resource(self, index: int) -> dict[str, Any]:
        s = self.summary(index)
        d = self._digest(index)
        city, state, zip_prefix = CITIES[d[10] % len(CITIES)]
        return {
            "resourceType": "Patient",
            "id": s.id,
            "meta": {"versionId": "1", "lastUpdated": s.last_updated.isoformat().replace("+00:00", "Z")},
            "identifier": [
                {
                    "use": "usual",
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
                        "text": "Medical record number",
                    },
                    "system": self.mrn_system,
                    "value": s.mrn,
                }
            ],
            "active": True,
            "name": [{"use": "official", "family": s.family, "given": [s.given]}],
            "telecom": [{"system": "phone", "value": s.phone, "use": "home"}],
            "gender": s.gender,
            "birthDate": s.birthdate,
            "address": [
                {
                    "use": "home",
                    "line": [f"{1 + int.from_bytes(d[11:13], 'big') % 9999} {STREETS[d[13] % len(STREETS)]}"],
                    "city": city,
                    "state": state,
                    "postalCode": f"{zip_prefix}{d[14] % 100:02d}",
                    "country": "US",
                }
            ],
        }
