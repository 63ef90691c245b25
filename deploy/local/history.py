"""The history data set: three years of SME cohorts (2024, 2025, 2026) of Aerospace Valley,
Pégase and ASTech, published into a running Envol as their staff and partners would have.

    python -m deploy.local.history [--nats-url URL [--credentials FILE]] [--data-dir DIR]
                                   [--seed 7] [--scale 1.0] [--timeout SECONDS] [--report-json FILE]
                                   [--dry-run]

What it publishes is generated from the seed alone (deploy/local/history_model.py, a pure
function): a few hundred companies (SMEs and a few large companies), their applications,
eligibility, reviews, waitlists, withdrawals and completions; the financing facts (banks'
R&D loans, the investors' club, coaches, growth contracts, ASTech's actions), the export
facts (relays, desks, the CCI, contracts abroad, relay missions staff open when a country's
SMEs wait too long), the participants' outcome checkpoints and the comparison group's
(``envol.outcomes.comparison.recorded.v1``). Each CloudEvent's ``time`` is the historical
moment it happened, and the facts' own dates are on or before it.

It publishes like deploy/local/demo.py (whose connection helpers it uses): plain JetStream
publishes, each producer as its own NATS user ``<cluster>-<producer>``, in time order. A
fact that needs something a service does first (a case opened by an enrolment, a place on a
relay mission given when another SME completed) waits until that answer is in the stream, so
nothing is refused for being early. It then waits for Envol's answer to every event and
counts the refusals (``envol.<cluster>.<producer>.event.rejected``): there should be none.

Run it on a fresh stack: application ids are fixed by the seed, so it stops when the stack
already knows the history's first application (the demo, likewise, expects a stack without
the history's live applications in its programmes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from deploy.local.demo import OPERATOR, ROOT, Connections, dead_letter_count, find_nats
from deploy.local.history_model import DEFAULT_SEED, YEARS, Publication, generate
from envol_shared.topology import EVENTS_STREAM

ENROLMENT_TYPES = {"envol.company.registered.v1", "envol.application.submitted.v1",
                   "envol.application.reviewed.v1", "envol.participation.started.v1",
                   "envol.participation.finished.v1", "envol.withdrawal.requested.v1"}
COMPARISON = "envol.outcomes.comparison.recorded.v1"
# Events no running service answers (a mission with nobody waiting; the outcomes service
# follows the comparison group but publishes nothing back when it accepts).
UNANSWERED = {"envol.export.mission.opened.v1", COMPARISON}
COMPARED = {"waitlisted", "denied", "ineligible"}


@dataclass
class Seen:
    """What the services answered, as read from the stream."""

    caused: set[str] = field(default_factory=set)
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # application id -> latest status
    cases: set[str] = field(default_factory=set)
    supports: dict[str, dict[str, Any]] = field(default_factory=dict)  # support id -> latest payload
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, event: dict[str, Any]) -> None:
        data, type_ = event["data"], event["type"]
        if event.get("causationid"):
            self.caused.add(event["causationid"])
        if type_ == "envol.event.rejected.v1":
            self.rejections[data.get("rejected_event_id") or event["id"]] = data
        elif type_.startswith("envol.application."):
            self.status[data["application_id"]] = data["to_status"]
        elif type_ == "envol.case.opened.v1":
            self.cases.add(data["case_id"])
        elif type_.startswith("envol.support.") and "status" in data:
            self.supports[data["support_id"]] = data
        self.changed.set()

    def ready(self, publication: Publication) -> bool:
        """Whether what `publication` builds on is in the stream already."""
        event = publication.event
        data = event.data
        if event.type in ENROLMENT_TYPES or event.type in UNANSWERED - {COMPARISON}:
            return True
        if event.type == COMPARISON:
            return self.status.get(data["application_id"]) in COMPARED
        if "case_id" in data:
            return data["case_id"] in self.cases
        support = self.supports.get(data.get("support_id", ""))
        if publication.producer == "staff":
            return support is not None
        return support is not None and support["partner"] == publication.producer

    def answered(self, event_id: str) -> bool:
        return event_id in self.caused or event_id in self.rejections

    @staticmethod
    async def subscribe(js: JetStreamContext, producers: list[str]) -> Any:
        """A reader of Envol's answers from now on: the services' events and the refusals of the
        history's producers (filters that must not overlap, hence each producer named)."""
        subjects = ["envol.*.enrolment.>", "envol.*.financing.>", "envol.*.export.>",
                    *(f"envol.*.{producer}.event.rejected" for producer in producers)]
        return await js.pull_subscribe(
            subjects[0], stream=EVENTS_STREAM,
            config=ConsumerConfig(filter_subjects=subjects, deliver_policy=DeliverPolicy.NEW,
                                  ack_policy=AckPolicy.NONE, inactive_threshold=30))

    async def follow(self, subscription: Any) -> None:
        """Record what the reader gets (a background task)."""
        while True:
            try:
                messages = await subscription.fetch(1000, timeout=0.2)
            except (TimeoutError, NatsTimeoutError):
                continue
            for message in messages:
                self.record(json.loads(message.data))


async def until(condition: Any, seen: Seen, deadline: float) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        seen.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.changed.wait(), 0.2)
    return True


async def already_published(connections: Connections, publications: list[Publication]) -> bool:
    first = next(p.event for p in publications if p.event.type == "envol.application.submitted.v1")
    client = await connections.client(f"{first.cluster}-staff")
    request = json.dumps({"application_id": first.data["application_id"]}).encode()
    reply = await client.request(f"envol-query.{first.cluster}.enrolment.application", request, timeout=10)
    return "error" not in json.loads(reply.data)


