"""Reading a Clay CSV export as it really comes, streamed: UTF-8 with or without a BOM, CRLF or LF,
every cell quoted, multi-line cells, display-name headers kept verbatim and made unique."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import WorkbenchError

# Enrichment cells (whole JSON objects) can be far longer than csv's default 128 KiB field limit.
csv.field_size_limit(1 << 30)

_REEXPORT = "export the table again from Clay (Actions → Export → Download CSV)"
_REEXPORT_SENTENCE = _REEXPORT[0].upper() + _REEXPORT[1:]


class ExportError(WorkbenchError):
    """A file is not a Clay-like CSV export; the message names the file and the line."""

    http_status = 400
    status = "invalid"


def unique_columns(names: list[str]) -> list[str]:
    """Header names kept verbatim; a repeated name gets " (2)", " (3)"… as Clay shows it.

    Names that differ only in case count as repeated: DuckDB's column names are case-insensitive.
    """
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names, start=1):
        base = name if name.strip() else f"Column {i}"
        candidate, n = base, 1
        while candidate.casefold() in seen:
            n += 1
            candidate = f"{base} ({n})"
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def _first_bad_utf8_line(path: Path) -> tuple[int, int, int]:
    """(line, column, byte) of the first byte that is not UTF-8."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, exc.start + 1, line[exc.start]
    return 0, 0, 0


class ExportReader:
    """One Clay export opened for streaming: `columns`, then `rows()` yielding (row number, cells).

    Use as a context manager. Rows are numbered from 1 in file order (the header is not a row).
    An empty file is an error unless `allow_empty` (then it has no columns and no rows).
    """

    def __init__(self, path: str | os.PathLike, allow_empty: bool = False):
        self.path = Path(path)
        self.line = 0
        self._json_like = False
        try:
            self._file = open(self.path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by close())
        except FileNotFoundError:
            raise ExportError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise ExportError(f"{self.path} is a directory; give the path of a CSV export") from None
        self._reader = csv.reader(self._file, strict=True)
        header = self._next()
        if header is None and allow_empty:
            header = []
        elif header is None:
            self.close()
            raise ExportError(f"{self.path} is empty (not even a header line); {_REEXPORT}")
        self.header = header
        self.columns = unique_columns(header)
        self._json_like = bool(header) and header[0].lstrip()[:1] in ("{", "[")
        if len(header) == 1:
            self._refuse_other_separators(header[0])

    def _refuse_other_separators(self, name: str) -> None:
        """A header of one unquoted column holding tabs or semicolons: the file was saved again
        by a spreadsheet with another separator, and would load as one column of joined cells.
        (Clay quotes every cell: a quoted header is one column, whatever its name holds.)"""
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            if f.read(1) == '"':
                return
        for separator, called in (("\t", "tabs"), (";", "semicolons")):
            if len(name.split(separator)) > 1:
                self.close()
                raise ExportError(
                    f"{self.path}, line 1: the header is one column, {name[:80]!r}, with {called} in "
                    f"it: this file is separated by {called} (saved again by a spreadsheet?), while "
                    f"Clay exports separate cells by commas. {_REEXPORT_SENTENCE}, "
                    "or save this file as CSV with commas"
                )

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _fail(self, line: int, problem: str) -> ExportError:
        hint = " (it looks like JSON, not CSV)" if self._json_like else ""
        return ExportError(
            f"{self.path}, line {line}: {problem}; this is not a Clay CSV export{hint}. "
            f"Fix that line, or {_REEXPORT}."
        )

    def _next(self) -> list[str] | None:
        """The next non-blank record, or None at the end; `self.line` is the line it starts on."""
        while True:
            start = self._reader.line_num + 1
            try:
                record = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise self._fail(start, f"the CSV does not parse ({exc})") from None
            except UnicodeDecodeError:
                with open(self.path, "rb") as f:
                    if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                        raise ExportError(
                            f"{self.path} is UTF-16 text (a spreadsheet's “Unicode text”?), while Clay "
                            f"exports are UTF-8; {_REEXPORT}, or save this file as CSV UTF-8"
                        ) from None
                line, column, byte = _first_bad_utf8_line(self.path)
                raise ExportError(
                    f"{self.path}, line {line}, column {column}: byte 0x{byte:02x} is not UTF-8 text; "
                    f"this is not a Clay CSV export (a spreadsheet or binary file?). {_REEXPORT_SENTENCE}."
                ) from None
            if record:
                self.line = start
                return record

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) for every data row; raises `ExportError` at the first bad line."""
        width = len(self.columns)
        number = 0
        while (record := self._next()) is not None:
            if len(record) != width:
                raise self._fail(self.line, f"found {len(record)} fields where the header has {width}")
            number += 1
            yield number, record


def read_columns(path: str | os.PathLike) -> list[str]:
    """The export's column names (made unique), reading the header only."""
    with ExportReader(path) as reader:
        return reader.columns
