"""Company identifiers: SIREN (9 digits) and SIRET (14 digits), validated by python-stdnum.

python-stdnum implements the Luhn check and the La Poste exception for SIRET numbers, and
accepts the spaces and dots found in real data ("732 829 320 00074").
"""

from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret


class InvalidCompanyId(ValueError):
    pass


@lru_cache(maxsize=100_000)  # the same ids come back again and again
def normalise_siren(value: str) -> str:
    """Return the 9-digit SIREN, or raise InvalidCompanyId saying what is wrong."""
    try:
        return stdnum_siren.validate(value)
    except ValidationError as exc:
        raise InvalidCompanyId(f"invalid SIREN {value!r}: {exc}") from None


@lru_cache(maxsize=100_000)
def normalise_siret(value: str) -> str:
    """Return the 14-digit SIRET, or raise InvalidCompanyId saying what is wrong."""
    try:
        return stdnum_siret.validate(value)
    except ValidationError as exc:
        raise InvalidCompanyId(f"invalid SIRET {value!r}: {exc}") from None


@lru_cache(maxsize=100_000)
def normalise_company_id(value: str) -> str:
    """A valid SIREN (9 digits) or SIRET (14 digits), compacted."""
    compact = stdnum_siret.compact(value)
    return normalise_siret(compact) if len(compact) == 14 else normalise_siren(compact)


@lru_cache(maxsize=100_000)
def siren_of(company_id: str) -> str:
    """The SIREN of a SIREN or SIRET, whichever was given: the company, not the site."""
    return normalise_company_id(company_id)[:9]


Siren = Annotated[str, AfterValidator(normalise_siren)]
Siret = Annotated[str, AfterValidator(normalise_siret)]
# A SIREN or a SIRET, compacted; `siren_of` gives the company it identifies.
CompanyId = Annotated[str, AfterValidator(normalise_company_id)]
