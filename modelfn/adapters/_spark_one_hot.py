"""Spark's default ``OneHotEncoder`` (``dropLast=True``, ``handleInvalid='error'``) for onnxmltools.

onnxmltools refuses that combination: ONNX's ``OneHotEncoder`` has no "drop the last category". Yet
``cats_int64s = 0..n-2`` with ``zeros=1`` computes exactly that: index ``n-1`` matches no category
and encodes as all zeros, which is Spark's dropped column. The converter and its shape calculator
are swapped in only for the duration of one conversion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

ONE_HOT_MODEL = "pyspark.ml.feature.OneHotEncoderModel"


def _drops_last(encoder: Any) -> bool:
    return bool(encoder.getHandleInvalid() == "error" and encoder.getDropLast())


@contextlib.contextmanager
def default_one_hot_encoder_converts() -> Iterator[None]:
    """Within the block, onnxmltools converts ``dropLast=True`` encoders (categories ``0..n-2``, ``zeros=1``)."""
    from onnxmltools.convert.common import _registration as registration
    from onnxmltools.convert.sparkml.operator_converters import onehot_encoder as module

    original_converter = registration._converter_pool[ONE_HOT_MODEL]
    original_categories = module._get_categories

    def categories(operator: Any) -> list[list[int]]:
        encoder = operator.raw_operator
        if _drops_last(encoder):
            return [list(range(size - 1)) for size in encoder.categorySizes]
        return list(original_categories(operator))

    def convert(scope: Any, operator: Any, container: Any) -> None:
        before = len(container.nodes)
        original_converter(scope, operator, container)
        if _drops_last(operator.raw_operator):
            for node in container.nodes[before:]:
                for attribute in node.attribute if node.op_type == "OneHotEncoder" else ():
                    if attribute.name == "zeros":
                        attribute.i = 1  # the dropped last category (index n-1) encodes as all zeros

    module._get_categories = categories
    registration._converter_pool[ONE_HOT_MODEL] = convert
    try:
        yield
    finally:
        module._get_categories = original_categories
        registration._converter_pool[ONE_HOT_MODEL] = original_converter
