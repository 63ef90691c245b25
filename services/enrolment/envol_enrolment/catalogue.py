"""The programme catalogue: one TOML file per cluster, edited by the cluster, not in code.

The files shipped in ``catalogue/`` describe the programmes of the seed article; a cluster
points ENVOL_CATALOGUE_DIR at its own copy to change them. A mistake in a file stops the
service at start-up with the file, the programme and the field at fault.
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

    cluster: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str
    regions: list[str] = []
    programmes: list[ProgrammeEntry]


class CatalogueError(Exception):
    pass


class Catalogue:
    def __init__(self, programmes: list[Programme], clusters: dict[str, str]) -> None:
        self._by_code = {p.code: p for p in programmes}
        if len(self._by_code) != len(programmes):
            raise CatalogueError("two programmes share a code")
        self.clusters = clusters

    def get(self, code: str) -> Programme | None:
        return self._by_code.get(code)

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
        for path in files:
            try:
                entry = ClusterCatalogue.model_validate(tomllib.loads(path.read_text("utf-8")))
            except (tomllib.TOMLDecodeError, ValidationError) as exc:
                raise CatalogueError(f"{path}: {exc}") from None
            clusters[entry.cluster] = entry.name
            programmes += [
                Programme(
                    code=p.code, cluster=entry.cluster, title=p.title, kind=p.kind,
                    capacity=p.capacity, opens_on=p.opens_on, closes_on=p.closes_on,
                    rules=frozenset(p.rules), countries=frozenset(p.countries),
                    description=p.description,
                )
                for p in entry.programmes
            ]
        return cls(programmes, clusters)
