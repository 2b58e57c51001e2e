"""Named features (JSON objects, CSV rows with a header) → the model's inputs, in the declared order.

``RecordProcessing.input`` set: the features are the columns of that one 2-D input, in the order
the model was trained on. Unset: each feature feeds the model input of the same name. Every
problem is a 4xx naming the row and the feature, so a caller can fix the exact cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, PayloadTooLarge, UnprocessableInput

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest, TensorSpec
    from modelfn.bundle.processing import RecordProcessing

MAX_CSV_ROWS = 100_000
"""Rows one CSV body may hold; the body size limit bounds it too, this keeps tiny rows from piling up."""


def parse_csv(body: bytes, *, field: str, max_rows: int = MAX_CSV_ROWS) -> list[dict[str, str | float]]:
    """A ``text/csv`` body with a header line → one ``{column: text}`` per row (numbers stay text here).

    ``records_to_feeds(..., from_text=True)`` converts the cells of numeric features.
    """
    import csv

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{field} is not UTF-8 text", field=field) from exc
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise InvalidRequest(f"{field} needs a header line naming the features", field=field)
        names = [name.strip() for name in header]
        duplicate = next((name for i, name in enumerate(names) if name in names[:i] or not name), None)
        if duplicate is not None:
            raise InvalidRequest(f"{field} header has an empty or repeated column {duplicate!r}", field=field)
        rows: list[dict[str, str | float]] = []
        for cells in reader:
            if not cells:
                continue  # a blank line, as at the end of a file
            where = f"{field}[{len(rows)}]"
            if len(rows) >= max_rows:
                raise PayloadTooLarge(f"{field} has more than {max_rows} rows", field=field)
            if len(cells) != len(names):
                raise UnprocessableInput(
                    f"{where} has {len(cells)} cells; the header names {len(names)} columns", field=where
                )
            rows.append(dict(zip(names, cells, strict=True)))
    except csv.Error as exc:
        raise InvalidRequest(f"{field} is not valid CSV: {exc}", field=field) from exc
    if not rows:
        raise UnprocessableInput(f"{field} has a header but no rows", field=field)
    return rows


def records_to_feeds(
    rows: Sequence[Mapping[str, Any]],
    spec: RecordProcessing,
    manifest: Manifest,
    *,
    field: str,
    from_text: bool = False,
) -> dict[str, npt.NDArray[Any]]:
    """Rows of named features → ``{input name: array}``; ``from_text``: cells are CSV text to convert."""
    import numpy as np

    if not rows:
        raise UnprocessableInput(f"{field} holds no rows", field=field)
    wanted = set(spec.features)
    for index, row in enumerate(rows):
        where = f"{field}[{index}]"
        if not isinstance(row, Mapping):
            raise UnprocessableInput(f"{where} must be an object of features {spec.features}", field=where)
        missing = next((name for name in spec.features if name not in row), None)
        if missing is not None:
            raise UnprocessableInput(f"{where} is missing feature {missing!r}", field=f"{where}.{missing}")
        extra = next((str(name) for name in row if name not in wanted), None)
        if extra is not None:
            raise UnprocessableInput(
                f"{where} has unknown feature {extra!r}; this model takes {spec.features}", field=f"{where}.{extra}"
            )
    inputs = {t.name: t for t in manifest.inputs}
    if spec.input is not None:
        target = inputs[spec.input]
        columns = [_column(rows, name, target, field=field, from_text=from_text) for name in spec.features]
        return {spec.input: np.stack(columns, axis=1) if len(columns) > 1 else columns[0].reshape(-1, 1)}
    feeds: dict[str, npt.NDArray[Any]] = {}
    for name in spec.features:
        target = inputs[name]
        column = _column(rows, name, target, field=field, from_text=from_text)
        feeds[name] = column.reshape(-1, 1) if len(target.shape) == 2 else column
    return feeds


def _column(
    rows: Sequence[Mapping[str, Any]], name: str, target: TensorSpec, *, field: str, from_text: bool
) -> npt.NDArray[Any]:
    """One feature over every row, checked value by value and cast to the input's dtype."""
    import numpy as np

    from modelfn.runtime.base import fitting_cast, numpy_dtype

    dtype = numpy_dtype(target.dtype)
    column_input = len(target.shape) == 2 and target.shape[1] in (1, -1) and target.name == name
    values = [
        _value(_cell(row[name], column_input), dtype.kind, where=f"{field}[{i}].{name}", from_text=from_text)
        for i, row in enumerate(rows)
    ]
    if dtype.kind == "O":
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column
    if dtype.kind == "b":
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int) for v in values):
        try:
            raw = np.asarray(values, dtype=np.int64)
        except OverflowError as exc:
            raise UnprocessableInput(f"feature {name!r} has an integer out of range", field=name) from exc
    else:
        raw = np.asarray(values, dtype=np.float64)
        if dtype.kind in "iu":
            bad = next((i for i, v in enumerate(values) if not float(v).is_integer()), None)
            if bad is not None:
                where = f"{field}[{bad}].{name}"
                message = f"{where} is {values[bad]!r}; {target.dtype} needs a whole number"
                raise UnprocessableInput(message, field=where)
    return fitting_cast(raw, dtype, name)


def _cell(value: Any, column_input: bool) -> Any:
    """A feature that is its own ``[?, 1]`` input may also come as a one-element row, ``[5.1]``, as tensors do."""
    if column_input and isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _value(value: Any, kind: str, *, where: str, from_text: bool) -> Any:
    """One cell, type-checked for an input of numpy ``kind`` (``from_text``: parsed from CSV text)."""
    if kind == "O":
        if isinstance(value, str):
            return value
        raise UnprocessableInput(f"{where} must be a string, got {type(value).__name__}", field=where)
    if from_text and isinstance(value, str):
        return _parse(value.strip(), kind, where=where)
    if kind == "b":
        if isinstance(value, bool):
            return value
        raise UnprocessableInput(f"{where} must be true or false, got {type(value).__name__}", field=where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnprocessableInput(f"{where} must be a number, got {type(value).__name__}", field=where)
    return value


def _parse(text: str, kind: str, *, where: str) -> Any:
    """CSV text → bool or number; an empty cell is a missing value, named."""
    if not text:
        raise UnprocessableInput(f"{where} is empty", field=where)
    if kind == "b":
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise UnprocessableInput(f"{where} is {text[:40]!r}, not true or false", field=where)
    digits = text.lstrip("+-")
    try:
        if "_" in text:
            raise ValueError(text)
        return int(text) if kind in "iu" and digits.isascii() and digits.isdigit() and len(text) < 20 else float(text)
    except ValueError as exc:
        raise UnprocessableInput(f"{where} is {text[:40]!r}, not a number", field=where) from exc
