from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from support import connected, postgres_url, why_no_postgres
from throwaway_postgres import throwaway

from envol_shared.database import normalise_url
from envol_shared.logging import configure_logging
from envol_shared.nats_server import NatsServer
from envol_shared.topology import provision

configure_logging(json_lines=True, level="WARNING")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream", log_file=tmp_path / "nats.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def nc(nats_server: NatsServer):  # type: ignore[no-untyped-def]
    """A client of a provisioned server, as partners find it in production."""
    async with connected(nats_server.url) as client:
        await provision(client.jetstream())
        yield client


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database on the server of
    ENVOL_TEST_DATABASE_URL, or else on a throwaway server (tests/throwaway_postgres.py);
    skipped when neither can be had, and counted at the end of the run."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(why_no_postgres())
    name = f"envol_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(normalise_url(base)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    throwaway.stop()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    """Say loudly when PostgreSQL tests did not run, and why; and which server they ran on."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if "ENVOL_TEST_DATABASE_URL" in str(report.longrepr)]
    if skipped:
        first = skipped[0].longrepr
        reason = str(first[2]) if isinstance(first, tuple) else str(first)
        terminalreporter.section("PostgreSQL tests NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"{len(skipped)} tests were skipped for lack of PostgreSQL ({reason}).",
                                    red=True, bold=True)
        terminalreporter.write_line("Set ENVOL_TEST_DATABASE_URL=postgresql://USER@HOST:PORT/DB to run them, "
                                    "or install the pinned requirements-dev.txt (pgserver) or Debian's "
                                    "postgresql package for a throwaway server.", red=True)
    elif throwaway.origin is not None:
        terminalreporter.write_line(f"PostgreSQL tests ran on a throwaway server ({throwaway.origin}).")
