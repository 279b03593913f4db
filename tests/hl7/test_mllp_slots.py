"""Connection slots of the MLLP listener: peers that hold connections open without sending messages
lose them, and one client address cannot take the slots the EHR's interface engine needs.

Other loopback addresses (127.0.0.2 …) play other hosts; the EHR connects from 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.hl7.support import FACILITY, Peer, ack_fields, listener, make_site
from vitalbridge.hl7v2.mllp.server import Limits, peer_key
from vitalbridge.runtime import Hub

FLOODER = "127.0.0.2"


def a04(n: int) -> bytes:
    return (
        f"MSH|^~\\&|ECWADT|{FACILITY}|VITALBRIDGE|VITALBRIDGE|20240601080000||ADT^A04^ADT_A01|SLOT-{n}|P|2.5.1\r"
        f"EVN|A04|20240601080000\r"
        f"PID|1||S{n:05d}^^^{FACILITY}^MR||Slotname^Pat{n}||19600101|F\r"
    ).encode()


def accepted(ack: bytes) -> bool:
    return ack_fields(ack)["MSA"][1] == "AA"


def wait_until(condition: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def closed_while_sending(peer: Peer, chunk: bytes, within: float = 15.0) -> bool:
    """Keep sending ``chunk`` every ~0.1 s; True once the server has closed the connection."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            peer.send_raw(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return True
        if peer.closed_by_server(within=0.1):
            return True
    return False


def test_restarting_a_frame_does_not_reset_the_message_deadline(hub: Hub) -> None:
    make_site(hub)
    with listener(hub, Limits(frame_timeout_s=0.5, idle_timeout_s=60)) as srv:
        with Peer(srv.port) as restarter:
            restarter.send_raw(b"\x0b" + a04(1)[:30])
            # Each <VT> abandons the open frame and begins another: the whole message's clock keeps running.
            assert closed_while_sending(restarter, b"\x0b" + a04(1)[:30])
        assert srv.server.stats.timeouts == 1
        with Peer(srv.port) as ehr:
            assert accepted(ehr.exchange(a04(2)))


def test_bytes_between_frames_do_not_keep_a_connection_alive(hub: Hub) -> None:
    make_site(hub)
    with listener(hub, Limits(frame_timeout_s=30, idle_timeout_s=0.5)) as srv, Peer(srv.port) as talker:
        assert accepted(talker.exchange(a04(1)))
        # Line noise after the last message is skipped, and it does not count as traffic.
        assert closed_while_sending(talker, b"\r\n")
        assert srv.server.stats.timeouts == 1


def test_one_address_cannot_take_the_ehrs_slots(hub: Hub) -> None:
    make_site(hub)
    limits = Limits(frame_timeout_s=30, idle_timeout_s=60, max_connections=6, max_connections_per_peer=3)
    with listener(hub, limits) as srv, Peer(srv.port) as ehr:
        assert accepted(ehr.exchange(a04(1)))
        flood = [Peer(srv.port, source=FLOODER) for _ in range(10)]
        try:
            # Three are kept (idle, holding their slots); the other seven are closed on accept.
            assert wait_until(lambda: srv.server.stats.refused == 7)
            assert srv.server.stats.connections == 4
            assert sum(not p.closed_by_server(within=0.2) for p in flood) == 3
            # The EHR's open connection is untouched, and it can open another one.
            assert accepted(ehr.exchange(a04(2)))
            with Peer(srv.port) as second:
                assert accepted(second.exchange(a04(3)))
        finally:
            for p in flood:
                p.close()
        # Slots are given back once the server has seen the flood's connections close.
        kept: list[Peer] = []

        def reconnects() -> bool:
            later = Peer(srv.port, source=FLOODER)
            kept.append(later)
            return not later.closed_by_server(within=0.2)

        try:
            assert wait_until(reconnects)
        finally:
            for p in kept:
                p.close()


def test_all_slots_taken_refuses_even_a_new_address(hub: Hub) -> None:
    make_site(hub)
    limits = Limits(frame_timeout_s=30, idle_timeout_s=60, max_connections=2, max_connections_per_peer=1)
    with listener(hub, limits) as srv, Peer(srv.port) as ehr, Peer(srv.port, source=FLOODER) as other:
        assert accepted(ehr.exchange(a04(1)))
        assert wait_until(lambda: srv.server.stats.connections == 2)
        with Peer(srv.port, source="127.0.0.3") as third:
            assert third.closed_by_server(within=10)
        assert not other.closed_by_server(within=0.2)
        assert srv.server.stats.refused == 1


def test_one_ipv6_site_counts_as_one_peer() -> None:
    # A host given a /64 can connect from any of its addresses; they share one allowance.
    assert peer_key("2001:db8:1:2::10") == peer_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert peer_key("2001:db8:1:3::10") != peer_key("2001:db8:1:2::10")
    assert peer_key("fe80::1%eth0") == "fe80::/64"
    # IPv4 (also when a dual-stack socket reports it IPv4-mapped) counts per address.
    assert peer_key("::ffff:192.0.2.7") == peer_key("192.0.2.7") == "192.0.2.7"
    assert peer_key("192.0.2.8") != peer_key("192.0.2.7")
