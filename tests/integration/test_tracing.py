"""One company's journey is one trace across the services: enrolment, financing and outcomes
run in this process on a real nats-server, their spans kept in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import SIRENS, application, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap as enrolment
from envol_financing.bootstrap import bootstrap as financing
from envol_outcomes.bootstrap import bootstrap as outcomes
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.events import make_event
from envol_shared.tracing import use_tracer_provider

AV = "aerospace-valley"
PARTNER_TRACE, PARTNER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
ENROLLED = ev.TRANSITION_EVENTS["enrolled"].type
# What a span may say: identifiers, never a message's contents nor whom it is about.
ALLOWED_ATTRIBUTES = {"envol.service", "envol.event.type", "envol.cluster", "envol.producer", "envol.outcome",
                      "messaging.system", "messaging.destination.name", "messaging.message.id",
                      "messaging.nats.stream_sequence", "messaging.nats.delivery_attempt",
                      "messaging.batch.message_count"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(None)
        provider.shutdown()


def handling(exporter: InMemorySpanExporter, service: str, event_type: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans()
            if span.name == f"envol.handle {event_type}" and span.attributes["envol.service"] == service]


async def test_a_journey_is_one_trace_from_enrolment_to_financing_and_outcomes(
        nc, start_service, database_url, tmp_path, spans):
    await start_service(definition=enrolment())
    await start_service(definition=financing(), database_url=f"sqlite+aiosqlite:///{tmp_path / 'f.sqlite'}")
    await start_service(definition=outcomes(), database_url=f"sqlite+aiosqlite:///{tmp_path / 'o.sqlite'}")
    siren = SIRENS[4]
    await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("av-club-1", siren)), company=siren)
    # Staff's tool traces its own work: the review comes with its trace context.
    subject, review = make_event(
        ev.ApplicationReviewed(application_id="av-club-1", decision="accept", reviewer="av-staff-1",
                               reason="good file"),
        cluster=AV, producer="staff", company=siren, traceparent=f"00-{PARTNER_TRACE}-{PARTNER_SPAN}-01")
    await nc.jetstream().publish(subject, review.to_bytes())

    # The last link of the chain: outcomes handled the case financing opened.
    await wait_for(lambda: _found(handling(spans, "outcomes", fe.CaseOpened.type)), within=30)
    [reviewed] = handling(spans, "enrolment", ev.ApplicationReviewed.type)
    [enrolled_at_financing] = handling(spans, "financing", ENROLLED)
    [enrolled_at_outcomes] = handling(spans, "outcomes", ENROLLED)
    [opened_at_outcomes] = handling(spans, "outcomes", fe.CaseOpened.type)
    journey = [reviewed, enrolled_at_financing, enrolled_at_outcomes, opened_at_outcomes]
    assert {span.context.trace_id for span in journey} == {int(PARTNER_TRACE, 16)}
    # Each is the child of the span that handled the event which caused it.
    assert reviewed.parent is not None and reviewed.parent.span_id == int(PARTNER_SPAN, 16)
    assert enrolled_at_financing.parent.span_id == reviewed.context.span_id
    assert enrolled_at_outcomes.parent.span_id == reviewed.context.span_id
    assert opened_at_outcomes.parent.span_id == enrolled_at_financing.context.span_id
    assert reviewed.parent.is_remote and enrolled_at_financing.parent.is_remote

    # Each message span is linked to its batch's span, of its own service, in a trace of its own.
    batches = {span.context.span_id: span for span in spans.get_finished_spans()
               if span.name.startswith("envol.batch ")}
    for span in journey:
        [link] = span.links
        batch = batches[link.context.span_id]
        assert batch.name == f"envol.batch {span.attributes['envol.service']}"
        assert batch.parent is None and batch.context.trace_id != span.context.trace_id
        assert span.attributes["envol.outcome"] == "applied"
    assert dict(reviewed.attributes) | {"messaging.nats.stream_sequence": 0} == {
        "envol.service": "enrolment", "envol.event.type": ev.ApplicationReviewed.type, "envol.cluster": AV,
        "envol.producer": "staff", "envol.outcome": "applied", "messaging.system": "nats",
        "messaging.destination.name": ev.ApplicationReviewed.type, "messaging.message.id": review.id,
        "messaging.nats.stream_sequence": 0, "messaging.nats.delivery_attempt": 1}
    assert all(set(span.attributes) <= ALLOWED_ATTRIBUTES for span in spans.get_finished_spans())

    # An event without trace context (the registration) starts a trace of its own.
    [registered] = handling(spans, "enrolment", ev.CompanyRegistered.type)
    assert registered.parent is None and registered.context.trace_id != int(PARTNER_TRACE, 16)

    # On the wire: the enrolled event carries the review's span as its parent.
    [enrolled] = [e for e in await events_of(nc) if e["type"] == ENROLLED]
    assert enrolled["traceparent"] == f"00-{PARTNER_TRACE}-{reviewed.context.span_id:016x}-01"
    assert json.dumps(enrolled).count(PARTNER_TRACE) == 1


async def _found(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return spans
