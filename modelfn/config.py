"""The one typed settings object.

Every setting has one ``MODELFN_*`` environment variable, named in ``ENV_NAMES``. Precedence:
an explicit argument beats the environment, which beats the settings file (TOML or JSON named
by ``MODELFN_CONFIG``), which beats the default. A plain frozen dataclass on purpose: the
run-time path must not pay for pydantic-settings. No other module reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelfn.errors import ConfigError

DEFAULT_STORE_URL = "./.modelfn/store"
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invoke payload limit
CONFIG_FILE_ENV = "MODELFN_CONFIG"
MAX_BATCH_DELAY_MS = 10_000


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a modelfn process can be told. Validated at construction."""

    store_url: str = DEFAULT_STORE_URL
    """Where bundles live: a bare path, ``file://…`` or ``s3://bucket/prefix``."""
    model_name: str | None = None
    """Which model in the store to serve."""
    model_version: str = "latest"
    """An integer version, or ``latest`` (the highest signed version in the store)."""
    trusted_keys: tuple[str, ...] = ()
    """Public keys allowed to sign served models: PEM file paths or inline PEM text."""
    threads: int = 0
    """onnxruntime intra-op threads; 0 lets onnxruntime choose."""
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Requests above this size get 413 (API Gateway 10 MB, Lambda sync 6 MB, ALB 1 MB)."""
    load_retries: int = 5
    """Container mode: load attempts after the first failed one before the process exits non-zero (node replaced)."""
    load_backoff_s: float = 2.0
    """Container mode: wait before the first retry; doubles per retry (capped at 60 s, 50-100 % jitter)."""
    load_timeout_s: float = 300.0
    """Container mode: one load attempt (fetch, verify, build) taking longer than this counts as failed."""
    store_connect_timeout_s: float = 2.0
    """Network stores (S3): seconds to wait for a connection before the attempt fails."""
    store_read_timeout_s: float = 3.0
    """Network stores (S3): seconds to wait for the next bytes of an answer before the attempt fails."""
    store_max_attempts: int = 2
    """Network stores (S3): attempts per call, first one included (a stalled store costs ~6 s a call by default)."""
    min_version: int = 0
    """Anti-rollback: refuse bundles whose signed version is below this."""
    pinned_digest: str | None = None
    """Refuse any bundle whose root digest (sha256 hex) differs from this."""
    providers: tuple[str, ...] = ()
    """onnxruntime execution providers (``cpu``, ``cuda`` or full names), in order; empty means CPU. With ``cpu``
    listed last a missing accelerator falls back to CPU (logged, ProviderFallback metric); without it, it is needed."""
    allow_custom_code: bool = False
    """Serve bundles that carry Python code (only from trusted signers)."""
    decryption_key_file: str | None = None
    """Local wrapping key file for bundles encrypted with ``package --encrypt PATH`` (KMS-wrapped ones need none)."""
    output_url: str | None = None
    """Where storage-event and ``modelfn batch`` results go: ``s3://bucket/prefix`` or a local path."""
    input_url: str | None = None
    """Where the storage trigger fires (``s3://bucket/prefix``); an ``output_url`` overlapping it is refused."""
    chunk_rows: int = 10_000
    """Batch scoring: rows read, predicted and written per chunk (bounds memory per object)."""
    wsgi_app: str | None = None
    """The WSGI app ``modelfn.handlers.wsgi`` runs, as ``module:attribute`` (e.g. ``app:app`` for a Flask app)."""
    log_level: str = "INFO"
    emf_metrics: str = "auto"
    """CloudWatch EMF metric lines on stdout: ``auto`` (only inside Lambda), ``on`` or ``off``."""
    max_batch_size: int = 1
    """Container mode: rows merged from concurrent requests into one model run; 1 (the default) is no batching."""
    max_batch_delay_ms: float = 5.0
    """Container mode, batching on: the longest a queued request waits for others to join its run."""
    warm_up: str = "auto"
    """One model run on zeros right after loading: ``on``, ``off`` or ``auto`` (on, except in an on-demand Lambda
    cold start, where the init phase and the first request are both on the caller's path: there it adds a run)."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}", field="threads")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}", field="port")
        if self.max_body_bytes <= 0:
            raise ConfigError("max_body_bytes must be positive", field="max_body_bytes")
        if self.load_retries < 0:
            raise ConfigError(f"load_retries must be >= 0, got {self.load_retries}", field="load_retries")
        if not (math.isfinite(self.load_backoff_s) and self.load_backoff_s >= 0):
            raise ConfigError(
                f"load_backoff_s must be finite and >= 0, got {self.load_backoff_s}", field="load_backoff_s"
            )
        if not (math.isfinite(self.load_timeout_s) and self.load_timeout_s > 0):
            raise ConfigError(
                f"load_timeout_s must be finite and > 0, got {self.load_timeout_s}", field="load_timeout_s"
            )
        for name in ("store_connect_timeout_s", "store_read_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {value}", field=name)
        if self.store_max_attempts < 1:
            raise ConfigError(
                f"store_max_attempts must be >= 1 (the first attempt counts), got {self.store_max_attempts}",
                field="store_max_attempts",
            )
        if self.chunk_rows <= 0:
            raise ConfigError(f"chunk_rows must be positive, got {self.chunk_rows}", field="chunk_rows")
        if self.min_version < 0:
            raise ConfigError("min_version must be >= 0", field="min_version")
        if self.model_version != "latest" and not self.model_version.isdigit():
            raise ConfigError(
                f"model_version must be an integer or 'latest', got {self.model_version!r}", field="model_version"
            )
        if self.pinned_digest is not None and (
            len(self.pinned_digest) != 64 or any(c not in "0123456789abcdef" for c in self.pinned_digest)
        ):
            raise ConfigError("pinned_digest must be 64 lowercase hex characters (sha256)", field="pinned_digest")
        if self.wsgi_app is not None and not _is_import_string(self.wsgi_app):
            raise ConfigError(
                f"wsgi_app must be 'module:attribute' (e.g. 'app:app'), got {self.wsgi_app!r}", field="wsgi_app"
            )
        if self.max_batch_size < 1:
            raise ConfigError(
                f"max_batch_size must be >= 1 (1 turns batching off), got {self.max_batch_size}", field="max_batch_size"
            )
        if not (math.isfinite(self.max_batch_delay_ms) and 0 <= self.max_batch_delay_ms <= MAX_BATCH_DELAY_MS):
            raise ConfigError(
                f"max_batch_delay_ms must be in 0..{MAX_BATCH_DELAY_MS}, got {self.max_batch_delay_ms}",
                field="max_batch_delay_ms",
            )
        if self.warm_up not in ("auto", "on", "off"):
            raise ConfigError(f"warm_up must be one of auto, on, off, got {self.warm_up!r}", field="warm_up")
        if self.emf_metrics not in ("auto", "on", "off"):
            raise ConfigError(
                f"emf_metrics must be one of auto, on, off, got {self.emf_metrics!r}", field="emf_metrics"
            )
        levels = ("DEBUG", "INFO", "WARNING", "ERROR")
        if self.log_level.upper() not in levels:
            raise ConfigError(f"log_level must be one of {', '.join(levels)}", field="log_level")

    @classmethod
    def load(cls, *, environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        """Build settings from explicit values, then ``MODELFN_*`` variables, then the settings file."""
        env = os.environ if environ is None else environ
        file_path = explicit.pop("config_file", None) or env.get(CONFIG_FILE_ENV)
        unknown = set(explicit) - set(ENV_NAMES)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(ENV_NAMES)}")
        values: dict[str, Any] = {}
        if file_path:
            values.update(_read_settings_file(Path(file_path)))
        for name, var in ENV_NAMES.items():
            if var in env and env[var] != "":
                values[name] = env[var]
        values.update({k: v for k, v in explicit.items() if v is not None})
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items() if v is not None})


ENV_NAMES: dict[str, str] = {f.name: f"MODELFN_{f.name.upper()}" for f in dataclasses.fields(Settings)}
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    """Turn env/file strings into the field's type, with an error that names the variable."""
    kind = _FIELD_TYPES[name]
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return text in ("1", "true", "yes", "on")
        if kind.startswith("tuple"):
            if isinstance(value, str):
                return _split_list(value)
            return tuple(str(v) for v in value)
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{ENV_NAMES[name]}: cannot read {value!r} as {kind}", field=name) from exc


def _is_import_string(text: str) -> bool:
    """``package.module:attr.path``: dotted identifiers on both sides of one colon."""
    module, sep, attr = text.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    return bool(sep) and all(part.isidentifier() for part in parts)


def _split_list(text: str) -> tuple[str, ...]:
    """Comma-separated list, except inline PEM blocks which contain no commas but many lines."""
    if "-----BEGIN" in text:
        blocks = text.split("-----END PUBLIC KEY-----")
        return tuple(b.strip() + "\n-----END PUBLIC KEY-----\n" for b in blocks if b.strip())
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _read_settings_file(path: Path) -> dict[str, Any]:
    import json  # only when a settings file is used: keeps the function's cold path lean
    import tomllib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}", field=CONFIG_FILE_ENV) from exc
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"settings file {path} is not valid {path.suffix or 'TOML'}: {exc}") from exc
    section = data.get("modelfn", data) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"settings file {path} must hold a table of settings")
    unknown = set(section) - set(ENV_NAMES)
    if unknown:
        raise ConfigError(f"settings file {path}: unknown setting(s) {sorted(unknown)}; valid: {sorted(ENV_NAMES)}")
    return section
