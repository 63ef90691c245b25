"""The operator CLI (envol-ops) against a real nats-server and a real enrolment service.

The CLI runs in a thread of its own (it runs its own event loop, as from a terminal), the
service in the test's loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from pathlib import Path

from support import (
    SIRENS,
    dead_letters,
    events_of,
    publish,
    publish_raw,
    registration,
    stream_messages,
    wait_for,
)
from typer.testing import CliRunner, Result

from deploy.nats.generate import AUTH_CONF
from envol_enrolment.bootstrap import bootstrap
from envol_shared.consumer import EventConsumer
from envol_shared.contracts import enrolment as ev
from envol_shared.events import make_event
from envol_shared.operations import dead_letters as letters
from envol_shared.operations.cli import app
from envol_shared.topology import EVENTS_STREAM

AV = "aerospace-valley"
REGISTER = f"envol.{AV}.staff.company.registered"


async def ops(url: str, *args: str) -> Result:
    """`envol-ops --nats-url URL ARGS...`, with a wide terminal so that table cells stay whole."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, ["--nats-url", url, *args],
                                   env={"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"})


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the rich table row whose first cell is `first_cell`."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


async def assessed(nc, siren: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in await events_of(nc, f"envol.{AV}.enrolment.company.assessed")
            if e["data"]["siren"] == siren]


async def test_dead_letters_are_listed_shown_replayed_once_or_refused_with_their_reason(
        nc, nats_server, start_service, monkeypatch):
    monkeypatch.setattr(EventConsumer, "_delay", lambda self, attempt: 0.1)  # 5 attempts, quickly
    definition = bootstrap()
    register = definition.handlers[ev.CompanyRegistered]
    culprit = SIRENS[3]
    bug = {"present": True}

    async def fails_until_fixed(event, ctx):  # type: ignore[no-untyped-def]
        if event.company_id == culprit and bug["present"]:
            raise RuntimeError("a bug, fixed later")
        await register(event, ctx)

    await start_service(definition=dataclasses.replace(
        definition, handlers={**definition.handlers, ev.CompanyRegistered: fails_until_fixed}))
    subject, envelope = make_event(ev.CompanyRegistered(**registration(culprit)), cluster=AV,
                                   producer="staff", company=culprit)
    await nc.jetstream().publish(subject, envelope.to_bytes())
    await publish_raw(nc, REGISTER, b"this is not json")
    letters = await wait_for(lambda: _at_least(dead_letters(nc), 2), within=30)
    failed = next(m for m in letters if m.data == envelope.to_bytes()).metadata.sequence.stream
    unreadable = next(m for m in letters if m.data == b"this is not json").metadata.sequence.stream

    listed = await ops(nats_server.url, "dead-letters", "list", "--service", "enrolment")
    assert listed.exit_code == 0, listed.output
    assert "handler failed on attempt 5 of 5: RuntimeError" in table_row(listed.output, str(failed))
    assert "not JSON" in table_row(listed.output, str(unreadable))[-1]

    shown = await ops(nats_server.url, "dead-letters", "show", str(failed))
    assert shown.exit_code == 0, shown.output
    assert "reason: handler failed on attempt 5 of 5: RuntimeError" in shown.output
    assert table_row(shown.output, "Envol-Original-Subject")[1] == subject
    assert f'"id": "{envelope.id}"' in shown.output  # the original, pretty-printed
    assert "replayable" in shown.output

    bug["present"] = False  # the bug is fixed: the dead letter can be replayed
    replayed = await ops(nats_server.url, "dead-letters", "replay", str(failed), str(unreadable))
    assert replayed.exit_code == 0, replayed.output
    assert table_row(replayed.output, str(failed))[1] == "published"
    refused = table_row(replayed.output, str(unreadable))
    assert refused[1] == "refused"
    assert "still unreadable with the current contract: not JSON" in refused[2]

    [applied] = await wait_for(lambda: assessed(nc, culprit), within=20)
    copies = [m for m in await stream_messages(nc, EVENTS_STREAM, subject)
              if m.headers and m.headers.get("Envol-Replay-Of") == envelope.id]
    assert len(copies) == 1
    replay = json.loads(copies[0].data)
    assert replay["id"] != envelope.id and replay["data"] == envelope.data
    assert applied["causationid"] == replay["id"]

    again = await ops(nats_server.url, "dead-letters", "replay", "--all", "--service", "enrolment")
    assert again.exit_code == 0, again.output
    assert table_row(again.output, str(failed))[1] == "already replayed"
    assert table_row(again.output, str(unreadable))[1] == "refused"
    copies = [m for m in await stream_messages(nc, EVENTS_STREAM, subject)
              if m.headers and m.headers.get("Envol-Replay-Of") == envelope.id]
    assert len(copies) == 1, "replaying again published nothing new"


async def _at_least(coroutine, count: int):  # type: ignore[no-untyped-def]
    found = await coroutine
    return found if len(found) >= count else None


CSV = (
    "\ufeffSIREN;Legal name;Region;Staff AWU;Turnover EUR;Balance sheet EUR;Accounts year\n"
    f"{SIRENS[4][:3]} {SIRENS[4][3:6]} {SIRENS[4][6:]};Aéro Composites;Occitanie;38,5;"
    "6 400 000;4 100 000,50;2025\n"
    "123 456 789;Bad Check Digit;Occitanie;12;1 000 000;900 000;2025\n"
    f"{SIRENS[5]};Usinage Sud;Occitanie;12;1 000 000,00;900 000;2024\n"
    f"{SIRENS[6]};Turbines;Nouvelle-Aquitaine;beaucoup;1 000 000;900 000;2025\n"
    f"{SIRENS[7]};Avionique;PACA;220;49 000 000;40 000 000;2025\n"
)


