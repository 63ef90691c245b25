"""Every service refuses a nats-server older than 2.10, which would ignore its consumer's
subject filters (every service would then receive every event), and says which versions."""

from __future__ import annotations

import os
from types import SimpleNamespace

import nats
import pytest

from envol_financing.bootstrap import bootstrap
from envol_shared.service import RunningService, Settings
from envol_shared.topology import NatsServerTooOld, require_server_version

# The machine's own nats-server (Debian's 2.9 on the development and CI machines).
MACHINE_NATS = os.environ.get("ENVOL_TEST_OLD_NATS_URL", "nats://127.0.0.1:4222")


@pytest.mark.parametrize(("major", "minor", "refused"), [(2, 9, True), (1, 12, True), (2, 10, False),
                                                         (2, 12, False), (3, 0, False)])
def test_the_rule(major: int, minor: int, refused: bool) -> None:
    version = SimpleNamespace(major=major, minor=minor)
    if refused:
        with pytest.raises(NatsServerTooOld, match=r"Envol needs 2\.10 or newer"):
            require_server_version(version, "nats://example:4222")
    else:
        require_server_version(version, "nats://example:4222")


async def _old_server_version() -> str | None:
    try:
        nc = await nats.connect(MACHINE_NATS, connect_timeout=2, max_reconnect_attempts=0)
    except (TimeoutError, nats.errors.NoServersError, OSError):
        return None
    version = nc.connected_server_version
    await nc.close()
    return str(version) if (version.major, version.minor) < (2, 10) else None


async def test_a_service_refuses_to_start_on_an_old_server_and_provisions_nothing(tmp_path) -> None:
    old = await _old_server_version()
    if old is None:
        pytest.skip(f"no nats-server older than 2.10 at {MACHINE_NATS}")
    before = await _streams()
    settings = Settings("financing", MACHINE_NATS, f"sqlite+aiosqlite:///{tmp_path / 'f.sqlite'}", 64,
                        provision=True)
    service = RunningService(bootstrap(), settings)
    with pytest.raises(NatsServerTooOld) as refused:
        await service.start()
    assert old in str(refused.value) and "2.10" in str(refused.value)
    await service.stop()
    # Nothing was created there: no stream, so no consumer without its filters.
    assert await _streams() == before


async def _streams() -> list[str]:
    nc = await nats.connect(MACHINE_NATS, connect_timeout=2, max_reconnect_attempts=0)
    try:
        return sorted(info.config.name for info in await nc.jetstream().streams_info())
    finally:
        await nc.close()
