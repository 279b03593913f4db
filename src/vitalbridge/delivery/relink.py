"""The hook point for subjects the EHR does not know (SPEC §4 "Merged patients", §7 "404 (patient)").

When the EHR answers 404/410 to a delivery, or a 400/422 located at ``Observation.subject``, the
subject patient is unknown or was merged away. The row is dead-lettered with reason
``patient_not_found`` first (so a failure of the re-link leaves it visible and replayable), then
the patients feature re-links the patient (following ``replaced-by``, else by MRN/identifier) and
re-points the patient's undelivered rows, this one included, which come back ``pending`` with the
new subject.
"""

from __future__ import annotations

import logging

from vitalbridge.delivery.transitions import DeadReason, Failure, OutboxSnapshot, mark_dead
from vitalbridge.errors import EhrUnsupported
from vitalbridge.runtime import Hub

log = logging.getLogger(__name__)


def on_patient_not_found(hub: Hub, entry: OutboxSnapshot, owner: str, failure: Failure) -> bool:
    """Called once per row whose subject the EHR refused as unknown; returns whether the row changed."""
    from vitalbridge.patients.relink import relink_for_delivery

    changed = mark_dead(hub, entry, owner, failure, DeadReason.patient_not_found)
    if changed:
        # No transaction is open here: the re-link calls the EHR.
        try:
            relink_for_delivery(hub, entry.id)
        except EhrUnsupported:
            # The EHR cannot look the patient up (audited as patient.relink_unsupported); the row
            # stays a dead letter with the EHR's answer, replayable once the practice is fixed.
            log.warning("re-link impossible for outbox=%s: the EHR does not offer Patient read/search", entry.id)
    return changed
