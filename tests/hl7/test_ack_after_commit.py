"""An ACK means "stored": at the moment the sender holds the ACK, the raw message, its outcome and
the patient change it made are committed and visible to any other database connection (SPEC §4
HL7 v2; the lean per-message path must keep this promise)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tests.hl7.support import FACILITY, Peer, ack_fields, listener, make_site
from vitalbridge.runtime import Hub


def a08(n: int, mrn: str, family: str) -> bytes:
    return (
        f"MSH|^~\\&|ECWADT|{FACILITY}|VITALBRIDGE|VITALBRIDGE|20240601080000||ADT^A08^ADT_A01|UPD-{n}|P|2.5.1\r"
        f"EVN|A08|20240601080000\r"
        f"PID|1||{mrn}^^^{FACILITY}^MR||{family}^Pat||19600101|F\r"
    ).encode()


@contextmanager
def outside(db_url: str) -> Iterator[Any]:
    """A connection of its own, not the hub's engine or pool: it sees only what was committed."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
    else:
        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as pg:
            yield pg


def _one(conn: Any, sql: str, *params: str) -> tuple[Any, ...] | None:
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql.replace("%s", "?"), params).fetchone()  # type: ignore[no-any-return]
    row = conn.execute(sql, params).fetchone()
    return tuple(row) if row is not None else None


def test_each_ack_arrives_after_its_message_and_patient_change_are_committed(hub: Hub, db_url: str) -> None:
    make_site(hub)
    sent: list[bytes] = []
    with listener(hub) as srv, Peer(srv.port) as peer, outside(db_url) as conn:
        for n in range(60):
            # Ten patients, each updated six times: the family name is the message number, so an
            # ACK read before its update committed would show an older name.
            message = a08(n, f"U{n % 10:03d}", f"Name{n:03d}")
            sent.append(message)
            ack = peer.exchange(message)
            assert ack_fields(ack)["MSA"][1:3] == ["AA", f"UPD-{n}"]
            stored = _one(
                conn,
                "SELECT raw, status, ack_code, ack_control_id, patient_id FROM hl7_messages WHERE control_id = %s",
                f"UPD-{n}",
            )
            assert stored is not None, f"message {n} was acknowledged before it was committed"
            raw, status, ack_code, ack_control_id, patient_id = stored
            assert bytes(raw) == message
            assert (status, ack_code, ack_control_id) == ("accepted", "AA", ack_fields(ack)["MSH"][9])
            patient = _one(conn, "SELECT mrn, family_name FROM patients WHERE id = %s", patient_id)
            assert patient == (f"U{n % 10:03d}", f"Name{n:03d}")
            audited = _one(
                conn,
                "SELECT count(*) FROM audit_entries WHERE action = 'hl7.received' AND correlation_id = %s",
                f"UPD-{n}",
            )
            assert audited == (1,)


def test_a_refused_update_leaves_the_patient_as_it_was(hub: Hub, db_url: str) -> None:
    """Without a savepoint on the update path, a refusal must still change nothing but the log."""
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer, outside(db_url) as conn:
        assert ack_fields(peer.exchange(a08(1, "R001", "Before")))["MSA"][1] == "AA"
        # PID-7 is not a date: refused with AE after the patient was found.
        bad = a08(2, "R001", "After").replace(b"||19600101|F", b"||1960XX01|F")
        f = ack_fields(peer.exchange(bad))
        assert f["MSA"][1] == "AE"
        assert _one(conn, "SELECT family_name FROM patients WHERE mrn = %s", "R001") == ("Before",)
        assert _one(conn, "SELECT status, ack_code FROM hl7_messages WHERE control_id = %s", "UPD-2") == (
            "error",
            "AE",
        )
