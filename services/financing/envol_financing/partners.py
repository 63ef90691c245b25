"""Who serves which cluster, and how its cases are followed: one TOML file per cluster.

The files shipped in ``partners/`` describe the seed article's clusters; a cluster points
ENVOL_FINANCING_PARTNERS_DIR at its own copy. Adding a bank, a coach or a programme is an
edit of that file, not a code change. A mistake stops the service at start-up with the file
and the field at fault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envol_financing.domain.follow_up import FollowUpPolicy
from envol_financing.domain.model import SERVED_BY, CaseKind, PartnerKind
from envol_shared.configuration import ClusterFiles, ConfigurationError, Partner, load_cluster_files

SHIPPED = Path(__file__).parent / "partners"
TOKEN = r"^[a-z0-9][a-z0-9-]*$"


class PartnerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=TOKEN, max_length=64, description="its NATS producer token")]
    kind: PartnerKind
    name: str


class FollowUpEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    due_soon_business_days: Annotated[int, Field(ge=0, le=60)] = 5
    escalate_after_business_days: Annotated[int, Field(ge=1, le=60)] = 5
    stale_after_business_days: Annotated[int, Field(ge=1, le=250)] = 20
    baseline_within_business_days: Annotated[int, Field(ge=0, le=60)] = 10


class ClusterPartners(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: Annotated[str, Field(pattern=TOKEN)]
    staff: list[Annotated[str, Field(pattern=TOKEN)]] = Field(min_length=1)
    programmes: dict[Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,39}$")], CaseKind]
    partners: list[PartnerEntry] = []
    follow_up: FollowUpEntry = FollowUpEntry()

    @model_validator(mode="after")
    def _consistent(self) -> ClusterPartners:
        ids = [p.id for p in self.partners]
        if len(set(ids)) != len(ids):
            raise ValueError("two partners share an id")
        if set(ids) & set(self.staff):
            raise ValueError("a producer cannot be both staff and partner")
        for code, kind in self.programmes.items():
            needed = SERVED_BY[kind]
            if needed is not None and not any(p.kind is needed for p in self.partners):
                raise ValueError(f"programme {code} ({kind.value}) needs at least one partner of kind "
                                 f"{needed.value}")
        return self


# What a mistake in a partner file raises.
PartnersError = ConfigurationError


class Partners(ClusterFiles[ClusterPartners]):
    """The partners, staff producers, programmes and follow-up policy of every cluster."""

    def case_kind(self, cluster: str, programme: str) -> CaseKind | None:
        entry = self._clusters.get(cluster)
        return entry.programmes.get(programme) if entry else None

    def serving(self, cluster: str, kind: PartnerKind) -> list[Partner]:
        return [p for p in self.partners_of(cluster) if p.kind is kind]

    def policy(self, cluster: str) -> FollowUpPolicy:
        entry = self._clusters.get(cluster)
        return FollowUpPolicy(**entry.follow_up.model_dump()) if entry else FollowUpPolicy()

    @classmethod
    def load(cls, directory: Path | None = None) -> Partners:
        directory = directory or Path(os.environ.get("ENVOL_FINANCING_PARTNERS_DIR", SHIPPED))
        clusters = load_cluster_files(directory, ClusterPartners, "partner configuration")
        return cls(clusters)
