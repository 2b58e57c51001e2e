"""What the V2 and /predict protocols share: the content-type policy and one guarded model run.

Kept apart from both protocol modules so each stays a pure translation between its wire format
and ``Model.predict`` (onnxruntime or custom code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput, UnsupportedMediaType

if TYPE_CHECKING:
    import numpy.typing as npt

    from modelfn.runtime.base import Model

JSON_TYPES = ("application/json",)
BINARY_TYPES = ("application/octet-stream",)
MAX_HEADER_DIGITS = 18
"""Longer byte counts are no body size; the bound also keeps ``int()`` clear of its digit limit."""


def header_int(value: str, *, field: str, upper: int | None = None) -> int:
    """A header's byte count, ASCII digits only (``str.isdigit`` takes ² and ¹, which ``int`` refuses); else 400."""
    digits = value.strip(" \t")
    if not digits or len(digits) > MAX_HEADER_DIGITS or not (digits.isascii() and digits.isdigit()):
        raise InvalidRequest(f"{field} must be a decimal byte count (ASCII digits), got {value[:40]!r}", field=field)
    number = int(digits)
    if upper is not None and number > upper:
        raise InvalidRequest(f"{field} is {number}, over the body size ({upper} bytes)", field=field)
    return number


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type (or Accept item) value ('' when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def require_content_type(headers: Mapping[str, str], accepted: Sequence[str]) -> None:
    """415 unless the request's media type is one of ``accepted`` (or ``*+json`` when JSON is); absent is fine."""
    raw = headers.get("content-type")
    if not raw:
        return
    media = media_type(raw)
    if media in accepted or ("application/json" in accepted and media.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"content-type {media!r} is not accepted here; send {' or '.join(accepted)}", field="content-type"
    )


def run_model(
    model: Model, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """Validate and run; an input the graph itself rejects (after schema checks) is a 422, not a 500."""
    try:
        return model.predict(feeds, outputs)
    except Exception as exc:  # onnxruntime is imported here only when a run failed
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        if isinstance(exc, InvalidArgument):
            raise UnprocessableInput("the model rejected this input (values outside what the graph accepts)") from exc
        raise
