"""The health endpoint a container orchestrator asks: is the service alive, is it ready?

    GET /health/live    200 while the process runs its event loop
    GET /health/ready   200 when NATS is connected, the database answers and the outbox
                        flows, else 503
    GET /metrics        the service's Prometheus metrics (metrics.py), when it has them

Both answer a small JSON object saying what was checked and, when not ready, why (from the
checks that can tell: `NotReady`). A plain asyncio server: three fixed paths do not justify a
web framework in every image.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping

import structlog

Check = Callable[[], Awaitable[bool]]
# The metrics' text and its content type.
Exposition = Callable[[], Awaitable[tuple[bytes, str]]]
READ_TIMEOUT_S = 5.0


class NotReady(Exception):
    """Raised by a check to say why it fails; the reason is part of the answer, so it must
    never carry personal data."""


class HealthServer:
    def __init__(self, *, port: int, checks: Mapping[str, Check], host: str = "0.0.0.0",
                 check_timeout_s: float = 2.0, metrics: Exposition | None = None) -> None:
        self._host = host
        self._port = port
        self._checks = dict(checks)
        self._check_timeout_s = check_timeout_s
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self.log = structlog.get_logger("envol.health")

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one given for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def assess(self) -> tuple[dict[str, bool], dict[str, str]]:
        """Each check's result, and the reasons the failing ones gave."""
        results, reasons = {}, {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), self._check_timeout_s))
            except NotReady as exc:
                results[name], reasons[name] = False, str(exc)
            except Exception:  # unreachable, timed out: not ready, whatever the reason
                results[name] = False
        return results, reasons

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if path == "/metrics" and self._metrics is not None and method in ("GET", "HEAD"):
                status, (payload, content_type) = 200, await self._metrics()
            else:
                status, body = await self._answer(method, path)
                payload, content_type = json.dumps(body).encode(), "application/json"
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, payload, content_type = 400, b'{"error": "bad request"}', "application/json"
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _answer(self, method: str, path: str) -> tuple[int, dict[str, object]]:
        if path not in ("/health/live", "/health/ready"):
            return 404, {"error": f"unknown path {path}; ask /health/live, /health/ready or /metrics"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "GET only"}
        if path == "/health/live":
            return 200, {"status": "alive"}
        checks, reasons = await self.assess()
        if all(checks.values()):
            return 200, {"status": "ready", "checks": checks}
        self.log.warning("health.not_ready", checks=checks, reasons=reasons)
        body: dict[str, object] = {"status": "not ready", "checks": checks}
        if reasons:
            body["reasons"] = reasons
        return 503, body
