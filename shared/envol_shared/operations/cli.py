"""envol-ops: the operator's command line (`python -m envol_shared.operations`, or
`python3 envol.py ops`). See the README, "Operations"."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats.errors
import typer
from rich.console import Console
from rich.json import JSON
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from envol_shared.operations import dead_letters, importer, status
from envol_shared.operations.target import ROOT, Target, TargetError, resolve
from envol_shared.queries import query_subject
from envol_shared.topology import CONSUMERS

app = typer.Typer(help="Operate Envol: status, dead letters, queries, partners, bulk import.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
letters_app = typer.Typer(help="The dead-letter stream: list, show, replay.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports from the clusters' spreadsheets.", no_args_is_help=True)
app.add_typer(letters_app, name="dead-letters")
app.add_typer(import_app, name="import")
console = Console()
T = TypeVar("T")


def _run(ctx: typer.Context, work: Callable[[Target], Awaitable[T]]) -> T:
    """Resolve the target from the global options, run `work`, close every connection."""
    options = ctx.find_root().obj

    async def main() -> T:
        target = resolve(**options)
        try:
            return await work(target)
        finally:
            await target.close()

    try:
        return asyncio.run(main())
    except TargetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except (nats.errors.Error, TimeoutError) as exc:  # refused by permissions, no stream...
        console.print(f"[red]NATS: {exc!r}[/red]")
        raise typer.Exit(1) from None


@app.callback()
def options(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(
        help="data dir of the local stack (default: .envol)")] = None,
    nats_url: Annotated[str | None, typer.Option(
        envvar="ENVOL_NATS_URL", help="a NATS server (production)")] = None,
    user: Annotated[str | None, typer.Option(
        envvar="ENVOL_OPS_USER", help="NATS user with --nats-url")] = None,
    password: Annotated[str | None, typer.Option(envvar="ENVOL_OPS_PASSWORD", help="its password")] = None,
    database_url: Annotated[list[str] | None, typer.Option(
        help="SERVICE=URL of a service's database (repeat); default: the local stack's SQLite files")] = None,
) -> None:
    ctx.obj = {"data_dir": data_dir, "nats_url": nats_url, "user": user, "password": password,
               "database_urls": database_url or []}


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    seconds = (datetime.now(UTC) - moment.astimezone(UTC)).total_seconds()
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


@app.command("status")
def show_status(ctx: typer.Context) -> None:
    """Streams, consumers, dead letters and, given databases, outboxes, leases and timers."""

    async def work(target: Target) -> status.Status:
        return await status.collect(await target.client(), target.database_urls)

    found = _run(ctx, work)
    streams = Table("stream", "messages", "bytes", "max bytes", "max messages", title="Streams")
    for s in found.streams:
        streams.add_row(s.name, _n(s.messages), _n(s.bytes), _n(s.max_bytes), _n(s.max_msgs))
    consumers = Table("service", "pending", "ack pending", "redelivered", "last delivered",
                      "last active", "dead letters", title="Consumers")
    for c in found.consumers:
        consumers.add_row(c.service, _n(c.pending), _n(c.ack_pending), _n(c.redelivered),
                          _n(c.last_delivered_seq), _age(c.last_active),
                          f"[red]{c.dead_letters}[/red]" if c.dead_letters else "0")
    console.print(streams, consumers)
    if found.databases:
        databases = Table("service", "outbox backlog", "oldest unpublished", "lease holder",
                          "lease renewed", "timers due", title="Databases")
        for d in found.databases:
            if d.error:
                databases.add_row(d.service, f"[red]{d.error}[/red]", "", "", "", "")
            else:
                databases.add_row(d.service, _n(d.outbox_backlog), _age(d.oldest_unpublished),
                                  d.lease_holder or "—", _age(d.lease_renewed), _n(d.timers_due))
        console.print(databases)
    else:
        console.print("no database given (--database-url SERVICE=URL): outboxes, leases and timers not shown")


ServiceOption = Annotated[str | None, typer.Option(help=f"only this service's: {', '.join(CONSUMERS)}")]


@letters_app.command("list")
def list_letters(ctx: typer.Context, service: ServiceOption = None,
                 limit: Annotated[int, typer.Option(help="the most recent N")] = 50) -> None:
    """The dead letters, most recent last."""

    async def work(target: Target) -> list[dead_letters.DeadLetter]:
        return await dead_letters.scan(await target.client(), service)

    found = _run(ctx, work)
    shown = f", the last {limit}" if len(found) > limit else ""
    table = Table("seq", "when", "service", "original subject", "attempts", "reason",
                  title=f"{len(found)} dead letter(s){shown}")
    for letter in found[-limit:] if limit > 0 else []:
        table.add_row(str(letter.seq), letter.time, letter.service, letter.original_subject,
                      letter.headers.get("Envol-Delivery-Attempts", ""), letter.reason)
    console.print(table)


@letters_app.command("show")
def show_letter(ctx: typer.Context, seq: int) -> None:
    """One dead letter: its reason, its headers and the original, pretty-printed when JSON."""

    async def work(target: Target) -> dead_letters.DeadLetter:
        return await dead_letters.get(await target.client(), seq)

    try:
        letter = _run(ctx, work)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[bold]dead letter {letter.seq}[/bold] ({letter.subject}, {letter.time})")
    console.print(f"[bold]reason:[/bold] {letter.reason}")
    headers = Table("header", "value", show_header=False)
    for name, value in sorted(letter.headers.items()):
        headers.add_row(name, value)
    console.print(headers)
    original = letter.pretty()
    if isinstance(original, str):
        console.print(original, markup=False, highlight=False)
    else:
        console.print(JSON.from_data(original, ensure_ascii=False))
    verdict = dead_letters.judge(letter)
    console.print("replayable" if verdict.refusal is None else f"not replayable: {verdict.refusal}")


@letters_app.command("replay")
def replay_letters(
    ctx: typer.Context,
    seqs: Annotated[list[int] | None, typer.Argument(help="dead letters' sequences")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter (of --service)")] = False,
    service: ServiceOption = None,
    dry_run: Annotated[bool, typer.Option(help="say what would be published, publish nothing")] = False,
    shared_ok: Annotated[bool, typer.Option(
        help="replay events other services also consume (they apply them again)")] = False,
) -> None:
    """Publish dead letters again on their original subjects, under new ids; refuse those
    that would fail again."""
    if bool(seqs) == all_:
        console.print("[red]give dead letters' sequences, or --all[/red]")
        raise typer.Exit(2)

    async def work(target: Target) -> list[dead_letters.Replayed]:
        reader = await target.client()
        results: list[dead_letters.Replayed] = []
        if all_:
            letters = await dead_letters.scan(reader, service)
        else:
            letters = []
            for seq in seqs or []:
                try:
                    letters.append(await dead_letters.get(reader, seq))
                except LookupError as exc:
                    results.append(dead_letters.Replayed(seq, "not found", str(exc)))
        with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True, disable=len(letters) < 10) as progress:
            task = progress.add_task("replay", total=len(letters))
            for letter in letters:
                verdict = dead_letters.judge(letter, shared_ok=shared_ok)
                client = None
                if verdict.refusal is None and not dry_run:
                    # The local stack: publish as the original producer (its permissions).
                    client = await target.client(verdict.producer)
                results.append(await dead_letters.replay(verdict, client, dry_run=dry_run))
                progress.advance(task)
        return results

    results = _run(ctx, work)
    table = Table("seq", "outcome", "detail", title="Replay" + (" (dry run)" if dry_run else ""))
    colours = {"published": "green", "already replayed": "yellow", "refused": "red", "failed": "red",
               "not found": "red"}
    for result in results:
        colour = colours.get(result.outcome, "white")
        table.add_row(str(result.seq), f"[{colour}]{result.outcome}[/{colour}]", result.detail)
    console.print(table)
    if any(r.outcome in ("failed", "not found") for r in results):
        raise typer.Exit(1)


@app.command("query")
def ask(ctx: typer.Context, cluster: str, service: str, name: str,
        request: Annotated[str, typer.Argument(help="the request, a JSON object")] = "{}",
        timeout: float = 5.0) -> None:
    """Ask a query (envol-query.CLUSTER.SERVICE.NAME) as the cluster's staff; print the answer."""
    try:
        body = json.loads(request)
    except ValueError as exc:
        console.print(f"[red]the request is not JSON: {exc}[/red]")
        raise typer.Exit(2) from None

    async def work(target: Target) -> Any:
        client = await target.client(f"{cluster}-staff")
        reply = await client.request(query_subject(cluster, service, name), json.dumps(body).encode(),
                                     timeout=timeout)
        return json.loads(reply.data)

    answer = _run(ctx, work)  # no responders, a timeout: _run says which
    console.print(JSON.from_data(answer, ensure_ascii=False))
    if isinstance(answer, dict) and "error" in answer:
        raise typer.Exit(1)


