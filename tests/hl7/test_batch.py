"""Frames holding more than one message: HL7 batches (FHS/BHS … BTS/FTS) are applied message by
message and answered with a response batch (HL7 v2.5.1 §2.10.3); several messages without an
envelope are refused whole. Splitting alone, then real MLLP sockets and the real pipeline."""

from __future__ import annotations

from sqlalchemy import select

from tests.hl7.support import Peer, listener, make_site
from vitalbridge.hl7v2.batch import split_frame
from vitalbridge.hl7v2.models import Hl7Message, Hl7MessageStatus
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub


def adt(control_id: str, mrn: str, *, pid3: str | None = None) -> bytes:
    pid3 = pid3 if pid3 is not None else f"{mrn}^^^NORTHCLINIC^MR"
    return (
        f"MSH|^~\\&|ECWADT|NORTHCLINIC|VITALBRIDGE|VITALBRIDGE|20250101080000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r"
        f"EVN|A04|20250101080000\r"
        f"PID|1||{pid3}||Batchname^B{mrn}||19800101|F\r"
    ).encode()


FHS = b"FHS|^~\\&|ECWADT|NORTHCLINIC|VITALBRIDGE|VITALBRIDGE|20250101080000||nightly.hl7||FILE-77\r"


def bhs(control_id: str) -> bytes:
    return f"BHS|^~\\&|ECWADT|NORTHCLINIC|VITALBRIDGE|VITALBRIDGE|20250101080000||ADT||{control_id}\r".encode()


def segments(reply: bytes) -> list[list[str]]:
    return [seg.split("|") for seg in reply.decode("latin-1").split("\r") if seg]


def msas(reply: bytes) -> list[list[str]]:
    return [s[1:3] for s in segments(reply) if s[0] == "MSA"]


def mrns(hub: Hub) -> list[str]:
    with hub.sessions() as session:
        return sorted(p.mrn for p in session.scalars(select(Patient)))


def rows(hub: Hub) -> list[Hl7Message]:
    with hub.sessions() as session:
        return list(session.scalars(select(Hl7Message).order_by(Hl7Message.control_id)))


# --- splitting ------------------------------------------------------------------------------------


def test_single_message_is_not_a_batch() -> None:
    frame = split_frame(adt("S-1", "1"))
    assert not frame.is_batch
    assert frame.problem is None
    assert len(frame.messages) == 1


def test_batch_is_split_per_message_with_lf_or_crlf_segments() -> None:
    raw = bhs("B-1") + adt("S-1", "1") + adt("S-2", "2") + b"BTS|2\r"
    for variant in (raw, raw.replace(b"\r", b"\n"), raw.replace(b"\r", b"\r\n")):
        frame = split_frame(variant)
        assert frame.is_batch
        assert frame.problem is None
        assert [m.split(b"|")[9] for m in frame.messages] == [b"S-1", b"S-2"]


def test_envelope_problems_refuse_the_whole_frame() -> None:
    cases = {
        bhs("B") + adt("S-1", "1") + b"BTS|3\r": "BTS-1 says 3",
        FHS + bhs("B") + adt("S-1", "1") + b"BTS|1\rFTS|2\r": "FTS-1 says 2",
        bhs("B") + b"PID|1||X^^^^MR\r" + adt("S-1", "1") + b"BTS|1\r": "outside any message",
        bhs("B") + adt("S-1", "1") + FHS + b"BTS|1\r": "FHS must be the first",
        bhs("B") + adt("S-1", "1") + b"BTS|1\rFTS|1\r" + adt("S-2", "2"): "follow the file trailer",
        adt("S-1", "1") + adt("S-2", "2") + adt("S-3", "3"): "holds 3 messages",
    }
    for raw, reason in cases.items():
        problem = split_frame(raw).problem
        assert problem is not None
        assert reason in problem


# --- over MLLP --------------------------------------------------------------------------------------


def test_batch_over_mllp_applies_each_message_and_answers_a_response_batch(hub: Hub) -> None:
    make_site(hub)
    raw = bhs("BATCH-1") + adt("B1-1", "701") + adt("B1-2", "702") + adt("B1-3", "703") + b"BTS|3\r"
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(raw)
    segs = segments(reply)
    assert [s[0] for s in segs] == ["BHS", "MSH", "MSA", "MSH", "MSA", "MSH", "MSA", "BTS"]
    header = segs[0]
    assert header[2:6] == ["VITALBRIDGE", "VITALBRIDGE", "ECWADT", "NORTHCLINIC"]
    assert header[11] == "BATCH-1"  # BHS-12 reference batch control id = the received BHS-11
    assert header[10] not in ("", "BATCH-1")  # BHS-11: the response batch's own id
    assert msas(reply) == [["AA", "B1-1"], ["AA", "B1-2"], ["AA", "B1-3"]]
    assert segs[-1][:2] == ["BTS", "3"]
    assert mrns(hub) == ["701", "702", "703"]
    assert [(r.control_id, r.status) for r in rows(hub)] == [
        ("B1-1", Hl7MessageStatus.accepted),
        ("B1-2", Hl7MessageStatus.accepted),
        ("B1-3", Hl7MessageStatus.accepted),
    ]


