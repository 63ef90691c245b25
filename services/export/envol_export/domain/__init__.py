"""The export domain: supports, the units that serve them (relay missions, export desks, CCI
cohorts), their places and waiting lists, partners' facts and checkpoints; no I/O."""
