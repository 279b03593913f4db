"""Edit audit rows the way an attacker with database access would: around the guards.

PostgreSQL: a superuser's ``session_replication_role = replica`` skips the append-only triggers.
SQLite: a connection without the hub's ``vb_audit_guard()`` switch (here: switched off).
"""

from __future__ import annotations

from sqlalchemy import text

from vitalbridge.db.engine import AUDIT_GUARD_FUNCTION
from vitalbridge.runtime import Hub


def raw_sql(hub: Hub, *statements: str) -> None:
    with hub.engine.connect() as conn:
        if hub.engine.dialect.name == "postgresql":
            with conn.begin():
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for sql in statements:
                    conn.execute(text(sql))
        else:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.create_function(AUDIT_GUARD_FUNCTION, 0, lambda: 0)
            try:
                with conn.begin():
                    for sql in statements:
                        conn.execute(text(sql))
            finally:
                raw.create_function(AUDIT_GUARD_FUNCTION, 0, lambda: 1)