async def publish_history(url: str, passwords: dict[str, str] | None, publications: list[Publication],
                          timeout_s: float) -> dict[str, Any]:
    async def report_error(exc: Exception) -> None:
        print(f"nats: {exc!r}", file=sys.stderr)

    connections = Connections(url, passwords, report_error)
    seen = Seen()
    started = time.monotonic()
    producers = sorted({p.producer for p in publications})
    try:
        js = await connections.jetstream(OPERATOR)
        if await already_published(connections, publications):
            return {"already_published": True}
        dead_before = await dead_letter_count(js)
        follower = asyncio.create_task(seen.follow(await Seen.subscribe(js, producers)))
        late: list[str] = []  # published without what they build on, after waiting for it
        for publication in publications:
            if not seen.ready(publication):
                await until(lambda p=publication: seen.ready(p), seen, time.monotonic() + 30)  # type: ignore[misc]
                if not seen.ready(publication):
                    late.append(publication.event.id)
            event = publication.event
            stream = await connections.jetstream(f"{event.cluster}-{publication.producer}")
            await stream.publish(publication.subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        published_s = time.monotonic() - started
        expected = [p.event.id for p in publications if p.event.type not in UNANSWERED]
        await until(lambda: all(seen.answered(i) for i in expected), seen, time.monotonic() + timeout_s)
        await asyncio.sleep(0.5)  # a refusal of the last events may follow their answers
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
        mine = {p.event.id: p for p in publications}
        rejections = [{"type": mine[i].event.type, "producer": mine[i].producer,
                       "time": mine[i].time.isoformat(), "reason": r["reason"],
                       "dead_lettered": r["dead_lettered"]}
                      for i, r in seen.rejections.items() if i in mine]
        dead_after = await dead_letter_count(js)
        return {
            "already_published": False,
            "published": len(publications),
            "published_s": round(published_s, 1),
            "total_s": round(time.monotonic() - started, 1),
            "unanswered": sum(1 for i in expected if not seen.answered(i)),
            "late": len(late),
            "rejections": rejections,
            "other_rejections": sum(1 for i in seen.rejections if i not in mine),
            "dead_letters": None if dead_before is None or dead_after is None else dead_after - dead_before,
            **summary(publications),
        }
    finally:
        await connections.close()


def summary(publications: list[Publication]) -> dict[str, Any]:
    """What the history holds: companies, applications per cluster and cohort year, event types."""
    cohorts: Counter[str] = Counter()
    for p in publications:
        if p.event.type == "envol.application.submitted.v1":
            cohorts[f"{p.event.cluster} {p.event.data['applied_on'][:4]}"] += 1
    return {
        "companies": sum(1 for p in publications if p.event.type == "envol.company.registered.v1"),
        "applications": dict(sorted(cohorts.items())),
        "cohort_years": {cluster: sorted({int(key.split()[1]) for key in cohorts
                                          if key.startswith(cluster + " ")})
                         for cluster in sorted({key.split()[0] for key in cohorts})},
        "types": dict(Counter(p.event.type for p in publications).most_common()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.history",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", help="NATS server of the stack (default: from <data dir>/stack.json)")
    parser.add_argument("--credentials", type=Path, help="with --nats-url: the users' passwords (JSON)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".envol", help="data dir of the local stack")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="applications per cohort, times (default 1.0)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Envol's answers")
    parser.add_argument("--report-json", type=Path, help="also write the report to this JSON file")
    parser.add_argument("--dry-run", action="store_true", help="generate and summarise, publish nothing")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    publications = generate(args.seed, args.scale)
    if args.dry_run:
        print(json.dumps({"published": 0, **summary(publications)}, indent=2, ensure_ascii=False))
        return 0
    url, passwords = find_nats(args.nats_url, args.credentials, args.data_dir)
    print(f"History (seed {args.seed}, scale {args.scale:g}): {len(publications)} events from "
          f"{YEARS[0]} to {YEARS[-1]}, publishing to {url}", flush=True)
    try:
        report = asyncio.run(publish_history(url, passwords, publications, args.timeout))
    except KeyboardInterrupt:
        return 130
    except (OSError, nats.errors.NoServersError) as exc:
        print(f"cannot reach NATS at {url}: {exc!r}. Is the stack running? (python3 envol.py up)",
              file=sys.stderr)
        return 2
    except (nats.errors.Error, LookupError) as exc:
        print(f"NATS at {url} refused the history, or no service answered: {exc!r}", file=sys.stderr)
        return 2
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if report["already_published"]:
        print("This stack already has the history of this seed: nothing published.")
        return 0
    print(f"{report['published']} events published in {report['published_s']} s, all answered in "
          f"{report['total_s']} s; {len(report['rejections'])} refused, {report['unanswered']} without "
          f"answer, {report['late']} published before what they build on")
    for rejection in report["rejections"][:20]:
        print(f"  refused {rejection['type']} from {rejection['producer']} ({rejection['time']}): "
              f"{rejection['reason']}")
    print(f"{report['companies']} companies; applications per cluster and cohort year: "
          + ", ".join(f"{key}: {n}" for key, n in report["applications"].items()))
    return 0 if not report["rejections"] and not report["unanswered"] else 1


if __name__ == "__main__":
    sys.exit(main())
