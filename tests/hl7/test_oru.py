"""ORU^R01: building from typed inputs, sending over MLLP and classifying the ACK."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import hl7
import pytest
from sqlalchemy import select

from tests.hl7.results_peer import ResultsInterface
from tests.hl7.support import LoopThread, listener, make_site
from vitalbridge.audit.models import AuditEntry
from vitalbridge.errors import ConfigurationError, ValidationFailed
from vitalbridge.hl7v2.codes import AckCode
from vitalbridge.hl7v2.delivery import deliver_oru, send_oru
from vitalbridge.hl7v2.errors import (
    Hl7AckTimeout,
    Hl7ApplicationError,
    Hl7ApplicationReject,
    Hl7DeliveryError,
    Hl7Nak,
    Hl7TransportError,
)
from vitalbridge.hl7v2.mllp.client import MllpClient
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.hl7v2.oru import BuiltOru, OruComponent, OruMeasurement, OruParties, OruPatient, build_oru
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

EST = timezone(timedelta(hours=-5))
PATIENT = OruPatient(
    mrn="251001",
    mrn_authority="NORTHCLINIC",
    ehr_id="e-77",
    family_name="Fakename",
    given_name="Elena",
    gender="female",
)
BP = OruMeasurement(
    measurement_id="m-0001",
    loinc="85354-9",
    display="Blood pressure panel",
    observed_at=datetime(2024, 5, 1, 7, 30, 5, tzinfo=EST),
    components=(
        OruComponent("8480-6", "Systolic blood pressure", 128, "mm[Hg]"),
        OruComponent("8462-4", "Diastolic blood pressure", Decimal("82"), "mm[Hg]"),
    ),
    device_id="IMEI-356938035643809",
)
PULSE = OruMeasurement(
    measurement_id="m-0002",
    loinc="8867-4",
    display="Heart rate",
    observed_at=datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC),
    components=(OruComponent("8867-4", "Heart rate", 71.0, "/min"),),
)


def parsed(oru: BuiltOru) -> Any:
    return hl7.parse(oru.payload.decode("utf-8"))


def test_bp_panel_is_one_obr_with_two_obx() -> None:
    oru = build_oru(PATIENT, BP, parties=OruParties("EHRAPP", "SITE1"), now=datetime(2024, 5, 1, 13, 0, tzinfo=UTC))
    msg = parsed(oru)
    assert [str(s[0]) for s in msg] == ["MSH", "PID", "ORC", "OBR", "OBX", "OBX"]
    msh = msg.segment("MSH")
    assert str(msh[9]) == "ORU^R01^ORU_R01"
    assert str(msh[12]) == "2.5.1"
    assert str(msh[18]) == "UNICODE UTF-8"
    assert (str(msh[3]), str(msh[5]), str(msh[6]), str(msh[7])) == (
        "VITALBRIDGE",
        "EHRAPP",
        "SITE1",
        "20240501130000+0000",
    )
    assert str(msh[10]) == oru.control_id
    assert len(oru.control_id) == 20
    assert str(msg.segment("PID")[3]) == "251001^^^NORTHCLINIC^MR~e-77^^^^PI"
    obr = msg.segment("OBR")
    assert (str(obr[3]), str(obr[4]), str(obr[7]), str(obr[25])) == (
        "m-0001^VITALBRIDGE",
        "85354-9^Blood pressure panel^LN",
        "20240501073005-0500",
        "F",
    )
    systolic, diastolic = msg.segments("OBX")
    assert [str(systolic[i]) for i in (1, 2, 3, 5, 6, 11, 14, 18, 21)] == [
        "1",
        "NM",
        "8480-6^Systolic blood pressure^LN",
        "128",
        "mm[Hg]^mm[Hg]^UCUM",
        "F",
        "20240501073005-0500",
        "IMEI-356938035643809",
        "m-0001.1^VITALBRIDGE",
    ]
    assert (str(diastolic[3]), str(diastolic[5]), str(diastolic[21])) == (
        "8462-4^Diastolic blood pressure^LN",
        "82",
        "m-0001.2^VITALBRIDGE",
    )


def test_several_measurements_and_stable_control_id() -> None:
    first = build_oru(PATIENT, [BP, PULSE])
    again = build_oru(PATIENT, [BP, PULSE], now=datetime(2030, 1, 1, tzinfo=UTC))
    assert first.control_id == again.control_id  # a resend names itself the same way
    assert build_oru(PATIENT, PULSE).control_id != first.control_id
    msg = parsed(first)
    assert [str(o[1]) for o in msg.segments("OBR")] == ["1", "2"]
    assert str(msg.segments("OBX")[2][5]) == "71"
    assert first.measurement_ids == ("m-0001", "m-0002")


def test_special_characters_are_escaped() -> None:
    patient = OruPatient(mrn="A|1^2", family_name="O'Brien & Söhne", given_name="Zoë~Ann\\X")
    measurement = OruMeasurement(
        "id|with^delims",
        "29463-7",
        "Body weight (scale)",
        datetime(2024, 1, 1, tzinfo=UTC),
        [OruComponent("29463-7", "Body weight", "81.50", "kg")],
    )
    text = build_oru(patient, measurement).text
    assert "A\\F\\1\\S\\2^^^^MR" in text
    assert "O'Brien \\T\\ Söhne^Zoë\\R\\Ann\\E\\X" in text
    assert "id\\F\\with\\S\\delims^VITALBRIDGE" in text
    msg = hl7.parse(text)
    assert len(msg.segment("PID")) == 6  # no field split by a stray delimiter
    assert str(msg.segment("OBX")[5]) == "81.5"
    assert msg.unescape(str(msg.segment("PID")[5][0][1])) == "Zoë~Ann\\X"


@pytest.mark.parametrize(
    ("patient", "measurement", "loc"),
    [
        (OruPatient(), PULSE, ("patient",)),
        (
            PATIENT,
            OruMeasurement("m", "8867-4", "HR", datetime(2024, 1, 1), [OruComponent("8867-4", "HR", 1, "/min")]),
            ("measurements", 0, "observed_at"),
        ),
        (
            PATIENT,
            OruMeasurement("m", "8867-4", "HR", datetime(2024, 1, 1, tzinfo=UTC), []),
            ("measurements", 0, "components"),
        ),
        (
            PATIENT,
            OruMeasurement(
                "m",
                "8867-4",
                "HR",
                datetime(2024, 1, 1, tzinfo=UTC),
                [OruComponent("8867-4", "HR", float("nan"), "/min")],
            ),
            ("measurements", 0, "components", 0, "value"),
        ),
        (
            PATIENT,
            OruMeasurement(
                "m", "8867-4", "HR", datetime(2024, 1, 1, tzinfo=UTC), [OruComponent("8867-4", "HR", "12e", "/min")]
            ),
            ("measurements", 0, "components", 0, "value"),
        ),
        (
            PATIENT,
            OruMeasurement(
                "m", "8867-4", "HR", datetime(2024, 1, 1, tzinfo=UTC), [OruComponent("8867-4", "HR", True, "/min")]
            ),
            ("measurements", 0, "components", 0, "value"),
        ),
        (
            PATIENT,
            OruMeasurement(
                "m", "8867-4", "HR", datetime(2024, 1, 1, tzinfo=UTC), [OruComponent("8867-4", "HR", 60, "")]
            ),
            ("measurements", 0, "components", 0, "unit"),
        ),
    ],
)
def test_invalid_inputs_are_refused_with_the_field(
    patient: OruPatient, measurement: OruMeasurement, loc: tuple[object, ...]
) -> None:
    with pytest.raises(ValidationFailed) as info:
        build_oru(patient, measurement)
    assert loc in [e.loc for e in info.value.field_errors]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_send_oru_delivered_and_filed() -> None:
    ehr = ResultsInterface(known_mrns={"251001"})
    oru = build_oru(PATIENT, [BP, PULSE])
    with LoopThread(ehr) as srv:
        result = run(send_oru(oru, host="127.0.0.1", port=srv.port, timeout=10))
    assert result.ack_code is AckCode.AA
    assert result.ack_control_id == f"ACK-{oru.control_id}"
    assert ehr.filed[oru.control_id] == [
        ("8480-6", "128", "mm[Hg]"),
        ("8462-4", "82", "mm[Hg]"),
        ("8867-4", "71", "/min"),
    ]


def test_send_oru_application_error_is_permanent_with_text() -> None:
    ehr = ResultsInterface(known_mrns={"someone-else"})
    with LoopThread(ehr) as srv, pytest.raises(Hl7ApplicationError) as info:
        run(send_oru(build_oru(PATIENT, BP), host="127.0.0.1", port=srv.port, timeout=10))
    err = info.value
    assert err.transient is False
    assert isinstance(err, Hl7Nak)
    assert err.ack_code is AckCode.AE
    assert err.error_codes == ["204"]
    assert err.text == "patient not on file"
    # The exception's message carries codes only; the receiver's free text stays in .text.
    assert "patient not on file" not in str(err)
    assert ehr.filed == {}


def test_send_oru_reject_from_the_hubs_own_adt_listener(hub: Hub) -> None:
    """A real AR: the hub's ADT listener does not take ORU (AR 200)."""
    make_site(hub, facility="VITALBRIDGE")  # the ORU's MSH-4, so routing passes and the type is judged
    with listener(hub) as srv, pytest.raises(Hl7ApplicationReject) as info:
        run(send_oru(build_oru(PATIENT, BP), host="127.0.0.1", port=srv.port, timeout=10))
    assert info.value.transient is False
    assert info.value.error_codes == ["200"]


