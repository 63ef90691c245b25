"""structlog set-up: one JSON object per line in containers, readable lines in a terminal.

Every line carries the service name; lines about a message also carry event id, type,
cluster, correlation id and company (SIREN). Personal data (contact names, e-mails,
phones) is never passed to a logger, and `drop_personal_data` removes it should a field of
that name ever slip in.

FastStream's own lines (start, stop, connection lost) go through the same structlog set-up
(`FastStreamLog`), and `LogContext`, a FastStream middleware, binds the identifiers of the
message in hand to the log context (structlog's contextvars) while it is handled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

PERSONAL_FIELDS = frozenset({"contact", "name", "email", "phone", "contact_name", "contact_email",
                             "contact_phone"})


def drop_personal_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in PERSONAL_FIELDS & event_dict.keys():
        event_dict[key] = "[redacted]"
    return event_dict


def describe_error(exc: BaseException) -> str:
    """An error as an operator may read it: its kind, never the data it was about (a
    database error's or a handler's text can quote the offending value)."""
    cause = getattr(exc, "orig", None)
    return f"{type(exc).__name__} ({type(cause).__name__})" if cause is not None else type(exc).__name__


def configure_logging(*, json_lines: bool | None = None, level: str | None = None) -> None:
    """JSON when ENVOL_LOG_FORMAT=json or when stderr is not a terminal (containers)."""
    if json_lines is None:
        chosen = os.environ.get("ENVOL_LOG_FORMAT", "auto")
        json_lines = chosen == "json" or (chosen == "auto" and not sys.stderr.isatty())
    level_name = (level or os.environ.get("ENVOL_LOG_LEVEL", "INFO")).upper()
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level_name]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class FastStreamLog:
    """FastStream's logger (its `LoggerProto`): its lines as structlog lines, JSON like ours."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("faststream")

    def log(self, level: int, msg: Any, /, *, exc_info: Any = None,
            extra: Mapping[str, Any] | None = None) -> None:
        if not self._log.is_enabled_for(level):  # FastStream's lines about each message: debug
            return
        fields = {key: value for key, value in (extra or {}).items() if value}
        self._log.log(level, str(msg), exc_info=exc_info, **fields)


SHOWN_TOKEN_CHARS = 120  # a subject's token, in the log: enough to recognise, not a payload


class LogContext(BaseMiddleware):
    """Binds the identifiers of the message being handled to structlog's context, and unbinds
    them after: every line logged meanwhile carries them. Identifiers only, never the data."""

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        with structlog.contextvars.bound_contextvars(**message_identifiers(msg.raw_message)):
            return await call_next(msg)


def message_identifiers(raw: Msg | list[Msg]) -> dict[str, Any]:
    """A batch of events: its size and stream sequences; a query: its name and cluster."""
    if isinstance(raw, list):
        fields: dict[str, Any] = {"batch_size": len(raw)}
        # (not when the messages are not JetStream deliveries: FastStream's test broker)
        with contextlib.suppress(NatsError, IndexError):
            fields.update(batch_first_stream_seq=raw[0].metadata.sequence.stream,
                          batch_last_stream_seq=raw[-1].metadata.sequence.stream)
        return fields
    # envol-query.<cluster>.<service>.<query>: the cluster token is the asker's choice
    tokens = raw.subject.split(".", 3)
    if len(tokens) != 4:
        return {"nats_subject": raw.subject[:SHOWN_TOKEN_CHARS]}
    return {"query": tokens[3][:SHOWN_TOKEN_CHARS], "cluster": tokens[1][:SHOWN_TOKEN_CHARS]}
