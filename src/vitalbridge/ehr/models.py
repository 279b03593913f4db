"""Rate-limit buckets shared by every hub process through the database (SPEC §7)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, String, false
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base


class RateBucket(Base):
    """One token bucket: ``practice:<id>`` per EHR tenant, or ``hub`` for the hub-wide ceiling.

    Times are wall-clock epoch seconds because the processes sharing a bucket share no monotonic
    clock; a float column keeps sub-second refills exact on both SQLite and PostgreSQL.
    """

    __tablename__ = "ehr_rate_buckets"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Set from a 429's Retry-After: nobody calls this practice before then.
    blocked_until: Mapped[float] = mapped_column(Float, default=0.0)
    # Below 1 after 429s: the practice is paced slower, recovering gradually.
    slow_factor: Mapped[float] = mapped_column(Float, default=1.0)
    # The EHR counts calls per wall-clock minute (eCW: a 429 without Retry-After, blocking until
    # the minute resets): ``tokens`` is then what is left of the current minute, not a bucket.
    minute_window: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
