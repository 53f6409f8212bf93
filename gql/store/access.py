"""The grants as the database holds them (schema.sql's `access_roles` and `append_grants`)."""

from __future__ import annotations

import asyncpg

from gql.identity import Grants, Role

LIST_ROLES = "select role, reads_all, registers_customers, acts_for_others from access_roles"
LIST_APPEND_GRANTS = "select role, scope, event_type from append_grants"


async def load_grants(db: asyncpg.Pool | asyncpg.Connection) -> Grants:
    roles = {r["role"]: Role(r["reads_all"], r["registers_customers"], r["acts_for_others"])
             for r in await db.fetch(LIST_ROLES)}
    appends = frozenset((g["role"], g["scope"], g["event_type"])
                        for g in await db.fetch(LIST_APPEND_GRANTS))
    return Grants(roles, appends)
