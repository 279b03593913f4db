"""Benchmarks run on a machine without DNS (issue 20: ``python -m bench.ingest`` registered a
practice URL whose host had to resolve)."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
LOOPBACK_NAMES = {"localhost"}
_URL = re.compile(r"""\bhttps?://\[?([^/\]"'\s:{}]+)""")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_no_benchmark_names_a_host_outside_loopback() -> None:
    found = {
        (path.name, host)
        for path in sorted(BENCH.glob("*.py"))
        for host in _URL.findall(path.read_text())
        if not _is_loopback(host)
    }
    assert found == set()


def test_the_static_check_sees_a_public_host() -> None:
    # The check above can fail: a literal public URL is what it looks for.
    assert _URL.findall('"https://fhir.example.org/fhir/r4/BENCH"') == ["fhir.example.org"]
    assert not _is_loopback("fhir.example.org")
    assert _is_loopback("127.0.0.1")


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Name resolution refuses every host name; numeric addresses (loopback servers) still work."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None:
            try:
                ipaddress.ip_address(str(name).split("%")[0])
            except ValueError:
                asked.append(str(name))
                raise socket.gaierror(socket.EAI_NONAME, "no DNS on this machine") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return asked


def test_the_resolver_refuses_names(no_dns: list[str]) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("fhir.example.org", 443)
    assert no_dns == ["fhir.example.org"]


def test_ingest_benchmark_runs_without_dns(no_dns: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import ingest

    ingest.main(["--readings", "3", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "ratio with/without" in out
    assert no_dns == []


def test_billing_benchmark_runs_without_dns(no_dns: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench import billing_report

    billing_report.main(["--patients", "2", "--days", "2", "--per-day", "1", "--rounds", "1", "--backends", "sqlite"])
    assert '"bench": "billing_report"' in capsys.readouterr().out
    assert no_dns == []