@app.command("partner-credentials")
def partner_credentials(cluster: str, partner: str) -> None:
    """A new partner's NATS user, a generated password, its .env line and auth.conf entry."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # deploy/ is part of the repository, not of the package
    from deploy.nats.generate import render_user, users

    name = f"{cluster}-{partner}"
    user = next((u for u in users() if u.name == name), None)
    if user is None:
        console.print(f"[red]no partner {partner!r} of {cluster!r} in the partner files[/red]: add it to "
                      f"services/<service>/envol_<service>/partners/{cluster}.toml first (its id is "
                      "its producer token), then run this again")
        raise typer.Exit(1)
    password = secrets.token_hex(24)  # hex: nothing to escape in a URL or in .env
    console.print(f"[bold]user[/bold]      {user.name}")
    console.print(f"[bold]password[/bold]  {password}")
    console.print(f"[bold]inbox[/bold]     {user.inbox} (nats.connect(..., inbox_prefix=\"{user.inbox}\"))")
    console.print(f"[bold]may publish[/bold] {', '.join(user.publish)}")
    console.print(f"[bold]may read[/bold]    {', '.join([*user.subscribe, user.inbox + '.>'])}")
    console.print("\n[bold].env[/bold] (add):")
    console.print(f"{user.password_variable}={password}", markup=False, highlight=False, soft_wrap=True)
    console.print("\n[bold]deploy/nats/auth.conf[/bold] (`python -m deploy.nats.generate` writes it):")
    console.print("\n".join(render_user(user)), markup=False, highlight=False, soft_wrap=True)


@import_app.command("companies")
def import_companies(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the CSV file")],
    cluster: Annotated[str, typer.Option(help="the registering cluster")],
    producer: Annotated[str, typer.Option(help="the staff tool it is published as")] = "staff",
    dry_run: Annotated[bool, typer.Option(help="validate only, publish nothing")] = False,
    max_pending: Annotated[int, typer.Option(help="acknowledgements awaited at once")] = 4000,
) -> None:
    """Register companies from a spreadsheet (CSV): every row validated first, the valid
    ones published as envol.company.registered.v1, the refused ones reported row by row."""
    try:
        with console.status(f"validating {file.name} with the contract"):
            parsed = importer.parse(importer.decode(file.read_bytes()), cluster, producer)
    except importer.ImportFileError as exc:
        console.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{parsed.total:,} row(s): {len(parsed.rows):,} valid, {len(parsed.refused):,} refused")
    _print_refusals("Refused rows", parsed.refused)
    if dry_run or not parsed.rows:
        raise typer.Exit(1 if parsed.refused else 0)

    async def work(target: Target) -> tuple[importer.Published, float]:
        client = await target.client(f"{cluster}-{producer}")
        started = asyncio.get_running_loop().time()
        with Progress(TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("publish", total=len(parsed.rows))
            result = await importer.publish(client, parsed.rows, max_pending=max_pending,
                                            on_ack=lambda: progress.advance(task))
        return result, asyncio.get_running_loop().time() - started

    result, seconds = _run(ctx, work)
    console.print(f"published {result.new:,} new registration(s), {result.duplicates:,} already there "
                  f"(imported before), in {seconds:.1f} s")
    _print_refusals("Not published", result.failed)
    if parsed.refused or result.failed:
        raise typer.Exit(1)


def _print_refusals(title: str, refusals: list[importer.Refusal]) -> None:
    if not refusals:
        return
    table = Table("row", "siren / siret", "reason", title=title)
    for refusal in refusals:
        table.add_row(str(refusal.line), refusal.company, refusal.reason)
    console.print(table)
