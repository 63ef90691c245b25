"""The export service as a FastStream application (settings from ENVOL_* variables).

    envol-export                                        its own command
    faststream run envol_export.entrypoints.main:app    the same application, run by FastStream

Either way SIGTERM or SIGINT stops it gracefully (see envol_shared.service).
"""

from __future__ import annotations

import asyncio

from envol_export.bootstrap import bootstrap
from envol_shared.logging import configure_logging
from envol_shared.service import RunningService, Settings

configure_logging()
service = RunningService(bootstrap(), Settings.from_env("export"))
app = service.app


def main() -> None:
    asyncio.run(service.run())


if __name__ == "__main__":
    main()
