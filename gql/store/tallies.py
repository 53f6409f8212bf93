"""The tallies behind counts and statistics (schema.sql's order_tallies), kept compact."""

from __future__ import annotations

import asyncpg

# One process at a time folds the appends' changes; another that asks meanwhile skips.
COMPACT = """
select case when pg_try_advisory_xact_lock(7318462020) then og_compact_tallies() else 0 end
"""


# Folding deletes the rows it folds; until they are vacuumed away every count reads past them
# (a million after a large import, 200 MB of pages a plain vacuum leaves in place). The owner's
# commands rewrite the table at once (a few dozen rows: an instant's lock); for the server's
# folding the table asks autovacuum to come early (schema.sql), so appends reuse the space.
VACUUM = "vacuum (full, analyze) order_tallies"


async def compact_tallies(db: asyncpg.Pool | asyncpg.Connection) -> int:
    """Fold the changes appends inserted since the last time; how many rows went."""
    return await db.fetchval(COMPACT)


async def tidy_tallies(conn: asyncpg.Connection) -> int:
    """After a bulk load or a rebuild (the owner's sessions): fold, then vacuum what folding
    deleted, so that counts read a few dozen rows again; how many rows went."""
    folded = await compact_tallies(conn)
    await conn.execute(VACUUM)
    return folded
