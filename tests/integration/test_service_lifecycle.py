"""Provisioning and graceful shutdown on a real nats-server; the service run by FastStream's CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace

from conftest import query, wait_until_rows
from stdnum import luhn
from support import publish, registration

from envol_enrolment.bootstrap import bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.topology import CONSUMERS, EVENTS_STREAM, provision


def siren(n: int) -> str:
    body = f"6{n:07d}"
    return body + luhn.calc_check_digit(body)


async def test_provisioning_is_idempotent_and_applies_changed_limits(nc):
    js = nc.jetstream()
    before = await js.stream_info(EVENTS_STREAM)
    await provision(js)  # a second service starting: nothing changes
    again = await js.stream_info(EVENTS_STREAM)
    assert again.config.subjects == before.config.subjects
    assert again.config.discard == before.config.discard == "new"
    await provision(js, events_max_bytes=1 << 20)
    assert (await js.stream_info(EVENTS_STREAM)).config.max_bytes == 1 << 20
    consumer = await js.consumer_info(EVENTS_STREAM, "enrolment")
    assert sorted(consumer.config.filter_subjects) == CONSUMERS["enrolment"].filter_subjects
    assert consumer.config.max_deliver == -1


async def test_stop_finishes_the_batch_in_hand_and_flushes_the_outbox(
    nc, start_service, database_url
):
    total, batch = 1500, 100
    for n in range(total):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    # The first handler call waits until the stop has been asked for: the stop then lands
    # mid-stream, with one batch in hand, however fast the machine is.
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    in_hand, stop_requested = asyncio.Event(), asyncio.Event()

    async def gated_register(data, context):  # type: ignore[no-untyped-def]
        if not in_hand.is_set():
            in_hand.set()
            await stop_requested.wait()
        await register(data, context)

    definition = replace(definition, handlers={**definition.handlers, ev.CompanyRegistered: gated_register})
    service = await start_service(batch_size=batch, definition=definition)
    await asyncio.wait_for(in_hand.wait(), timeout=60)
    stopping = asyncio.create_task(service.stop())
    await asyncio.wait_for(service.stopping.wait(), timeout=30)
    stop_requested.set()
    await stopping

    applied = (await query(database_url, "select count(*) from inbox"))[0][0]
    assert 0 < applied <= batch, "the batch in hand is finished, and no other is started"
    pending = (await query(database_url, "select count(*) from outbox where published_at is null"))
    assert pending[0][0] == 0, "the outbox is flushed before the service closes"
    info = await nc.jetstream().consumer_info(EVENTS_STREAM, "enrolment")
    assert info.num_ack_pending == 0, "no fetched message is left unacknowledged"
    assert info.delivered.consumer_seq == applied, "every fetched message was committed"


async def test_faststream_run_serves_the_service_and_sigterm_stops_it_gracefully(
    nc, service_process, database_url, tmp_path
):
    process = service_process([sys.executable, "-m", "faststream", "run",
                               "envol_enrolment.entrypoints.main:app"])
    process.start()
    await publish(nc, ev.CompanyRegistered(**registration(siren(1))), company=siren(1))
    await wait_until_rows(database_url, "select count(*) from inbox", 1)
    assert process.terminate() == 0
    events = [json.loads(line)["event"] for line in process.log_file.read_text().splitlines()
              if line.startswith("{")]
    assert events.index("service.started") < events.index("service.stopping") < events.index(
        "service.stopped")
    assert "FastStream app shut down gracefully." in events
