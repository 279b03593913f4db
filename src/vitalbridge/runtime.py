"""The hub's long-lived objects, built once from Settings and handed to the app, CLI and workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vitalbridge.crypto.sealing import Sealer, sealer_from_settings
from vitalbridge.db.engine import make_engine, make_session_factory
from vitalbridge.security.outbound import OutboundPolicy
from vitalbridge.security.urls import Resolver, system_resolver
from vitalbridge.settings import Settings


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    sealer: Sealer
    extras: dict[str, object] = field(default_factory=dict)
    # Host name → addresses for every outbound connection; None: the system resolver. Tests set a
    # fixed table so they never send a DNS query off the machine.
    resolver: Resolver | None = None

    @property
    def outbound_policy(self) -> OutboundPolicy:
        """The connect-time SSRF rule for every outbound client (``VB_ALLOW_PRIVATE_URLS``)."""
        return OutboundPolicy(allow_private=self.settings.allow_private_urls, resolver=self.resolver or system_resolver)

    def close(self) -> None:
        # Features keep long-lived helpers (HTTP clients …) in ``extras``; close them first.
        for extra in list(self.extras.values()):
            close = getattr(extra, "close", None)
            if callable(close):
                close()
        self.extras.clear()
        self.engine.dispose()


def build_hub(settings: Settings) -> Hub:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    return Hub(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        sealer=sealer_from_settings(settings),
    )
