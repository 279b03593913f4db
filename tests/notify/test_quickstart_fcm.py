"""``make run`` wires push to a fake FCM endpoint when no real credentials are configured."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.notify.support import fcm_token
from vitalbridge.notify.codes import AlertType, PushAction, SendOutcome
from vitalbridge.notify.fcm import FcmSender, ServiceAccount
from vitalbridge.notify.sanitizer import PushNotice, build_message
from vitalbridge.quickstart import FCM_DEMO_FILE, prepare_demo_fcm
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings
from vitalbridge.triage.codes import Severity


def test_the_demo_service_account_is_made_once_and_points_at_the_fake(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fake_fcm_port=45678)
    wired, fake = prepare_demo_fcm(settings)
    assert fake is not None
    path = tmp_path / FCM_DEMO_FILE
    assert wired.fcm_credentials_file == path
    assert wired.fcm_endpoint == "http://127.0.0.1:45678"
    assert path.stat().st_mode & 0o077 == 0  # holds a private key
    first = json.loads(path.read_text())
    assert first["token_uri"] == "http://127.0.0.1:45678/token"
    # A later run on another port keeps the account and moves the token URI.
    again, _ = prepare_demo_fcm(Settings(data_dir=tmp_path, fake_fcm_port=45679))
    second = json.loads(path.read_text())
    assert second["private_key"] == first["private_key"]
    assert second["token_uri"] == "http://127.0.0.1:45679/token"
    assert again.fcm_endpoint == "http://127.0.0.1:45679"


def test_the_demo_fake_accepts_the_demo_account(tmp_path: Path) -> None:
    _wired, fake = prepare_demo_fcm(Settings(data_dir=tmp_path))
    assert fake is not None
    with ServerThread(fake.app) as url:
        # The fixed demo port may be taken on a test machine: serve on a free one and point there.
        document = json.loads((tmp_path / FCM_DEMO_FILE).read_text())
        document["token_uri"] = f"{url}/token"
        path = tmp_path / "moved.json"
        path.write_text(json.dumps(document))
        sender = FcmSender(ServiceAccount.load(path), endpoint=url)
        try:
            notice = PushNotice(uuid.uuid4(), AlertType.other, Severity.high, PushAction.open_alert)
            assert sender.send(build_message(notice, fcm_token())).outcome is SendOutcome.sent
        finally:
            sender.close()
    assert len(fake.messages) == 1


def test_real_credentials_are_left_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fcm_credentials_file=tmp_path / "real.json")
    wired, fake = prepare_demo_fcm(settings)
    assert fake is None
    assert wired is settings
    assert not (tmp_path / FCM_DEMO_FILE).exists()
