"""The reference data partners need, read from the configuration files the services run with.

Each cluster's programmes (enrolment's catalogue files), its partners, relay missions, export
desks and CCI cohorts (financing's and export's partner files), and who may publish what:
nothing here is written by hand, so the catalogue says what the services will do. The files
are read with the services' own loaders, so a file a service would refuse fails here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from deploy.nats.generate import users
from envol_enrolment import catalogue as enrolment_catalogue
from envol_export import partners as export_partners
from envol_financing import partners as financing_partners
from envol_shared.configuration import load_cluster_files
from envol_shared.contracts import PUBLISHED_BY, enrolment, export, financing, outcomes
from envol_shared.events import EventData, EventRejected

STAFF = "staff"
# What each role may publish. Staff send enrolment's events, the staff facts of financing and
# export, and may report an export contract themselves (export's handlers accept it from
# staff or from the partner serving the support); each partner kind sends the events its
# service's contract lists for it (its NATS permissions are generated from the same lists).
ROLE_EVENTS: dict[str, tuple[type[EventData], ...]] = {
    STAFF: (*enrolment.CONSUMED, *financing.STAFF_EVENTS, *export.STAFF_EVENTS, export.ContractSigned,
            *outcomes.STAFF_EVENTS),
    **financing.EVENTS_OF_PARTNER_KIND,
    **export.EVENTS_OF_PARTNER_KIND,
}
ROLE_SERVICE: dict[str, str] = {
    **{kind: "financing" for kind in financing.EVENTS_OF_PARTNER_KIND},
    **{kind: "export" for kind in export.EVENTS_OF_PARTNER_KIND},
}
ROLE_NAMES = {STAFF: "cluster staff tool", "bank": "partner bank", "investors_club": "investors' club",
              "coach": "financial-engineering coach", "relay": "VIE relay abroad", "desk": "export desk",
              "cci": "CCI (chamber of commerce)"}
SERVICES = ("enrolment", "financing", "export", "outcomes")
CONTRACTS = {"enrolment": enrolment, "financing": financing, "export": export, "outcomes": outcomes}
QUERY_ASKERS = (STAFF,)  # only staff tools may ask queries (deploy/nats/generate.py)


def consumers_of(type_: str) -> list[str]:
    """The services that consume events of this type."""
    return [service for service in SERVICES if any(e.type == type_ for e in CONTRACTS[service].CONSUMED)]


def producers_of(type_: str) -> list[str]:
    """Who publishes events of this type: a service, or the roles allowed to."""
    if type_ in PUBLISHED_BY:
        return [PUBLISHED_BY[type_]]
    if type_ == EventRejected.type:
        return list(SERVICES)
    return [role for role, events in ROLE_EVENTS.items() if any(e.type == type_ for e in events)]


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _merge_staff(*lists: tuple[str, Iterable[str]]) -> list[dict[str, Any]]:
    """Each staff producer of a cluster, with the services whose files name it."""
    accepted: dict[str, list[str]] = {}
    for service, producers in lists:
        for producer in producers:
            accepted.setdefault(producer, []).append(service)
    return [{"producer": producer, "accepted_by": services}
            for producer, services in sorted(accepted.items())]


def clusters() -> dict[str, dict[str, Any]]:
    """Every cluster's reference data, by cluster id, from the shipped configuration files."""
    # The services' own loaders first: they check across files what one file cannot say.
    enrolment_catalogue.Catalogue.load(enrolment_catalogue.SHIPPED)
    financing_partners.Partners.load(financing_partners.SHIPPED)
    export_partners.Partners.load(export_partners.SHIPPED)
    catalogues = {c.cluster: c for c in load_cluster_files(
        enrolment_catalogue.SHIPPED, enrolment_catalogue.ClusterCatalogue, "programme catalogue")}
    financing_files = {c.cluster: c for c in load_cluster_files(
        financing_partners.SHIPPED, financing_partners.ClusterPartners, "partner configuration")}
    export_files = {c.cluster: c for c in load_cluster_files(
        export_partners.SHIPPED, export_partners.ClusterPartners, "export configuration")}
    nats_users = {user.name for user in users()}

    def nats_user(cluster: str, producer: str) -> str:
        name = f"{cluster}-{producer}"
        if name not in nats_users:  # deploy/nats/auth.conf would not let it connect
            raise ValueError(f"no NATS user {name} in deploy/nats/generate.py's users")
        return name

    result: dict[str, dict[str, Any]] = {}
    for cluster, catalogue in sorted(catalogues.items()):
        money, abroad = financing_files.get(cluster), export_files.get(cluster)
        followed_as = {**(money.programmes if money else {}), **(abroad.programmes if abroad else {})}
        staff = _merge_staff(("enrolment", catalogue.staff), ("financing", money.staff if money else []),
                             ("export", abroad.staff if abroad else []))
        partners = [
            {"id": p.id, "name": p.name, "kind": p.kind.value, "service": service,
             "nats_user": nats_user(cluster, p.id),
             "may_publish": [e.type for e in ROLE_EVENTS[p.kind.value]]}
            for service, entry in (("financing", money), ("export", abroad)) if entry
            for p in entry.partners
        ]
        result[cluster] = {
            "cluster": cluster,
            "name": catalogue.name,
            "regions": catalogue.regions,
            "staff": [s | {"nats_user": nats_user(cluster, s["producer"]),
                           "may_publish": [e.type for e in ROLE_EVENTS[STAFF]]} for s in staff],
            "programmes": [
                {"code": p.code, "title": p.title, "description": p.description, "kind": p.kind.value,
                 "capacity": p.capacity, "opens_on": _day(p.opens_on), "closes_on": _day(p.closes_on),
                 "countries": p.countries, "rules": [r.value for r in p.rules],
                 "followed_as": followed_as[p.code].value if p.code in followed_as else None}
                for p in catalogue.programmes
            ],
            "partners": partners,
            "missions": [m.model_dump(mode="json") for m in (abroad.missions if abroad else [])],
            "desks": [d.model_dump(mode="json") for d in (abroad.desks if abroad else [])],
            "cohorts": [c.model_dump(mode="json") for c in (abroad.cohorts if abroad else [])],
            "follow_up": {
                "financing": money.follow_up.model_dump() if money else None,
                "export": abroad.follow_up.model_dump() if abroad else None,
            },
            "limits": {"export_contract_ceiling_cents":
                       abroad.limits.contract_ceiling_cents if abroad else None},
        }
    return result


# What a partner must know to read the reference data right.
NOTES = {
    "dates": "Every date is a calendar day (YYYY-MM-DD). A programme takes applications from opens_on to "
             "closes_on, both days included (closes_on null: no closing date); a mission's, desk's or "
             "cohort's ends_on or closes_on is its last day, included.",
    "capacity": "A programme's capacity is how many of its applications hold a place at once (enrolled or "
                "active); an application accepted when it is full is waitlisted. A mission's, desk's or "
                "cohort's capacity is how many SMEs it serves at once.",
    "follow_up": "Delays in French business days (weekends and French public holidays do not count).",
    "staff": "Staff producers publish on envol.<cluster>.<producer>.<event name> as NATS user "
             "<cluster>-<producer>; accepted_by lists the services whose configuration names them.",
}
