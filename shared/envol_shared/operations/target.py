"""Which NATS (and which databases) the operator CLI talks to, and as whom.

Two cases, as `deploy/local/demo.py` has them:
- the local stack: `<data dir>/stack.json` says where NATS is and where every user's password
  is (`nats-credentials.json`); the CLI then connects as the user each task needs (the
  `operator` to read streams, `<cluster>-staff` to ask queries, the original producer to
  replay its event), and finds each service's SQLite file in the data dir;
- a production NATS: `--nats-url`, `--user`, `--password` (or $ENVOL_NATS_URL,
  $ENVOL_OPS_USER, $ENVOL_OPS_PASSWORD): one user for everything, whose permissions decide
  what the CLI may do; databases only when given (`--database-url SERVICE=URL`).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client

from envol_shared.topology import CONSUMERS

# The repository of this (editable) installation: shared/envol_shared/operations/ -> repo root.
ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = ROOT / ".envol"
STATE_FILE = "stack.json"
OPERATOR = "operator"  # reads every stream, publishes events; no JetStream configuration


class TargetError(Exception):
    """No NATS to talk to, or no credentials for what was asked; the message says what to do."""


def inbox_of(user: str) -> str:
    """The reply prefix of a NATS user, as deploy/nats/generate.py gives it (`User.inbox`)."""
    return "_INBOX_" + re.sub(r"[^a-z0-9-]+", "_", user.lower())


@dataclass
class Target:
    url: str
    # Local stack: every user's password. Production: None, and `user`/`password` are used.
    passwords: dict[str, str] | None = None
    user: str | None = None
    password: str | None = None
    database_urls: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Client] = field(default_factory=dict, repr=False)

    @property
    def local(self) -> bool:
        return self.passwords is not None

    def login(self, wanted: str) -> tuple[str | None, str | None]:
        """(user, password) to act as `wanted` on the local stack; the operator's own elsewhere."""
        if self.passwords is not None:
            if wanted not in self.passwords:
                raise TargetError(f"no NATS user {wanted!r} in the local stack's credentials")
            return wanted, self.passwords[wanted]
        return self.user, self.password

    async def client(self, wanted: str = OPERATOR) -> Client:
        user, password = self.login(wanted)
        key = user or ""
        if key not in self._clients:
            login: dict[str, object] = {}
            if user:
                login = {"user": user, "password": password or "", "inbox_prefix": inbox_of(user)}

            async def quiet(_exc: Exception) -> None:
                pass  # nats-py prints every error; the CLI reports what failed, once

            try:
                self._clients[key] = await nats.connect(
                    self.url, connect_timeout=5, max_reconnect_attempts=1, reconnect_time_wait=0.5,
                    allow_reconnect=False, error_cb=quiet, **login)  # type: ignore[arg-type]
            except Exception as exc:
                raise TargetError(f"cannot connect to NATS at {self.url} as {user or 'anonymous'}: "
                                  f"{exc!r}") from None
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.drain()
        self._clients.clear()


def resolve(*, data_dir: Path | None, nats_url: str | None, user: str | None, password: str | None,
            database_urls: list[str]) -> Target:
    """The target the options describe: explicit URL first, else the local stack of `data_dir`."""
    databases = {}
    for item in database_urls:
        service, sep, url = item.partition("=")
        if not sep or service not in CONSUMERS:
            raise TargetError(f"--database-url {item.split('=')[0]!r}: expected SERVICE=URL with SERVICE "
                              f"one of {', '.join(CONSUMERS)}")
        databases[service] = url
    data_dir = data_dir or DEFAULT_DATA_DIR
    state = data_dir / STATE_FILE
    if not nats_url and state.exists():
        stack = json.loads(state.read_text())
        credentials = stack.get("nats_credentials")
        passwords = json.loads(Path(credentials).read_text()) if credentials else None
        for service in CONSUMERS:  # the stack's SQLite files, unless told otherwise
            sqlite = data_dir / f"{service}.sqlite"
            if service not in databases and sqlite.exists():
                databases[service] = f"sqlite+aiosqlite:///{sqlite}"
        if passwords is None:  # a stack on an external server without users
            return Target(stack["nats_url"], None, user, password, databases)
        return Target(stack["nats_url"], passwords, database_urls=databases)
    if not nats_url:
        raise TargetError(f"no running local stack ({state} not found): start one with "
                          "`python3 envol.py up`, or pass --nats-url (or set ENVOL_NATS_URL)")
    return Target(nats_url, None, user, password, databases)
