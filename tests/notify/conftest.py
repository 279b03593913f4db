"""Fixtures for push tests: a fake FCM server on loopback and a hub pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notify.support import Fcm
from vitalbridge.notify.background import close_sender
from vitalbridge.notify.fake_fcm import FakeFcm, ServiceAccountKey
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings

PROJECT = "vb-test-project"


@pytest.fixture
def fcm(tmp_path: Path) -> Iterator[Fcm]:
    account = ServiceAccountKey(PROJECT)
    fake = FakeFcm(account)
    with ServerThread(fake.app) as url:
        path = account.write(tmp_path / "fcm-service-account.json", f"{url}/token")
        yield Fcm(fake=fake, url=url, credentials=path, account=account)


@pytest.fixture
def push_hub(settings: Settings, fcm: Fcm) -> Iterator[Hub]:
    """The ``hub`` fixture's database, with FCM configured to the fake."""
    h = build_hub(settings.model_copy(update={"fcm_credentials_file": fcm.credentials, "fcm_endpoint": fcm.url}))
    yield h
    close_sender(h)
    h.close()
