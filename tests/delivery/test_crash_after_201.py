"""A worker that dies between the EHR's 201 and its own commit causes no duplicate (SPEC §7
"No duplicates"): the row stays in_flight, its lease expires, the sweeper returns it to pending,
and the next delivery finds the Observation by identifier instead of creating it again.

The crash is reproduced by doing exactly what a worker does up to the 201 (claim, POST the
Observation to the sandbox EHR) and then stopping, without the commit that follows.
"""

from __future__ import annotations

import collections
import time

from tests.delivery.support import hub_http, identifiers, make_env, post_readings, sandbox
from vitalbridge.delivery import fhir_send
from vitalbridge.delivery.claims import claim_due, sweep_expired
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

LEASE_S = 3.0


def test_crash_after_the_ehr_stored_it_is_delivered_once(hub: Hub) -> None:
    with sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id())
        with hub_http(hub) as url:
            post_readings(env, url, 3)  # BP+pulse, SpO2+pulse, weight: 5 Observations
        rows = env.rows()
        claimed = claim_due(hub, "worker-that-dies", 1, lease_s=LEASE_S)
        lease_ends = time.monotonic() + LEASE_S
        assert len(claimed) == 1
        target = next(r for r in rows if r.id == claimed[0])
        assert deliver(hub, target.id).status == "skipped"  # leased: nobody else may touch it
        assert sweep_expired(hub) == 0  # the lease has not run out yet
        with hub.sessions() as session:
            practice = session.get(Practice, target.practice_id)
            assert practice is not None
            conn = PracticeConnection.of(practice)
        sent = fhir_send.create(
            ehr_client(hub), conn, dict(target.resource), target.idempotency_key, conditional=False, correlation_id="x"
        )
        assert sent.status_code == 201  # the EHR stored it; the worker dies before committing

        assert env.statuses()[OutboxStatus.in_flight.value] == 1
        time.sleep(max(0.0, lease_ends - time.monotonic()) + 0.2)
        assert sweep_expired(hub) == 1

        outcome = deliver(hub, target.id)
        assert outcome.status == "delivered"
        assert outcome.ehr_id == sent.ehr_id
        with hub.sessions() as session:
            row = session.get(OutboxEntry, target.id)
            assert row is not None
            assert row.ehr_resource_id == sent.ehr_id
        for other in (r for r in rows if r.id != target.id):
            assert deliver(hub, other.id).status == "delivered"

        counts = collections.Counter(identifiers(sb.observations()))
        assert counts[target.idempotency_key] == 1
        assert sorted(counts) == sorted(r.idempotency_key for r in rows)
        assert set(counts.values()) == {1}
        assert env.statuses() == {"delivered": len(rows)}
