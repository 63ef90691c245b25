from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from support import query

from envol_enrolment.bootstrap import bootstrap
from envol_shared.consumer import EventConsumer
from envol_shared.events import now
from envol_shared.nats_server import NatsServer
from envol_shared.service import RunningService, ServiceDefinition, Settings
from envol_shared.subscriber import subscribe_batches
from envol_shared.timers import Clock
from envol_shared.topology import CONSUMERS


@pytest.fixture
async def start_service(nats_server: NatsServer, database_url: str) -> AsyncIterator[Callable]:
    """Start a service in this process, enrolment unless told otherwise (several times if a
    test needs to; `clock` is what time its timers think it is)."""
    running: list[RunningService] = []

    async def start(batch_size: int = 64, definition: ServiceDefinition | None = None,
                    database_url: str = database_url, clock: Clock = now) -> RunningService:
        definition = definition or bootstrap()
        settings = Settings(definition.name, nats_server.url, database_url, batch_size, timer_interval_s=0.2)
        service = RunningService(definition, settings, clock=clock)
        await service.start()
        running.append(service)
        return service

    yield start
    for service in running:
        await service.stop()


@asynccontextmanager
async def consumer_running(nats_url: str, consumer: EventConsumer, stopping: asyncio.Event,
                           batch_size: int = 64) -> AsyncIterator[asyncio.Task[None]]:
    """`consumer` fed by its FastStream subscriber as in a service, on a broker of its own; the
    fetch loop's task while inside. Leaving sets `stopping`: the batch in hand is finished."""
    broker = NatsBroker(nats_url, apply_types=False, logger=None)
    subscriber = subscribe_batches(broker, CONSUMERS[consumer.service], batch_size=batch_size,
                                   handle=consumer.handle_batch, ready_to_fetch=consumer.ready_to_fetch)
    await broker.start()
    try:
        yield subscriber.fetch_loop
    finally:
        stopping.set()
        await subscriber.fetch_loop
        await broker.stop()


ENVOL_ENROLMENT = [sys.executable, "-m", "envol_enrolment.entrypoints.main"]  # as `envol-enrolment`


class ServiceProcess:
    """The enrolment service as its own OS process, so a test can kill it outright."""

    def __init__(self, nats_url: str, database_url: str, log_file: Path,
                 command: list[str] = ENVOL_ENROLMENT) -> None:
        self.command = command
        self.env = {**os.environ, "ENVOL_NATS_URL": nats_url, "ENVOL_DATABASE_URL": database_url,
                    "ENVOL_LOG_FORMAT": "json", "ENVOL_LOG_LEVEL": "INFO", "ENVOL_BATCH_SIZE": "50"}
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def service_process(nats_server: NatsServer, database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    processes: list[ServiceProcess] = []

    def make(command: list[str] = ENVOL_ENROLMENT) -> ServiceProcess:
        process = ServiceProcess(nats_server.url, database_url, tmp_path / "service.log", command)
        processes.append(process)
        return process

    yield make
    for process in processes:
        if process.process is not None and process.process.poll() is None:
            process.kill()


async def wait_until_rows(database_url: str, sql: str, expected: int, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    count = -1
    while asyncio.get_running_loop().time() < deadline:
        try:
            count = (await query(database_url, sql))[0][0]
        except Exception:  # table not there yet: the service is still migrating
            count = -1
        if count >= expected:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{sql!r} gave {count}, expected {expected}")
