"""Bulk import of company registrations from a cluster's spreadsheet (CSV).

Clusters keep their members in spreadsheets, exported as CSV by Excel or LibreOffice: `;` or
`,` between fields, a BOM, French decimal commas (`38,5`), spaces in SIRENs and in thousands
(`6 400 000`). Every row becomes an `envol.company.registered.v1` event and is validated by the
contract (`CompanyRegistered`) before anything is published: the refused rows are reported
with their row number (the spreadsheet's: the header is row 1) and the reason.

Each event's id is derived from the cluster and the validated registration, and is its
`Nats-Msg-Id`: importing the same file again publishes nothing new (JetStream drops the copy
within its duplicate window, the enrolment service's inbox after it).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from envol_shared.contracts.enrolment import CompanyRegistered
from envol_shared.events import make_event, now
from envol_shared.identifiers import siren_of

# Column names as clusters write them, to the contract's fields (after normalising: lower
# case, spaces and dashes as underscores).
_ID_COLUMNS = ("siren", "siret", "company_id")
_REQUIRED = ("legal_name", "region", "staff_awu", "turnover_eur", "balance_sheet_eur", "accounts_year")
_FIELD_TO_COLUMN = {"company_id": "siren/siret", "turnover_cents": "turnover_eur",
                    "balance_sheet_cents": "balance_sheet_eur"}
_SPACES = str.maketrans("", "", " \u00a0\u202f\t")  # thousands separators of French spreadsheets


class ImportFileError(Exception):
    """The file as a whole cannot be imported (no header, a missing column...)."""


@dataclass(frozen=True)
class Row:
    """A valid row: the subject, the event's bytes and its id."""

    line: int
    siren: str
    subject: str
    event_id: str
    payload: bytes


@dataclass(frozen=True)
class Refusal:
    line: int
    company: str
    reason: str


@dataclass
class Parsed:
    rows: list[Row]
    refused: list[Refusal]
    total: int


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, which older Excel versions write."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def delimiter_of(header: str) -> str:
    return ";" if header.count(";") >= header.count(",") and ";" in header else ","


def decimal_of(text: str) -> Decimal:
    """`38,5`, `6 400 000`, `6.400.000,50` or `6,400,000.50` as a Decimal; ValueError if not a number."""
    value = text.translate(_SPACES)
    if not value:
        raise ValueError("empty")
    comma, dot = value.rfind(","), value.rfind(".")
    if comma >= 0 and dot >= 0:  # both: the last one is the decimal separator
        thousands = "." if comma > dot else ","
        value = value.replace(thousands, "").replace(",", ".")
    elif value.count(",") == 1 and comma >= 0:
        value = value.replace(",", ".")
    elif value.count(",") > 1 or value.count(".") > 1:  # several: thousands separators
        value = value.replace(",", "").replace(".", "")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{text!r} is not a number")
    return number


def cents_of(text: str) -> int:
    cents = decimal_of(text) * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{text!r} has fractions of a cent")
    return int(cents)


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{_FIELD_TO_COLUMN.get(where, where)}: {error['msg']}")
    return "; ".join(parts)


def event_id_of(cluster: str, data: CompanyRegistered) -> str:
    """The same registration of the same company for the same cluster: the same id."""
    # The model's own JSON: its fields in a fixed order, the values as the contract reads them.
    identity = cluster.encode() + b"\n" + data.model_dump_json().encode()
    return "import-" + hashlib.sha256(identity).hexdigest()[:40]


def _registration(record: dict[str, str], id_column: str, cluster: str) -> CompanyRegistered:
    """The row as the contract's model; ValueError or ValidationError saying what is wrong."""
    fields: dict[str, Any] = {"company_id": record[id_column].strip(), "clusters": [cluster],
                              "legal_name": record["legal_name"].strip(), "region": record["region"].strip()}
    for column, name, convert in (("staff_awu", "staff_awu", lambda t: float(decimal_of(t))),
                                   ("turnover_eur", "turnover_cents", cents_of),
                                   ("balance_sheet_eur", "balance_sheet_cents", cents_of),
                                   ("accounts_year", "accounts_year", lambda t: int(decimal_of(t)))):
        try:
            fields[name] = convert(record[column])
        except ValueError as exc:
            raise ValueError(f"{column}: {exc}") from None
    return CompanyRegistered(**fields)


