"""The programme catalogue: one TOML file per cluster, edited by the cluster, not in code.

The files shipped in ``catalogue/`` describe the programmes of the seed article; a cluster
points ENVOL_CATALOGUE_DIR at its own copy to change them. A mistake in a file stops the
service at start-up with the file, the programme and the field at fault. Each file also names
the cluster's staff producers, the only ones whose events enrolment accepts: the same names as
the `staff` of the cluster's partner files of financing and export, from which the NATS users
are generated.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from envol_enrolment.domain.model import Programme, ProgrammeKind, Rule

SHIPPED = Path(__file__).parent / "catalogue"
TOKEN = r"^[a-z0-9][a-z0-9-]*$"


class ProgrammeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,39}$")]
    title: str
    description: str = ""
    kind: ProgrammeKind
    capacity: Annotated[int, Field(ge=1)]
    opens_on: date
    closes_on: date | None = None
    rules: list[Rule]
    countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = []

    @model_validator(mode="after")
    def _consistent(self) -> ProgrammeEntry:
        if self.closes_on and self.closes_on < self.opens_on:
            raise ValueError("closes_on is before opens_on")
        if Rule.TARGET_COUNTRY in self.rules and not self.countries:
            raise ValueError("the target_country rule needs the list of countries served")
        return self


class ClusterCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: Annotated[str, Field(pattern=TOKEN)]
    name: str
    regions: list[str] = []
    # Producer tokens of the cluster's staff tools (envol.<cluster>.<staff>.…); "staff" is the
    # one every shipped cluster uses.
    staff: list[Annotated[str, Field(pattern=TOKEN, max_length=64)]] = Field(default=["staff"], min_length=1)
    programmes: list[ProgrammeEntry]


class CatalogueError(Exception):
    pass


class Catalogue:
    def __init__(self, programmes: list[Programme], clusters: dict[str, str],
                 staff: dict[str, tuple[str, ...]]) -> None:
        self._by_code = {p.code: p for p in programmes}
        if len(self._by_code) != len(programmes):
            raise CatalogueError("two programmes share a code")
        self.clusters = clusters
        self._staff = staff

    def get(self, code: str) -> Programme | None:
        return self._by_code.get(code)

    def staff_of(self, cluster: str) -> tuple[str, ...]:
        """The producers of `cluster`'s staff tools (none for an unknown cluster)."""
        return self._staff.get(cluster, ())

    def is_staff(self, cluster: str, producer: str) -> bool:
        return producer in self.staff_of(cluster)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_code.values())

    @classmethod
    def load(cls, directory: Path | None = None) -> Catalogue:
        directory = directory or Path(os.environ.get("ENVOL_CATALOGUE_DIR", SHIPPED))
        files = sorted(directory.glob("*.toml"))
        if not files:
            raise CatalogueError(f"no programme catalogue (*.toml) in {directory}")
        programmes: list[Programme] = []
        clusters: dict[str, str] = {}
        staff: dict[str, tuple[str, ...]] = {}
        for path in files:
            try:
                entry = ClusterCatalogue.model_validate(tomllib.loads(path.read_text("utf-8")))
            except (tomllib.TOMLDecodeError, ValidationError) as exc:
                raise CatalogueError(f"{path}: {exc}") from None
            clusters[entry.cluster] = entry.name
            staff[entry.cluster] = tuple(entry.staff)
            programmes += [
                Programme(
                    code=p.code, cluster=entry.cluster, title=p.title, kind=p.kind,
                    capacity=p.capacity, opens_on=p.opens_on, closes_on=p.closes_on,
                    rules=frozenset(p.rules), countries=frozenset(p.countries),
                    description=p.description,
                )
                for p in entry.programmes
            ]
        return cls(programmes, clusters, staff)
