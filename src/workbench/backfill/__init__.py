"""Backfill: Clay export rows through the very same mappings as live rows, in batches."""

from .report import FAILURE_STATUSES, STATUSES, BackfillSummary
from .runner import HASH_WINDOW, Backfill
from .sources import CsvRows, RowSource, TableRows

__all__ = [
    "FAILURE_STATUSES",
    "HASH_WINDOW",
    "STATUSES",
    "Backfill",
    "BackfillSummary",
    "CsvRows",
    "RowSource",
    "TableRows",
]
