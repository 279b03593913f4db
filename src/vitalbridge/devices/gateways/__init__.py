"""Gateway adapters, one module per gateway kind (SPEC §5). Add a kind: one module + one line here."""

from __future__ import annotations

from vitalbridge.devices.gateways.base import GatewayAdapter, GatewayKind, Page, ParseResult
from vitalbridge.devices.gateways.mioconnect import MioConnectAdapter

ADAPTERS: dict[GatewayKind, GatewayAdapter] = {
    GatewayKind.mioconnect: MioConnectAdapter(),
}


def adapter_for(kind: GatewayKind) -> GatewayAdapter:
    return ADAPTERS[kind]


__all__ = ["ADAPTERS", "GatewayAdapter", "GatewayKind", "Page", "ParseResult", "adapter_for"]
