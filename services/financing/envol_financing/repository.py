"""Repositories: the only code that queries the financing tables."""

from __future__ import annotations

from envol_financing.domain.model import FinancingCase
from envol_shared.repository import BatchRepository


class CaseRepository(BatchRepository[FinancingCase]):
    model = FinancingCase
    key = "id"
