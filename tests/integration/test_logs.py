"""What operators read: one JSON object per line, with the fields to follow a company, what
each service decided (an application's status, a case's stage, a place given or waited for,
a reminder or an escalation sent), and no personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from conftest import wait_until_rows
from support import SIRENS, application, enrolment_outcome, publish, registration, wait_for

from envol_shared.calendar import BusinessCalendar
from envol_shared.contracts import enrolment as ev
from envol_shared.contracts import financing as fe
from envol_shared.logging import configure_logging

CONTACT = {"name": "Claire Martin-Dupuis", "email": "claire.martin@figeac-composites.fr",
           "phone": "+33 5 61 00 00 00"}


async def test_log_lines_follow_a_company_and_carry_no_personal_data(
    nc, service_process, database_url, tmp_path
):
    siren = SIRENS[6]
    await publish(nc, ev.CompanyRegistered(**registration(siren, contact=CONTACT)), company=siren)
    await publish(nc, ev.ApplicationSubmitted(**application("log-1", siren)), company=siren)
    await publish(nc, ev.ParticipationStarted(application_id="log-1", by="staff-2"), company=siren)
    process = service_process()
    process.start()
    await wait_until_rows(database_url, "select count(*) from inbox", 3)
    assert process.terminate() == 0

    text = (tmp_path / "service.log").read_text()
    for personal in CONTACT.values():
        assert personal not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert f"Company {siren}" not in text  # the legal name
    about_company = [line for line in lines if line.get("company") == siren]
    assert {line["event"] for line in about_company} == {"event.applied", "event.rejected",
                                                         "application.decided"}
    for line in about_company:
        assert line["service"] == "enrolment"
        assert line["cluster"] == "aerospace-valley"
        assert line["event_id"] and line["correlation_id"] and line["event_type"]
        assert line["timestamp"].endswith("Z")
    rejected = next(line for line in about_company if line["event"] == "event.rejected")
    assert "cannot go from eligible to active" in rejected["reason"]
    assert any(line["event"] == "service.stopped" for line in lines)
    # What was decided: submitted, then eligible, each with its reasons' codes (not their text).
    decided = [line for line in about_company if line["event"] == "application.decided"]
    assert [(line["from_status"], line["status"], line["reasons"], line["decided_by"])
            for line in decided] == [(None, "applied", ["submitted"], "staff"),
                                     ("applied", "eligible", ["meets_every_rule"], "enrolment")]
    for line in decided:
        assert (line["application_id"], line["programme"], line["level"]) == (
            "log-1", "AV-INVESTORS-CLUB", "info")
        assert line["event_type"] == "envol.application.submitted.v1" and line["producer"] == "staff"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The in-process services' log lines, at INFO, as operators get them."""
    lines = io.StringIO()
    configure_logging(json_lines=True, level="INFO")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(lines),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield lines
    configure_logging(json_lines=True, level="WARNING")


def logged(lines: io.StringIO, event: str, **fields: Any) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in lines.getvalue().splitlines()]
    return [line for line in found if line["event"] == event
            and all(line.get(key) == value for key, value in fields.items())]


class MovableClock:
    """What time the service's timers think it is: real time plus a jump."""

    def __init__(self, jump: timedelta = timedelta(0)) -> None:
        self.jump = jump

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.jump


async def test_financing_logs_each_stage_and_each_follow_up_sent(nc, start_service, log_lines):
    from envol_financing.bootstrap import bootstrap

    siren, case = SIRENS[10], "av-loan-log"
    await start_service(definition=bootstrap())
    await publish(nc, enrolment_outcome("enrolled", case, siren), company=siren, producer="enrolment")
    # Due six weeks ago: the overdue reminder fires at once, then (the grace long over) the escalation.
    due_on = BusinessCalendar().add_business_days(datetime.now(UTC).date(), -30)
    await publish(nc, fe.RequirementAdded(case_id=case, requirement_id="annual-accounts", kind="report",
                                          title="annual accounts", due_on=due_on, owner="av-staff-2"),
                  company=siren)

    async def both_sent() -> list[dict[str, Any]]:
        sent = logged(log_lines, "follow_up.sent", case_id=case)
        return sent if len(sent) >= 2 else []

    sent = await wait_for(both_sent, within=30)
    assert [(line["kind"], line["reason"], line["requirement_id"]) for line in sent[:2]] == [
        ("reminder", "requirement_overdue", "annual-accounts"),
        ("escalation", "requirement_overdue", "annual-accounts")]
    for line in sent:
        assert (line["service"], line["company"], line["cluster"]) == ("financing", siren, "aerospace-valley")
        assert line["correlation_id"] and line["timer"] == f"{case}:requirement:annual-accounts"
    (opened,) = logged(log_lines, "case.progressed", case_id=case, fact="case.opened")
    assert (opened["stage"], opened["kind"], opened["company"]) == ("opened", "rd_loan", siren)
    assert opened["event_type"] == "envol.application.enrolled.v1" and opened["event_id"]
    (added,) = logged(log_lines, "case.progressed", case_id=case, fact="financing.requirement.added")
    assert (added["stage"], added["event_type"]) == ("opened", "envol.financing.requirement.added.v1")
    assert f"Company {siren}" not in log_lines.getvalue() and "annual accounts" not in log_lines.getvalue()


