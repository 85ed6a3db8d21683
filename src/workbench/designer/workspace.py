"""Where the notebooks read and write: the project's shipped files, and a work directory.

The work directory is the project's git-ignored `data/` unless `WORKBENCH_WORKDIR` points
elsewhere (the notebook tests point it at a temporary directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..clay import load_export, quote
from ..errors import WorkbenchError
from .table import list_tables

SAMPLE_EXPORT = "data/samples/clay_leads_sample.csv"
SAMPLE_TABLE = "clay_leads"


def find_root(start: Path | None = None) -> Path:
    """The project directory: the nearest parent holding `mappings/clay.json`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "mappings" / "clay.json").is_file():
            return folder
    raise WorkbenchError(
        f"cannot find the project (a folder with mappings/clay.json) from {here}; "
        "start JupyterLab from the project, e.g. with `make run`"
    )


@dataclass(frozen=True)
class Workspace:
    root: Path
    workdir: Path

    @property
    def sample_export(self) -> Path:
        return self.root / SAMPLE_EXPORT

    @property
    def default_config(self) -> Path:
        return self.root / "mappings" / "clay.json"

    @property
    def duckdb_path(self) -> Path:
        return self.workdir / "workbench.duckdb"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.workdir / 'workbench.sqlite'}"

    @property
    def designed_config(self) -> Path:
        """Where notebook 02 saves (git-ignored next to the shipped config, or in the work directory)."""
        if "WORKBENCH_WORKDIR" in os.environ:
            return self.workdir / "designed.json"
        return self.root / "mappings" / "designed.json"

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the workbench's DuckDB file (read-only lets several notebooks read it at once)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if read_only and not self.duckdb_path.exists():
            raise WorkbenchError(
                f"{self.duckdb_path} does not exist yet; run notebook 01 (or `make run`) to load an export"
            )
        try:
            return duckdb.connect(str(self.duckdb_path), read_only=read_only)
        except duckdb.Error as exc:
            raise WorkbenchError(
                f"cannot open {self.duckdb_path} ({exc}); another kernel may hold it for writing: "
                "shut down the other notebook's kernel, then run this cell again"
            ) from None

    def connect_copy(self) -> duckdb.DuckDBPyConnection:
        """An in-memory copy of the database's tables; the file is closed again at once, so no
        kernel holds it and `workbench load` or another notebook can write it meanwhile."""
        source = self.connect(read_only=True)
        try:
            tables = list_tables(source)
        finally:
            source.close()
        copy = duckdb.connect()
        try:
            copy.execute("ATTACH ? AS source (READ_ONLY)", [str(self.duckdb_path)])
            for table in tables:
                copy.execute(f"CREATE TABLE {quote(table)} AS SELECT * FROM source.{quote(table)}")
            copy.execute("DETACH source")
        except duckdb.Error as exc:
            copy.close()
            raise WorkbenchError(
                f"cannot copy the tables of {self.duckdb_path} ({exc}); another kernel may hold it "
                "for writing: shut down the other notebook's kernel, then run this cell again"
            ) from None
        return copy

    def ensure_sample(self, table: str = SAMPLE_TABLE) -> str:
        """Load the shipped sample export into `table` unless it is there already; return the table."""
        if self.duckdb_path.exists():
            con = self.connect(read_only=True)
            try:
                if table in list_tables(con):
                    return table
            finally:
                con.close()
        con = self.connect()
        try:
            load_export(self.sample_export, con, table=table)
        finally:
            con.close()
        return table


def workspace(start: Path | None = None) -> Workspace:
    root = find_root(start)
    workdir = Path(os.environ.get("WORKBENCH_WORKDIR") or root / "data")
    return Workspace(root, workdir)
