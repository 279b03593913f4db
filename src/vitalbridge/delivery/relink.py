"""The hook point for subjects the EHR does not know (SPEC §4 "Merged patients", §7 "404 (patient)").

When the EHR answers 404/410 to a delivery, the subject patient is unknown or was merged away.
The patients feature re-links such patients (via MRN / identifier, following ``replaced-by``)
and then calls ``delivery.outbox.release_for_patient``, which re-points the patient's undelivered
rows. Until that re-link is wired here, this hook dead-letters the row with reason
``patient_not_found`` so it is visible and can be replayed after the patient is fixed.
"""

from __future__ import annotations

from vitalbridge.delivery.transitions import DeadReason, Failure, OutboxSnapshot, mark_dead
from vitalbridge.runtime import Hub


def on_patient_not_found(hub: Hub, entry: OutboxSnapshot, owner: str, failure: Failure) -> bool:
    """Called once per row whose subject the EHR refused as unknown; returns whether the row changed."""
    return mark_dead(hub, entry, owner, failure, DeadReason.patient_not_found)
