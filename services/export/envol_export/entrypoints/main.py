"""`envol-export`: run the export service (settings from ENVOL_* variables)."""

from __future__ import annotations

import asyncio

from envol_export.bootstrap import bootstrap
from envol_shared.logging import configure_logging
from envol_shared.service import Settings, run_service


def main() -> None:
    configure_logging()
    asyncio.run(run_service(bootstrap(), Settings.from_env("export")))


if __name__ == "__main__":
    main()
