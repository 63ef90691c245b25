"""Each cluster keeps its own view of a company: companies keyed by (cluster, SIREN).

Until now one row per SIREN was shared by every cluster, so one cluster's registration
overwrote another's. Each existing row becomes one view per cluster in its `clusters` list,
a copy of the row: under the old model each of them saw exactly that row. A cluster that
has applications for the SIREN without being in that list (its registration was overwritten
by another cluster's) also gets a copy, so that its applications keep their company, but
without the contact person, who was given by the other cluster; re-registering the company
puts its own data back. An application now refers to its own cluster's view.

Downgrading merges the views of a SIREN into one row: a view its cluster registered rather
than a copy, then the one with the most recent accounts (then the first cluster by name),
with the clusters of every view; the other views' data is lost.

Revision ID: enrolment_0002
Revises: enrolment_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "enrolment_0002"
down_revision = "enrolment_0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
FK_NAME = "fk_applications_company"
APPLICATION_COLUMNS = ("id", "siren", "programme", "cluster", "cohort", "applied_on", "submitted_at",
                       "correlation_id", "target_country", "project", "status", "status_since")


def _company_columns(per_cluster: bool) -> list[sa.Column[Any]]:
    key = [sa.Column("cluster", sa.String(64), primary_key=True)] if per_cluster else []
    return [
        *key,
        sa.Column("siren", sa.String(9), primary_key=True),
        sa.Column("siret", sa.String(14)),
        sa.Column("legal_name", sa.String(500), nullable=False),
        sa.Column("region", sa.String(500), nullable=False),
        sa.Column("clusters", sa.JSON(), nullable=False),
        sa.Column("staff_awu", sa.Float(), nullable=False),
        sa.Column("turnover_cents", sa.BigInteger(), nullable=False),
        sa.Column("balance_sheet_cents", sa.BigInteger(), nullable=False),
        sa.Column("accounts_year", sa.Integer(), nullable=False),
        sa.Column("holdings", sa.JSON(), nullable=False),
        sa.Column("contact", sa.JSON()),
        sa.Column("sme_category", sa.String(16), nullable=False),
        sa.Column("sme_accounts_year", sa.Integer(), nullable=False),
    ]


def _application_columns() -> list[sa.Column[Any]]:
    """As revision 0001 created them, without the reference to the company."""
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("siren", sa.String(9), nullable=False),
        sa.Column("programme", sa.String(40), nullable=False),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("target_country", sa.String(2)),
        sa.Column("project", sa.JSON()),
        sa.Column("status", sa.String(16)),
        sa.Column("status_since", TIMESTAMP),
    ]


def _key(per_cluster: bool) -> list[str]:
    return ["cluster", "siren"] if per_cluster else ["siren"]


def _company_reference(per_cluster: bool) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(_key(per_cluster), [f"companies.{c}" for c in _key(per_cluster)],
                                   name=FK_NAME)


def _rows(table: str, *columns: sa.Column[Any]) -> list[dict[str, Any]]:
    query = sa.select(*columns).select_from(sa.table(table, *columns))
    return [dict(row._mapping) for row in op.get_bind().execute(query)]


def _company_rows(per_cluster: bool) -> list[dict[str, Any]]:
    # Fresh Column objects: a Column belongs to one table only.
    return _rows("companies", *(sa.column(c.name, c.type) for c in _company_columns(per_cluster)))


def _split_by_cluster() -> list[dict[str, Any]]:
    applying: dict[str, set[str]] = {}  # SIREN -> clusters with applications for it
    for row in _rows("applications", sa.column("cluster", sa.String()), sa.column("siren", sa.String())):
        applying.setdefault(row["siren"], set()).add(row["cluster"])
    views = []
    for row in _company_rows(per_cluster=False):
        members = set(row["clusters"])
        views += [{**row, "cluster": cluster} for cluster in sorted(members)]
        views += [{**row, "cluster": cluster, "contact": None}
                  for cluster in sorted(applying.get(row["siren"], set()) - members)]
    return views


def _merge_by_siren() -> list[dict[str, Any]]:
    by_siren: dict[str, list[dict[str, Any]]] = {}
    for view in _company_rows(per_cluster=True):
        by_siren.setdefault(view["siren"], []).append(view)
    merged = []
    for views in by_siren.values():
        # A cluster's own registration over a copy made for its applications, then the
        # most recent accounts.
        kept = min(views, key=lambda v: (v["cluster"] not in v["clusters"], -v["accounts_year"],
                                         v["cluster"]))
        clusters = sorted({c for view in views for c in view["clusters"]} | {v["cluster"] for v in views})
        merged.append({k: v for k, v in kept.items() if k != "cluster"} | {"clusters": clusters})
    return merged


def _replace_companies(rows: list[dict[str, Any]], *, per_cluster: bool) -> None:
    """Swap the companies table for the other key, its applications following it."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _replace_on_sqlite(rows, per_cluster=per_cluster)
        return
    # PostgreSQL drops and adds the reference itself: only the companies table is replaced.
    for reference in sa.inspect(bind).get_foreign_keys("applications"):
        if reference["referred_table"] == "companies":
            op.drop_constraint(reference["name"], "applications", type_="foreignkey")
    op.drop_table("companies")
    op.bulk_insert(op.create_table("companies", *_company_columns(per_cluster)), rows)
    op.create_foreign_key(FK_NAME, "applications", "companies", _key(per_cluster), _key(per_cluster))


def _replace_on_sqlite(rows: list[dict[str, Any]], *, per_cluster: bool) -> None:
    """SQLite cannot change a foreign key: applications are copied aside, both tables dropped
    and created anew. The status history refers to applications: its checks are deferred to
    the commit, when every application is back (PRAGMA foreign_keys cannot be turned off
    inside a transaction)."""
    # The driver opens its transaction at the first write only: open it now, so that the
    # deferral (reset at every commit) covers every statement below.
    op.execute("DELETE FROM companies WHERE 1 = 0")
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE _applications_0002 AS SELECT * FROM applications")
    op.drop_table("applications")  # its indexes with it
    op.drop_table("companies")
    op.bulk_insert(op.create_table("companies", *_company_columns(per_cluster)), rows)
    op.create_table("applications", *_application_columns(), _company_reference(per_cluster))
    op.create_index("ix_applications_siren", "applications", ["siren"])
    op.create_index("ix_applications_programme_status", "applications", ["programme", "status"])
    columns = ", ".join(APPLICATION_COLUMNS)
    op.execute(f"INSERT INTO applications ({columns}) SELECT {columns} FROM _applications_0002")
    op.execute("DROP TABLE _applications_0002")


def upgrade() -> None:
    _replace_companies(_split_by_cluster(), per_cluster=True)


def downgrade() -> None:
    _replace_companies(_merge_by_siren(), per_cluster=False)
