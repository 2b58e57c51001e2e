"""Canonical file names and store layout of a bundle.

A bundle is a flat-ish directory ``<store>/<name>/<version>/`` holding ``manifest.json``, one
runtime artifact (``model.onnx`` for the ONNX runtime; ``model.py`` plus its data files for custom
code) and ``model.sig``. Every file except the signature itself is listed, with its SHA-256, in the
signature (the one authority for digests).
"""

from __future__ import annotations

import re

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "model.sig"
ONNX_ARTIFACT = "model.onnx"
PYTHON_ARTIFACT = "model.py"
"""The one module of a custom-code bundle (runtime ``python``), served only with allow_custom_code on."""
ONNX_DATA_FILE = "model.onnx.data"
"""Weights kept beside model.onnx when the model is over protobuf's 2 GB limit (signed like every file)."""
ONNX_DATA_RE = re.compile(r"^model\.onnx\.data(\.[1-9][0-9]{0,3})?$")
"""Names of external-data files: ``model.onnx.data``, ``model.onnx.data.1``, ... (plain names, no paths)."""

# Files the signature does not cover: only the signature itself. Fixed at sign time and never
# extendable at verify time (SECURITY.md rule 3).
SIGNED_IGNORE_PATHS: tuple[str, ...] = (SIGNATURE_FILE,)

# Pickle-family artifacts never enter a bundle (SECURITY.md rule 12).
PICKLE_EXTENSIONS: tuple[str, ...] = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def check_model_name(name: str) -> str:
    """Model names become store path segments: lowercase letters, digits, '.', '_', '-'."""
    from modelfn.errors import ConfigError

    if not _NAME_RE.match(name) or ".." in name:
        raise ConfigError(
            f"model name {name!r} is invalid: use 1-63 lowercase letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
            field="name",
        )
    return name


def version_prefix(name: str, version: int) -> str:
    """Store-relative prefix of one bundle version: ``<name>/<version>/``."""
    return f"{check_model_name(name)}/{int(version)}/"