def test_file_of_two_batches_keeps_the_file_envelope(hub: Hub) -> None:
    make_site(hub)
    raw = (
        FHS
        + bhs("B-A")
        + adt("F-1", "711")
        + b"BTS|1\r"
        + bhs("B-B")
        + adt("F-2", "712")
        + adt("F-3", "713")
        + b"BTS|2\rFTS|2\r"
    )
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(raw)
    segs = segments(reply)
    assert [s[0] for s in segs] == ["FHS", "BHS", "MSH", "MSA", "BTS", "BHS", "MSH", "MSA", "MSH", "MSA", "BTS", "FTS"]
    assert segs[0][11] == "FILE-77"  # FHS-12 = received FHS-11
    assert [s[11] for s in segs if s[0] == "BHS"] == ["B-A", "B-B"]
    assert [s[1] for s in segs if s[0] == "BTS"] == ["1", "2"]
    assert segs[-1][:2] == ["FTS", "2"]
    assert mrns(hub) == ["711", "712", "713"]


def test_a_bad_message_in_a_batch_is_nakked_alone(hub: Hub) -> None:
    make_site(hub)
    raw = bhs("B-2") + adt("B2-1", "721") + adt("B2-2", "722", pid3="") + adt("B2-3", "723") + b"BTS|3\r"
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(raw)
    assert msas(reply) == [["AA", "B2-1"], ["AE", "B2-2"], ["AA", "B2-3"]]
    assert any(s[0] == "ERR" and s[2] == "PID^1^3" for s in segments(reply))
    assert mrns(hub) == ["721", "723"]


def test_a_resent_batch_is_not_applied_twice(hub: Hub) -> None:
    make_site(hub)
    raw = bhs("B-3") + adt("B3-1", "731") + adt("B3-2", "732") + b"BTS|2\r"
    with listener(hub) as srv, Peer(srv.port) as peer:
        first = peer.exchange(raw)
        again = peer.exchange(raw)
    assert msas(first) == msas(again) == [["AA", "B3-1"], ["AA", "B3-2"]]
    statuses = sorted(r.status.value for r in rows(hub))
    assert statuses == ["accepted", "accepted", "duplicate", "duplicate"]


def test_batch_without_trailer_and_empty_batch(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        open_ended = peer.exchange(bhs("B-4") + adt("B4-1", "741"))
        empty = peer.exchange(bhs("B-5") + b"BTS|0\r")
    assert msas(open_ended) == [["AA", "B4-1"]]
    assert [s[0] for s in segments(empty)] == ["BHS", "BTS"]
    assert segments(empty)[1][:2] == ["BTS", "0"]
    assert mrns(hub) == ["741"]


def test_batch_with_a_wrong_count_is_refused_whole_and_kept(hub: Hub) -> None:
    make_site(hub)
    raw = bhs("B-6") + adt("B6-1", "761") + adt("B6-2", "762") + b"BTS|5\r"
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(raw)
    assert msas(reply) == [["AR", "B6-1"], ["AR", "B6-2"]]
    bts = segments(reply)[-1]
    assert bts[:2] == ["BTS", "2"]
    assert "BTS-1 says 5" in bts[2]
    assert mrns(hub) == []
    assert [(r.control_id, r.status) for r in rows(hub)] == [
        ("B6-1", Hl7MessageStatus.rejected),
        ("B6-2", Hl7MessageStatus.rejected),
    ]


def test_two_messages_in_one_frame_without_envelope_are_refused_with_the_reason(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(adt("P-1", "781") + adt("P-2", "782"))
        # The connection still works: the next message, alone in its frame, is applied.
        alone = peer.exchange(adt("P-3", "783"))
    segs = segments(reply)
    assert [s[0] for s in segs] == ["MSH", "MSA", "ERR"]
    msa = segs[1]
    assert msa[1:3] == ["AR", "P-1"]
    assert "holds 2 messages" in msa[3]
    assert "BHS" in msa[3]
    assert segs[2][3].startswith("100^")
    assert msas(alone) == [["AA", "P-3"]]
    assert mrns(hub) == ["783"]
    # Nothing received is lost: both refused messages are in the log, as rejected.
    assert [(r.control_id, r.status) for r in rows(hub)] == [
        ("P-1", Hl7MessageStatus.rejected),
        ("P-2", Hl7MessageStatus.rejected),
        ("P-3", Hl7MessageStatus.accepted),
    ]


def test_file_envelope_without_batch_headers(hub: Hub) -> None:
    make_site(hub)
    raw = FHS + adt("FO-1", "791") + adt("FO-2", "792") + b"FTS|1\r"
    with listener(hub) as srv, Peer(srv.port) as peer:
        reply = peer.exchange(raw)
    segs = segments(reply)
    assert [s[0] for s in segs] == ["FHS", "MSH", "MSA", "MSH", "MSA", "FTS"]
    assert segs[0][11] == "FILE-77"
    assert msas(reply) == [["AA", "FO-1"], ["AA", "FO-2"]]
    assert mrns(hub) == ["791", "792"]