def test_send_oru_timeout_is_transient_and_closes_the_connection() -> None:
    ehr = ResultsInterface(known_mrns={"251001"}, stall=True)
    with LoopThread(ehr) as srv:

        async def attempt() -> MllpClient:
            client = MllpClient("127.0.0.1", srv.port)
            with pytest.raises(Hl7AckTimeout) as info:
                await send_oru(build_oru(PATIENT, BP), client=client, timeout=0.3)
            assert info.value.transient is True
            assert isinstance(info.value, Hl7TransportError)
            return client

        client = run(attempt())
    assert not client.connected  # a late ACK cannot be read as the next message's answer


def test_send_oru_connection_refused_is_transient() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(Hl7TransportError) as info:
        run(send_oru(build_oru(PATIENT, BP), host="127.0.0.1", port=port, timeout=5))
    assert info.value.transient is True


def test_stale_ack_is_skipped_and_connection_reused() -> None:
    ehr = ResultsInterface(known_mrns={"251001"}, stale_first=True)
    with LoopThread(ehr) as srv:

        async def two() -> tuple[int, int]:
            async with MllpClient("127.0.0.1", srv.port) as client:
                await send_oru(build_oru(PATIENT, BP), client=client, timeout=10)
                await send_oru(build_oru(PATIENT, PULSE), client=client, timeout=10)
                return client.skipped_replies, srv.server.stats.connections

        skipped, connections = run(two())
    assert skipped == 2
    assert connections == 1
    assert len(ehr.filed) == 2


