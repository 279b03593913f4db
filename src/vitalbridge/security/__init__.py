"""Guards at the hub's edges: outbound URL policy (SSRF), inbound HTTP hardening (docs/security.md)."""