async def test_an_import_publishes_the_valid_rows_reports_the_others_and_imports_once(
        nc, nats_server, start_service, tmp_path: Path):
    await start_service()
    path = tmp_path / "members.csv"
    path.write_bytes(CSV.encode("utf-8"))

    result = await ops(nats_server.url, "import", "companies", str(path), "--cluster", AV)
    assert result.exit_code == 1, result.output  # some rows were refused
    assert "5 row(s): 3 valid, 2 refused" in result.output
    assert "invalid SIREN '123456789'" in table_row(result.output, "3")[2]
    assert "staff_awu: 'beaucoup' is not a number" in table_row(result.output, "5")[2]
    assert "published 3 new registration(s), 0 already there" in result.output

    for siren in (SIRENS[4], SIRENS[5], SIRENS[7]):
        [event] = await wait_for(lambda siren=siren: assessed(nc, siren), within=20)
        assert event["data"]["clusters"] == [AV]
    first = await wait_for(lambda: assessed(nc, SIRENS[4]))
    assert first[0]["data"]["staff_awu"] == 38.5 and first[0]["data"]["balance_sheet_cents"] == 410_000_050

    again = await ops(nats_server.url, "import", "companies", str(path), "--cluster", AV)
    assert "published 0 new registration(s), 3 already there" in again.output
    assert len(await stream_messages(nc, EVENTS_STREAM, REGISTER)) == 3


async def test_status_shows_the_consumers_pending_count_and_the_lease_holder(
        nc, nats_server, start_service, database_url):
    for siren in SIRENS[8:11]:
        await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)

    before = await ops(nats_server.url, "status")
    assert before.exit_code == 0, before.output
    assert table_row(before.output, "enrolment")[1:3] == ["3", "0"]  # pending, ack pending
    assert table_row(before.output, EVENTS_STREAM)[1] == "3"

    await start_service()
    await wait_for(lambda: assessed(nc, SIRENS[10]), within=20)
    after = await ops(nats_server.url, "--database-url", f"enrolment={database_url}", "status")
    assert after.exit_code == 0, after.output
    assert table_row(after.output, "enrolment")[1] == "0"
    row = table_row(after.output[after.output.index("Databases"):], "enrolment")
    assert row[1] == "0"  # outbox backlog: everything published
    # The holder is this process (the service runs in it): host/pid/random.
    assert row[3].startswith(f"{socket.gethostname()}/{os.getpid()}/"), row


def test_a_service_event_other_services_consume_is_not_replayed_unless_asked() -> None:
    """financing gave up on an `application.enrolled`: export and outcomes consume it too, and
    would apply a replay a second time."""
    siren = SIRENS[0]
    _, envelope = make_event(ev.CompanyRegistered(**registration(siren)), cluster=AV, producer="staff",
                             company=siren)
    document = json.loads(envelope.to_bytes())
    document.update(type="envol.application.enrolled.v1", data={"application_id": "x"})
    letter = letters.DeadLetter(9, "envol-dead-letter.financing.aerospace-valley.enrolment", {
        "Envol-Service": "financing", "Envol-Reason": "handler failed on attempt 5 of 5: ValueError",
        "Envol-Original-Subject": f"envol.{AV}.enrolment.application.enrolled"},
        json.dumps(document).encode())
    verdict = letters.judge(letter)
    assert verdict.refusal is not None and "still unreadable" in verdict.refusal  # its data is wrong here
    _, enrolled = make_event(_enrolled(siren), cluster=AV, producer="enrolment", company=siren)
    letter = dataclasses.replace(letter, data=enrolled.to_bytes())
    refusal = letters.judge(letter).refusal
    assert refusal == ("export, outcomes also consume envol.application.enrolled.v1 and would apply it "
                       "a second time (--shared-ok to replay anyway)")
    allowed = letters.judge(letter, shared_ok=True)
    assert allowed.refusal is None and allowed.producer == "enrolment"  # the service's own NATS user
    assert allowed.headers == {"Nats-Msg-Id": letter.replay_id(), "Envol-Replay-Of": enrolled.id,
                               "Envol-Replay-Of-Dead-Letter": "9"}


def _enrolled(siren: str) -> ev.ApplicationTransition:
    return ev.ApplicationEnrolled(
        application_id="av-2026-0001", siren=siren, legal_name="A", cluster=AV, programme="AV-RD-LOAN",
        programme_kind="financing", cohort="AV-RD-LOAN-2026", from_status="eligible", to_status="enrolled",
        at="2026-03-09T10:00:00Z", by="staff-1", reasons=[])


def test_partner_credentials_give_the_user_a_password_and_its_auth_conf_entry() -> None:
    result = CliRunner().invoke(app, ["partner-credentials", AV, "banque-garonne"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    variable = "ENVOL_NATS_PASSWORD_AEROSPACE_VALLEY_BANQUE_GARONNE="
    [env_line] = [line for line in lines if line.startswith(variable)]
    assert len(env_line.split("=", 1)[1]) == 48
    entry = result.output[result.output.index('    {\n      user: "aerospace-valley-banque-garonne"'):]
    assert entry.strip() in AUTH_CONF.read_text(), "the same entry as the generated auth.conf"
