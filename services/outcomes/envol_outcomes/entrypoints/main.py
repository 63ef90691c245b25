"""The outcomes service as a FastStream application (settings from ENVOL_* variables).

    envol-outcomes                                        its own command
    faststream run envol_outcomes.entrypoints.main:app    the same application, run by FastStream

Either way SIGTERM or SIGINT stops it gracefully (see envol_shared.service).
"""

from __future__ import annotations

import asyncio

from envol_outcomes.bootstrap import bootstrap
from envol_shared.logging import configure_logging
from envol_shared.service import RunningService, Settings

configure_logging()
service = RunningService(bootstrap(), Settings.from_env("outcomes"))
app = service.app


def main() -> None:
    asyncio.run(service.run())


if __name__ == "__main__":
    main()