async def test_export_logs_places_given_and_waited_for_and_follow_ups(nc, start_service, log_lines):
    from envol_export.bootstrap import bootstrap
    from envol_export.domain.follow_up import FollowUpCalendar, FollowUpPolicy

    dates = FollowUpCalendar(FollowUpPolicy(), BusinessCalendar())
    enrolled_at = datetime.now(UTC)
    baseline = dates.checkpoint_due_on("baseline", opened_at=enrolled_at, enrolled_at=enrolled_at)
    # The service thinks it is past the baseline's escalation day: its reminder, then its
    # escalation, go out at once.
    later = dates.at(dates.escalation_day(baseline)) + timedelta(hours=2)
    await start_service(definition=bootstrap(), clock=MovableClock(later - datetime.now(UTC)))
    # The China relay mission has two places: the third SME waits.
    for n, siren in enumerate(SIRENS[1:4], start=1):
        outcome = enrolment_outcome("enrolled", f"av-cn-log-{n}", siren, programme="AV-VIE-RELAY",
                                    kind="export", target_country="CN",
                                    at=enrolled_at + timedelta(minutes=n))
        await publish(nc, outcome, company=siren, producer="enrolment")

    async def decided() -> bool:
        return len(logged(log_lines, "support.placed")) + len(logged(log_lines, "support.waitlisted")) >= 3

    await wait_for(decided, within=30)
    placed = logged(log_lines, "support.placed")
    assert [(line["support_id"], line["unit"], line["partner"]) for line in placed] == [
        ("av-cn-log-1", "av-vie-cn-2026", "vie-relay-cn"), ("av-cn-log-2", "av-vie-cn-2026", "vie-relay-cn")]
    (waiting,) = logged(log_lines, "support.waitlisted")
    assert (waiting["support_id"], waiting["unit"], waiting["status"], waiting["target_country"]) == (
        "av-cn-log-3", None, "waiting", "CN")
    for line in [*placed, waiting]:
        assert line["service"] == "export" and line["company"] in SIRENS[1:4]
        assert line["event_type"] == "envol.application.enrolled.v1"
        assert line["event_id"] and line["correlation_id"]

    async def followed_up() -> list[dict[str, Any]]:
        sent = logged(log_lines, "follow_up.sent", support_id="av-cn-log-1")
        return sent if len(sent) >= 2 else []

    sent = await wait_for(followed_up, within=30)
    assert [(line["kind"], line["reason"], line["checkpoint"]) for line in sent[:2]] == [
        ("reminder", "checkpoint_due", "baseline"), ("escalation", "checkpoint_due", "baseline")]
    assert sent[0]["company"] == SIRENS[1] and sent[0]["timer"].startswith("av-cn-log-1:")


async def test_outcomes_logs_each_journey_step_and_checkpoint_once(nc, start_service, log_lines):
    from envol_outcomes.bootstrap import bootstrap
    from envol_shared.contracts import outcomes

    siren, app = SIRENS[11], "log-out-1"
    await start_service(definition=bootstrap())
    for status in ("enrolled", "withdrawn"):
        await publish(nc, enrolment_outcome(status, app, siren), company=siren, producer="enrolment")
    # Refused (the application was enrolled): no decision to log.
    await publish(nc, outcomes.ComparisonCheckpointRecorded(application_id=app, checkpoint="baseline",
                                                            recorded_on="2026-03-02", value_cents=0),
                  company=siren)

    async def refused() -> list[dict[str, Any]]:
        return logged(log_lines, "event.rejected", company=siren)

    await wait_for(refused, within=30)
    moved = logged(log_lines, "journey.moved", application=app)
    assert [line["status"] for line in moved] == ["enrolled", "withdrawn"]
    assert all(line["service"] == "outcomes" and line["company"] == siren and line["producer"] == "enrolment"
               and line["event_id"] and line["level"] == "info" for line in moved)
    assert logged(log_lines, "checkpoint.recorded", application=app) == []
    assert f"Company {siren}" not in log_lines.getvalue()  # the legal name is never logged
