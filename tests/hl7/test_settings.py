"""HL7 settings: the listener switch and the default character set."""

from __future__ import annotations

import pytest

from vitalbridge.errors import ConfigurationError
from vitalbridge.hl7v2.codes import CharacterSet
from vitalbridge.hl7v2.inbound import InboundConfig
from vitalbridge.hl7v2.listener import limits_from_settings
from vitalbridge.settings import Settings


def test_port_empty_or_zero_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("", "0"):
        monkeypatch.setenv("VB_HL7_PORT", value)
        assert Settings().hl7_port is None
    monkeypatch.setenv("VB_HL7_PORT", "2575")
    monkeypatch.setenv("VB_HL7_MAX_MESSAGE_BYTES", "2048")
    monkeypatch.setenv("VB_HL7_IDLE_TIMEOUT_S", "0")
    settings = Settings()
    assert settings.hl7_port == 2575
    limits = limits_from_settings(settings)
    assert (limits.max_message_bytes, limits.idle_timeout_s) == (2048, 0)


def test_default_charset_must_be_a_known_one() -> None:
    config = InboundConfig.from_settings(Settings(hl7_default_charset="8859/1"))
    assert config.default_charset is CharacterSet.latin_1
    with pytest.raises(ConfigurationError, match="VB_HL7_DEFAULT_CHARSET"):
        InboundConfig.from_settings(Settings(hl7_default_charset="KOI8-R"))
