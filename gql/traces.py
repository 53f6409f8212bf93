"""OpenTelemetry traces: off unless the standard `OTEL_*` variables name an exporter.

Whether tracing is on is decided once, at start (`start`), and kept in `TRACER`: None when
off. Every instrumented place tests that one global and binds nothing else when it is None,
so a server without an exporter creates no span, not even a no-op one (the API's no-op
spans still cost a context switch per SQL statement). Tests install their own provider with
`install` (an in-memory exporter) and take it away with `uninstall`.

The trace context of an appending request is stored with its event (`order_events.
trace_parent`, a W3C traceparent), so relays and live deliveries continue that trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.trace import Link as Link  # re-exported: callers name spans' links and kinds here
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gql.errors import ConfigurationError

TRACER: Tracer | None = None  # None: tracing is off, and no code path makes spans
NAME = "ordergraph"
_PROPAGATOR = TraceContextTextMapPropagator()
_SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
             "parentbased_always_off", "parentbased_traceidratio")
_EXPORTERS = ("otlp", "console", "none")
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_installed: Any = None  # the SDK provider this module installed, shut down by `uninstall`


def wanted(environ: Mapping[str, str]) -> str | None:
    """The exporter the environment asks for (`otlp`, `console`), or None: tracing off.

    Off unless `OTEL_TRACES_EXPORTER` names one, or an OTLP endpoint is set and the
    exporter is left unset; `OTEL_SDK_DISABLED=true` turns it off whatever else is set."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter not in _EXPORTERS:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(_EXPORTERS)}, not {exporter!r}")
    if not exporter and (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                         or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        exporter = "otlp"
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler and sampler not in _SAMPLERS:
        raise ConfigurationError(
            f"OTEL_TRACES_SAMPLER must be one of {', '.join(_SAMPLERS)}, not {sampler!r}")
    ratio = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if ratio:
        try:
            if not 0.0 <= float(ratio) <= 1.0:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not {ratio!r}") from None
    return None if exporter in ("", "none") else exporter


def start(environ: Mapping[str, str] | None = None) -> bool:
    """Installs the SDK's provider with the exporter the environment names (once per
    process); True when tracing is on. The exporter reads its own `OTEL_EXPORTER_OTLP_*`
    variables from the process's environment."""
    if TRACER is not None:
        return True
    exporter = wanted(os.environ if environ is None else environ)
    if exporter is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or NAME})
    provider = TracerProvider(resource=resource)
    sink: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        sink = OTLPSpanExporter()
    else:
        sink = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(sink))
    install(provider)
    return True


def install(provider: Any) -> None:
    """Traces through `provider` (an SDK TracerProvider) from now on, in this process."""
    global TRACER, _installed
    _installed = provider
    TRACER = provider.get_tracer(NAME)


def uninstall() -> None:
    """Tracing off again (tests): spans still buffered are exported first."""
    global TRACER, _installed
    if _installed is not None:
        _installed.shutdown()
    TRACER, _installed = None, None


def shutdown(timeout: float = 2.0) -> None:
    """Exports what is buffered before the process ends, waiting at most `timeout` seconds
    (a collector that is away must not hold the shutdown)."""
    if _installed is not None:
        _installed.force_flush(int(timeout * 1000))


# --- W3C trace context, in and out -------------------------------------------------------

class _Headers(DefaultGetter):
    """Reads ASGI headers (a list of byte pairs) for the propagator."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        wanted_name = key.encode()
        values = [v.decode("latin-1") for k, v in carrier if k == wanted_name]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_ASGI = _Headers()


def context_of_headers(headers: list[tuple[bytes, bytes]]) -> Context:
    """The caller's trace context from an HTTP request's (or a WebSocket upgrade's) headers."""
    return _PROPAGATOR.extract(headers, getter=_ASGI)


def context_of(traceparent: str | None) -> Context | None:
    """The context a stored traceparent names, to parent the spans that continue its trace."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def inject(headers: MutableMapping[str, str]) -> None:
    """Adds the current span's `traceparent` (and `tracestate`) to outgoing headers."""
    _PROPAGATOR.inject(headers)


def traceparent() -> str | None:
    """The W3C traceparent of the current span, when tracing is on and one is recording."""
    if TRACER is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32 hex digits of a stored traceparent's trace id."""
    if traceparent is None or not _TRACEPARENT.match(traceparent):
        return None
    return traceparent[3:35]


def log_fields(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: `trace_id` and `span_id` on lines logged inside a span."""
    if TRACER is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event.setdefault("trace_id", f"{context.trace_id:032x}")
            event.setdefault("span_id", f"{context.span_id:016x}")
    return event


def continuing(name: str, stored: str | None, kind: SpanKind = SpanKind.PRODUCER,
               links: list[Link] | None = None, **attributes: Any) -> AbstractContextManager[Any]:
    """A span continuing the trace of a stored traceparent (an event's appending request),
    current while it lasts; a null context when tracing is off."""
    if TRACER is None:
        return nullcontext()
    return TRACER.start_as_current_span(
        name, context=context_of(stored), kind=kind, links=links,
        attributes={k.replace("__", "."): v for k, v in attributes.items() if v is not None})
