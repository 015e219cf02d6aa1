"""The self-contained HTML report over all (dataset, model) results."""

from ctrbench.report.build import (
    GoldHashMismatch,
    ResultEntry,
    build_report,
    check_gold_hashes,
    load_entries,
    render_html,
    render_report,
)

__all__ = [
    "GoldHashMismatch",
    "ResultEntry",
    "build_report",
    "check_gold_hashes",
    "load_entries",
    "render_html",
    "render_report",
]
