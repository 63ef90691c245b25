"""Events of the outcomes service.

The outcomes service only listens: it follows what enrolment, financing and export publish
(and the outcome checkpoints staff record on cases and supports) to show, per cluster,
programme and cohort, what the SMEs obtained over time. It publishes nothing but rejections.

To compare participants with similar SMEs that were not enrolled, cluster staff (producer
``staff``) record the same outcome checkpoints for applicants that were waitlisted, denied or
ineligible: the comparison group. Its CloudEvents ``subject`` is the applicant's SIREN.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from envol_shared.contracts import enrolment, export, financing
from envol_shared.events import Day, EuroCents, EventData, Token, event_type

Text = Annotated[str, Field(min_length=1, max_length=500)]
CheckpointName = Literal["baseline", "month_6", "month_12", "month_24"]


@event_type
class ComparisonCheckpointRecorded(EventData):
    """Where an applicant that was not enrolled stands, at the same checkpoints and on the same
    measure as the programme's participants."""

    type: ClassVar[str] = "envol.outcomes.comparison.recorded.v1"

    application_id: Token
    checkpoint: CheckpointName
    recorded_on: Day
    value_cents: EuroCents = Field(description="a financing programme: private financing raised to "
                                               "date; an export programme: export turnover over the "
                                               "last 12 months")
    note: Text | None = None


STAFF_EVENTS = (ComparisonCheckpointRecorded,)
PUBLISHED: tuple[type[EventData], ...] = ()
# Everything the three services publish about applications, cases and supports, and the
# outcome checkpoints staff record for participants and for the comparison group.
CONSUMED = (
    *enrolment.TRANSITION_EVENTS.values(),
    financing.CaseOpened, financing.CaseProgressed, financing.CaseClosed, financing.CheckpointRecorded,
    export.SupportOpened, export.SupportAssigned, export.SupportWaitlisted, export.SupportProgressed,
    export.SupportClosed, export.CheckpointRecorded,
    *STAFF_EVENTS,
)
