"""The local stack (`python -m deploy.local.stack`) and its demo (`python -m deploy.local.demo`)."""
