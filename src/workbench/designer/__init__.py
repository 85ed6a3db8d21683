"""The mapping designer: an ipywidgets UI over the core, with a live preview against an export."""

from .checks import Check, check_config
from .counts import MappingCount, TableEvaluator
from .knock import KnockPanel
from .preview import PreviewRow, preview_rows
from .suggest import Suggestion, suggest
from .table import ExportTable, list_tables
from .widgets import MappingDesigner
from .workspace import Workspace, workspace

__all__ = [
    "Check",
    "ExportTable",
    "KnockPanel",
    "MappingCount",
    "MappingDesigner",
    "PreviewRow",
    "Suggestion",
    "TableEvaluator",
    "Workspace",
    "check_config",
    "list_tables",
    "preview_rows",
    "suggest",
    "workspace",
]
