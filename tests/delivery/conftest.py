"""Fixtures for delivery tests: short retry pauses so failure paths finish quickly."""

from __future__ import annotations

import pytest

from vitalbridge.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.delivery_quick_backoff_s = 0.0
    settings.delivery_retry_base_s = 0.0
    settings.delivery_lease_s = 30.0
    return settings
