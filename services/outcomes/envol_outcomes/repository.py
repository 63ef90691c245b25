"""Repositories: the only code that queries the outcomes table."""

from __future__ import annotations

from envol_outcomes.domain.model import Journey
from envol_shared.repository import BatchRepository


class JourneyRepository(BatchRepository[Journey]):
    model = Journey
    key = "id"
