"""MLLP transport (HL7 MLLP Release 2): framing, an asyncio server and client, TLS contexts."""
