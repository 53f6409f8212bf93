"""The server's logs: JSON lines (or, on a terminal, readable lines) through structlog.

Every logger of the process writes through one structlog formatter, ordergraph's own
(`logging.getLogger("ordergraph…")`), uvicorn's and the libraries' alike, so a log shipper
reads one format. Lines carry the request id of the request they belong to (bound by
gql/http/requestlog.py), and the trace and span ids when a span is active. Nothing personal
or secret reaches a line: e-mail addresses and
anything shaped like a JWT are replaced in every value, whatever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog
from structlog.types import EventDict, Processor

from gql import traces
from gql.config import Settings

_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*")  # base64url(JSON header).payload.signature
# a value of these keys is dropped whole: it is a credential, whatever its shape
_SECRET_KEYS = frozenset({"token", "authorization", "password", "secret"})


def scrub(text: str) -> str:
    """`text` without e-mail addresses and JWTs."""
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if "eyJ" in text:
        text = _JWT.sub("<token>", text)
    return text


def _redact(logger: Any, method: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if key in _SECRET_KEYS:
            event[key] = "<redacted>"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def _dumps(value: Any, **kwargs: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def wants_json(settings: Settings) -> bool:
    """JSON unless asked for console lines, or left to `auto` on a terminal."""
    if settings.log_format == "auto":
        return not sys.stderr.isatty()
    return settings.log_format == "json"


def configure_logging(settings: Settings) -> None:
    """Routes every logger of the process to standard error in the settings' format."""
    level = getattr(logging, settings.log_level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        traces.log_fields,  # trace_id and span_id inside a span (nothing when tracing is off)
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (structlog.processors.JSONRenderer(serializer=_dumps)
                           if wants_json(settings) else
                           structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _redact, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
