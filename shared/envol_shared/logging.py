"""structlog set-up: one JSON object per line in containers, readable lines in a terminal.

Every line carries the service name; lines about a message also carry event id, type,
cluster, correlation id and company (SIREN). Personal data (contact names, e-mails,
phones) is never passed to a logger, and `drop_personal_data` removes it should a field of
that name ever slip in.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

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
