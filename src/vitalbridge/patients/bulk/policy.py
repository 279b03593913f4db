"""How a bulk sync waits and retries (STYLE 6: policy is data; failures classified by type).

Bulk Data IG: clients poll the status URL no faster than ``Retry-After`` says; the hub also
never polls faster than ``min_poll_interval_s`` (SPEC §4: every 30 s by default). 429 and 5xx
(and network failures) are transient: wait and try again with a growing delay, up to
``max_failures`` in a row. Everything else the EHR says (403, 404, 422 …) is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from vitalbridge.errors import EhrReauthorize, RateLimited, VitalbridgeError


@dataclass(frozen=True)
class PollPolicy:
    min_poll_interval_s: float = 30.0
    max_poll_interval_s: float = 600.0
    max_failures: int = 8  # transient failures in a row before the sync gives up (resumable)
    backoff_base_s: float = 2.0

    def next_poll_in(self, retry_after: float | None) -> float:
        """After a 202: the server's Retry-After, but never below the minimum nor above the maximum."""
        wanted = retry_after if retry_after is not None else self.min_poll_interval_s
        return min(self.max_poll_interval_s, max(self.min_poll_interval_s, wanted))

    def after_failure(self, exc: Exception, failures: int) -> float | None:
        """Seconds to wait before trying again, or None when ``exc`` is not worth retrying."""
        if failures > self.max_failures or isinstance(exc, EhrReauthorize):
            # A user must re-authorize first: the job stays resumable and says so at once.
            return None
        if isinstance(exc, RateLimited):
            return min(self.max_poll_interval_s, max(self.min_poll_interval_s, float(exc.retry_after)))
        # A download cut off mid-stream surfaces as httpx's own error, not through the client.
        transient = exc.transient if isinstance(exc, VitalbridgeError) else isinstance(exc, httpx.TransportError)
        if not transient:
            return None
        backoff = self.backoff_base_s * float(2 ** (failures - 1))
        return min(self.max_poll_interval_s, max(self.min_poll_interval_s, backoff))
