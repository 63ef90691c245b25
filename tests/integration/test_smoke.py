from __future__ import annotations

from support import SIRENS, application, events_of, publish, registration, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.contracts import enrolment as ev
from envol_shared.service import RunningService, Settings


async def test_registration_and_application_reach_eligible(nats_server, nc, database_url):
    service = RunningService(bootstrap(), Settings("enrolment", nats_server.url, database_url, 64))
    await service.start()
    try:
        siren = SIRENS[0]
        await publish(nc, ev.CompanyRegistered(**registration(siren)), company=siren)
        await publish(nc, ev.ApplicationSubmitted(**application("app-1", siren)), company=siren)

        async def eligible():
            return [e for e in await events_of(nc) if e["type"] == "envol.application.eligible.v1"]

        found = await wait_for(eligible)
        assert found[0]["data"]["application_id"] == "app-1"
    finally:
        await service.stop()
