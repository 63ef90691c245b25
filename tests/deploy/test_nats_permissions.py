"""deploy/nats on a real nats-server: every user can do its job and nothing more.

The server runs deploy/nats/nats.conf with the generated auth.conf, each user's password in
the environment as compose gives it. Partners publish their own events only, read their
own rejections only, and touch no JetStream configuration; services work with their own
users end to end, and answer queries into the askers' inboxes only; clusters cannot see one
another. What NATS cannot close (JetStream's acknowledgement goes to whatever reply subject
the publisher chose) is shown too, with what keeps it harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import SIRENS, application, registration, wait_for

from deploy.nats.generate import AUTH_CONF, main, render, users
from envol_enrolment.bootstrap import bootstrap as enrolment_bootstrap
from envol_financing.bootstrap import bootstrap as financing_bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.events import make_event
from envol_shared.nats_server import NatsServer, free_ports
from envol_shared.queries import query_subject
from envol_shared.service import RunningService, Settings
from envol_shared.topology import EVENTS_STREAM, provision

NATS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "nats.conf"
AV, PG = "aerospace-valley", "pegase"
USERS = {user.name: user for user in users()}


def test_the_committed_auth_conf_is_generated_from_the_partner_files():
    assert AUTH_CONF.read_text() == render(users()), "run python -m deploy.nats.generate"
    assert main(["--check"]) == 0


class Secured:
    """A nats-server running deploy/nats/nats.conf; `connect(user)` logs in as that user."""

    def __init__(self, server: NatsServer, passwords: dict[str, str]) -> None:
        self.server = server
        self.passwords = passwords
        self.errors: dict[str, list[str]] = {}

    def url(self, user: str) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}"

    @contextlib.asynccontextmanager
    async def connect(self, user: str) -> AsyncIterator[Client]:
        errors = self.errors.setdefault(user, [])

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        client = await nats.connect(self.url(user), inbox_prefix=USERS[user].inbox, error_cb=on_error,
                                    max_reconnect_attempts=0)
        try:
            yield client
        finally:
            await client.close()


def start_secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf: Path = NATS_CONF) -> Secured:
    passwords = {}
    for user in USERS.values():
        passwords[user.name] = f"{user.token}-{uuid.uuid4().hex}"
        monkeypatch.setenv(user.password_variable, passwords[user.name])
    client, monitor = free_ports(2)
    server = NatsServer(tmp_path / "jetstream", client, log_file=tmp_path / "nats.log",
                        extra_args=["-c", str(conf), "-m", str(monitor)])
    server.start()
    return Secured(server, passwords)


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Secured]:
    server = start_secured(tmp_path, monkeypatch)
    yield server
    server.server.kill()


@pytest.fixture
async def provisioned(secured: Secured) -> Secured:
    async with secured.connect("provisioner") as admin:
        await provision(admin.jetstream())
    return secured


def event_bytes(data: Any, cluster: str, producer: str, company: str) -> tuple[str, bytes]:
    subject, envelope = make_event(data, cluster=cluster, producer=producer, company=company)
    return subject, envelope.to_bytes()


async def stored(secured: Secured, subject: str) -> bool:
    async with secured.connect("provisioner") as admin:
        try:
            await admin.jetstream().get_last_msg(EVENTS_STREAM, subject)
            return True
        except nats.js.errors.NotFoundError:
            return False


async def can_publish(client: Client, subject: str, payload: bytes = b"{}") -> bool:
    try:
        await client.jetstream().publish(subject, payload, timeout=1.5)
        return True
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
        return False


async def can_subscribe(secured: Secured, user: str, subject: str, probe_from: str | None = None) -> bool:
    """Whether `user` may subscribe to `subject`, decided by what arrives, never by a quiet
    moment: the server's permissions violation (no), or a probe that `probe_from`, a user
    allowed to publish there, sends on a subject the subscription covers (yes). Neither within
    a few seconds fails the test."""
    async with secured.connect(user) as client:
        received = asyncio.Event()

        async def receive(msg: nats.aio.msg.Msg) -> None:
            received.set()

        await client.subscribe(subject, cb=receive)
        await client.flush()
        if probe_from is not None:
            async with secured.connect(probe_from) as prober:
                await prober.publish(subject.replace(">", "probe").replace("*", "probe"), b"probe")
                await prober.flush()

        async def verdict() -> str | None:
            # (nats-py reports the violation in lower case)
            if any("permissions violation" in error.lower() and subject.lower() in error.lower()
                   for error in secured.errors[user]):
                return "refused"
            return "allowed" if received.is_set() else None

        return await wait_for(verdict, within=5, interval=0.02) == "allowed"


async def can_create_consumer(client: Client, name: str, filter_subject: str) -> bool:
    try:
        await client.jetstream().add_consumer(
            EVENTS_STREAM, ConsumerConfig(name=name, filter_subject=filter_subject,
                                          deliver_policy=DeliverPolicy.ALL, inactive_threshold=60))
        return True
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
        return False


async def test_a_partner_publishes_its_own_events_and_nothing_else(provisioned: Secured):
    bank = f"{AV}-banque-garonne"
    siren = SIRENS[0]
    decided = fe.LoanDecided(case_id="av-1", decision="refused", decided_on="2026-04-20", reason="risk")
    async with provisioned.connect(bank) as client:
        own, payload = event_bytes(decided, AV, "banque-garonne", siren)
        assert await can_publish(client, own, payload)
        refused = [
            f"envol.{AV}.credit-pyrenees.loan.decided",          # another partner's subject
            f"envol.{AV}.financing.case.opened",                  # a service's events
            f"envol.{PG}.banque-garonne.loan.decided",            # another cluster
            f"envol.{AV}.banque-garonne.club.round.closed",       # an event of another kind
            f"envol.{AV}.banque-garonne.application.submitted",   # a staff event
            f"envol.{AV}.banque-garonne.event.rejected",          # a forged rejection
        ]
        for subject in refused:
            assert not await can_publish(client, subject, payload), subject
        # No JetStream configuration: not even reading the stream's settings.
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await client.jetstream().stream_info(EVENTS_STREAM)
    assert await stored(provisioned, own)
    for subject in refused:
        assert not await stored(provisioned, subject), subject


async def test_a_partner_reads_its_own_rejections_only(provisioned: Secured):
    bank = f"{AV}-banque-garonne"
    own = f"envol.{AV}.banque-garonne.event.rejected"
    assert await can_subscribe(provisioned, bank, own, probe_from="financing")
    for subject in (f"envol.{AV}.credit-pyrenees.event.rejected", f"envol.{AV}.financing.>",
                    f"envol.{AV}.>", "envol.>", "_INBOX.>", f"{USERS['financing'].inbox}.>"):
        assert not await can_subscribe(provisioned, bank, subject), subject
    async with provisioned.connect(bank) as client:
        # No JetStream API beyond publishing: no consumer, not even on its own rejections.
        assert not await can_create_consumer(client, bank, own)
        assert not await can_create_consumer(client, bank, f"envol.{AV}.>")


async def test_staff_of_one_cluster_cannot_reach_another(provisioned: Secured):
    staff = f"{PG}-staff"
    async with provisioned.connect(staff) as client:
        registered = ev.CompanyRegistered(**registration(SIRENS[1], cluster=PG))
        subject, payload = event_bytes(registered, PG, "staff", SIRENS[1])
        assert await can_publish(client, subject, payload)
        assert not await can_publish(client, subject.replace(f".{PG}.", f".{AV}."), payload)
        assert not await can_create_consumer(client, staff, f"envol.{AV}.>")
    assert await can_subscribe(provisioned, staff, f"envol.{PG}.financing.>", probe_from="financing")
    assert not await can_subscribe(provisioned, staff, f"envol.{AV}.>")
    async with provisioned.connect(staff) as client:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await client.request(query_subject(AV, "financing", "figures"), b"{}", timeout=1)


async def test_a_service_user_cannot_configure_jetstream(provisioned: Secured):
    async with provisioned.connect("financing") as client:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await client.jetstream().delete_stream(EVENTS_STREAM)
        assert not await can_publish(client, f"envol.{AV}.enrolment.application.enrolled")
    async with provisioned.connect("provisioner") as admin:
        assert (await admin.jetstream().stream_info(EVENTS_STREAM)).config.name == EVENTS_STREAM


async def test_the_operator_reads_jetstream_and_publishes_events_but_changes_nothing(provisioned: Secured):
    siren = SIRENS[2]
    registered = ev.CompanyRegistered(**registration(siren))
    async with provisioned.connect("operator") as client:
        js = client.jetstream()
        # What `envol-ops status` and `dead-letters` read.
        assert (await js.stream_info(EVENTS_STREAM)).config.name == EVENTS_STREAM
        assert (await js.consumer_info(EVENTS_STREAM, "enrolment")).name == "enrolment"
        # A replay or an import: an event on any producer's subject, then read back.
        subject, payload = event_bytes(registered, AV, "staff", siren)
        assert await can_publish(client, subject, payload)
        assert (await js.get_msg(EVENTS_STREAM, subject=subject, next=True, seq=1)).data == payload
        # Never a rejection, a consumer, a change to JetStream, nor a query.
        assert not await can_publish(client, f"envol.{AV}.staff.event.rejected", payload)
        assert not await can_create_consumer(client, "operator", f"envol.{AV}.>")
        for change in (js.delete_stream(EVENTS_STREAM), js.purge_stream(EVENTS_STREAM),
                       js.delete_consumer(EVENTS_STREAM, "enrolment")):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await change
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await client.request(query_subject(AV, "enrolment", "company"), b"{}", timeout=1)
    assert await stored(provisioned, subject)
    async with provisioned.connect("provisioner") as admin:
        assert (await admin.jetstream().consumer_info(EVENTS_STREAM, "enrolment")).name == "enrolment"


async def test_every_service_does_its_job_with_its_own_user(provisioned: Secured, tmp_path: Path):
    services = []
    for name, definition in (("enrolment", enrolment_bootstrap()), ("financing", financing_bootstrap())):
        settings = Settings(name, provisioned.url(name), f"sqlite+aiosqlite:///{tmp_path / name}.sqlite", 64,
                            timer_interval_s=0.2, provision=False, nats_inbox_prefix=USERS[name].inbox)
        service = RunningService(definition, settings)
        await service.start()
        services.append(service)
    try:
        siren, app = SIRENS[2], "av-perm-1"
        staff, bank = f"{AV}-staff", f"{AV}-banque-garonne"
        async with provisioned.connect(staff) as staff_tool, provisioned.connect(bank) as bank_tool:
            rejections = await bank_tool.subscribe(f"envol.{AV}.banque-garonne.event.rejected")
            # Staff follow their cluster's events as the services publish them, under their own users.
            followed = await staff_tool.subscribe(f"envol.{AV}.>")
            for data in (ev.CompanyRegistered(**registration(siren)),
                         ev.ApplicationSubmitted(**application(app, siren, "AV-RD-LOAN", project={
                             "reference": "FUI-1", "call": "FUI 31", "labelling_cluster": AV,
                             "label_date": "2025-11-03", "funder": "Bpifrance"})),
                         ev.ApplicationReviewed(application_id=app, decision="accept", reviewer="av-staff-1",
                                                reason="fits")):
                subject, payload = event_bytes(data, AV, "staff", siren)
                assert await can_publish(staff_tool, subject, payload)

            async def case_state() -> dict[str, Any] | None:
                reply = await staff_tool.request(query_subject(AV, "financing", "case"),
                                                 json.dumps({"case_id": app}).encode(), timeout=2)
                answer = json.loads(reply.data)
                return None if "error" in answer else answer["case"]

            assert (await wait_for(case_state))["stage"] == "opened"
            subject, payload = event_bytes(fe.CaseAssigned(case_id=app, partner="banque-garonne",
                                                           requested_cents=10_000_000, by="av-staff-1"),
                                           AV, "staff", siren)
            assert await can_publish(staff_tool, subject, payload)
            # The bank's first try comes before the case is assigned to it, or not: either way
            # it hears back. A disbursement before any decision is refused, with the reason.
            subject, payload = event_bytes(fe.LoanTrancheDisbursed(case_id=app, tranche=1, amount_cents=100,
                                                                   disbursed_on="2026-04-02"),
                                           AV, "banque-garonne", siren)
            assert await can_publish(bank_tool, subject, payload)
            rejection = json.loads((await rejections.next_msg(timeout=20)).data)
            assert rejection["data"]["service"] == "financing"
            reason = rejection["data"]["reason"]
            assert "no disbursement before the loan is granted" in reason or "not assigned" in reason
            types = set()
            with contextlib.suppress(nats.errors.TimeoutError):
                while True:
                    types.add(json.loads((await followed.next_msg(timeout=1)).data)["type"])
            assert {"envol.application.enrolled.v1", "envol.case.opened.v1", "envol.case.progressed.v1",
                    "envol.event.rejected.v1"} <= types
    finally:
        for service in services:
            await service.stop()
    for name in ("enrolment", "financing", f"{AV}-staff", f"{AV}-banque-garonne"):
        assert not [e for e in provisioned.errors.get(name, []) if "ermissions" in e], name


def violations(secured: Secured, user: str, subject: str) -> int:
    # (nats-py reports the violation in lower case)
    return sum("permissions violation" in error.lower() and subject.lower() in error.lower()
               for error in secured.errors.get(user, []))


async def test_a_service_user_answers_into_the_askers_inboxes_only(provisioned: Secured):
    # A responder that obeys whatever reply subject it is given, as a plain nats-py one would:
    # NATS lets the enrolment user put its answer into the asking staff's inbox, nowhere else
    # outside its own subjects (those the service's code guards: see the next test).
    elsewhere = [f"envol.{PG}.financing.case.opened",            # another service's events
                 f"envol.{PG}.staff.company.registered",         # a partner's namespace
                 f"envol.{AV}.banque-garonne.loan.decided",      # another cluster's partner
                 f"{USERS['financing'].inbox}.x1"]               # another service's inbox
    async with provisioned.connect("enrolment") as service, provisioned.connect(f"{PG}-staff") as staff:
        async def obey(msg: nats.aio.msg.Msg) -> None:
            await service.publish(msg.reply, b'{"answer": "whatever"}')

        await service.subscribe("envol-query.*.enrolment.>", cb=obey)
        await service.flush()
        for reply in elsewhere:
            await staff.publish(query_subject(PG, "enrolment", "company"), b"{}", reply=reply)
        answer = await staff.request(query_subject(PG, "enrolment", "company"), b"{}", timeout=2)
        assert answer.data == b'{"answer": "whatever"}'
        await service.flush()

        async def each_refused() -> bool:  # the server reports each violation to the service
            return all(violations(provisioned, "enrolment", subject) for subject in elsewhere)

        await wait_for(each_refused, within=10, interval=0.02)
    for subject in elsewhere:
        assert violations(provisioned, "enrolment", subject) == 1, subject
    for subject in elsewhere[:3]:
        assert not await stored(provisioned, subject), subject


async def test_a_query_cannot_make_a_service_publish_its_own_events(provisioned: Secured, tmp_path: Path):
    # The enrolment user may publish envol.*.enrolment.>, so NATS cannot refuse this reply
    # subject: the service itself answers into inboxes of the query's cluster only.
    settings = Settings("enrolment", provisioned.url("enrolment"), f"sqlite+aiosqlite:///{tmp_path}/e.sqlite",
                        64, provision=False, nats_inbox_prefix=USERS["enrolment"].inbox)
    service = RunningService(enrolment_bootstrap(), settings)
    await service.start()
    forged = f"envol.{PG}.enrolment.application.enrolled"
    try:
        async with provisioned.connect(f"{AV}-staff") as staff:
            request = json.dumps({"company_id": SIRENS[3]}).encode()
            await staff.publish(query_subject(AV, "enrolment", "company"), request, reply=forged)
            # Answered in order: by the time this answer comes, the forged one was refused.
            answer = await staff.request(query_subject(AV, "enrolment", "company"), request, timeout=5)
            assert "error" in json.loads(answer.data)
    finally:
        await service.stop()
    assert not await stored(provisioned, forged)


async def test_jetstream_acknowledges_on_the_reply_subject_the_publisher_chose(provisioned: Secured):
    # What NATS cannot close: permissions apply to the subject a client publishes on, not to its
    # reply subject, and JetStream publishes its acknowledgement there as itself. Into the
    # stream it is a bare acknowledgement, never a CloudEvent: Envol dead-letters it as
    # unreadable. Into the JetStream API it is refused by strict parsing (nats.conf).
    aimed = f"envol.{PG}.staff.company.registered"
    api = [f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}", f"$JS.API.STREAM.MSG.DELETE.{EVENTS_STREAM}",
           f"$JS.API.STREAM.DELETE.{EVENTS_STREAM}", f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.financing"]
    decided = fe.LoanDecided(case_id="av-9", decision="refused", decided_on="2026-04-20", reason="risk")
    own, payload = event_bytes(decided, AV, "banque-garonne", SIRENS[4])
    async with provisioned.connect(f"{AV}-banque-garonne") as bank:
        assert await can_publish(bank, own, payload)  # stream sequence 1
        for reply in [aimed, *api]:
            await bank.publish(own, payload, reply=reply)
        await bank.flush()
    async with provisioned.connect("provisioner") as admin:
        js = admin.jetstream()

        async def every_acknowledgement_stored() -> bool:
            return (await js.stream_info(EVENTS_STREAM)).state.messages >= 1 + 2 + len(api)

        await wait_for(every_acknowledgement_stored, within=10, interval=0.05)
        assert not provisioned.errors.get(f"{AV}-banque-garonne")  # nothing NATS saw as a violation
        acknowledgement = await js.get_last_msg(EVENTS_STREAM, aimed)
        assert json.loads(acknowledgement.data) == {"stream": EVENTS_STREAM, "seq": 2}
        state = (await js.stream_info(EVENTS_STREAM)).state
        # Every event and the one acknowledgement stored: nothing purged or deleted.
        assert (state.first_seq, state.messages) == (1, 1 + 2 + len(api))
        assert (await js.consumer_info(EVENTS_STREAM, "financing")).name == "financing"


async def test_strict_mode_is_what_keeps_an_acknowledgement_from_purging_the_stream(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    conf = NATS_CONF.read_text()
    assert "\n  strict: true\n" in conf, "nats.conf must pin JetStream's strict mode"
    (tmp_path / "nats.conf").write_text(conf.replace("strict: true", "strict: false"))
    shutil.copy(AUTH_CONF, tmp_path / "auth.conf")
    lax = start_secured(tmp_path, monkeypatch, tmp_path / "nats.conf")
    try:
        async with lax.connect("provisioner") as admin:
            await provision(admin.jetstream())
        decided = fe.LoanDecided(case_id="av-9", decision="refused", decided_on="2026-04-20", reason="risk")
        own, payload = event_bytes(decided, AV, "banque-garonne", SIRENS[4])
        async with lax.connect(f"{AV}-banque-garonne") as bank:
            for _ in range(3):
                assert await can_publish(bank, own, payload)
            await bank.publish(own, payload, reply=f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}")
            await bank.flush()
        async with lax.connect("provisioner") as admin:
            async def purged() -> bool:
                return (await admin.jetstream().stream_info(EVENTS_STREAM)).state.first_seq == 4

            await wait_for(purged, within=10, interval=0.05)
            state = (await admin.jetstream().stream_info(EVENTS_STREAM)).state
        assert (state.first_seq, state.messages) == (4, 1)  # a partner purged the stream
    finally:
        lax.server.kill()


def test_passwords_are_never_in_the_configuration():
    text = AUTH_CONF.read_text()
    assert all(f"password: ${user.password_variable}" in text for user in USERS.values())
