"""The event catalogue: one module per service, listing the events it consumes and publishes.

Importing this package registers every event type, so any service can parse any event.
"""

from envol_shared.contracts import enrolment, export, financing, outcomes

# Which service alone publishes each of its events: they live under its producer token
# (envol.<cluster>.<service>.<event>), and nobody else has a stream to publish them on.
PUBLISHED_BY: dict[str, str] = {
    **{event.type: "enrolment" for event in enrolment.PUBLISHED},
    **{event.type: "financing" for event in financing.PUBLISHED},
    **{event.type: "export" for event in export.PUBLISHED},
}

__all__ = ["PUBLISHED_BY", "enrolment", "export", "financing", "outcomes"]
