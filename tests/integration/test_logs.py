"""What operators read: one JSON object per line, with the fields to follow a company, and no
personal data."""

from __future__ import annotations

import json

from conftest import wait_until_rows
from support import SIRENS, application, publish, registration

from envol_shared.contracts import enrolment as ev

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
    about_company = [line for line in lines if line.get("company") == siren]
    assert {line["event"] for line in about_company} == {"event.applied", "event.rejected"}
    for line in about_company:
        assert line["service"] == "enrolment"
        assert line["cluster"] == "aerospace-valley"
        assert line["event_id"] and line["correlation_id"] and line["event_type"]
        assert line["timestamp"].endswith("Z")
    rejected = next(line for line in about_company if line["event"] == "event.rejected")
    assert "cannot go from eligible to active" in rejected["reason"]
    assert any(line["event"] == "service.stopped" for line in lines)
