"""A three-node NATS cluster on loopback ports (deploy/nats/nats.conf on each node, streams
replicated three times), two instances of each service on PostgreSQL: one node and one
instance of each service killed mid-stream, and nothing is lost or applied twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from stdnum import luhn
from support import application, postgres_url, query, registration, wait_for

from deploy.nats.generate import users
from envol_shared.contracts import enrolment as ev
from envol_shared.database import normalise_url
from envol_shared.events import make_event
from envol_shared.nats_server import NatsServer, free_ports
from envol_shared.topology import EVENTS_STREAM, provision

ROOT = Path(__file__).resolve().parents[2]
USERS = {user.name: user for user in users()}
AV = "aerospace-valley"
COMPANIES = 40  # half to the investors' club (financing), half to the VIE relay in Germany (export)
SERVICES = ("enrolment", "financing", "export")
# Every company accepted: programmes with room for all of them.
CATALOGUE = """
cluster = "aerospace-valley"
name = "Aerospace Valley"
[[programmes]]
code = "AV-INVESTORS-CLUB"
title = "Club d'investisseurs"
kind = "financing"
capacity = 1000
opens_on = 2026-01-05
rules = ["sme", "cluster_member", "open_on_application_date", "one_live_application"]
[[programmes]]
code = "AV-VIE-RELAY"
title = "Relais VIE"
kind = "export"
capacity = 1000
opens_on = 2026-01-05
rules = ["sme", "cluster_member", "open_on_application_date", "one_live_application", "target_country"]
countries = ["DE"]
"""


def siren(n: int) -> str:
    body = f"4{n:07d}"
    return body + luhn.calc_check_digit(body)


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        ports = free_ports(9)  # client, route and monitoring ports of three nodes, all distinct
        self.client_ports, route_ports, monitor_ports = ports[:3], ports[3:6], ports[6:]
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in route_ports)
        self.passwords = {name: uuid.uuid4().hex for name in USERS}
        self.nodes = [
            # The deploy configuration, with the flags deploy/nats/cluster.md gives each node.
            NatsServer(tmp_path / f"node-{n}", self.client_ports[n], log_file=tmp_path / f"node-{n}.log",
                       extra_args=["-c", str(ROOT / "deploy" / "nats" / "nats.conf"), "-n", f"nats-{n + 1}",
                                   "--cluster_name", "envol",
                                   "--cluster", f"nats://127.0.0.1:{route_ports[n]}",
                                   "--routes", routes, "-m", str(monitor_ports[n])])
            for n in range(3)
        ]

    def urls(self, user: str) -> str:
        return ",".join(f"nats://{user}:{self.passwords[user]}@127.0.0.1:{port}"
                        for port in self.client_ports)

    async def connect(self, user: str) -> nats.aio.client.Client:
        return await nats.connect(self.urls(user).split(","), inbox_prefix=USERS[user].inbox,
                                  max_reconnect_attempts=-1, reconnect_time_wait=0.5)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    if postgres_url() is None:
        pytest.skip("ENVOL_TEST_DATABASE_URL is not set: the instances share PostgreSQL databases")
    found = Cluster(tmp_path)
    for name, user in USERS.items():
        monkeypatch.setenv(user.password_variable, found.passwords[name])
    for node in found.nodes:  # a node answers clients before its routes are up
        node.start()
    yield found
    for node in found.nodes:
        node.kill()


@pytest.fixture
async def databases() -> AsyncIterator[dict[str, str]]:
    base = postgres_url()
    assert base is not None
    admin = create_async_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    urls = {}
    async with admin.connect() as connection:
        for service in SERVICES:
            name = f"envol_cluster_{service}_{uuid.uuid4().hex[:8]}"
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.make_url(normalise_url(base)).set(database=name)
            urls[service] = url.render_as_string(hide_password=False)
    yield urls
    async with admin.connect() as connection:
        for url in urls.values():
            name = sa.make_url(url).database
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


class Instance:
    def __init__(self, service: str, cluster: Cluster, database_url: str, catalogue: Path, log: Path) -> None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENVOL_")},
               "ENVOL_NATS_URL": cluster.urls(service), "ENVOL_NATS_INBOX_PREFIX": USERS[service].inbox,
               "ENVOL_DATABASE_URL": database_url, "ENVOL_PROVISION": "false", "ENVOL_LOG_FORMAT": "json",
               "ENVOL_BATCH_SIZE": "8", "ENVOL_LEASE_TTL_S": "3", "ENVOL_CATALOGUE_DIR": str(catalogue)}
        self.log = log
        with open(log, "ab") as output:
            self.process = subprocess.Popen([sys.executable, "-m", f"envol_{service}.entrypoints.main"],
                                            env=env, stdout=output, stderr=output)


async def holder(database_url: str, consumer: str) -> int | None:
    try:
        rows = await query(database_url, f"select holder from consumer_leases where consumer = '{consumer}'")
    except Exception:
        return None
    return int(rows[0][0].split("/")[1]) if rows and rows[0][0] else None


async def count(database_url: str, sql: str) -> int:
    try:
        return int((await query(database_url, sql))[0][0])
    except Exception:
        return -1


async def publish_retrying(js, subject: str, payload: bytes, event_id: str) -> None:  # type: ignore[no-untyped-def]
    """As a partner would while a node fails: retry; the message id keeps it stored once."""
    for _ in range(100):
        try:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": event_id}, timeout=2)
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError,
                nats.js.errors.NoStreamResponseError, nats.errors.ConnectionReconnectingError):
            await asyncio.sleep(0.2)
    raise AssertionError("the cluster never took the event")


async def test_a_node_and_an_instance_of_each_service_die_mid_stream(cluster, databases, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("ENVOL_STREAM_REPLICAS", "3")
    admin = await cluster.connect("provisioner")
    for _ in range(100):  # the cluster elects its JetStream meta leader first
        try:
            await provision(admin.jetstream())
            info = await admin.jetstream().stream_info(EVENTS_STREAM)
            break
        except Exception:
            await asyncio.sleep(0.3)
    assert info.config.num_replicas == 3
    await admin.close()

    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (catalogue / "aerospace-valley.toml").write_text(CATALOGUE)
    instances = {service: [Instance(service, cluster, databases[service], catalogue,
                                    tmp_path / f"{service}-{n}.log") for n in range(2)]
                 for service in SERVICES}
    staff = await cluster.connect(f"{AV}-staff")
    js = staff.jetstream()
    try:
        events = []
        for n in range(COMPANIES):
            app, extra = ((f"club-{n}", {}) if n % 2 else
                          (f"vie-{n}", {"programme": "AV-VIE-RELAY", "target_country": "DE"}))
            for data in (ev.CompanyRegistered(**registration(siren(n))),
                         ev.ApplicationSubmitted(**application(app, siren(n), **extra)),
                         ev.ApplicationReviewed(application_id=app, decision="accept",
                                                reviewer="av-staff-1", reason="fits")):
                subject, envelope = make_event(data, cluster=AV, producer="staff", company=siren(n))
                events.append((subject, envelope.to_bytes(), envelope.id))
        third = len(events) // 3
        for subject, payload, event_id in events[:third]:
            await publish_retrying(js, subject, payload, event_id)
        enrolment_db, financing_db, export_db = (databases[service] for service in SERVICES)
        await wait_for(lambda: _at_least(enrolment_db, "select count(*) from inbox", third // 2))

        # A node dies, and so does the consuming instance of each service.
        cluster.nodes[1].kill()
        for service, database in databases.items():
            pid = await holder(database, service)
            for instance in instances[service]:
                if instance.process.pid == pid:
                    instance.process.send_signal(signal.SIGKILL)
        for subject, payload, event_id in events[third:]:
            await publish_retrying(js, subject, payload, event_id)

        deadline = asyncio.get_running_loop().time() + 180
        while asyncio.get_running_loop().time() < deadline:
            if (await count(enrolment_db, "select count(*) from inbox") == len(events)
                    and await count(financing_db, "select count(*) from financing_cases") == COMPANIES // 2
                    and await count(export_db, "select count(*) from export_supports") == COMPANIES // 2):
                break
            await asyncio.sleep(0.5)
        assert await count(enrolment_db, "select count(*) from inbox") == len(events)
        assert await count(enrolment_db, "select count(distinct message_key) from inbox") == len(events)
        statuses = await query(enrolment_db, "select status, count(*) from applications group by status")
        assert dict(statuses) == {"enrolled": COMPANIES}
        assert await count(financing_db, "select count(*) from financing_cases") == COMPANIES // 2
        # Each case opened once, and nothing else happened to it.
        assert await count(financing_db, "select count(*) from case_history") == COMPANIES // 2
        assert await count(export_db, "select count(*) from export_supports") == COMPANIES // 2

        # What the services published, read back from the replicated stream: each once.
        admin = await cluster.connect("provisioner")
        subscription = await admin.jetstream().pull_subscribe(f"envol.{AV}.>", stream=EVENTS_STREAM)
        published: list[dict] = []
        while True:
            try:
                batch = await subscription.fetch(500, timeout=3)
            except nats.errors.TimeoutError:
                break
            published += [json.loads(m.data) for m in batch]
        enrolled = [e for e in published if e["type"] == "envol.application.enrolled.v1"]
        opened = [e for e in published if e["type"] == "envol.case.opened.v1"]
        supported = [e for e in published if e["type"] == "envol.support.opened.v1"]
        assert len(enrolled) == COMPANIES == len({e["data"]["application_id"] for e in enrolled})
        assert len(opened) == COMPANIES // 2 == len({e["data"]["case_id"] for e in opened})
        assert len(supported) == COMPANIES // 2 == len({e["data"]["support_id"] for e in supported})
        await admin.close()
    finally:
        await staff.close()
        for service_instances in instances.values():
            for instance in service_instances:
                if instance.process.poll() is None:
                    instance.process.send_signal(signal.SIGTERM)
                    instance.process.wait(timeout=30)


async def _at_least(database_url: str, sql: str, expected: int) -> bool:
    return await count(database_url, sql) >= expected
