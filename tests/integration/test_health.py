"""The health endpoint that compose's healthchecks ask: alive at once, ready only while NATS
is connected and the database answers."""

from __future__ import annotations

from support import http_get, wait_for

from envol_enrolment.bootstrap import bootstrap
from envol_shared.service import RunningService, Settings


async def test_live_and_ready_then_not_ready_when_nats_goes_away(nats_server, nc, tmp_path):
    settings = Settings("enrolment", nats_server.url, f"sqlite+aiosqlite:///{tmp_path / 'e.sqlite'}", 64,
                        health_port=0)
    service = RunningService(bootstrap(), settings)
    await service.start()
    try:
        assert service.health is not None
        port = service.health.port
        assert await http_get(port, "/health/live") == (200, {"status": "alive"})
        assert await http_get(port, "/health/ready") == (
            200, {"status": "ready", "checks": {"nats": True, "database": True, "outbox": True}})
        assert (await http_get(port, "/nowhere"))[0] == 404

        nats_server.kill()

        async def not_ready():  # type: ignore[no-untyped-def]
            status, body = await http_get(port, "/health/ready")
            return (status, body) if status == 503 else None

        _, body = await wait_for(not_ready, within=15)
        assert body["checks"] == {"nats": False, "database": True, "outbox": True}
        assert await http_get(port, "/health/live") == (200, {"status": "alive"})
    finally:
        await service.stop()
