"""Sandbox profiles and behaviour switches (SPEC §11, last paragraph; field notes Q5).

The ``ecw`` profile behaves like eClinicalWorks' FHIR facade as the field notes describe it; the
``generic`` profile is a strict textbook SMART/FHIR server. Each behaviour is one switch, so a
test can start from either profile and flip a single one (``PUT /_sandbox/behaviour``):

    switch                      ecw        generic    what it changes
    conditional_create          ignore     honour     If-None-Exist on Observation create, and
                                                      ``conditionalCreate`` in /metadata
    ecw_error_codes             true       false      write refusals as eCW numeric codes
                                                      ({"status": 611, "key": "INVALID_UNIT"…})
                                                      instead of OperationOutcomes
    rate_limit_window           minute     bucket     fixed wall-clock minute (blocks until the
                                                      minute resets) or a continuous token bucket
    retry_after_on_429          false      true       whether a 429 says when to come back
    backend_token_lifetime_s    300        (config)   client_credentials token lifetime
    single_use_refresh          true       false      refresh tokens rotate and a reused one
                                                      revokes the grant, or stay valid
    writeback_user_missing      []         []         practices with no default write-back
                                                      user: creates are refused (eCW code 308)
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Profile(enum.StrEnum):
    ecw = "ecw"  # eClinicalWorks as met in production (field notes Q5)
    generic = "generic"  # a strict textbook SMART on FHIR server


class ConditionalCreate(enum.StrEnum):
    honour = "honour"  # FHIR R4 §3.1.0.8.1: one match answers 200 with the existing resource
    ignore = "ignore"  # the header is dropped: every POST creates (what a server without it does)
    refuse = "refuse"  # 400 not-supported when the header is sent


class Behaviour(BaseModel):
    """The switches in force; ``GET /_sandbox/behaviour`` shows them."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile
    conditional_create: ConditionalCreate
    ecw_error_codes: bool
    rate_limit_window: Literal["bucket", "minute"]
    retry_after_on_429: bool
    # None: SandboxConfig.token_lifetime_s, like every other token.
    backend_token_lifetime_s: int | None = Field(default=None, ge=0, le=86_400)
    single_use_refresh: bool
    writeback_user_missing: list[str] = Field(default_factory=list)


class BehaviourIn(BaseModel):
    """Body of ``PUT /_sandbox/behaviour``: start from ``profile`` (default: the one in force)
    and change only the switches given."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile | None = None
    conditional_create: ConditionalCreate | None = None
    ecw_error_codes: bool | None = None
    rate_limit_window: Literal["bucket", "minute"] | None = None
    retry_after_on_429: bool | None = None
    backend_token_lifetime_s: int | None = Field(default=None, ge=0, le=86_400)
    single_use_refresh: bool | None = None
    writeback_user_missing: list[str] | None = None


def profile_defaults(profile: Profile) -> Behaviour:
    if profile is Profile.ecw:
        return Behaviour(
            profile=profile,
            # eCW's CapabilityStatement does not advertise conditional create (field notes Q5).
            conditional_create=ConditionalCreate.ignore,
            ecw_error_codes=True,
            rate_limit_window="minute",
            # "no Retry-After / RateLimit headers documented"; the block lasts until the minute resets.
            retry_after_on_429=False,
            # doordoc constraints: backend-services tokens last 300 s.
            backend_token_lifetime_s=300,
            single_use_refresh=True,
        )
    return Behaviour(
        profile=profile,
        conditional_create=ConditionalCreate.honour,
        ecw_error_codes=False,
        rate_limit_window="bucket",
        retry_after_on_429=True,
        backend_token_lifetime_s=None,
        single_use_refresh=False,
    )


def apply(current: Behaviour, change: BehaviourIn) -> Behaviour:
    base = profile_defaults(change.profile) if change.profile is not None else current
    updates = change.model_dump(exclude_none=True, exclude={"profile"})
    return base.model_copy(update=updates)
