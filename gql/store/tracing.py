"""A span for each SQL statement a traced process sends, named by the store's named query.

asyncpg's query logger reports each statement once it ran (text, duration, error), in the
context of the code that sent it, so the span is the child of the span current there (the
request's, the relay's); a statement sent outside any span is not reported. It is
added to a connection only when tracing is on: a server without tracing runs asyncpg's
path without any logger. The span carries the statement's name (the constant it is in
gql/store, e.g. `LIST_EVENTS`), never its parameters; compiled statements (gql/schema/plans.py)
are named `compiled`.
"""

from __future__ import annotations

import sys
import time

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gql import traces

_names: dict[str, str] = {}


def statement_name(query: str) -> str:
    """The store's name for a statement's text; the first word of one it does not name."""
    if not _names:
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("gql.store") and module is not None:
                for name, value in vars(module).items():
                    if name.isupper() and isinstance(value, str) and len(value) > 12:
                        _names.setdefault(value, name)
    name = _names.get(query)
    if name is not None:
        return name
    word = query.lstrip().split(None, 1)[0].lower() if query.strip() else "sql"
    return "compiled" if word in ("with", "select") and "json" in query else word


def _record(query: asyncpg.connection.LoggedQuery) -> None:
    tracer = traces.TRACER
    if tracer is None or not trace.get_current_span().is_recording():
        # a statement outside any span (a background poll) starts no trace of its own, and
        # one inside a trace the sampler left out would be left out too: no span is made
        return
    end = time.time_ns()
    name = statement_name(query.query)
    span = tracer.start_span(f"sql {name}", kind=SpanKind.CLIENT, start_time=end - int(query.elapsed * 1e9),
                             attributes={"db.system.name": "postgresql", "db.query.summary": name})
    if query.exception is not None:
        span.set_status(Status(StatusCode.ERROR, type(query.exception).__name__))
    span.end(end_time=end)


def trace_statements(conn: asyncpg.Connection) -> None:
    """Reports the connection's statements as spans, when tracing is on."""
    if traces.TRACER is not None:
        conn.add_query_logger(_record)
