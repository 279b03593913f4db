"""No PHI or secret leaves the hub while readings flow from the webhook to the EHR (SPEC §9).

Drives the real path at DEBUG logging — signed webhooks (good and forged), delivery to the sandbox
EHR through injected 503s, resets and after-commit failures, a patient the EHR does not know
(dead letter with the EHR's diagnostics), dead-letter listing and replay over the API — then
searches every log line, metric and audit entry for the seeded values.
"""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import select

from tests.delivery.support import SECRET, hub_http, make_env, post_readings, sandbox
from tests.leaks import LeakHarness
from tests.support import token_for
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy.models import Role

GIVEN, FAMILY = "Zebulonia", "Quixotefeather"
MRN = "MRN-LEAK-771234"
PHONE = "+1-555-0199-4242"
DOB = date(1931, 7, 19)


def _deliver_until_settled(leak_harness: LeakHarness, ids: list[str], rounds: int = 40) -> dict[str, str]:
    hub = leak_harness.hub
    final: dict[str, str] = {}
    for _ in range(rounds):
        pending = [i for i in ids if final.get(i) not in ("delivered", "dead")]
        if not pending:
            break
        for outbox_id in pending:
            deliver(hub, outbox_id)
        with hub.sessions() as session:
            rows = session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(ids)))
            final = {r.id: r.status.value for r in rows}
    return final


def test_webhook_to_ehr_with_failures_leaks_nothing(leak_harness: LeakHarness) -> None:
    hub = leak_harness.hub
    hub.settings.delivery_quick_backoff_s = 0.0
    hub.settings.delivery_retry_base_s = 0.0
    with sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id())
        with hub.sessions() as session, session.begin():
            patient = session.get(Patient, env.patient_id)
            assert patient is not None
            patient.given_name, patient.family_name = GIVEN, FAMILY
            patient.mrn, patient.phone, patient.birth_date = MRN, PHONE, DOB
        integration = token_for(hub, env.org_id, Role.integration)
        sb.faults(error_rate=0.2, error_status=503, reset_rate=0.1, after_commit_rate=0.1, seed=11)
        with hub_http(hub) as url, httpx.Client(base_url=url, timeout=30) as client:
            leak_harness.client = client
            post_readings(env, url, 8)
            forged = post_webhook(client, url, env.gateway_id, "not-the-secret", {"reading_id": "x"})
            assert forged.status_code == 401
            ids = [r.id for r in env.rows()]
            settled = _deliver_until_settled(leak_harness, ids)
            assert set(settled.values()) == {"delivered"}, settled
            sb.clear_faults()

            # A patient the EHR does not know: dead letter with the server's reason, then replayed.
            with hub.sessions() as session, session.begin():
                patient = session.get(Patient, env.patient_id)
                assert patient is not None
                patient.ehr_id = "no-such-patient-in-ehr"
            post_readings(env, url, 1)
            new_ids = [r.id for r in env.rows() if r.id not in ids]
            for outbox_id in new_ids:
                deliver(hub, outbox_id)
            headers = {"Authorization": f"Bearer {integration}"}
            dead = client.get("/api/v1/deliveries/", params={"status": "dead"}, headers=headers)
            assert dead.status_code == 200, dead.text
            dead_rows = {d["id"]: d for d in dead.json()}
            assert set(new_ids) <= set(dead_rows)
            replay = client.post(f"/api/v1/deliveries/{new_ids[0]}/replay", headers=headers)
            assert replay.status_code == 200, replay.text
            with hub.sessions() as session:
                replayed = session.get(OutboxEntry, new_ids[0])
                assert replayed is not None
                assert replayed.status is OutboxStatus.pending
            assert client.get("/metrics").status_code == 200
            leak_harness.assert_no_leak(
                [GIVEN, FAMILY, MRN, PHONE, DOB.isoformat(), SECRET, env.gateway_secret, integration, "not-the-secret"]
            )
