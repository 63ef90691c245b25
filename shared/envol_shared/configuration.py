"""Per-cluster configuration files, read the same way by every service: one TOML file per
cluster, named after it, validated by the service's pydantic model. A mistake stops the
service at start with the file and the field at fault."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

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
