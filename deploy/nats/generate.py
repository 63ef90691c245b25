"""Write deploy/nats/auth.conf: who may connect to Envol's NATS, and what each may do.

    python -m deploy.nats.generate [--check]

Derived from the code and configuration that already say it, so it cannot drift:
- each service may consume from its own durable consumer, publish its own events, the
  rejections and dead letters it sends, and answer its queries into the inboxes of the users
  who may ask them (staff) and nowhere else. Not with ``allow_responses``: that lets a user
  publish on whatever reply subject an asker chose, another service's events included;
- each cluster's staff tool (``staff`` in the partner files, or in enrolment's catalogue files)
  may publish in its namespace, follow its cluster's events as they happen and ask its
  cluster's queries;
- each partner of a cluster (``[[partners]]`` in services/*/envol_*/partners/<cluster>.toml)
  may publish only the events of its kind (a bank: ``loan.*``) in its own namespace, and
  read only its own rejections; of JetStream it uses only what publishing needs (the
  acknowledgement on its reply subject);
- the one-shot provisioner may configure JetStream; nobody else may;
- the operator (the `envol-ops` CLI in production) may read JetStream's state and messages
  (streams, consumers, dead letters) and publish events (a dead letter replayed, companies
  imported), but neither change JetStream nor forge a rejection nor ask queries (a cluster's
  staff asks its own).
Every user has its own reply-subject prefix (``_INBOX_<user>``), so it can read no one
else's replies. Passwords are never in the file: NATS reads ``$ENVOL_NATS_PASSWORD_<USER>``
from its environment (the .env file). `--check` fails when auth.conf is out of date.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from envol_shared.events import event_name
from envol_shared.queries import QUERY_ROOT
from envol_shared.topology import CONSUMERS, DEAD_LETTER_ROOT, EVENTS_STREAM

ROOT = Path(__file__).resolve().parents[2]
AUTH_CONF = Path(__file__).with_name("auth.conf")
PROVISIONER = "provisioner"
OPERATOR = "operator"


@dataclass
class User:
    name: str
    publish: list[str] = field(default_factory=list)
    deny_publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)

    @property
    def token(self) -> str:
        return re.sub(r"[^a-z0-9-]+", "_", self.name.lower())

    @property
    def inbox(self) -> str:
        return f"_INBOX_{self.token}"

    @property
    def password_variable(self) -> str:
        return "ENVOL_NATS_PASSWORD_" + re.sub(r"[^A-Z0-9]+", "_", self.name.upper())


def service_user(service: str, askers: list[User]) -> User:
    """`askers`: the users who may send queries; the service answers into their inboxes."""
    durable = CONSUMERS[service].durable
    return User(
        name=service,
        publish=[f"envol.*.{service}.>", "envol.*.*.event.rejected", f"{DEAD_LETTER_ROOT}.{service}.>",
                 f"$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.{durable}",
                 f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.{durable}",
                 f"$JS.ACK.{EVENTS_STREAM}.{durable}.>",
                 *(f"{asker.inbox}.>" for asker in askers)],
        subscribe=[f"{QUERY_ROOT}.*.{service}.>"],
    )


def operator_user() -> User:
    # Read-only JetStream API (what `envol-ops status` and `dead-letters` ask), and events.
    reads = ["$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*",
             "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.INFO.*.*"]
    return User(name=OPERATOR, publish=[*reads, "envol.>"], deny_publish=["envol.*.*.event.rejected"])


def staff_user(cluster: str, staff: str) -> User:
    name = f"{cluster}-{staff}"
    return User(
        name=name,
        publish=[f"envol.{cluster}.{staff}.>", f"{QUERY_ROOT}.{cluster}.>"],
        deny_publish=[f"envol.{cluster}.{staff}.event.rejected"],
        subscribe=[f"envol.{cluster}.>"],
    )


def partner_user(cluster: str, partner: str, event_names: list[str]) -> User:
    name = f"{cluster}-{partner}"
    rejections = f"envol.{cluster}.{partner}.event.rejected"
    return User(
        name=name,
        publish=[f"envol.{cluster}.{partner}.{event}" for event in sorted(set(event_names))],
        subscribe=[rejections],
    )


def users() -> list[User]:
    staff: set[tuple[str, str]] = set()
    partners: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.glob("services/*/envol_*/partners/*.toml")):
        service = path.parts[-4]
        config = tomllib.loads(path.read_text("utf-8"))
        kinds = importlib.import_module(f"envol_shared.contracts.{service}").EVENTS_OF_PARTNER_KIND
        staff |= {(config["cluster"], producer) for producer in config["staff"]}
        for partner in config.get("partners", []):
            events = partners.setdefault((config["cluster"], partner["id"]), [])
            events += [event_name(event.type) for event in kinds[partner["kind"]]]
    # Enrolment's programme catalogue may name the cluster's staff tools too.
    for path in sorted(ROOT.glob("services/*/envol_*/catalogue/*.toml")):
        config = tomllib.loads(path.read_text("utf-8"))
        staff |= {(config["cluster"], producer) for producer in config.get("staff", [])}
    people = [staff_user(cluster, producer) for cluster, producer in sorted(staff)]
    people += [partner_user(cluster, partner, events)
               for (cluster, partner), events in sorted(partners.items())]
    askers = [user for user in people if any(s.startswith(f"{QUERY_ROOT}.") for s in user.publish)]
    services = [service_user(service, askers) for service in sorted(CONSUMERS)]
    return [User(name=PROVISIONER, publish=["$JS.API.>"]), operator_user(), *services, *people]


def _list(subjects: list[str]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in subjects) + "]"


def render_user(user: User) -> list[str]:
    """One user's entry of auth.conf (the operator CLI prints it for a new partner)."""
    publish = _list(user.publish)
    if user.deny_publish:
        publish = f"{{ allow: {publish}, deny: {_list(user.deny_publish)} }}"
    return [
        "    {",
        f'      user: "{user.name}"',
        f"      password: ${user.password_variable}",
        "      permissions: {",
        f"        publish: {publish}",
        f"        subscribe: {_list([*user.subscribe, f'{user.inbox}.>'])}",
        "      }",
        "    }",
    ]


def render(all_users: list[User]) -> str:
    lines = ["# Generated by `python -m deploy.nats.generate` from the services' partner files:",
             "# edit those and regenerate, never this file. Passwords come from the environment.",
             "authorization {", "  users: ["]
    for user in all_users:
        lines += render_user(user)
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.nats.generate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if auth.conf is not up to date")
    args = parser.parse_args(argv)
    text = render(users())
    if args.check:
        if not AUTH_CONF.exists() or AUTH_CONF.read_text() != text:
            print(f"{AUTH_CONF} is out of date: run python -m deploy.nats.generate", file=sys.stderr)
            return 1
        return 0
    AUTH_CONF.write_text(text)
    names = [u.name for u in users()]
    print(f"wrote {AUTH_CONF} for {len(names)} users; each needs its password in .env:")
    for user in users():
        print(f"  {user.password_variable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
