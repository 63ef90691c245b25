"""The consumer lease on each database: one holder at a time, a standby takes over only once
the holder stops renewing, a deposed holder cannot renew, a graceful release hands over at
once."""

from __future__ import annotations

import asyncio

import pytest

from envol_enrolment.bootstrap import MIGRATIONS
from envol_shared.database import create_engine, migrate
from envol_shared.lease import ConsumerLease, LeaseLost

TTL_S = 0.5


async def within(lease: ConsumerLease, seconds: float) -> bool:
    """Whether `lease` is acquired within `seconds` (then standing by is given up)."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stopping.set)
    return await lease.acquire(stopping)


@pytest.fixture
async def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    await migrate(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


async def test_one_holder_then_a_takeover_once_it_stops_renewing(engine):
    first = ConsumerLease(engine, "enrolment", ttl_s=TTL_S, poll_s=0.05)
    second = ConsumerLease(engine, "enrolment", ttl_s=TTL_S, poll_s=0.05)
    assert await within(first, 1) and not first.after_crash
    # While the holder renews, the standby waits.
    for _ in range(4):
        assert not await within(second, TTL_S / 2)
        await first.renew()
    # Silence longer than the lease: taken over, as after a crash.
    assert await within(second, 3 * TTL_S)
    assert second.after_crash and second.epoch == (first.epoch or 0) + 1
    with pytest.raises(LeaseLost):
        await first.renew()
    assert not first.held


async def test_a_graceful_release_hands_over_at_once(engine):
    first = ConsumerLease(engine, "financing", ttl_s=60, poll_s=0.05)
    second = ConsumerLease(engine, "financing", ttl_s=60, poll_s=0.05)
    assert await within(first, 1)
    assert not await within(second, 0.2)
    await first.release()
    assert await within(second, 1)
    assert not second.after_crash  # nothing left unacknowledged to wait for


async def test_leases_of_different_services_are_independent(engine):
    assert await within(ConsumerLease(engine, "enrolment", ttl_s=60), 1)
    assert await within(ConsumerLease(engine, "export", ttl_s=60), 1)
