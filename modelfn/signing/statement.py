"""The signed payload: an in-toto Statement v1 in the OpenSSF model-signing v1.0 shape.

One subject (the model name and the root digest), one sha256 resource per file, and modelfn's
own signed fields (name, version, not_after) under ``predicate.modelfn``, which other v1.0
verifiers ignore. Resource order is the one ``model_signing`` uses (path components compared in
turn), so a statement built here and one built by ``model_signing`` for the same files agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelfn.bundle.layout import PICKLE_EXTENSIONS, SIGNED_IGNORE_PATHS
from modelfn.errors import ConfigError, SignatureError, UnsafeBundleError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
HASH_TYPE = "sha256"
MAX_RESOURCES = 4096
"""Refuse statements listing more files: a bundle holds a handful."""
MAX_NAME_CHARS = 1024

_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class SignedStatement:
    """What a verified signature vouches for."""

    name: str
    version: int | None
    """None for bundles signed without modelfn's fields (e.g. by the ``model_signing`` CLI)."""
    not_after: datetime | None
    root_digest: str
    resources: dict[str, str]
    """File name ('/'-separated, relative) -> sha256 hex."""
    key_hint: str


def resource_sort_key(name: str) -> tuple[str, ...]:
    """Canonical resource order: path components compared in turn (``a/b`` before ``a.txt``)."""
    return tuple(name.split("/"))


def check_resource_name(name: object) -> str:
    """Refuse names that could leave the bundle directory, be read two ways, or hold pickle."""
    if not isinstance(name, str) or not name:
        raise UnsafeBundleError("resource name must be a non-empty string", field="resources")
    shown = name[:80]
    if len(name) > MAX_NAME_CHARS or any(ord(ch) < 0x20 or ch == "\x7f" for ch in name):
        raise UnsafeBundleError(f"resource name {shown!r} is too long or holds control characters", field=shown)
    if name.startswith("/") or "\\" in name or ":" in name:
        raise UnsafeBundleError(f"resource name {shown!r} must be relative, '/'-separated, no '\\' or ':'", field=shown)
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise UnsafeBundleError(f"resource name {shown!r} holds an empty, '.' or '..' component", field=shown)
    if name in SIGNED_IGNORE_PATHS:
        raise UnsafeBundleError(f"resource name {shown!r} is reserved for the signature", field=shown)
    if name.lower().endswith(PICKLE_EXTENSIONS):
        raise UnsafeBundleError(f"{shown!r} is a pickle-family file; bundles never hold pickle", field=shown)
    return name


def check_resource_names(names: list[str]) -> None:
    """The whole list: non-empty, bounded, every name safe, no duplicates, canonical order."""
    if not names:
        raise UnsafeBundleError("the signed file list is empty", field="resources")
    if len(names) > MAX_RESOURCES:
        raise UnsafeBundleError(f"the signed file list holds more than {MAX_RESOURCES} files", field="resources")
    for name in names:
        check_resource_name(name)
    if len(set(names)) != len(names):
        raise UnsafeBundleError("the signed file list holds duplicate names", field="resources")
    if names != sorted(names, key=resource_sort_key):
        raise UnsafeBundleError("the signed file list is not in canonical sorted order", field="resources")


def root_digest(resources: Mapping[str, str]) -> str:
    """sha256 over the concatenated raw digests of the resources, in canonical order."""
    hasher = hashlib.sha256()
    for name in sorted(resources, key=resource_sort_key):
        hasher.update(bytes.fromhex(resources[name]))
    return hasher.hexdigest()


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; naive datetimes are refused (they are ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError("not_after must be timezone-aware", field="not_after")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_statement(
    resources: Mapping[str, str], *, name: str, version: int, not_after: datetime | None = None
) -> dict[str, Any]:
    """The in-toto statement for these files (names checked, digests lowercase hex)."""
    names = sorted(resources, key=resource_sort_key)
    check_resource_names(names)
    for file_name in names:
        if not isinstance(resources[file_name], str) or not _HEX64_RE.match(resources[file_name]):
            raise ConfigError(f"digest of {file_name!r} must be 64 lowercase hex characters", field=file_name)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {HASH_TYPE: root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": HASH_TYPE,
                "allow_symlinks": False,
                "ignore_paths": list(SIGNED_IGNORE_PATHS),
            },
            "resources": [{"name": n, "algorithm": HASH_TYPE, "digest": resources[n]} for n in names],
            "modelfn": {
                "name": name,
                "version": version,
                "not_after": None if not_after is None else format_time(not_after),
            },
        },
    }


