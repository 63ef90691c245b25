"""OpenTelemetry traces: one company's journey, across the services, is one trace.

The W3C trace context travels in the CloudEvents distributed-tracing extension attribute
`traceparent` (optional, never required from partners). Each fetched batch gets a span; each
message in it a span of its own, the child of the message's `traceparent` when it has one (a
new trace otherwise), linked to the batch's span. While a handler runs, its message's span is
the current one, so the events it emits carry that span's context: the consumer of those
events continues the same trace.

Set up once per process from the standard variables: `OTEL_TRACES_EXPORTER` (`none`, the
default: tracing is off and costs a test per batch; `otlp`: OTLP over HTTP with a
BatchSpanProcessor, configured by `OTEL_EXPORTER_OTLP_*`; `console`: spans on stdout, for
debugging), `OTEL_SERVICE_NAME` (default `envol-<service>`), `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`. Spans carry identifiers only (event type, cluster,
producer, outcome, event id, stream sequence): never the contents of a message, nor the
company or anyone's personal data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "envol"
_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
# Outcomes that mean the message did not go through.
_FAILED = frozenset({"dead_lettered", "transient", "retry", "abandoned"})

_tracer: Tracer | None = None  # None: tracing is off
_configured = False
log = structlog.get_logger("envol.tracing")


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Set up the process's tracer provider from `OTEL_*` once (the first service of a process
    decides); return whether tracing is on."""
    global _configured
    if _configured:
        return _tracer is not None
    _configured = True
    provider = build_tracer_provider(service, environ)
    if provider is None:
        return False
    trace.set_tracer_provider(provider)  # for libraries that trace too; once per process
    use_tracer_provider(provider)
    return True


def build_tracer_provider(service: str, environ: Mapping[str, str]) -> Any:
    """The SDK's tracer provider `OTEL_*` asks for, or None when tracing is off (the SDK is
    then not even imported)."""
    exporters = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    exporters = [name for name in exporters if name and name != "none"]
    if not exporters:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or f"envol-{service}"})
    provider = TracerProvider(resource=resource)  # reads OTEL_TRACES_SAMPLER itself
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("tracing.unknown_exporter", exporter=name, known=["none", "otlp", "console"])
    return provider


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: tracing off). Tests give theirs (an in-memory
    exporter): OpenTelemetry's global provider can be set only once per process."""
    global _tracer, _configured
    _configured = True
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def tracing_on() -> bool:
    return _tracer is not None


def format_traceparent(span: Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def outgoing_traceparent(incoming: str | None) -> str | None:
    """The `traceparent` of an event emitted now: the current span's (the message being
    handled, a timer firing); with tracing off, the incoming event's, so the journey's trace
    id still goes on through a service that does not trace."""
    return format_traceparent(trace.get_current_span()) or incoming


def parent_of(traceparent: str | None) -> OtelContext:
    """The context a message's span starts in: the trace it came with, or a new trace (an
    empty context, not whatever is current)."""
    if not traceparent:
        return OtelContext()
    return _PROPAGATOR.extract({"traceparent": traceparent})


def type_label(envelope: Any, accepted: frozenset[str]) -> str:
    """An event's type as a span or metric label: one this service consumes, else "unknown"
    (never a value a sender chose: a label per junk type would swamp the metrics)."""
    return envelope.type if envelope is not None and envelope.type in accepted else "unknown"


def timer_span(service: str) -> AbstractContextManager[Any]:
    """A span around one timer firing (its emitted events start a trace of their own)."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span("envol.timer", context=OtelContext(), kind=SpanKind.INTERNAL,
                                         attributes={"envol.service": service})


class BatchSpans:
    """The spans of the batch in hand: one for the batch, one per message. Used by the
    consumer (one batch at a time); `begin` does nothing while tracing is off."""

    def __init__(self, service: str, accepted: frozenset[str]) -> None:
        self._service = service
        self._accepted = accepted
        self._batch: Span | None = None
        self._messages: dict[int, tuple[Any, Span]] = {}

    def begin(self, deliveries: list[Any]) -> None:
        tracer = _tracer
        if tracer is None:
            return
        self._batch = batch = tracer.start_span(
            f"envol.batch {self._service}", context=OtelContext(), kind=SpanKind.CONSUMER,
            attributes={"envol.service": self._service, "messaging.system": "nats",
                        "messaging.batch.message_count": len(deliveries)})
        link = [Link(batch.get_span_context())]
        for delivery in deliveries:
            envelope = delivery.envelope
            event_type = type_label(envelope, self._accepted)
            cluster, producer = delivery.namespace
            attributes: dict[str, Any] = {
                "envol.service": self._service, "envol.event.type": event_type,
                "envol.cluster": cluster, "envol.producer": producer,
                "messaging.system": "nats", "messaging.destination.name": event_type,
                "messaging.nats.stream_sequence": delivery.stream_sequence,
                "messaging.nats.delivery_attempt": delivery.attempt}
            if envelope is not None:
                attributes["messaging.message.id"] = envelope.id
            span = tracer.start_span(f"envol.handle {event_type}",
                                     context=parent_of(envelope.traceparent if envelope else None),
                                     kind=SpanKind.CONSUMER, links=link, attributes=attributes)
            self._messages[id(delivery)] = (delivery, span)

    def current(self, delivery: Any) -> AbstractContextManager[Any]:
        """Makes the message's span the current one while its handler runs."""
        found = self._messages.get(id(delivery)) if self._messages else None
        if found is None:
            return _NOTHING
        return trace.use_span(found[1], end_on_exit=False)

    def end(self, rolled_back: bool, committed: bool) -> None:
        """End every span of the batch with each message's outcome."""
        if self._batch is None:
            return
        for delivery, span in self._messages.values():
            if committed and delivery.outcome is not None:
                outcome = delivery.outcome.value
            else:
                outcome = "transient" if rolled_back else "abandoned"
            span.set_attribute("envol.outcome", outcome)
            if outcome in _FAILED:
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()
        outcome = "committed" if committed else "transient" if rolled_back else "abandoned"
        self._batch.set_attribute("envol.outcome", outcome)
        if not committed:
            self._batch.set_status(Status(StatusCode.ERROR, outcome))
        self._batch.end()
        self._batch, self._messages = None, {}

