"""Clay exports: reading and loading them into DuckDB, profiling columns, turning rows into the
bodies the HTTP API column would POST, and printing that column's set-up."""

from .bodies import (
    DEFAULT_EVENT,
    META_COLUMNS,
    body_builder,
    clean_cell,
    row_to_body,
    snake_case,
    template_event,
)
from .loading import LoadedExport, data_columns, load_export, quote, table_name_for
from .profiling import ColumnProfile, detect_kind, profile, profile_table
from .reading import ExportError, ExportReader, read_columns, unique_columns
from .setup import body_text, ingestion_url, setup_text

__all__ = [
    "DEFAULT_EVENT",
    "META_COLUMNS",
    "ColumnProfile",
    "ExportError",
    "ExportReader",
    "LoadedExport",
    "body_builder",
    "body_text",
    "clean_cell",
    "data_columns",
    "detect_kind",
    "ingestion_url",
    "load_export",
    "profile",
    "profile_table",
    "quote",
    "read_columns",
    "row_to_body",
    "setup_text",
    "snake_case",
    "table_name_for",
    "template_event",
    "unique_columns",
]
