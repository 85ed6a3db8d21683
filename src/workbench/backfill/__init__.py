"""Backfill: Clay export rows through the very same mappings as live rows, in batches."""

from .runner import FAILURE_STATUSES, HASH_WINDOW, STATUSES, Backfill, BackfillSummary
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
