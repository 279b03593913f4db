"""``python -m bench`` (``make bench``): run every benchmark."""

from __future__ import annotations

from bench import audit_record

audit_record.main([])
