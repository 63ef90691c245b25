"""Which failures retry the whole batch later (transient) and which say something about one
message (a handler error, dead-lettered after its attempts)."""

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from envol_shared.consumer import is_transient


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])  # deadlock, serialization failure
def test_postgresql_asking_to_try_again_is_transient(sqlstate: str):
    assert is_transient(DBAPIError("update units ...", {}, DriverError(sqlstate)))


def test_other_database_errors_are_not():
    assert not is_transient(IntegrityError("insert ...", {}, DriverError("23505")))
    assert not is_transient(DBAPIError("select ...", {}, DriverError("42P01")))
    assert not is_transient(ValueError("a bug"))


def test_unreachable_database_and_network_are():
    assert is_transient(OperationalError("connect", {}, DriverError(None)))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
