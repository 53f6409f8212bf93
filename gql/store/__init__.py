"""The store: every SQL statement ordergraph runs, as named queries next to the code running them.

Only this package and the listener talk to asyncpg. Failures the database reports by
constraint name become domain errors here, once (see `errors.py`).
"""
