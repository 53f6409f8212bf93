"""The tallies behind counts and statistics (schema.sql's order_tallies), kept compact."""

from __future__ import annotations

import asyncpg

# One process at a time folds the appends' changes; another that asks meanwhile skips.
COMPACT = """
select case when pg_try_advisory_xact_lock(7318462020) then og_compact_tallies() else 0 end
"""


async def compact_tallies(db: asyncpg.Pool | asyncpg.Connection) -> int:
    """Fold the changes appends inserted since the last time; how many rows went."""
    return await db.fetchval(COMPACT)
