"""The financing domain: cases, their kinds, money, requirements and checkpoints; no I/O."""
