"""Encryption at rest for keys, tokens and secrets (AES-256-GCM under a key-encryption key)."""