def test_resend_after_lost_ack_is_filed_once() -> None:
    ehr = ResultsInterface(known_mrns={"251001"})
    oru = build_oru(PATIENT, BP)
    with LoopThread(ehr) as srv:
        run(send_oru(oru, host="127.0.0.1", port=srv.port, timeout=10))
        again = run(send_oru(build_oru(PATIENT, BP), host="127.0.0.1", port=srv.port, timeout=10))
    assert again.ack_code is AckCode.AA
    assert ehr.received == 2
    assert len(ehr.filed) == 1


def _interface(hub: Hub, practice_id: str, port: int | None) -> None:
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, practice_id)
        assert practice is not None
        practice.hl7_host, practice.hl7_port = ("127.0.0.1", port) if port else (None, None)


def test_deliver_oru_records_and_audits_each_outcome(hub: Hub) -> None:
    site = make_site(hub)
    ehr = ResultsInterface(known_mrns={"251001"})
    stranger = OruPatient(mrn="999", given_name="Secret", family_name="Person")
    with LoopThread(ehr) as srv:
        _interface(hub, site.practice_id, srv.port)
        delivered = run(deliver_oru(hub, site.practice_id, build_oru(PATIENT, BP), patient_id=None))
        with pytest.raises(Hl7ApplicationError):
            run(deliver_oru(hub, site.practice_id, build_oru(stranger, PULSE)))
        ehr.stall = True
        with pytest.raises(Hl7AckTimeout):
            run(deliver_oru(hub, site.practice_id, build_oru(PATIENT, PULSE), timeout=0.3))
    assert delivered.ack_code is AckCode.AA
    with hub.sessions() as session:
        stored = list(session.scalars(select(Hl7Message).order_by(Hl7Message.received_at)))
        audits = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "hl7.sent").order_by(AuditEntry.seq))
        )
    assert [(m.direction, m.status, m.ack_code) for m in stored] == [
        (Direction.outbound, Hl7MessageStatus.delivered, "AA"),
        (Direction.outbound, Hl7MessageStatus.failed, "AE"),
        (Direction.outbound, Hl7MessageStatus.unconfirmed, None),
    ]
    assert stored[1].error == "patient not on file"
    assert stored[1].error_code == "204"
    assert stored[0].raw.startswith(b"MSH|^~\\&|VITALBRIDGE")
    assert [a.outcome for a in audits] == ["success", "failure", "failure"]
    assert audits[0].resource_ids == [stored[0].id, "m-0001"]
    assert all("Secret" not in str(a.detail) and "patient not on file" not in str(a.detail) for a in audits)


def test_deliver_oru_needs_an_interface(hub: Hub) -> None:
    site = make_site(hub)
    with pytest.raises(ConfigurationError, match="no HL7 interface"):
        run(deliver_oru(hub, site.practice_id, build_oru(PATIENT, BP)))


def test_error_classes_carry_the_retry_decision() -> None:
    assert Hl7DeliveryError.transient
    assert Hl7TransportError.transient
    assert Hl7AckTimeout.transient
    assert not Hl7ApplicationError.transient
    assert not Hl7ApplicationReject.transient


def test_pid_carries_birth_date_and_sex_when_given() -> None:
    patient = OruPatient(mrn="1", birth_date=date(1950, 6, 1), gender="male")
    assert "|19500601|M" in build_oru(patient, PULSE).text
