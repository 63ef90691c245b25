"""Per-cluster configuration files, read the same way by every service: one TOML file per
cluster, named after it, validated by the service's pydantic model. A mistake stops the
service at start with the file and the field at fault."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError


class ConfigurationError(Exception):
    """A configuration file the service cannot run with; the message names the file."""


M = TypeVar("M", bound=BaseModel)


def load_cluster_files(directory: Path, model: type[M], what: str) -> list[M]:
    """Every `<cluster>.toml` of `directory` as `model` (which has a `cluster` field)."""
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ConfigurationError(f"no {what} (*.toml) in {directory}")
    entries = []
    for path in files:
        try:
            entry = model.model_validate(tomllib.loads(path.read_text("utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise ConfigurationError(f"{path}: {exc}") from None
        # One file per cluster, named after it: two files can never describe one cluster,
        # and a typo in either shows at start.
        cluster = getattr(entry, "cluster")  # noqa: B009 - every cluster file model has one
        if path.stem != cluster:
            raise ConfigurationError(f"{path}: describes cluster {cluster!r}; name the file {cluster}.toml")
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class Partner:
    """A partner system serving a cluster: its id is the producer token it publishes under."""

    id: str
    kind: StrEnum
    name: str
    cluster: str


class ClusterFile(Protocol):
    """What every service's cluster file says: the cluster, its staff tools, its partners."""

    @property
    def cluster(self) -> str: ...
    @property
    def staff(self) -> Sequence[str]: ...
    @property
    def partners(self) -> Sequence[Any]: ...


C = TypeVar("C", bound=ClusterFile)


class ClusterFiles(Generic[C]):
    """A service's cluster files, by cluster: who is staff, who is a partner, and of what kind.
    Each service adds what its own files say (programmes, policy, units...)."""

    def __init__(self, clusters: list[C]) -> None:
        self._clusters = {c.cluster: c for c in clusters}

    @property
    def clusters(self) -> list[str]:
        return sorted(self._clusters)

    def entry(self, cluster: str) -> C | None:
        return self._clusters.get(cluster)

    def is_staff(self, cluster: str, producer: str) -> bool:
        entry = self._clusters.get(cluster)
        return entry is not None and producer in entry.staff

    def partners_of(self, cluster: str) -> list[Partner]:
        entry = self._clusters.get(cluster)
        return [Partner(p.id, p.kind, p.name, cluster) for p in (entry.partners if entry else [])]

    def partner(self, cluster: str, producer: str) -> Partner | None:
        return next((p for p in self.partners_of(cluster) if p.id == producer), None)
