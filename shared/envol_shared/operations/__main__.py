"""python -m envol_shared.operations: the operator CLI (envol-ops)."""

from envol_shared.operations.cli import app

app(prog_name="envol-ops")
