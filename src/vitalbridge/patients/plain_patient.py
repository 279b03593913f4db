"""A fast reader for the plain Patients a Bulk export is made of (SPEC §4 "Population sync").

``fhir.resources`` builds a pydantic model tree per Patient; on a 100,000-line export that was
over half of the import's time. Most exported Patients use a small, plain subset of the resource:
ids, identifiers, names, telecoms, addresses, gender, birth date, ``active`` and ``meta``. For
exactly that subset this module checks every value at least as strictly as the full validation
does (FHIR R4 primitive patterns, required codes, no nulls or empty arrays/objects) and hands the
parsed JSON to the *same* mapping (``fhir_mapping.to_registry``) through a read-only attribute
view, so the registry sees the same values either way.

Anything outside that subset — an unknown element, an extension, a ``link``, a ``period``, a
partial date, a value with surrounding whitespace, a code outside its value set — returns
``None``: the caller then runs the full validation, which accepts or refuses it as before.
``tests/patients/test_plain_patient.py`` checks both readers agree, line by line.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

# FHIR R4 primitive patterns (datatypes §2.24.0.1), tightened where the fast path may be
# stricter: text values must not start or end with whitespace nor hold control characters.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI = re.compile(r"\S+")
_CODE = re.compile(r"[^\s]+( [^\s]+)*")
_TEXT = re.compile(r"[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")

# Required bindings (the full validation accepts any code here; the fast path only known ones).
_IDENTIFIER_USE = {"usual", "official", "temp", "secondary", "old"}
_NAME_USE = {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}
_TELECOM_SYSTEM = {"phone", "fax", "email", "pager", "url", "sms", "other"}
_TELECOM_USE = {"home", "work", "temp", "old", "mobile"}
_ADDRESS_USE = {"home", "work", "temp", "old", "billing"}
_ADDRESS_TYPE = {"postal", "physical", "both"}
_GENDER = {"male", "female", "other", "unknown"}


class _Decline(Exception):
    """The resource is outside the plain subset: let the full validation decide."""


def _text(value: object) -> str:
    if type(value) is not str or not _TEXT.fullmatch(value):
        raise _Decline
    return value


def _match(value: object, pattern: re.Pattern[str]) -> str:
    if type(value) is not str or not pattern.fullmatch(value):
        raise _Decline
    return value


def _one_of(value: object, allowed: set[str]) -> str:
    if type(value) is not str or value not in allowed:
        raise _Decline
    return value


def _items(value: object) -> list[dict[str, Any]]:
    if type(value) is not list or not value or any(not isinstance(v, dict) or not v for v in value):
        raise _Decline
    return value


def _texts(value: object) -> list[str]:
    if type(value) is not list or not value:
        raise _Decline
    return [_text(v) for v in value]


def _keys(obj: dict[str, Any], allowed: frozenset[str]) -> None:
    if not obj.keys() <= allowed:
        raise _Decline


_CODING = frozenset({"system", "code", "display"})
_CONCEPT = frozenset({"coding", "text"})
_IDENTIFIER = frozenset({"use", "type", "system", "value"})
_NAME = frozenset({"use", "text", "family", "given", "prefix", "suffix"})
_TELECOM = frozenset({"system", "value", "use"})
_ADDRESS = frozenset({"use", "type", "text", "line", "city", "district", "state", "postalCode", "country"})
_META = frozenset({"versionId", "lastUpdated"})
_PATIENT = frozenset(
    {"resourceType", "id", "meta", "identifier", "active", "name", "telecom", "gender", "birthDate", "address"}
)


def _check_concept(concept: object) -> None:
    if not isinstance(concept, dict) or not concept:
        raise _Decline
    _keys(concept, _CONCEPT)
    for coding in _items(concept["coding"]) if "coding" in concept else ():
        _keys(coding, _CODING)
        if "system" in coding:
            _match(coding["system"], _URI)
        if "code" in coding:
            _match(coding["code"], _CODE)
        if "display" in coding:
            _text(coding["display"])
    if "text" in concept:
        _text(concept["text"])


def _check(resource: dict[str, Any]) -> None:
    _keys(resource, _PATIENT)
    if resource.get("resourceType") != "Patient":
        raise _Decline
    _match(resource.get("id"), _ID)
    if "meta" in resource:
        meta = resource["meta"]
        if not isinstance(meta, dict) or not meta:
            raise _Decline
        _keys(meta, _META)
        if "versionId" in meta:
            _match(meta["versionId"], _ID)
        if "lastUpdated" in meta:
            instant = _match(meta["lastUpdated"], _INSTANT)
            datetime.fromisoformat(instant.replace("Z", "+00:00"))  # a real date and time
            if not instant.endswith("Z") and instant[-6:] not in ("+14:00", "-14:00") and instant[-5:-3] > "13":
                raise _Decline  # FHIR offsets run from -14:00 to +14:00
    for ident in _items(resource["identifier"]) if "identifier" in resource else ():
        _keys(ident, _IDENTIFIER)
        if "use" in ident:
            _one_of(ident["use"], _IDENTIFIER_USE)
        if "type" in ident:
            _check_concept(ident["type"])
        if "system" in ident:
            _match(ident["system"], _URI)
        if "value" in ident:
            _text(ident["value"])
    if "active" in resource and type(resource["active"]) is not bool:
        raise _Decline
    for name in _items(resource["name"]) if "name" in resource else ():
        _keys(name, _NAME)
        if "use" in name:
            _one_of(name["use"], _NAME_USE)
        for key in ("text", "family"):
            if key in name:
                _text(name[key])
        for key in ("given", "prefix", "suffix"):
            if key in name:
                _texts(name[key])
    for telecom in _items(resource["telecom"]) if "telecom" in resource else ():
        _keys(telecom, _TELECOM)
        if "system" in telecom:
            _one_of(telecom["system"], _TELECOM_SYSTEM)
        if "value" in telecom:
            _text(telecom["value"])
        if "use" in telecom:
            _one_of(telecom["use"], _TELECOM_USE)
    if "gender" in resource:
        _one_of(resource["gender"], _GENDER)
    if "birthDate" in resource:
        # A full calendar date only (``date`` refuses 1970-02-30); partial dates go the long way.
        resource["birthDate"] = date.fromisoformat(_match(resource["birthDate"], _DATE))
    for address in _items(resource["address"]) if "address" in resource else ():
        _keys(address, _ADDRESS)
        if "use" in address:
            _one_of(address["use"], _ADDRESS_USE)
        if "type" in address:
            _one_of(address["type"], _ADDRESS_TYPE)
        if "line" in address:
            _texts(address["line"])
        for key in ("text", "city", "district", "state", "postalCode", "country"):
            if key in address:
                _text(address[key])


class _View(dict[str, Any]):
    """Parsed JSON read as the mapping reads a model: ``view.family``; an absent element is None.

    Made by ``json.loads`` itself (``object_hook``), so the whole tree costs one pass. The element
    names the mapping reads never collide with ``dict``'s own methods.
    """

    __getattr__ = dict.get


def read_plain(raw: bytes | str) -> Any | None:
    """The Patient as an attribute view when it is in the plain subset, else None (not an error)."""
    try:
        resource = json.loads(raw, object_hook=_View)
    except ValueError:
        return None  # the full validation names the problem
    if not isinstance(resource, dict):
        return None
    try:
        _check(resource)
    except (_Decline, ValueError):
        return None
    return resource
