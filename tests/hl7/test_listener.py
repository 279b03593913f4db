"""The MLLP listener end to end: real sockets, the real inbound pipeline, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import select

from tests.hl7.support import FACILITY, Peer, ack_fields, listener, make_site, one, sample
from vitalbridge.audit.models import AuditEntry
from vitalbridge.errors import Conflict
from vitalbridge.hl7v2.mllp.server import Limits
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub


def a04(n: int, *, mrn: str | None = None, facility: str = FACILITY, version: str = "2.5.1") -> bytes:
    return (
        f"MSH|^~\\&|ECWADT|{facility}|VITALBRIDGE|VITALBRIDGE|20240601080000||ADT^A04^ADT_A01|BULK-{n}|P|{version}\r"
        f"EVN|A04|20240601080000\r"
        f"PID|1||{mrn or f'B{n:05d}'}^^^{facility}^MR||Bulkname^Pat{n}||19600101|F\r"
    ).encode()


def rows(hub: Hub) -> list[Hl7Message]:
    with hub.sessions() as session:
        return list(session.scalars(select(Hl7Message).order_by(Hl7Message.received_at)))


def patients(hub: Hub) -> list[Patient]:
    with hub.sessions() as session:
        return list(session.scalars(select(Patient).order_by(Patient.mrn)))


def msa(ack: bytes) -> list[str]:
    return ack_fields(ack)["MSA"]


def test_one_message_per_connection(hub: Hub) -> None:
    site = make_site(hub)
    messages = sample("adt_v2.5.1.hl7")[:4]
    with listener(hub) as srv:
        for message in messages:
            with Peer(srv.port) as peer:
                ack = peer.exchange(message)
            assert msa(ack)[:2] == ["MSA", "AA"], ack
        assert srv.server.stats.connections == 4
    stored = rows(hub)
    assert [r.control_id for r in stored] == ["N251-0001", "N251-0002", "N251-0003", "N251-0004"]
    assert {r.status for r in stored} == {Hl7MessageStatus.accepted}
    assert {r.practice_id for r in stored} == {site.practice_id}
    assert stored[0].raw == messages[0]
    people = patients(hub)
    assert [(p.mrn, p.family_name, p.given_name) for p in people] == [
        ("251001", "Fakename-Ortiz", "Elena"),
        ("251002", "Mockley", "Farid Q"),
    ]
    assert people[1].identifiers == [
        {"value": "251002", "type": "MR", "system": "NORTHCLINIC"},
        {"value": "PX-77", "type": "PI", "system": "NORTHCLINIC"},
    ]


def test_thousand_messages_on_one_connection(hub: Hub) -> None:
    make_site(hub)
    total, batch = 1000, 100
    acks: list[bytes] = []
    with listener(hub) as srv, Peer(srv.port, timeout=60) as peer:
        for start in range(0, total, batch):
            # Several frames in flight at once, as a pipelining sender would do.
            peer.send_raw(b"".join(b"\x0b" + a04(n) + b"\x1c\r" for n in range(start, start + batch)))
            acks += [peer.receive() for _ in range(batch)]
        assert srv.server.stats.connections == 1
    assert [msa(a)[1:3] for a in acks] == [["AA", f"BULK-{n}"] for n in range(total)]
    stored = rows(hub)
    assert len(stored) == total
    assert {r.status for r in stored} == {Hl7MessageStatus.accepted}
    assert len(patients(hub)) == total


def test_message_split_one_byte_at_a_time(hub: Hub) -> None:
    make_site(hub)
    message = sample("adt_v2.4.hl7")[0]
    with listener(hub) as srv, Peer(srv.port) as peer:
        for byte in b"\x0b" + message + b"\x1c\r":
            peer.send_raw(bytes([byte]))
            time.sleep(0.0005)
        ack = peer.receive()
        reads = srv.server.stats.reads
    assert msa(ack)[:3] == ["MSA", "AA", "N24-0001"]
    assert reads > 10  # it really arrived in many pieces
    assert patients(hub)[0].mrn == "240001"


def test_garbage_between_frames_is_skipped(hub: Hub) -> None:
    make_site(hub)
    first, second = sample("adt_v2.3.hl7")[:2]
    junk = [b"\r\n", b"GET / HTTP/1.0\r\n\r\n", b"\x00\xff\xfe"]
    stream = junk[0] + b"\x0b" + first + b"\x1c\r" + junk[1] + b"\x0b" + second + b"\x1c\r" + junk[2]
    with listener(hub) as srv, Peer(srv.port) as peer:
        peer.send_raw(stream)
        acks = [peer.receive(), peer.receive()]
        # The connection is still in step after the trailing junk.
        third = peer.exchange(sample("adt_v2.3.hl7")[2])
        garbage = srv.server.stats.garbage_bytes
    assert [msa(a)[1:3] for a in [*acks, third]] == [["AA", "N23-0001"], ["AA", "N23-0002"], ["AA", "N23-0003"]]
    assert garbage == sum(len(j) for j in junk)
    assert len(rows(hub)) == 3


def test_oversize_message_is_nakked_and_the_server_keeps_serving(hub: Hub) -> None:
    make_site(hub)
    limit = 2048
    big = a04(1)[:-1] + b"\rNTE|1||" + b"very long note " * 400 + b"\r"
    assert len(big) > limit
    with listener(hub, Limits(max_message_bytes=limit, frame_timeout_s=10)) as srv:
        with Peer(srv.port) as peer:
            nak = peer.exchange(big)
            # Same connection, next message: still served.
            ok = peer.exchange(a04(2))
        with Peer(srv.port) as other:
            ok_other = other.exchange(a04(3))
    f = ack_fields(nak)
    assert f["MSA"][1:3] == ["AR", "BULK-1"]
    assert f"at most {limit}" in f["MSA"][3]
    assert msa(ok)[1] == "AA"
    assert msa(ok_other)[1] == "AA"
    stored = {r.control_id: r for r in rows(hub)}
    rejected = stored["BULK-1"]
    assert rejected.status is Hl7MessageStatus.rejected
    assert rejected.raw_truncated
    assert rejected.size == len(big)
    assert rejected.raw.startswith(b"MSH|")
    assert b"PID" not in rejected.raw
    assert [p.mrn for p in patients(hub)] == ["B00002", "B00003"]


def test_oversize_message_without_readable_header_closes_the_connection(hub: Hub) -> None:
    make_site(hub)
    with listener(hub, Limits(max_message_bytes=1024, frame_timeout_s=10)) as srv:
        with Peer(srv.port) as peer:
            peer.send_raw(b"\x0b" + b"\x00junk" * 500 + b"\x1c\r")
            assert peer.closed_by_server(within=10)
        with Peer(srv.port) as other:
            assert msa(other.exchange(a04(1)))[1] == "AA"
    assert [r.status for r in rows(hub)] == [Hl7MessageStatus.rejected, Hl7MessageStatus.accepted]


def test_slow_client_is_disconnected(hub: Hub) -> None:
    make_site(hub)
    with listener(hub, Limits(frame_timeout_s=0.5, idle_timeout_s=30)) as srv:
        with Peer(srv.port) as slow:
            slow.send_raw(b"\x0b" + a04(1)[:40])  # starts a message, never finishes it
            assert slow.closed_by_server(within=10)
        with Peer(srv.port) as other:
            assert msa(other.exchange(a04(2)))[1] == "AA"
        assert srv.server.stats.timeouts == 1
    assert [r.control_id for r in rows(hub)] == ["BULK-2"]


def test_idle_connection_is_closed(hub: Hub) -> None:
    make_site(hub)
    with listener(hub, Limits(frame_timeout_s=10, idle_timeout_s=0.5)) as srv, Peer(srv.port) as peer:
        assert msa(peer.exchange(a04(1)))[1] == "AA"
        assert peer.closed_by_server(within=10)


def test_wrong_version_is_rejected(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        ack = peer.exchange(one("malformed/unsupported_version.hl7"))
    f = ack_fields(ack)
    assert f["MSA"][1:4] == [
        "AR",
        "M-0002",
        "unsupported version in MSH-12; accepted versions are 2.3 to 2.8.2"
        " (2.3, 2.3.1, 2.4, 2.5, 2.5.1, 2.6, 2.7, 2.7.1, 2.8, 2.8.1, 2.8.2)",
    ]
    assert f["ERR"][2:5] == ["MSH^1^12", "203^Unsupported version id^HL70357", "E"]
    (row,) = rows(hub)
    assert (row.status, row.ack_code, row.error_code) == (Hl7MessageStatus.rejected, "AR", "203")
    assert patients(hub) == []


def test_missing_pid3_is_an_application_error_with_the_reason(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        ack = peer.exchange(one("malformed/missing_pid3.hl7"))
    f = ack_fields(ack)
    assert f["MSA"][1:4] == ["AE", "M-0001", "PID-3 patient identifier list is required"]
    assert f["ERR"][2:5] == ["PID^1^3", "101^Required field missing^HL70357", "E"]
    (row,) = rows(hub)
    assert (row.status, row.error, row.error_location) == (
        Hl7MessageStatus.error,
        "PID-3 patient identifier list is required",
        "PID^1^3",
    )
    assert patients(hub) == []


def test_unknown_facility_is_rejected_and_kept_unrouted(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        ack = peer.exchange(one("malformed/unknown_facility.hl7"))
    f = ack_fields(ack)
    assert f["MSA"][1] == "AR"
    assert "SOUTHCLINIC" in f["MSA"][3]
    assert "not mapped" in f["MSA"][3]
    assert f["ERR"][2:4] == ["MSH^1^4", "103^Table value not found^HL70357"]
    (row,) = rows(hub)
    assert (row.status, row.organization_id, row.sending_facility) == (Hl7MessageStatus.rejected, None, "SOUTHCLINIC")
    assert patients(hub) == []


def test_a_second_organization_cannot_map_a_facility_so_the_feed_stays_with_its_owner(hub: Hub) -> None:
    owner = make_site(hub, "Org A")
    with pytest.raises(Conflict) as refused:
        make_site(hub, "Org B", code="P2")
    assert "Org A" not in str(refused.value)
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(a04(1)))
    assert f["MSA"][1] == "AA"
    assert {p.organization_id for p in patients(hub)} == {owner.org_id}


@pytest.mark.parametrize(
    ("name", "ack", "code"),
    [
        ("malformed/unsupported_event.hl7", "AR", "201"),
        ("malformed/unsupported_type.hl7", "AR", "200"),
        ("malformed/bad_birth_date.hl7", "AE", "102"),
        ("malformed/missing_control_id.hl7", "AR", "101"),
        ("malformed/a40_without_mrg.hl7", "AE", "100"),
        ("malformed/unknown_charset.hl7", "AR", "103"),
        ("malformed/invalid_utf8.hl7", "AR", "102"),
    ],
)
def test_malformed_samples_are_refused_with_a_code(hub: Hub, name: str, ack: str, code: str) -> None:
    site = make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(one(name)))
    assert f["MSA"][1] == ack
    assert f["ERR"][3].split("^")[0] == code
    (row,) = rows(hub)
    assert row.ack_code == ack
    assert row.error_code == code
    # Filed under the sender's practice, so its own team sees it through the API.
    assert row.practice_id == site.practice_id
    assert patients(hub) == []


def test_non_hl7_frame_gets_a_generic_reject(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(one("malformed/not_hl7.txt")))
    assert f["MSA"][1:3] == ["AR", ""]
    assert f["MSH"][11] == "2.5.1"
    (row,) = rows(hub)
    assert row.status is Hl7MessageStatus.rejected
    assert row.control_id == ""


def test_character_sets(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        latin = peer.exchange(one("adt_a04_8859-1.hl7"))
        utf8 = peer.exchange(one("adt_a04_utf8.hl7"))
    assert msa(latin)[1] == "AA"
    assert msa(utf8)[1] == "AA"
    assert ack_fields(latin)["MSH"][17] == "8859/1"
    assert ack_fields(utf8)["MSH"][17] == "UNICODE UTF-8"
    people = {p.mrn: p for p in patients(hub)}
    assert (people["260001"].family_name, people["260001"].given_name) == ("Muñoz", "Renée José")
    assert people["260001"].address is not None
    assert people["260001"].address["line"] == ["14 Rue François"]
    assert (people["260002"].family_name, people["260002"].given_name) == ("Łukasiewicz", "Zoë")
    assert {r.charset for r in rows(hub)} == {"8859/1", "UNICODE UTF-8"}


def test_duplicate_control_id_is_acknowledged_not_reapplied(hub: Hub) -> None:
    make_site(hub)
    message = a04(7)
    with listener(hub) as srv, Peer(srv.port) as peer:
        first = peer.exchange(message)
        # Someone edits the patient in the hub; a resend of the old message must not undo it.
        with hub.sessions() as session, session.begin():
            session.scalars(select(Patient)).one().phone = "edited"
        # A resend may carry a fresh MSH-7; it is still the same message.
        second = peer.exchange(message.replace(b"20240601080000||ADT", b"20240601090000||ADT"))
        reused = peer.exchange(a04(7, mrn="OTHER"))
    assert msa(first)[1:3] == ["AA", "BULK-7"]
    assert msa(second)[1:3] == ["AA", "BULK-7"]
    assert ack_fields(first)["MSH"][9] != ack_fields(second)["MSH"][9]  # each ACK has its own control id
    f = ack_fields(reused)
    assert f["MSA"][1] == "AR"
    assert f["ERR"][3].startswith("205^")
    original, duplicate, refused = rows(hub)
    assert duplicate.status is Hl7MessageStatus.duplicate
    assert duplicate.duplicate_of_id == original.id
    assert refused.status is Hl7MessageStatus.rejected
    (patient,) = patients(hub)
    assert patient.phone == "edited"
    assert patient.mrn == "B00007"


def test_a_refused_message_is_processed_again_when_resent(hub: Hub) -> None:
    site = make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        # Two registry patients share the MRN (e.g. from an earlier import): AE until fixed.
        with hub.sessions() as session, session.begin():
            for _ in range(2):
                session.add(
                    Patient(organization_id=site.org_id, practice_id=site.practice_id, mrn="B00001", identifiers=[])
                )
        first = ack_fields(peer.exchange(a04(1)))
        with hub.sessions() as session, session.begin():
            session.delete(session.scalars(select(Patient)).first())
        second = ack_fields(peer.exchange(a04(1)))
    assert first["MSA"][1] == "AE"
    assert first["ERR"][3].startswith("205^")
    assert second["MSA"][1] == "AA"
    assert patients(hub)[0].family_name == "Bulkname"


def _db_write_lock(db_url: str) -> tuple[object, threading.Event]:
    """Hold the database's write lock from outside the hub until the returned event is set."""
    release = threading.Event()
    locked = threading.Event()

    def hold() -> None:
        if db_url.startswith("sqlite"):
            conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(30)
            conn.execute("COMMIT")
            conn.close()
        else:
            with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                conn.execute("LOCK TABLE hl7_messages IN EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
                conn.commit()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert locked.wait(10)
    return thread, release


def test_raw_message_is_stored_before_the_ack_is_sent(hub: Hub, db_url: str) -> None:
    make_site(hub)
    message = a04(1)
    with listener(hub) as srv, Peer(srv.port) as peer:
        thread, release = _db_write_lock(db_url)
        try:
            peer.send(message)
            peer.sock.settimeout(1.0)
            # While the message cannot be written, no ACK may leave.
            with pytest.raises(TimeoutError):
                peer.receive()
        finally:
            release.set()
            thread.join(10)  # type: ignore[attr-defined]
        peer.sock.settimeout(15)
        ack = peer.receive()
        # The moment the ACK is here, the row is committed and visible to anyone.
        with hub.sessions() as session:
            row = session.scalars(select(Hl7Message)).one()
    assert msa(ack)[1] == "AA"
    assert row.raw == message
    assert row.ack_code == "AA"
    assert row.ack_control_id == ack_fields(ack)["MSH"][9]


def test_internal_failure_is_stored_as_ae_207_and_rolled_back(hub: Hub) -> None:
    from vitalbridge.patients import merge

    make_site(hub)

    def broken_step(*_args: object) -> None:
        raise RuntimeError("a feature's merge step failed")

    merge.register_merge_step("broken-for-test", broken_step)
    try:
        with listener(hub) as srv, Peer(srv.port) as peer:
            for message in sample("adt_v2.3.hl7"):
                last = peer.exchange(message)
    finally:
        merge.unregister_merge_step("broken-for-test")
    f = ack_fields(last)
    assert f["MSA"][1] == "AE"
    assert f["ERR"][3].startswith("207^")
    merged = rows(hub)[-1]
    assert (merged.control_id, merged.status, merged.error_code) == ("N23-0005", Hl7MessageStatus.error, "207")
    assert merged.dedup_key is None  # a resend after the fix is applied, not answered from memory
    # Nothing of the failed merge was kept.
    assert {p.status.value for p in patients(hub)} == {"active"}


def test_message_that_cannot_be_stored_gets_no_ack(tmp_path: object, settings: object) -> None:
    from pathlib import Path

    from vitalbridge.runtime import build_hub
    from vitalbridge.settings import Settings

    assert isinstance(settings, Settings)
    assert isinstance(tmp_path, Path)
    # A database without the schema: neither the message nor its failure can be written.
    broken = build_hub(settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}"}))
    try:
        with listener(broken) as srv, Peer(srv.port) as peer:
            peer.send(a04(1))
            assert peer.closed_by_server(within=10)
            assert srv.server.stats.handler_errors == 1
    finally:
        broken.close()


def test_every_message_is_audited_without_phi(hub: Hub) -> None:
    site = make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        for message in [*sample("adt_v2.4.hl7"), one("malformed/missing_pid3.hl7")]:
            peer.exchange(message)
    with hub.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "hl7.received")))
        merged = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "patient.merged")))
    assert len(entries) == 6
    assert [e.detail["control_id"] for e in entries] == [f"N24-000{i}" for i in range(1, 6)] + ["M-0001"]
    assert [e.detail["ack_code"] for e in entries] == ["AA"] * 5 + ["AE"]
    assert {e.organization_id for e in entries} == {site.org_id}
    assert entries[0].actor == f"hl7:{FACILITY}"
    assert len(merged) == 1
    dumped = json.dumps([e.detail for e in entries + merged]) + " ".join(str(e.resource_ids) for e in entries)
    for phi in ("Exampleton", "Clara", "Placeholder", "19600105", "900-00-0001", "5550201", "240001", "Maple"):
        assert phi not in dumped


