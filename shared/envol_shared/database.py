"""Database engines and schema migrations (Alembic, applied at start-up).

Each service owns its database: a SQLite file by default, PostgreSQL when given a URL. The
schema of every service is the union of two Alembic branches: ``event_log`` (the inbox and
outbox tables of this shared package) and the service's own branch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Dialect, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x456E766F6C  # "Envol": an advisory lock key of the service's own database


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async drivers."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def create_engine(url: str) -> AsyncEngine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 15}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # WAL lets the relay read while the consumer writes; FULL keeps a committed
            # (and therefore acknowledged) batch across a power cut.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # No pre-ping (a round trip per checkout): a dead connection fails the batch as a
    # transient error, the pool is invalidated, and the batch is redelivered.
    # hide_parameters: an error never carries a row's values (a contact's name...) into a log.
    return create_async_engine(url, pool_size=5, max_overflow=5, hide_parameters=True)


def _alembic_config(service_versions: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "version_locations", f"{MIGRATIONS / 'versions'} {service_versions}"
    )
    config.set_main_option("path_separator", "space")
    return config


async def migrate(engine: AsyncEngine, service_versions: Path) -> None:
    """Bring the schema to the newest revision of every branch (idempotent)."""
    config = _alembic_config(service_versions)

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Instances starting together (`--scale`) migrate one after the other: the others
            # wait here, then find nothing left to do.
            connection.execute(text("select pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Envol stores timezone-aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
