"""The mapping designer: an ipywidgets UI over the core, with a live preview against an export."""

from .counts import MappingCount, TableEvaluator
from .knock import KnockPanel
from .preview import PreviewRow, preview_rows
from .table import ExportTable, list_tables
from .widgets import MappingDesigner
from .workspace import Workspace, workspace

__all__ = [
    "ExportTable",
    "KnockPanel",
    "MappingCount",
    "MappingDesigner",
    "PreviewRow",
    "TableEvaluator",
    "Workspace",
    "list_tables",
    "preview_rows",
    "workspace",
]
