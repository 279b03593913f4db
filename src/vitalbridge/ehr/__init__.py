"""The hub's calls to a practice's EHR: one client (``client.EhrClient``) that authenticates with
SMART (``vitalbridge.smart``), paces itself under the practice's rate limit (``ratelimit``),
maps failures onto the error tree and writes every call to the audit trail.
"""
