"""The operator's tools behind `envol-ops`: status, dead letters, queries, partners, imports."""
