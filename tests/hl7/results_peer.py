"""A stand-in for an EHR's HL7 results interface, served over real MLLP on loopback.

It reads each message with python-hl7 directly (not with vitalbridge's parser, so the builder is
checked by an independent reader) and answers the way a results interface does: AR for a version
or type it does not take, AE for a patient it does not know or a value that is not numeric, AA
otherwise — and it files each control id once. ``stall`` makes it go silent (timeouts);
``stale_first`` makes it send an ACK for some other message before the real one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import hl7


@dataclass
class ResultsInterface:
    known_mrns: set[str]
    stall: bool = False
    stale_first: bool = False
    filed: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # control id → OBX (code, value, unit)
    received: int = 0

    async def on_frame(self, payload: bytes, peer: str) -> bytes | None:
        self.received += 1
        if self.stall:
            await asyncio.sleep(3600)  # cancelled when the server stops
            return None
        msg: Any = hl7.parse(payload.decode("utf-8"))
        msh = msg.segment("MSH")
        control_id = str(msh[10])
        ack = self._answer(msg, control_id)
        if self.stale_first:
            # Two frames in one reply: the server frames the whole, so close the first one here.
            return self._ack("AA", "SOMETHING-ELSE", "") + b"\x1c\r\x0b" + ack
        return ack

    async def on_oversize(self, head: bytes, size: int, peer: str) -> bytes | None:
        return None

    def _answer(self, msg: Any, control_id: str) -> bytes:
        msh = msg.segment("MSH")
        if str(msh[12]) != "2.5.1":
            return self._ack("AR", control_id, "version not supported", "203")
        if str(msh[9]) != "ORU^R01^ORU_R01":
            return self._ack("AR", control_id, "message type not supported", "200")
        if control_id in self.filed:
            return self._ack("AA", control_id, "")
        pid = msg.segment("PID")
        mrns = [str(rep[0][0]) for rep in pid[3] if str(rep[4][0]) == "MR"]
        if not any(m in self.known_mrns for m in mrns):
            return self._ack("AE", control_id, "patient not on file", "204", "PID^1^3")
        results: list[tuple[str, str, str]] = []
        for obx in msg.segments("OBX"):
            value = str(obx[5])
            if str(obx[2]) == "NM":
                try:
                    float(value)
                except ValueError:
                    return self._ack("AE", control_id, "OBX-5 is not numeric", "102", "OBX^1^5")
            results.append((str(obx[3][0][0]), value, str(obx[6][0][0])))
        self.filed[control_id] = results
        return self._ack("AA", control_id, "")

    @staticmethod
    def _ack(code: str, control_id: str, text: str, err: str = "", location: str = "") -> bytes:
        segments = [
            f"MSH|^~\\&|EHR|SITE|VITALBRIDGE|VITALBRIDGE|20240101000000||ACK^R01^ACK|ACK-{control_id}|P|2.5.1",
            f"MSA|{code}|{control_id}|{text}",
        ]
        if err:
            segments.append(f"ERR||{location}|{err}^^HL70357|E")
        return ("\r".join(segments) + "\r").encode()
