"""The local stack's NATS users: the production ones of deploy/nats/auth.conf, each with a password.

- ``<data dir>/nats-credentials.json``: ``{"<user>": "<password>", ...}``, a random password per
  user of auth.conf (services, ``provisioner``, ``<cluster>-staff``, ``<cluster>-<partner>``),
  made at the first start and kept; a user added to auth.conf since gets one at the next
  start. Readable by its owner only (mode 0600): a partner's tool and the demo read their
  passwords from it.
- ``<data dir>/nats.conf``: deploy/nats/nats.conf as it is (users, permissions, JetStream
  settings), with its monitoring endpoint moved to loopback. nats-server reads each password
  from ``$ENVOL_NATS_PASSWORD_<USER>``, set in its environment only.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from deploy.nats.generate import AUTH_CONF, User, render, users

CREDENTIALS_FILE = "nats-credentials.json"
SERVER_CONF = "nats.conf"
NATS_CONF = AUTH_CONF.with_name("nats.conf")


@dataclass(frozen=True)
class LocalUsers:
    users: dict[str, User]
    passwords: dict[str, str]
    file: Path

    def url(self, port: int, user: str) -> str:
        # Passwords are hex: nothing to escape in a URL.
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{port}"

    def inbox(self, user: str) -> str:
        return self.users[user].inbox

    def server_environment(self) -> dict[str, str]:
        return {user.password_variable: self.passwords[name] for name, user in self.users.items()}


def prepare(data_dir: Path) -> LocalUsers:
    """The users of auth.conf and their passwords; ValueError (with what to do) when the
    committed auth.conf no longer matches the partner files or the credentials are unreadable."""
    found = users()
    if not AUTH_CONF.exists() or AUTH_CONF.read_text() != render(found):
        raise ValueError(f"{AUTH_CONF} is out of date with the partner files: run "
                         "python -m deploy.nats.generate")
    path = data_dir / CREDENTIALS_FILE
    return LocalUsers({user.name: user for user in found}, _passwords(path, [u.name for u in found]), path)


def _passwords(path: Path, names: list[str]) -> dict[str, str]:
    known: dict[str, str] = {}
    if path.exists():
        try:
            known = json.loads(path.read_text())
            if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
                raise ValueError("not an object of passwords")
        except ValueError as exc:
            raise ValueError(f"{path} is unreadable ({exc}): delete it, and the next start makes "
                             "new passwords") from None
    passwords = {name: known.get(name) or secrets.token_hex(24) for name in names}
    if passwords != known:
        partial = path.with_name(path.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # before any password: a leftover partial keeps its own mode
        with os.fdopen(descriptor, "w") as output:
            output.write(json.dumps(passwords, indent=2) + "\n")
        partial.replace(path)  # atomic: never half a file of passwords
    elif stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return passwords


def write_server_config(data_dir: Path, monitor_port: int) -> Path:
    """The configuration nats-server runs with: production's, monitoring on loopback (the
    client port and the store come on the command line)."""
    path = data_dir / SERVER_CONF
    # nats-server joins an include's path to the including file's folder, even an absolute one.
    included = os.path.relpath(NATS_CONF, data_dir)
    path.write_text(
        "# Written by the local stack at each start: Envol's production NATS configuration, with\n"
        "# the users and permissions of deploy/nats/auth.conf, their passwords from\n"
        f"# {CREDENTIALS_FILE}; only the monitoring endpoint differs (loopback, free port).\n"
        f'include "{included}"\n'
        f'http: "127.0.0.1:{monitor_port}"\n'
    )
    return path
