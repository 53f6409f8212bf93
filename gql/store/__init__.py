"""The store: every SQL statement ordergraph runs, as named queries next to the code running them.

Only this package and the listener talk to asyncpg; the layers above name its types through
the aliases here. Failures the database reports by constraint name become domain errors
here, once (see `errors.py`).
"""

import asyncpg

Connection = asyncpg.Connection
Pool = asyncpg.Pool
Row = asyncpg.Record
# what an unreachable or failing database raises, for callers that fall back or report it
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    TimeoutError)

__all__ = ["DATABASE_ERRORS", "Connection", "Pool", "Row"]
