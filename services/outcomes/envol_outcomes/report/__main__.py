"""python -m envol_outcomes.report: see command.py."""

import sys

from .command import main

sys.exit(main())
