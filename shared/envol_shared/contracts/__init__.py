"""The event catalogue: one module per service, listing the events it consumes and publishes.

Importing this package registers every event type, so any service can parse any event.
"""

from envol_shared.contracts import enrolment

__all__ = ["enrolment"]
