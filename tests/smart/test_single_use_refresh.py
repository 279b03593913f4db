"""Single-use refresh tokens (eCW, field notes Q5): eight workers that find the user's access
token expired at the same moment must refresh it once. A second refresh with the same token
would look like theft to the EHR, which then revokes the whole grant and every worker loses the
practice until a user authorizes again."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from tests.smart.conftest import SmartEnv
from tests.smart.test_standalone import connect, grant_row
from vitalbridge.db.base import utcnow
from vitalbridge.ehr.client import EhrClient
from vitalbridge.smart.models import EhrToken, GrantKind, GrantStatus
from vitalbridge.smart.services import build_smart

WORKERS = 8


def expire_access_token(env: SmartEnv) -> None:
    """The access token is past its expiry: nobody may use it, everyone needs the refresh."""
    past = utcnow() - timedelta(seconds=5)
    with env.hub.sessions() as session, session.begin():
        session.execute(
            update(EhrToken).where(EhrToken.kind == GrantKind.standalone).values(renew_at=past, expires_at=past)
        )


def test_eight_concurrent_refreshers_use_the_single_use_token_once(smart_env: SmartEnv) -> None:
    env = smart_env
    switches = env.sandbox.http.put("/_sandbox/behaviour", json={"single_use_refresh": True})
    assert switches.status_code == 200
    connect(env)
    expire_access_token(env)
    # Each worker has its own HTTP pool and cache object, as separate worker processes would;
    # only the database is shared.
    smarts = [build_smart(env.hub) for _ in range(WORKERS)]
    start = threading.Barrier(WORKERS)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        client = EhrClient(env.hub, smarts[index])
        start.wait()
        try:
            resp = client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone)
            statuses.append(resp.status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below with the others
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for smart in smarts:
            smart.close()
    assert errors == []
    assert statuses == [200] * WORKERS
    stats = env.sandbox.stats()
    assert stats["token_requests_by_grant_type"]["refresh_token"] == 1
    assert "invalid_grant" not in stats["token_errors"]
    assert grant_row(env).status is GrantStatus.active

    # The rotated refresh token the one refresher stored is the live one: the next refresh works.
    expire_access_token(env)
    client = EhrClient(env.hub, env.smart)
    assert client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code == 200
    assert env.sandbox.stats()["token_requests_by_grant_type"]["refresh_token"] == 2
    assert grant_row(env).status is GrantStatus.active
