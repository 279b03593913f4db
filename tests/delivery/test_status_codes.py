"""Every EHR answer a delivery can meet, against a real FHIR peer on loopback (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from tests.delivery.support import Env, ScriptedEhr, hub_http, make_env, post_readings
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread

OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Observation.valueQuantity: bad unit"}],
}


@dataclass
class Peer:
    env: Env
    ehr: ScriptedEhr

    def one(self) -> str:
        with hub_http(self.env.hub) as url:
            # Reading index 2 is a weight: exactly one Observation.
            import httpx

            from tests.delivery.support import record
            from vitalbridge.devices.simulator import post_webhook

            with httpx.Client(timeout=30) as client:
                resp = post_webhook(client, url, self.env.gateway_id, self.env.gateway_secret, record(self.env, 2))
                assert resp.status_code in (200, 202), resp.text
        rows = self.env.rows()
        assert len(rows) == 1
        return rows[0].id

    def one_more(self) -> str:
        """Another single-Observation reading; returns its new outbox id."""
        before = {r.id for r in self.env.rows()}
        import httpx

        from tests.delivery.support import record
        from vitalbridge.devices.simulator import post_webhook

        with hub_http(self.env.hub) as url, httpx.Client(timeout=30) as client:
            resp = post_webhook(client, url, self.env.gateway_id, self.env.gateway_secret, record(self.env, 6))
            assert resp.status_code in (200, 202), resp.text
        (new,) = [r.id for r in self.env.rows() if r.id not in before]
        return new

    def row(self, outbox_id: str) -> OutboxEntry:
        with self.env.hub.sessions() as session:
            row = session.get(OutboxEntry, outbox_id)
            assert row is not None
            return row


@pytest.fixture
def peer(hub: Hub) -> Iterator[Peer]:
    ehr = ScriptedEhr()
    with ServerThread(ehr.app) as url:
        yield Peer(make_env(hub, url, ehr_patient_id="p-1"), ehr)


def test_201_stores_the_ehr_id_and_marks_delivered(peer: Peer) -> None:
    outbox_id = peer.one()
    assert deliver(peer.env.hub, outbox_id).status == "delivered"
    row = peer.row(outbox_id)
    assert (row.status.value, row.ehr_resource_id, row.last_status_code) == ("delivered", "obs-1", 201)
    assert peer.ehr.posts == 1
    assert deliver(peer.env.hub, outbox_id).status == "skipped"  # delivered rows are never sent again
    assert peer.ehr.posts == 1


def test_200_on_conditional_create_is_delivered_with_the_existing_id(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.ehr.then(200, headers={"Location": "Observation/existing-7/_history/1"}, body={"resourceType": "Observation"})
    assert deliver(peer.env.hub, outbox_id).ehr_id == "existing-7"
    assert peer.row(outbox_id).status.value == "delivered"


@pytest.mark.parametrize("status", [400, 403, 409, 412, 422])
def test_permanent_refusals_dead_letter_at_once_with_the_diagnostics(peer: Peer, status: int) -> None:
    outbox_id = peer.one()
    peer.ehr.then(status, body=OUTCOME)
    assert deliver(peer.env.hub, outbox_id).status == "dead"
    row = peer.row(outbox_id)
    assert row.status.value == "dead"
    assert row.dead_reason == "rejected"
    assert row.last_status_code == status
    assert "bad unit" in (row.last_error or "")
    assert peer.ehr.posts == 1  # not retried blindly


SUBJECT_NOT_FOUND = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "not-found",
            "diagnostics": "Patient/p-1 does not exist",
            "expression": ["Observation.subject"],
        }
    ],
}


def test_404_goes_to_the_patient_hook_as_patient_not_found(peer: Peer) -> None:
    # A 404 to a create is about the patient only when the EHR says a referenced resource is
    # missing; a bare 404 there means "no such endpoint" (tests/delivery/test_unsupported.py).
    outbox_id = peer.one()
    peer.ehr.then(404, body=SUBJECT_NOT_FOUND)
    assert deliver(peer.env.hub, outbox_id).status == "dead"
    assert peer.row(outbox_id).dead_reason == "patient_not_found"


def test_401_refreshes_the_token_once_then_succeeds(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.ehr.then(401)
    assert deliver(peer.env.hub, outbox_id).status == "delivered"
    assert peer.ehr.token_requests == 2
    assert peer.ehr.posts == 2


def test_401_twice_is_permanent(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.ehr.then(401)
    peer.ehr.then(401)
    assert deliver(peer.env.hub, outbox_id).status == "dead"
    row = peer.row(outbox_id)
    assert (row.dead_reason, row.last_status_code) == ("auth_failed", 401)
    assert peer.ehr.posts == 2


def test_429_waits_for_retry_after_and_keeps_the_row(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.ehr.then(429, headers={"Retry-After": "40"})
    before = utcnow()
    assert deliver(peer.env.hub, outbox_id).status == "retry"
    row = peer.row(outbox_id)
    assert (row.status.value, row.last_status_code) == ("pending", 429)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=35)
    assert peer.ehr.posts == 1


def test_429_without_retry_after_waits_for_the_next_minute(peer: Peer) -> None:
    """eCW: no Retry-After, and the app is blocked until its per-minute counter resets."""
    outbox_id = peer.one()
    peer.ehr.then(429)
    before = utcnow()
    assert deliver(peer.env.hub, outbox_id).status == "retry"
    after = utcnow()
    row = peer.row(outbox_id)
    assert row.next_attempt_at is not None

    def next_minute(t: datetime) -> datetime:
        return t.replace(second=0, microsecond=0) + timedelta(minutes=1)

    # Not a fixed back-off: the start of the minute after the refusal (plus a second's guard).
    assert next_minute(before) <= row.next_attempt_at <= next_minute(after) + timedelta(seconds=3)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retries_quickly_then_goes_back_to_the_outbox(peer: Peer, status: int) -> None:
    outbox_id = peer.one()
    for _ in range(4):
        peer.ehr.then(status)
    assert deliver(peer.env.hub, outbox_id).status == "retry"
    row = peer.row(outbox_id)
    assert (row.status.value, row.last_status_code, row.attempts) == ("pending", status, 1)
    assert peer.ehr.posts == 4  # the first try and three quick retries
    assert peer.ehr.searches >= 3  # each retry after an ambiguous failure looked first
    assert deliver(peer.env.hub, outbox_id).status == "delivered"
    assert len(peer.ehr.stored) == 1


def test_5xx_after_the_ehr_stored_it_is_found_not_created_again(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.ehr.then(500, store=True)
    assert deliver(peer.env.hub, outbox_id).ehr_id == "obs-1"
    assert peer.ehr.posts == 1
    assert len(peer.ehr.stored) == 1


def test_transient_failures_past_the_maximum_age_become_dead_letters(peer: Peer) -> None:
    outbox_id = peer.one()
    peer.env.hub.settings.delivery_max_age_s = 0.001
    for _ in range(4):
        peer.ehr.then(503)
    assert deliver(peer.env.hub, outbox_id).status == "dead"
    assert peer.row(outbox_id).dead_reason == "max_age"


def test_without_conditional_create_only_a_resend_searches_first(hub: Hub) -> None:
    ehr = ScriptedEhr(conditional_create=False)
    with ServerThread(ehr.app) as url:
        p = Peer(make_env(hub, url, ehr_patient_id="p-1"), ehr)
        outbox_id = p.one()
        # A fresh row cannot be in the EHR yet: create at once, no search (one call, not two).
        assert deliver(hub, outbox_id).status == "delivered"
        assert (ehr.searches, ehr.posts) == (0, 1)
        # After an ambiguous failure the retry looks first, and finds what the lost 201 stored.
        second = p.one_more()
        ehr.then(503, store=True)
        assert deliver(hub, second).status == "delivered"
        assert (ehr.searches, ehr.posts) == (1, 2)
        assert len(ehr.stored) == 2


def test_posting_many_readings_makes_one_row_per_observation(peer: Peer) -> None:
    with hub_http(peer.env.hub) as url:
        # BP with pulse = 2, SpO2 with pulse = 2, weight = 1, glucose = 1.
        assert post_readings(peer.env, url, 4) == 6
