"""python -m envol_outcomes.report --cluster C --from DAY [--to DAY] [--lang fr|en|both] [--out DIR]
[--nats-url URL] [--user U --password P] [--data-dir DIR] [--timeout S]

Asks the outcomes service for a cluster's figures (NATS request/reply on
``envol-query.<cluster>.outcomes.report``) and writes ``DIR/envol-<cluster>-<from>[_<to>]-<lang>.html``
per language and one ``DIR/envol-<cluster>-<from>[_<to>].csv``, then prints their paths.

Without --nats-url it connects to the running local stack (``python3 envol.py up``): the URL
and the credentials file come from ``<data dir>/stack.json``, and it connects as the cluster's
staff user (``<cluster>-staff``, reply prefix ``_INBOX_<cluster>-staff``), the one user that
may ask a cluster's queries. Else ``$ENVOL_NATS_URL`` as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .csv_table import render_csv
from .html_page import render_html

CLUSTER = re.compile(r"[a-z0-9][a-z0-9-]*")  # a subject token and a file name part alike
# In a checkout (editable install) the local stack's data dir is the repository's .envol, from
# whatever folder the command runs; an installed package falls back to ./.envol.
_CHECKOUT = Path(__file__).resolve().parents[4]
DATA_DIR = _CHECKOUT / ".envol" if (_CHECKOUT / "envol.py").is_file() else Path(".envol")


class ReportError(Exception):
    """Something the user must fix or know: printed as it is, exit code 1."""


@dataclass(frozen=True)
class Login:
    url: str
    user: str | None = None
    password: str | None = None
    inbox_prefix: str = "_INBOX"


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def _cluster(text: str) -> str:
    if not CLUSTER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a cluster name (e.g. pegase): {text!r}")
    return text


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="python -m envol_outcomes.report",
                                    description="Write a cluster's effectiveness report (HTML, CSV).")
    found.add_argument("--cluster", required=True, type=_cluster, help="e.g. pegase, astech")
    found.add_argument("--from", dest="start", required=True, type=_day, help="first day, YYYY-MM-DD")
    found.add_argument("--to", dest="end", type=_day, help="last day, YYYY-MM-DD (default: to date)")
    found.add_argument("--lang", choices=["fr", "en", "both"], default="both")
    found.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default ./reports)")
    found.add_argument("--nats-url", help="NATS server (default: the running local stack's)")
    found.add_argument("--user", help="NATS user (default with the local stack: <cluster>-staff)")
    found.add_argument("--password", help="its password (default with the local stack: from its credentials)")
    found.add_argument("--data-dir", type=Path, default=DATA_DIR,
                       help="the local stack's data dir (default: the repository's .envol)")
    found.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the answer")
    return found


def login(args: argparse.Namespace) -> Login:
    """Where and as whom to connect: --nats-url, else the local stack's stack.json, else
    $ENVOL_NATS_URL."""
    user, password = args.user, args.password
    if args.nats_url:
        return Login(args.nats_url, user, password, f"_INBOX_{user}" if user else "_INBOX")
    state = args.data_dir / "stack.json"
    if state.exists():
        stack = json.loads(state.read_text())
        credentials = stack.get("nats_credentials")
        if not credentials:  # the stack uses an external server as it is: no users
            return Login(stack["nats_url"], user, password, f"_INBOX_{user}" if user else "_INBOX")
        user = user or f"{args.cluster}-staff"
        if password is None:
            try:
                password = json.loads(Path(credentials).read_text())[user]
            except (OSError, ValueError, KeyError) as exc:
                raise ReportError(f"no password for NATS user {user} in {credentials} ({exc!r}): "
                                  "pass --user and --password") from None
        return Login(stack["nats_url"], user, password, f"_INBOX_{user}")
    url = os.environ.get("ENVOL_NATS_URL")
    if not url:
        raise ReportError(f"no running local stack ({state} not found): start one with "
                          "`python3 envol.py up`, or pass --nats-url")
    return Login(url, user, password, f"_INBOX_{user}" if user else "_INBOX")


async def ask(where: Login, cluster: str, start: str, end: str | None, wait_s: float) -> dict[str, Any]:
    """The outcomes service's answer; ReportError with the reason when there is none."""
    import nats  # here, not at the top: rendering (and its tests) needs no NATS client
    from nats.errors import NoRespondersError, NoServersError
    from nats.errors import TimeoutError as NatsTimeout

    from envol_shared.queries import query_subject

    problems: list[str] = []

    async def noted(exc: Exception) -> None:
        problems.append(str(exc) or type(exc).__name__)  # e.g. a permissions violation

    subject = query_subject(cluster, "outcomes", "report")
    extra: dict[str, Any] = {"user": where.user, "password": where.password} if where.user else {}
    try:
        client = await nats.connect(where.url, connect_timeout=5, max_reconnect_attempts=1,
                                    allow_reconnect=False, error_cb=noted,
                                    inbox_prefix=where.inbox_prefix, **extra)
    except (NoServersError, OSError, Exception) as exc:  # nats-py raises many kinds here
        said = str(exc) or type(exc).__name__
        more = [problem for problem in dict.fromkeys(problems) if problem not in said]
        why = "; ".join([said, *more])
        raise ReportError(f"cannot connect to NATS at {_safe(where.url)}: {why}") from None
    try:
        request = json.dumps({"from": start, "to": end}).encode()
        reply = await client.request(subject, request, timeout=wait_s)
    except NoRespondersError:
        raise ReportError(f"no outcomes service answers on {subject}: is it running?") from None
    except NatsTimeout:
        raise ReportError(f"no answer on {subject} within {wait_s:g} s"
                          f"{': ' + '; '.join(problems) if problems else ''}") from None
    finally:
        await client.close()
    try:
        answer = json.loads(reply.data)
    except ValueError:
        raise ReportError(f"the answer on {subject} is not JSON: {reply.data[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ReportError(f"the answer on {subject} is not a JSON object")
    if "error" in answer:
        raise ReportError(f"the outcomes service says: {answer['error']}")
    return answer


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def write(answer: dict[str, Any], cluster: str, start: str, end: str | None, langs: list[str],
          out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"envol-{cluster}-{start}" + (f"_{end}" if end else "")
    written = []
    for lang in langs:
        path = out / f"{stem}-{lang}.html"
        path.write_text(render_html(answer, lang), encoding="utf-8")
        written.append(path)
    path = out / f"{stem}.csv"
    path.write_text(render_csv(answer), encoding="utf-8", newline="")
    return [*written, path]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.end and args.end < args.start:
        print(f"envol report: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    langs = ["fr", "en"] if args.lang == "both" else [args.lang]
    try:
        answer = asyncio.run(ask(login(args), args.cluster, args.start, args.end, args.timeout))
        paths = write(answer, args.cluster, args.start, args.end, langs, args.out)
    except ReportError as exc:
        print(f"envol report: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0
