"""Where a location points, for the one containment rule every batch front end applies.

A result written inside what a trigger or a batch run reads would be scored again (a recursive
invocation, or a re-run scoring its own output), so both the storage-event handler and
``modelfn batch`` ask ``contains`` of the same normal form.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


def normal_location(url: str) -> str:
    """``scheme://bucket/prefix/`` or ``file:///resolved/path/``: one form, one trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "file"):  # s3://, and s3a:// or hdfs:// for the Spark engine
        prefix = parts.path.strip("/")
        return f"{parts.scheme}://{parts.netloc}/" + (f"{prefix}/" if prefix else "")
    path = Path(unquote(parts.path) if parts.scheme == "file" else url).expanduser().resolve()
    return path.as_uri().rstrip("/") + "/"


def contains(outer: str, inner: str) -> bool:
    """True when location ``inner`` is ``outer`` or lies inside it."""
    return normal_location(inner).startswith(normal_location(outer))
