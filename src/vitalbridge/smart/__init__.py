"""SMART on FHIR (SPEC §3): signing keys and JWKS, client assertions, backend-services tokens
and their shared cache, the standalone launch (authorization code + PKCE), status and tests.

Protocol modules (``assertion``, ``oauth``, ``pkce``, ``discovery``) import no web framework;
``views`` is the FastAPI glue.
"""
