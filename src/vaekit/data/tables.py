"""Loading a numeric CSV table: one example per row, optionally a header and a label column."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import torch

from vaekit.data.dataset import Dataset
from vaekit.data.validation import check_labels
from vaekit.errors import DataError

__all__ = ["load_csv"]


def load_csv(path: str | os.PathLike, label_column: str | int | None = None) -> Dataset:
    """Load a comma-separated table of numbers: ``x`` is float32 ``(N, D)``, values unscaled.

    Arguments:
        path: the ``.csv`` file. The first row is a header when any of its cells is not
            a number (so a header of purely numeric names is read as data). Blank lines
            are skipped; cells may be quoted and padded with spaces.
        label_column: the column holding integer class labels (0..K-1), by header name
            or by 0-based index (negative counts from the end; a string such as ``"0"``, as
            ``--label-column`` gives, is an index unless a column has that name); it
            becomes ``y`` (int64) and is removed from ``x``. ``None``: no labels.

    Raises:
        DataError: the file is missing or empty, a row has a different number of cells,
            a cell is not a number or is NaN/infinite (the message names the line and
            column), or the label column is unknown or holds non-integral/negative values.

    Example:
        >>> open("/tmp/toy.csv", "w").write("a,b,label\\n0.5,1,0\\n2,3,1\\n")  # doctest: +SKIP
        >>> load_csv("/tmp/toy.csv", label_column="label").x.shape  # doctest: +SKIP
        torch.Size([2, 2])
    """
    path = Path(path)
    header, rows = _read_rows(path)
    values = _parse(rows, header, path)
    if values.shape[0] == 0:
        raise DataError(f"{path} has a header but no data rows")
    y = None
    if label_column is not None:
        column = _column_index(label_column, header, values.shape[1], path)
        labels = values[:, column]
        if not np.all(labels == np.round(labels)):
            row = int(np.flatnonzero(labels != np.round(labels))[0])
            raise DataError(
                f"{path}: label column {_describe(column, header)} must hold integer class labels, "
                f"but data row {row + 1} has {labels[row]:g}"
            )
        y = torch.from_numpy(labels.astype(np.int64))
        check_labels(y, len(y), name=f"labels in column {_describe(column, header)} of {path}")
        values = np.delete(values, column, axis=1)
        if values.shape[1] == 0:
            raise DataError(f"{path}: no feature columns are left besides the label column")
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return Dataset(x, y, name=path.stem)


def _read_rows(path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """The header (or None) and the non-blank rows as (line number, cells)."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)  # so a quote after ", " still opens a quoted cell
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, row))
    except FileNotFoundError as e:
        raise DataError(f"no such file: {path}") from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path} as a CSV text file: {e}") from e
    if not rows:
        raise DataError(f"{path} is empty")
    first = rows[0][1]
    if all(_is_number(c) for c in first):
        return None, rows
    return [c.strip() for c in first], rows[1:]


def _parse(rows: list[tuple[int, list[str]]], header: list[str] | None, path: Path) -> np.ndarray:
    """The cells as a float64 array; any problem is located by :func:`_parse_slowly`."""
    width = len(header) if header is not None else len(rows[0][1])
    try:
        values = np.array([cells for _, cells in rows], dtype=np.float64)
    except ValueError:
        return _parse_slowly(rows, header, width, path)
    if values.ndim != 2 or values.shape[1] != width or not np.isfinite(values).all():
        return _parse_slowly(rows, header, width, path)
    return values


def _parse_slowly(rows: list[tuple[int, list[str]]], header: list[str] | None, width: int, path: Path) -> np.ndarray:
    """Parse cell by cell, raising a DataError that names the line and column of the first bad cell."""
    values = np.empty((len(rows), width), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataError(
                f"{path}, line {line}: {len(cells)} cells but the {'header' if header else 'first row'} "
                f"has {width}; every row needs the same number of columns"
            )
        for c, cell in enumerate(cells):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}, line {line}, column {_describe(c, header)}: {cell.strip()!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{path}, line {line}, column {_describe(c, header)}: {cell.strip()!r} is not finite; "
                    "remove or impute missing values"
                )
            values[r, c] = value
    return values


def _column_index(label_column: str | int, header: list[str] | None, width: int, path: Path) -> int:
    if isinstance(label_column, str):
        if header is None:
            if label_column.lstrip("-").isdigit():
                return _column_index(int(label_column), header, width, path)
            raise DataError(f"{path} has no header row, so label_column must be an index, got {label_column!r}")
        if label_column not in header:
            if label_column.strip().lstrip("-").isdigit():  # an index, as --label-column passes it
                return _column_index(int(label_column), header, width, path)
            raise DataError(f"{path} has no column {label_column!r}; its columns are {header}")
        return header.index(label_column)
    if not -width <= label_column < width:
        raise DataError(f"{path}: label_column {label_column} is out of range for {width} columns")
    return label_column % width


def _describe(column: int, header: list[str] | None) -> str:
    return f"{column + 1} ({header[column]!r})" if header else str(column + 1)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
