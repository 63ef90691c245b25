"""The catalogue as one static HTML page a partner opens offline (no script, no outside style).

Per cluster: who may publish what (staff tools and partners, with their NATS users), the
programmes with their dates and capacities, relay missions, desks and cohorts, and the
subjects to publish on and listen to. Then every event (fields, limits, an example) and every
query (request, answer). Everything comes from the same schemas, examples and reference data
as the AsyncAPI documents.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from docs.generate import examples, reference
from docs.generate.answers import ANSWERS
from docs.generate.asyncapi import DEAD_LETTER_HEADERS, Catalogue
from docs.generate.schemas import ENVELOPE_ATTRIBUTES, describe
from envol_shared.contracts import PUBLISHED_BY
from envol_shared.events import FIRST_YEAR, LAST_YEAR, MAX_DEPTH, MAX_INT, MAX_STRING, MIN_INT, event_name
from envol_shared.queries import query_subject

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:0 auto;padding:0 1rem 4rem;color:#1b1f24}
h1{margin-top:1.5rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin-top:1.8rem}article{border-top:1px solid #d0d7de;margin-top:1.5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .4rem;
text-align:left;vertical-align:top}th{background:#f3f5f7}code{background:#f3f5f7;padding:0 .2rem}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:13px}.muted{color:#57606a}
nav a{margin-right:.8rem}details{margin:.4rem 0}summary{cursor:pointer}
"""


def _code(text: Any) -> str:
    return f"<code>{escape(str(text))}</code>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table; the cells are HTML already (escape what comes from data)."""
    if not rows:
        return '<p class="muted">none</p>'
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _event_link(type_: str) -> str:
    return f'<a href="#{escape(type_)}">{escape(type_)}</a>'


def _number(value: int | float) -> str:
    """10 000 000 for people; years and small numbers as they are."""
    return f"{value:,}".replace(",", "\u202f") if abs(value) >= 10_000 else str(value)


# ---- a schema as a table of fields -------------------------------------------------------------


def _limits(schema: dict[str, Any]) -> list[str]:
    """What a value must be, in words: lengths, bounds, patterns, allowed values."""
    said = []
    if "const" in schema:
        said.append(f"always {_code(json.dumps(schema['const']))}")
    if "enum" in schema:
        said.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low or high:
        said.append(f"{low}–{_number(high)} characters" if low and high
                    else f"at most {_number(high)} characters" if high else f"at least {low} characters")
    if schema.get("minimum") == MIN_INT and schema.get("maximum") == MAX_INT:
        said.append("a 64-bit integer")
    else:
        signs = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
        for key, sign in signs.items():
            if key in schema:
                said.append(f"{sign} {_number(schema[key])}")
    if "pattern" in schema:
        said.append(f"matches {_code(schema['pattern'])}")
    if "minItems" in schema:
        said.append(f"at least {schema['minItems']} item(s)")
    if "maxItems" in schema:
        said.append(f"at most {schema['maxItems']} items")
    return said


def _kind(schema: dict[str, Any]) -> str:
    if "format" in schema:
        return {"date": "day", "date-time": "time"}.get(schema["format"], schema["format"])
    if "type" in schema:
        return str(schema["type"])
    return "object" if "properties" in schema else "value"


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def field_rows(schema: dict[str, Any], schemas: dict[str, Any], prefix: str = "") -> list[list[str]]:
    """One row per field, nested objects and lists of objects flattened with dotted names."""
    schema = _resolve(schema, schemas)
    rows: list[list[str]] = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(prop, schemas)
        nullable = False
        if "anyOf" in prop:  # "X or null": pydantic's optional fields
            options = [_resolve(o, schemas) for o in prop["anyOf"]]
            nullable = any(o.get("type") == "null" for o in options)
            prop = {**next((o for o in options if o.get("type") != "null"), {}),
                    **{k: v for k, v in prop.items() if k not in {"anyOf", "default"}}}
        path, kind = f"{prefix}{name}", _kind(prop)
        item = _resolve(prop["items"], schemas) if prop.get("type") == "array" else None
        if item is not None:
            kind = f"list of {_kind(item)}"
        limits = _limits(prop) + (_limits(item) if item is not None and "properties" not in item else [])
        need = "required" if name in required else "optional"
        rows.append([_code(path), escape(kind + (" or null" if nullable else "")), need,
                     "; ".join(limits), escape(prop.get("description", ""))])
        if "properties" in prop:
            rows += field_rows(prop, schemas, f"{path}.")
        elif item is not None and "properties" in item:
            rows += field_rows(item, schemas, f"{path}[].")
    return rows


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    return _table(["field", "type", "", "limits", "meaning"], field_rows(schema, schemas))


# ---- the page ----------------------------------------------------------------------------------


