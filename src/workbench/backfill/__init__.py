"""Backfill as a sync: Clay export rows through the very same mappings as live rows, applying what changed."""

from .report import FAILURE_STATUSES, STATUSES, BackfillSummary, SyncPlan
from .runner import Backfill
from .sources import CsvRows, RowSource, TableRows

__all__ = [
    "FAILURE_STATUSES",
    "STATUSES",
    "Backfill",
    "BackfillSummary",
    "CsvRows",
    "RowSource",
    "SyncPlan",
    "TableRows",
]
