"""Provisioning and graceful shutdown on a real nats-server."""

from __future__ import annotations

from conftest import query, wait_until_rows
from stdnum import luhn
from support import publish, registration

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
    total = 1500
    for n in range(total):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    service = await start_service(batch_size=100)
    await wait_until_rows(database_url, "select count(*) from inbox", 1)
    await service.stop()

    applied = (await query(database_url, "select count(*) from inbox"))[0][0]
    assert 0 < applied < total, "the stop must land mid-stream for this test to mean anything"
    pending = (await query(database_url, "select count(*) from outbox where published_at is null"))
    assert pending[0][0] == 0, "the outbox is flushed before the service closes"
    info = await nc.jetstream().consumer_info(EVENTS_STREAM, "enrolment")
    assert info.num_ack_pending == 0, "no fetched message is left unacknowledged"
    assert info.delivered.consumer_seq == applied, "every fetched message was committed"
