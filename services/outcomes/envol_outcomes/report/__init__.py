"""The directors' effectiveness report: the outcomes service's answer as HTML (fr, en) and CSV.

``render_html(answer, lang)`` and ``render_csv(answer)`` are pure; ``python -m
envol_outcomes.report`` asks the service over NATS and writes the files (command.py).
"""

from .csv_table import render_csv
from .html_page import render_html

__all__ = ["render_csv", "render_html"]