def parse(text: str, cluster: str, producer: str = "staff", at: datetime | None = None) -> Parsed:
    """Validate every row of a CSV text; nothing is published here."""
    lines = io.StringIO(text)
    header = lines.readline()
    if not header.strip():
        raise ImportFileError("the file is empty: expected a header row")
    delimiter = delimiter_of(header)
    columns = [_normalise(c) for c in next(csv.reader([header], delimiter=delimiter))]
    id_column = next((c for c in _ID_COLUMNS if c in columns), None)
    missing = [c for c in _REQUIRED if c not in columns] + ([] if id_column else ["siren or siret"])
    if missing:
        raise ImportFileError(f"missing column(s): {', '.join(missing)} (found: {', '.join(columns)})")
    assert id_column is not None
    reader = csv.reader(lines, delimiter=delimiter)
    at = at or now()
    parsed, seen = Parsed([], [], 0), {}
    consumed = 0  # physical lines after the header: a quoted field may span several
    for values in reader:
        row_line, consumed = consumed + 2, reader.line_num  # the header was row 1
        if not any(v.strip() for v in values):
            continue
        parsed.total += 1
        record = dict(zip(columns, values, strict=False))
        company = record.get(id_column, "").strip()
        if len(values) != len(columns):
            reason = f"{len(values)} fields, the header has {len(columns)}"
            parsed.refused.append(Refusal(row_line, company, reason))
            continue
        try:
            data = _registration(record, id_column, cluster)
        except ValidationError as exc:
            parsed.refused.append(Refusal(row_line, company, _reason(exc)))
            continue
        except ValueError as exc:
            parsed.refused.append(Refusal(row_line, company, str(exc)))
            continue
        event_id = event_id_of(cluster, data)
        if event_id in seen:
            reason = f"the same registration as row {seen[event_id]}"
            parsed.refused.append(Refusal(row_line, company, reason))
            continue
        seen[event_id] = row_line
        siren = siren_of(data.company_id)
        subject, envelope = make_event(data, cluster=cluster, producer=producer, company=siren,
                                       event_id=event_id, time=at)
        parsed.rows.append(Row(row_line, siren, subject, event_id, envelope.to_bytes()))
    return parsed


@dataclass
class Published:
    new: int = 0
    duplicates: int = 0
    failed: list[Refusal] = field(default_factory=list)


def _answer(msg: Msg) -> tuple[bool | None, str | None]:
    """(duplicate?, error) of JetStream's acknowledgement of one publish."""
    if msg.headers and msg.headers.get("Status") == "503":
        return None, "no stream takes this subject"
    try:
        answer = json.loads(msg.data)
    except ValueError:
        return None, f"unreadable acknowledgement {msg.data[:80]!r}"
    if "error" in answer:
        return None, f"refused by JetStream: {answer['error'].get('description', answer['error'])}"
    return bool(answer.get("duplicate")), None


async def publish(nc: Client, rows: list[Row], *, max_pending: int = 4000,
                  on_ack: Callable[[], None] | None = None, ack_timeout_s: float = 30.0) -> Published:
    """Publish every row with up to `max_pending` acknowledgements outstanding.

    Not nats-py's `publish_async`: it yields to the event loop on every message, so its flusher
    writes each one to the socket alone (a tenth of the rate); plain publishes with a reply
    subject each are written in batches, and the acknowledgements are matched by token."""
    result = Published()
    inbox = nc.new_inbox()
    waiting: dict[str, Row] = {}
    room, done = asyncio.Event(), asyncio.Event()

    async def acknowledged(msg: Msg) -> None:
        row = waiting.pop(msg.subject[len(inbox) + 1:], None)
        if row is None:
            return
        duplicate, error = _answer(msg)
        if error is not None:
            result.failed.append(Refusal(row.line, row.siren, error))
        elif duplicate:
            result.duplicates += 1
        else:
            result.new += 1
        if on_ack is not None:
            on_ack()
        if len(waiting) < max_pending // 2:
            room.set()
        if not waiting:
            done.set()

    subscription = await nc.subscribe(f"{inbox}.*", cb=acknowledged, pending_msgs_limit=max_pending * 2)
    index = -1
    try:
        for index, row in enumerate(rows):
            if len(waiting) >= max_pending:
                room.clear()
                await asyncio.wait_for(room.wait(), ack_timeout_s)
            waiting[str(index)] = row
            await nc.publish(row.subject, row.payload, reply=f"{inbox}.{index}",
                             headers={"Nats-Msg-Id": row.event_id})
        if waiting:
            done.clear()
            await asyncio.wait_for(done.wait(), ack_timeout_s)
    except (TimeoutError, ConnectionError, nats.errors.Error) as exc:
        result.failed += [Refusal(row.line, row.siren, f"no acknowledgement from JetStream ({exc!r})")
                          for row in waiting.values()]
        sent = {id(row) for row in waiting.values()}
        result.failed += [Refusal(row.line, row.siren, "not sent") for row in rows[index + 1:]
                          if id(row) not in sent]
    finally:
        await subscription.unsubscribe()
    result.failed.sort(key=lambda refusal: refusal.line)
    return result