def test_listener_runs_inside_the_hub_when_the_port_is_set(hub: Hub) -> None:
    from tests.support import api_client

    make_site(hub)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    hub.settings = hub.settings.model_copy(update={"hl7_port": port})
    with api_client(hub, background=True) as client:
        assert client.get("/healthz").status_code == 200
        with Peer(port) as peer:
            assert msa(peer.exchange(a04(1)))[1] == "AA"
    # Stopped with the hub.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert rows(hub)[0].direction is Direction.inbound


def test_hostile_header_values_are_stored_and_answered(hub: Hub) -> None:
    make_site(hub)
    long_facility = "F" * 300
    hostile = [
        a04(1, facility=long_facility),
        b"MSH|^~\\&|APP\x00X|NORTH\x00CLINIC|||1||ADT^A0\x004|C\x00TRL|P|2.5.1\rPID|1||X1^^^^MR||Doe^J",
        b"MSH|^~\\&|"
        + b"A" * 400
        + b"|NORTHCLINIC|||1||"
        + b"Z" * 100
        + b"^"
        + b"Y" * 100
        + b"|"
        + b"C" * 199
        + b"|P|2.5.1",
    ]
    with listener(hub) as srv, Peer(srv.port) as peer:
        acks = [msa(peer.exchange(m))[1] for m in hostile]
    assert acks == ["AR", "AA", "AR"]
    stored = rows(hub)
    assert len(stored) == 3
    assert stored[1].control_id == "CTRL"
    assert stored[1].sending_facility == "NORTHCLINIC"
    assert len(stored[2].control_id) == 199
    assert len(stored[0].sending_facility) == 200
