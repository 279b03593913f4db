"""Keep query strings out of httpx's request log lines (SPEC §9: no PHI in logs).

httpx logs every request at INFO as ``HTTP Request: GET <full URL> …``. For a FHIR search the
URL's query holds the search values — a patient's name, birth date, MRN — so this filter, on
the ``httpx`` logger, replaces the query with ``?…`` before any handler sees the record. The
path (resource type and server-assigned ids) stays, which is what debugging needs.
"""

from __future__ import annotations

import logging

import httpx

_INSTALLED_ATTR = "_vitalbridge_query_filter"


class QueryStringFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_without_query(a) for a in record.args)
        return True


def _without_query(value: object) -> object:
    if isinstance(value, httpx.URL) and value.query:
        return str(value.copy_with(query=None)) + "?…"
    return value


def install() -> None:
    """Idempotent: attach the filter to the ``httpx`` logger once per process."""
    logger = logging.getLogger("httpx")
    if not getattr(logger, _INSTALLED_ATTR, False):
        logger.addFilter(QueryStringFilter())
        setattr(logger, _INSTALLED_ATTR, True)
