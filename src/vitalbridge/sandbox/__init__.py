"""The eCW-like sandbox EHR (SPEC §11): its own ASGI app, sharing no state with the hub."""
