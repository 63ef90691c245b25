"""Several instances of one service on one PostgreSQL database: one consumes at a time (the
lease), the others stand by and take over when it is killed mid-stream. Nothing is lost,
nothing applied or published twice, and each company's events are applied in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import query, wait_until_rows
from stdnum import luhn
from support import events_of, publish, registration, wait_for

from envol_shared.contracts import enrolment as ev

COMPANIES, UPDATES = 60, 25  # each company registered 25 times, its accounts year rising


def siren(n: int) -> str:
    body = f"5{n:07d}"
    return body + luhn.calc_check_digit(body)


class Instance:
    def __init__(self, nats_url: str, database_url: str, log: Path, lease_ttl_s: float = 3) -> None:
        env = {**os.environ, "ENVOL_NATS_URL": nats_url, "ENVOL_DATABASE_URL": database_url,
               "ENVOL_LOG_FORMAT": "json", "ENVOL_BATCH_SIZE": "4", "ENVOL_LEASE_TTL_S": str(lease_ttl_s)}
        self.log = log
        with open(log, "ab") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "envol_enrolment.entrypoints.main"],
                                            env=env, stdout=output, stderr=output)

    @property
    def pid(self) -> int:
        return self.process.pid

    def logged(self, event: str) -> bool:
        return any(line.get("event") == event for line in self.lines())

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=60)


@pytest.fixture
def instances(nats_server, database_url, tmp_path):  # type: ignore[no-untyped-def]
    if not database_url.startswith("postgresql"):
        pytest.skip("instances share one PostgreSQL database")
    started: list[Instance] = []

    def start(lease_ttl_s: float = 3) -> Instance:
        instance = Instance(nats_server.url, database_url, tmp_path / f"instance-{len(started)}.log",
                            lease_ttl_s)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop(signal.SIGKILL)


async def holder_pid(database_url: str) -> int | None:
    try:
        rows = await query(database_url, "select holder from consumer_leases where consumer = 'enrolment'")
    except Exception:  # not migrated yet
        return None
    holder = rows[0][0] if rows else ""
    return int(holder.split("/")[1]) if holder else None


async def test_the_standby_takes_over_a_killed_instance_and_order_holds(nc, instances, database_url):
    for update in range(UPDATES):
        for n in range(COMPANIES):
            await publish(nc, ev.CompanyRegistered(**registration(siren(n), accounts_year=2000 + update)),
                          company=siren(n))
    total = COMPANIES * UPDATES
    first, second = instances(), instances()
    await wait_until_rows(database_url, "select count(*) from inbox", total // 10)
    leader = await wait_for(lambda: holder_pid(database_url))
    killed, survivor = (first, second) if leader == first.pid else (second, first)
    assert leader == killed.pid
    killed.stop(signal.SIGKILL)
    assert (await query(database_url, "select count(*) from inbox"))[0][0] < total, "kill mid-stream"

    await wait_until_rows(database_url, "select count(*) from inbox", total, within=120)
    await wait_until_rows(database_url, "select count(*) from outbox where published_at is not null",
                          total, within=60)
    assert await holder_pid(database_url) == survivor.pid
    assert survivor.stop() == 0

    # Every event applied once, every resulting event published once.
    assert (await query(database_url, "select count(*), count(distinct message_key) from inbox"))[0] == (
        total, total)
    assessed = [e for e in await events_of(nc) if e["type"] == "envol.company.assessed.v1"]
    assert len(assessed) == total == len({e["id"] for e in assessed})
    assert len({e["causationid"] for e in assessed}) == total
    # Each company's registrations applied in the order they were published.
    years: dict[str, list[int]] = defaultdict(list)
    for event in assessed:
        years[event["data"]["siren"]].append(event["data"]["accounts_year"])
    assert all(sequence == list(range(2000, 2000 + UPDATES)) for sequence in years.values()), {
        company: sequence for company, sequence in years.items() if sequence != sorted(sequence)}
    final = dict(await query(database_url, "select siren, accounts_year from companies"))
    assert set(final.values()) == {2000 + UPDATES - 1}
    standby_log = survivor.lines()
    assert any(line["event"] == "lease.standing_by" for line in standby_log)
    assert any(line["event"] == "lease.acquired" and line["after_crash"] for line in standby_log)


# A lease that outlives a stop by far: taken over at once means well within it. A standby
# looks every 2 s; without the release it could take over only once the lease expired, at
# least TTL - TTL/4 (its last renewal) after the stop.
HANDOVER_TTL_S = 10
HANDOVER_WITHIN_S = HANDOVER_TTL_S / 2


async def test_a_graceful_stop_hands_over_at_once(nc, instances, database_url):
    first = instances(lease_ttl_s=HANDOVER_TTL_S)
    await wait_for(lambda: holder_pid(database_url))
    second = instances(lease_ttl_s=HANDOVER_TTL_S)
    await wait_for(lambda: _async(second.logged("lease.standing_by")), within=30)
    assert first.stop() == 0
    stopped = time.monotonic()
    await wait_for(lambda: _holder_is(database_url, second.pid), within=HANDOVER_TTL_S * 2, interval=0.1)
    handed_over_in = time.monotonic() - stopped
    assert handed_over_in < HANDOVER_WITHIN_S, (
        f"taken over {handed_over_in:.1f} s after the stop: the lease was not released, it expired")
    await wait_for(lambda: _async(second.logged("lease.acquired")))
    [acquired] = [line for line in second.lines() if line["event"] == "lease.acquired"]
    assert not acquired["after_crash"], "released: nothing left unacknowledged to wait for"
    for n in range(COMPANIES):
        await publish(nc, ev.CompanyRegistered(**registration(siren(n))), company=siren(n))
    await wait_until_rows(database_url, "select count(*) from inbox", COMPANIES, within=30)


async def _holder_is(database_url: str, pid: int) -> bool:
    return await holder_pid(database_url) == pid


async def _async(value):  # type: ignore[no-untyped-def]
    return value