def _publishing() -> str:
    envelope = [[_code(name), "required" if name != "causationid" else "optional", escape(text)]
                for name, text in ENVELOPE_ATTRIBUTES.items()]
    limits = [
        ["nesting of objects and arrays", f"{MAX_DEPTH} levels, the envelope included"],
        ["any text", f"{_number(MAX_STRING)} characters; no control character but tab, line feed "
                     "and carriage return; no unpaired surrogate"],
        ["any integer", "within 64 bits"], ["any number", "finite (no NaN, no Infinity)"],
        ["days and times", f"years {FIRST_YEAR} to {LAST_YEAR}; times with a time zone"],
        ["a message", "the server's max_payload (1 MiB by default), headers included"],
    ]
    return f"""<h2 id="publishing">Publishing and listening</h2>
<p>Connect to NATS as your user <code>&lt;cluster&gt;-&lt;producer&gt;</code> with its password and the reply
prefix <code>_INBOX_&lt;user&gt;</code>. Publish each event with JetStream on
<code>envol.&lt;cluster&gt;.&lt;producer&gt;.&lt;event name&gt;</code>, with the header
<code>Nats-Msg-Id</code> set to the event's id. A refused event gets an
<a href="#envol.event.rejected.v1">envol.event.rejected.v1</a> on
<code>envol.&lt;cluster&gt;.&lt;producer&gt;.event.rejected</code>, with the reason; nothing changed.
Queries are requests on <code>envol-query.&lt;cluster&gt;.&lt;service&gt;.&lt;query&gt;</code>.</p>
<h3 id="envelope">The envelope (CloudEvents 1.0, structured JSON)</h3>
{_table(["attribute", "", "meaning"], envelope)}
<h3 id="limits">Limits of every message</h3>
<p>Before its schema is looked at, a message is refused when it holds:</p>
{_table(["what", "limit"], [[escape(a), escape(b)] for a, b in limits])}
<p>Dead letters (<code>envol-dead-letter.&lt;service&gt;.&lt;cluster&gt;.&lt;producer&gt;</code>) keep the
original bytes with the headers {", ".join(_code(h) for h in DEAD_LETTER_HEADERS)}.</p>"""


def _subjects(cluster: str, producer: str, types: list[str]) -> str:
    return "<br>".join(f"{_code(f'envol.{cluster}.{producer}.{event_name(t)}')} ({_event_link(t)})"
                       for t in types)


def _who(cluster: str, data: dict[str, Any]) -> str:
    staff = [[_code(s["producer"]), _code(s["nats_user"]), escape(", ".join(s["accepted_by"])),
              _subjects(cluster, s["producer"], s["may_publish"])] for s in data["staff"]]
    partners = [[_code(p["id"]), escape(p["name"]), escape(reference.ROLE_NAMES[p["kind"]]),
                 _code(p["nats_user"]), _subjects(cluster, p["id"], p["may_publish"])]
                for p in data["partners"]]
    return f"""<h3>Staff tools</h3><p>Publish on these subjects; they also receive every event of the
cluster (<code>envol.{escape(cluster)}.&gt;</code>) and ask its queries.</p>
{_table(["producer", "NATS user", "accepted by", "may publish"], staff)}
<h3>Partners</h3><p>Each publishes only these subjects, and receives its rejections on
<code>envol.{escape(cluster)}.&lt;id&gt;.event.rejected</code>.</p>
{_table(["id (producer)", "name", "role", "NATS user", "may publish"], partners)}"""


def _programmes(data: dict[str, Any]) -> str:
    rows = [[_code(p["code"]),
             f'{escape(p["title"])}<br><span class="muted">{escape(p["description"])}</span>',
             escape(f"{p['kind']} ({p['followed_as'] or 'enrolment only'})"), str(p["capacity"]),
             escape(f"{p['opens_on']} to {p['closes_on'] or 'no closing date'}"),
             escape(", ".join(p["countries"])), escape(", ".join(p["rules"]))] for p in data["programmes"]]
    head = ["code", "title", "kind (followed as)", "capacity", "open (days included)", "countries", "rules"]
    return f"""<h3>Programmes</h3><p>Applications are taken from the opening day to the closing day,
<b>both included</b>. Capacity: how many of its applications hold a place at once (enrolled or
active); an application accepted when it is full is waitlisted.</p>{_table(head, rows)}"""


def _units(data: dict[str, Any]) -> str:
    """Relay missions, export desks and CCI cohorts: dates, places, who runs them."""
    missions = [[_code(m["id"]), _code(m["programme"]), m["country"],
                 escape(f"{m['host_company']} ({m['host_siren']})"), _code(m["volunteer_id"]),
                 f"{m['starts_on']} to {m['ends_on']}", str(m["capacity"]), _code(m["partner"])]
                for m in data["missions"]]
    desks = [[_code(d["id"]), _code(d["programme"]), d["country"], escape(d["reception"]),
              str(d["sales_force"]), f"{d['opens_on']} to {d['closes_on'] or 'no end date'}",
              str(d["capacity"]), _code(d["partner"])] for d in data["desks"]]
    cohorts = [[_code(c["id"]), _code(c["programme"]), f"{c['starts_on']} to {c['ends_on']}",
                str(c["capacity"]), _code(c["partner"]),
                "<br>".join(f"{w['on']} {_code(w['id'])} {escape(w['title'])}" for w in c["workshops"])]
               for c in data["cohorts"]]
    dates = "dates (last day included)"
    return f"""<h3>VIE relay missions</h3>{_table(["id", "programme", "country", "host company (SIREN)",
                                              "volunteer", dates, "places", "relay"], missions)}
<h3>Export desks</h3>{_table(["id", "programme", "country", "reception", "sales force", dates, "places",
                              "desk"], desks)}
<h3>CCI cohorts</h3>{_table(["id", "programme", dates, "places", "CCI", "workshops"], cohorts)}"""


