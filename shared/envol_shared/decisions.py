"""Decision log lines, written once the decision is committed.

A handler decides inside the batch's transaction; the same batch may be applied again message
by message (after a refusal in it), rolled back, or a savepoint undone. A decision logged at
once would then appear twice, or appear without having happened: `log_when_committed` holds
the line until the transaction commits and drops it if its part of the transaction is undone.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog
from sqlalchemy import event as sa_event


def log(service: str) -> Any:
    """The decisions' logger, got afresh: under the logging configured now, never one cached
    on first use under an earlier configuration (tests reconfigure it)."""
    return structlog.get_logger(f"envol.{service}")


def log_when_committed(uow: Any, event: str, **fields: Any) -> None:
    """Log the decision `event` once the unit of work's transaction commits, never before: a
    batch applied again message by message (after a refusal in it) or rolled back, and a
    savepoint undone, would otherwise log decisions twice, or decisions that never happened."""
    session = uow.session.sync_session
    pending: list[tuple[Any, str, dict[str, Any]]] | None = session.info.get(PENDING_DECISIONS)
    if pending is None:
        pending = session.info[PENDING_DECISIONS] = []
        sa_event.listen(session, "after_commit", partial(_log_committed, pending))
        sa_event.listen(session, "after_soft_rollback", partial(_forget_rolled_back, pending))
    pending.append((session.get_nested_transaction() or session.get_transaction(), event, fields))


PENDING_DECISIONS = "envol.pending_decisions"


def _log_committed(pending: list[tuple[Any, str, dict[str, Any]]], session: Any) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction goes on
        return
    lines, pending[:] = list(pending), []
    for _transaction, event, fields in lines:
        log(fields.get("service", "service")).info(event, **fields)


def _forget_rolled_back(pending: list[tuple[Any, str, dict[str, Any]]], _session: Any,
                        previous: Any) -> None:
    def undone(transaction: Any) -> bool:
        if previous.parent is None:  # the whole transaction
            return True
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    pending[:] = [entry for entry in pending if not undone(entry[0])]
