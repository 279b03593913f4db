"""HL7 v2 (SPEC §4 HL7 v2 bullet, §7 last bullet): ADT patient feed in, ORU^R01 results out, over MLLP.

Layers, each usable alone: ``mllp/`` (bytes ↔ frames, server, client) → ``parsing`` (frame →
message, via python-hl7) → ``adt`` / ``patient_feed`` / ``oru`` (message ↔ domain) → ``inbound``
(store, apply, acknowledge). Nothing here imports a web framework; the API lives in ``api/hl7.py``.
"""
