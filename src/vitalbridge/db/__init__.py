"""Database access: engine and sessions, declarative base, portable column types, migrations."""