def encode_statement(statement: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes for signing."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_statement(statement: object, key_hint: str) -> SignedStatement:
    """Read a decoded statement whose signature has passed; refuse anything not v1.0 'files'."""
    body = _obj(statement, "statement")
    if body.get("_type") != STATEMENT_TYPE:
        raise SignatureError(f"statement _type must be {STATEMENT_TYPE!r}", field="_type")
    if body.get("predicateType") != PREDICATE_TYPE:
        raise SignatureError(
            f"predicateType must be {PREDICATE_TYPE!r}, got {body.get('predicateType')!r}", field="predicateType"
        )
    subjects = body.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise SignatureError("statement must have exactly one subject", field="subject")
    subject = _obj(subjects[0], "subject[0]")
    subject_name = subject.get("name")
    signed_root = _obj(subject.get("digest"), "subject[0].digest").get(HASH_TYPE)
    if not isinstance(subject_name, str) or not isinstance(signed_root, str) or not _HEX64_RE.match(signed_root):
        raise SignatureError("subject must have a name and a sha256 root digest", field="subject")
    predicate = _obj(body.get("predicate"), "predicate")
    _check_serialization(_obj(predicate.get("serialization"), "predicate.serialization"))
    resources = _read_resources(predicate.get("resources"))
    if root_digest(resources) != signed_root:
        raise SignatureError("signed root digest does not match the signed resources", field="subject")
    name, version, not_after = subject_name, None, None
    if "modelfn" in predicate:
        name, version, not_after = _read_modelfn_fields(_obj(predicate["modelfn"], "predicate.modelfn"), subject_name)
    return SignedStatement(name, version, not_after, signed_root, resources, key_hint)


def _check_serialization(serialization: dict[str, Any]) -> None:
    # Signed ignore paths are informative only: the verifier never skips anything but model.sig.
    ignore_paths = serialization.get("ignore_paths", [])
    if (
        serialization.get("method") != "files"
        or serialization.get("hash_type") != HASH_TYPE
        or serialization.get("allow_symlinks") is not False
        or not isinstance(ignore_paths, list)
        or not all(isinstance(p, str) for p in ignore_paths)
    ):
        raise SignatureError(
            "serialization must be method 'files', hash_type 'sha256', allow_symlinks false",
            field="predicate.serialization",
        )


def _read_resources(raw: object) -> dict[str, str]:
    if not isinstance(raw, list):
        raise SignatureError("predicate.resources must be a list", field="predicate.resources")
    if len(raw) > MAX_RESOURCES:
        raise UnsafeBundleError(f"the signed file list holds more than {MAX_RESOURCES} files", field="resources")
    names: list[str] = []
    digests: list[str] = []
    for item in raw:
        entry = _obj(item, "predicate.resources[]")
        digest = entry.get("digest")
        if entry.get("algorithm") != HASH_TYPE or not isinstance(digest, str) or not _HEX64_RE.match(digest):
            raise SignatureError("each resource needs algorithm 'sha256' and a lowercase hex digest", field="resources")
        names.append(check_resource_name(entry.get("name")))
        digests.append(digest)
    check_resource_names(names)
    return dict(zip(names, digests, strict=True))


def _read_modelfn_fields(fields: dict[str, Any], subject_name: str) -> tuple[str, int, datetime | None]:
    name, version, not_after = fields.get("name"), fields.get("version"), fields.get("not_after")
    if name != subject_name:
        raise SignatureError("predicate.modelfn.name differs from the subject name", field="predicate.modelfn.name")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SignatureError("predicate.modelfn.version must be an integer >= 0", field="predicate.modelfn.version")
    if not_after is None:
        return subject_name, version, None
    try:
        moment = datetime.fromisoformat(not_after) if isinstance(not_after, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise SignatureError("predicate.modelfn.not_after must be RFC 3339 with a zone", field="not_after")
    return subject_name, version, moment


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SignatureError(f"statement field {where} must be a JSON object", field=where)
    return value
