"""Named 1-D columns in, model feeds out; model outputs back to flat, named columns.

Used by every tabular front end (CSV headers, Parquet, pandas and Spark columns) so that a column
means the same thing everywhere:

* **Inputs.** When every model input has a column of its name, each such column feeds its input
  (inputs of shape ``[-1]`` or ``[-1, 1]``); other columns are carried along, not fed. Otherwise a
  single-input model of shape ``[-1, k]`` takes exactly ``k`` feature columns, in the order given
  (a header's order), whatever their names. Anything else is ``UnprocessableInput`` naming the column.
* **Outputs.** Each output becomes columns in manifest order: a 1-D output (or ``[-1, 1]``) is one
  column named after the output (``label``); a 2-D output of ``k`` columns is ``<name>_<j>`` for
  ``j`` in ``0..k-1``, or ``<name>_<label>`` when the manifest's ``labels`` has ``k`` entries
  (``probabilities_setosa``); higher ranks are flattened per row to ``<name>_<flat index>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelfn.errors import UnprocessableInput

if TYPE_CHECKING:
    import numpy as np

    from modelfn.bundle.manifest import Manifest, TensorSpec

    Array = np.ndarray[Any, Any]


def feeds_from_columns(columns: Mapping[str, Array], manifest: Manifest) -> dict[str, Array]:
    """Model feeds from named 1-D columns of equal length (see the module docstring for the rules)."""
    import numpy as np

    rows = _common_length(columns)
    names = [spec.name for spec in manifest.inputs]
    if all(name in columns for name in names):
        return {spec.name: _column_feed(columns[spec.name], spec, rows) for spec in manifest.inputs}
    if len(manifest.inputs) != 1:
        missing = next(name for name in names if name not in columns)
        raise UnprocessableInput(
            f"missing column {missing!r}: this model takes one column per input {names}", field=missing
        )
    spec = manifest.inputs[0]
    width = _feature_width(spec)
    if width is None:
        raise UnprocessableInput(
            f"input {spec.name!r} has shape {spec.shape}: name a column {spec.name!r} holding it, feature"
            " columns fit only inputs of shape [-1, k]",
            field=spec.name,
        )
    given = list(columns)
    if width != -1 and len(given) != width:
        extra = given[width] if len(given) > width else None
        raise UnprocessableInput(
            f"input {spec.name!r} takes {width} feature columns, got {len(given)} ({', '.join(given)})",
            field=extra or spec.name,
        )
    if not given:
        raise UnprocessableInput(f"no columns given for input {spec.name!r}", field=spec.name)
    parts = [_checked(columns[name], spec, name) for name in given]
    if spec.dtype == "string":
        matrix = np.empty((rows, len(parts)), dtype=object)
        for j, part in enumerate(parts):
            matrix[:, j] = part
    else:
        matrix = np.column_stack(parts)
    return {spec.name: matrix.reshape(rows, len(parts)) if len(spec.shape) == 2 else matrix.reshape(rows)}


def prediction_columns(results: Mapping[str, Array], manifest: Manifest) -> dict[str, Array]:
    """Model outputs as flat 1-D columns, in manifest output order (then any others), named as documented."""
    import numpy as np

    labels = manifest.labels
    out: dict[str, Array] = {}
    for name in output_order(results, manifest):
        array = np.asarray(results[name])
        if array.ndim == 0:
            raise UnprocessableInput(f"output {name!r} is a scalar, not one value per row", field=name)
        if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
            out[name] = array.reshape(-1)
            continue
        flat = array.reshape(array.shape[0], -1)
        width = flat.shape[1]
        use_labels = array.ndim == 2 and labels is not None and len(labels) == width
        for j in range(width):
            suffix = labels[j] if use_labels and labels is not None else j
            out[f"{name}_{suffix}"] = flat[:, j]
    return out


def output_order(results: Mapping[str, Any], manifest: Manifest) -> list[str]:
    """The outputs in ``results`` in manifest order, then any others in their own order."""
    declared = [spec.name for spec in manifest.outputs]
    return [name for name in declared if name in results] + [name for name in results if name not in declared]


def _common_length(columns: Mapping[str, Array]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if not lengths:
        return 0
    first = next(iter(lengths.values()))
    for name, length in lengths.items():
        if length != first:
            raise UnprocessableInput(f"column {name!r} has {length} rows, others have {first}", field=name)
    return first


def _feature_width(spec: TensorSpec) -> int | None:
    """k for a ``[-1, k]`` input (``-1`` when k is dynamic), 1 for ``[-1]``; None when columns cannot feed it."""
    if len(spec.shape) == 1:
        return 1
    if len(spec.shape) == 2:
        return spec.shape[1]
    return None


def _column_feed(values: Array, spec: TensorSpec, rows: int) -> Array:
    """One column feeding one input of shape ``[-1]`` or ``[-1, 1]``."""
    column = _checked(values, spec, spec.name)
    if len(spec.shape) == 1:
        return column.reshape(rows)
    if len(spec.shape) == 2 and spec.shape[1] in (1, -1):
        return column.reshape(rows, 1)
    raise UnprocessableInput(
        f"column {spec.name!r} holds one value per row, but input {spec.name!r} has shape {spec.shape}",
        field=spec.name,
    )


def _checked(values: Array, spec: TensorSpec, column: str) -> Array:
    """A 1-D column whose kind can feed the input (numbers for numeric inputs, text for string ones)."""
    import numpy as np

    array = np.asarray(values)
    if array.ndim != 1:
        raise UnprocessableInput(f"column {column!r} must be 1-D, got shape {list(array.shape)}", field=column)
    if spec.dtype == "string":
        if array.dtype.kind not in "OUS":
            raise UnprocessableInput(f"column {column!r} must hold text for input {spec.name!r}", field=column)
        return array.astype(object)
    if array.dtype.kind not in "biuf":
        raise UnprocessableInput(
            f"column {column!r} holds {array.dtype} values; input {spec.name!r} expects {spec.dtype}", field=column
        )
    return array