def _cluster(data: dict[str, Any]) -> str:
    cluster = data["cluster"]
    follow_up = [[escape(service), escape(", ".join(f"{k} = {v}" for k, v in policy.items()))]
                 for service, policy in data["follow_up"].items() if policy]
    staff_hear = [[_code(f"envol.{cluster}.{service}.{event_name(t)}"), _event_link(t)]
                  for t, service in sorted(PUBLISHED_BY.items())]
    queries = [[_code(query_subject(cluster, service, name)),
                f'<a href="#query.{service}.{name}">request and answer</a>']
               for service in reference.SERVICES for name in ANSWERS[service]]
    ceiling = data["limits"]["export_contract_ceiling_cents"]
    return f"""<section id="cluster-{escape(cluster)}"><h2>{escape(data["name"])} <span class="muted">
({_code(cluster)}; {escape(", ".join(data["regions"]))})</span></h2>
{_who(cluster, data)}{_programmes(data)}{_units(data)}
<h3>Follow-up and limits</h3>{_table(["service", "delays in French business days"], follow_up)}
{f"<p>An export contract above {_number(ceiling)} cents is refused as implausible.</p>" if ceiling else ""}
<details><summary>What staff tools receive from the services</summary>
{_table(["subject", "event"], staff_hear)}</details>
<h3>Queries</h3>{_table(["subject", ""], queries)}</section>"""


def _event(catalogue: Catalogue, type_: str) -> str:
    subject, example = examples.message(type_)
    message = catalogue.messages[type_]
    producers = ", ".join(reference.producers_of(type_))
    consumers = ", ".join(reference.consumers_of(type_)) or "the producer whose event was refused"
    return f"""<article id="{escape(type_)}"><h3>{escape(type_)}</h3><p>{escape(message["summary"])}</p>
<p>Subject <code>envol.&lt;cluster&gt;.&lt;producer&gt;.{escape(event_name(type_))}</code>. Published by
{escape(producers)}; consumed by {escape(consumers)}. JSON Schema:
<a href="schemas/{escape(type_)}.json">schemas/{escape(type_)}.json</a>.</p>
{_fields(catalogue.schemas[f"{type_}.data"], catalogue.schemas)}
<details><summary>Example, on {_code(subject)}</summary>
<pre>{escape(json.dumps(example, indent=2, ensure_ascii=False))}</pre></details></article>"""


def _query(catalogue: Catalogue, service: str, name: str) -> str:
    key = f"query.{service}.{name}"
    request = examples.QUERY_EXAMPLES[service][name]
    return f"""<article id="{escape(key)}"><h3>{escape(service)} {escape(name)}</h3>
<p>{escape(describe(ANSWERS[service][name]))} Subject {_code(query_subject("<cluster>", service, name))};
a wrong request, an unknown id or one of another cluster gets {_code('{"error": "..."}')}.</p>
<h4>Request</h4>{_fields(catalogue.schemas[f"{key}.request"], catalogue.schemas)}
<pre>{escape(json.dumps(request, ensure_ascii=False))}</pre>
<details><summary>Answer</summary>{_fields(catalogue.schemas[f"{key}.answer"], catalogue.schemas)}</details>
</article>"""


def page(catalogue: Catalogue, files: list[str]) -> str:
    """The whole page; `files` are the catalogue's other files, linked at the end."""
    clusters = catalogue.clusters
    nav = " ".join(f'<a href="#cluster-{escape(c)}">{escape(d["name"])}</a>' for c, d in clusters.items())
    events = "".join(_event(catalogue, t) for t in sorted(catalogue.messages) if t.startswith("envol."))
    queries = "".join(_query(catalogue, s, n) for s in reference.SERVICES for n in ANSWERS[s])
    notes = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in reference.NOTES.items())
    links = "".join(f'<li><a href="{escape(f)}">{escape(f)}</a></li>' for f in files)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Envol event catalogue</title><style>{STYLE}</style></head><body>
<h1>Envol event catalogue</h1>
<p class="muted">Generated from the code and the configuration files by <code>python3 envol.py docs</code>:
do not edit. Machine-readable: AsyncAPI 3.0.0 documents and JSON Schemas, listed
<a href="#files">below</a>.</p>
<nav><a href="#publishing">Publishing</a>{nav}<a href="#events">Events</a><a href="#queries">Queries</a>
<a href="#files">Files</a></nav>
{_publishing()}<ul>{notes}</ul>
{"".join(_cluster(data) for data in clusters.values())}
<h2 id="events">Events</h2>{events}
<h2 id="queries">Queries</h2>{queries}
<h2 id="files">Files</h2><ul>{links}</ul>
</body></html>
"""
