"""JSON columns whose values the domain edits in place, written back like any other change.

Why this exists: SQLAlchemy writes an attribute when it is assigned, not when a value inside it
changes. The domain classes are plain dataclasses that edit their JSON values in place, at any
depth (a pitch session held, a lead reported), and SQLAlchemy never sees such an edit: it would
be silently lost. ``MutableDict`` would not do: it notices only the edits at the top level of
a dict, not those deeper down.

How: each mapped object keeps, for each of its JSON attributes, the JSON text the database
holds (taken when the object is loaded, refreshed or inserted). An attribute whose text no
longer matches is marked modified, so that the flush that follows writes it. Every object of
the session is compared:

- before each commit, of a transaction or of a savepoint (SQLAlchemy flushes right after);
- before a query that reads objects again over what is in memory (``populate_existing``), so
  that its autoflush writes the change before the query overwrites it.

Use: call :func:`track_json_columns` once, after mapping the classes of a service::

    track_json_columns(mapper_registry.mappers)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Mapper, ORMExecuteState, Session
from sqlalchemy.orm.attributes import flag_modified

# Mapped class -> the names of its JSON attributes. Shared by every service of the process:
# the session listeners below look only at objects of the classes listed here.
_JSON_ATTRIBUTES: dict[type, tuple[str, ...]] = {}

# Key in InstanceState.info: {attribute name: JSON text the database holds}.
_STORED = "envol_shared.json_columns.stored"


def track_json_columns(mappers: Iterable[Mapper[Any]]) -> None:
    """Have in-place edits of the JSON columns of these mapped classes written on commit.

    Classes without a JSON column are passed over; calling this again is harmless.
    """
    for mapper in mappers:
        names = tuple(prop.key for prop in mapper.column_attrs
                      if isinstance(prop.columns[0].type, sa.JSON))
        if not names or mapper.class_ in _JSON_ATTRIBUTES:
            continue
        _JSON_ATTRIBUTES[mapper.class_] = names
        event.listen(mapper, "load", _loaded)
        event.listen(mapper, "refresh", _loaded)
        event.listen(mapper, "after_insert", _inserted)
    # On every session, once for the whole process.
    if not event.contains(Session, "before_commit", _before_commit):
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "do_orm_execute", _before_query)


def _loaded(target: object, context: Any, attrs: Iterable[str] | None = None) -> None:
    """Loaded, refreshed (`attrs` only, when given) or inserted: the values are what the
    database holds."""
    state = sa.inspect(target)
    stored = state.info.setdefault(_STORED, {})
    for name in _JSON_ATTRIBUTES[state.class_]:
        if name in state.dict and (attrs is None or name in attrs):
            stored[name] = json.dumps(state.dict[name])


def _inserted(mapper: Mapper[Any], connection: Connection, target: object) -> None:
    # A new object: what it holds now is what its INSERT has just written.
    _loaded(target, None)


def _mark_changed(states: Iterable[InstanceState[Any]]) -> None:
    for state in states:
        names = _JSON_ATTRIBUTES.get(state.class_)
        target = state.obj()
        if not names or target is None:
            continue
        stored = state.info.setdefault(_STORED, {})
        for name in names:
            if name not in state.dict:
                continue  # expired: read again from the database before anyone changes it
            text = json.dumps(state.dict[name])
            if stored.get(name) != text:
                flag_modified(target, name)
                stored[name] = text  # what the flush that follows writes


def _before_commit(session: Session) -> None:
    _mark_changed(session.identity_map.all_states())


def _before_query(query: ORMExecuteState) -> None:
    if query.execution_options.get("populate_existing"):
        _mark_changed(query.session.identity_map.all_states())
