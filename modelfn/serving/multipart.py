"""``multipart/form-data`` bodies, parsed by the standard library's ``email`` package.

Only the routes that take uploads call ``parse``, so JSON requests never import the parser
(~4 ms). Any malformed body is a 400 naming the content type, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from modelfn.errors import InvalidRequest
from modelfn.serving.inference import media_type


class Part(NamedTuple):
    """One form field: its name, media type (None when the part declares none) and bytes."""

    name: str
    content_type: str | None
    data: bytes


def parse(body: bytes, headers: Mapping[str, str]) -> list[Part]:
    """The named parts of a multipart form body, in order."""
    import email.errors
    import email.message
    import email.parser
    import email.policy

    content_type = headers.get("content-type", "")
    if "\r" in content_type or "\n" in content_type:
        raise InvalidRequest("content-type must be one line", field="content-type")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        payload = message.get_payload()
        if not message.is_multipart() or not isinstance(payload, list) or not message.get_boundary():
            raise InvalidRequest("multipart body without a boundary or any part", field="content-type")
        if any(isinstance(d, email.errors.StartBoundaryNotFoundDefect) for d in message.defects):
            raise InvalidRequest("multipart body does not start with its boundary", field="content-type")
        parts: list[Part] = []
        for part in payload:
            if not isinstance(part, email.message.Message):
                raise InvalidRequest("a multipart part is not a message", field="content-type")
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("every multipart part needs a form field name", field="content-disposition")
            declared = part.get("content-type")
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                raise InvalidRequest(f"multipart field {name!r} is not a simple part", field=name)
            parts.append(Part(name, part.get_content_type() if declared else None, data))
    except (ValueError, LookupError, TypeError, AttributeError, UnicodeError) as exc:
        raise InvalidRequest("the multipart body is malformed", field="content-type") from exc
    return parts


MULTIPART = "multipart/form-data"


def is_form(headers: Mapping[str, str]) -> bool:
    """True for a multipart upload (which ``/predict`` serves the Keras REST API way)."""
    return media_type(headers.get("content-type")) == MULTIPART
