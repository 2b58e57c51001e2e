"""The one deploy settings file (TOML): what `modelfn deploy` renders for every target.

Validated in full before anything is rendered: a bad setting (output overlapping the trigger, a
GPU on Lambda, memory out of range, a missing or unreadable trusted key) is a ``ConfigError``
naming the key. Trusted keys are read from PEM files (paths relative to the settings file) and
carried inline, so the rendered function trusts exactly these keys and nothing else.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from modelfn.errors import ConfigError

Target = Literal["lambda", "sam", "knative", "k8s"]
TARGETS: tuple[Target, ...] = ("lambda", "sam", "knative", "k8s")
LAMBDA_TARGETS = frozenset({"lambda", "sam"})
LAMBDA_MEMORY_MB = (128, 10240)
LAMBDA_TIMEOUT_S = (1, 900)
SNAPSTART_PYTHONS = frozenset({"3.12", "3.13", "3.14"})
"""Lambda SnapStart supports Python 3.12 and later runtimes."""
DEFAULT_IMAGES = {"cpu": "ghcr.io/modelfn/modelfn-cpu:0.1.0", "cuda": "ghcr.io/modelfn/modelfn-cuda:0.1.0"}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclasses.dataclass(frozen=True)
class DeploySettings:
    """Everything a deployment needs, one target-independent description."""

    name: str
    """Service, stack and function name: lowercase letters, digits and ``-``."""
    model_url: str
    """The model store: ``s3://bucket/prefix`` (a path is allowed for containers with a mounted volume)."""
    model: str
    trusted_keys: tuple[str, ...]
    """Inline PEM public keys (read from the files the settings file names)."""
    version: str = "latest"
    kms_key_arn: str = ""
    memory_mb: int = 2048
    timeout_s: int = 29
    concurrency: int = 16
    """Requests one instance serves at once (Knative containerConcurrency; the HPA's per-pod rps target is 4x)."""
    min_scale: int = 0
    """Lambda: provisioned concurrency; containers: minimum replicas."""
    max_scale: int = 10
    """Lambda: reserved concurrency; containers: maximum replicas."""
    gpu: int = 0
    image: str = ""
    """Container image; defaults to the CPU or CUDA image by ``gpu``."""
    input_url: str = ""
    """Storage-event trigger: ``s3://bucket/prefix/`` whose new objects are predicted (Lambda targets)."""
    output_url: str = ""
    """Where storage-event predictions go; never inside ``input_url``."""
    trigger: Literal["s3", "sqs"] = "s3"
    auth: Literal["iam", "jwt"] = "iam"
    jwt_issuer: str = ""
    jwt_audience: tuple[str, ...] = ()
    namespace: str = "modelfn"
    role_arn: str = ""
    """IAM role for the pods' service account (EKS IRSA); empty for none."""
    region: str = ""
    python: str = "3.12"
    arch: Literal["x86_64", "arm64"] = "x86_64"
    canary_percent: int = 0
    """0 shifts all traffic at once; 1..99 sends that share to the new version first."""
    canary_interval_min: int = 5
    snapstart: bool = False
    previous_revision: str = ""
    """Knative canary: the revision that keeps the rest of the traffic (read from the cluster when empty)."""
    artifact: str = ""
    """A prebuilt Lambda zip (``modelfn.deploy.lambda_package``); empty builds one into the output directory."""
    extras: tuple[str, ...] = ()
    """pip requirements added to the Lambda zip that modelfn builds (``pillow>=10`` serves image bundles)."""

    @property
    def container_image(self) -> str:
        """The image to run: the configured one, else the CPU or CUDA default."""
        return self.image or DEFAULT_IMAGES["cuda" if self.gpu else "cpu"]

    def check(self, target: Target) -> None:
        """Refuse settings that cannot deploy to ``target``; the error names the key."""
        if target in LAMBDA_TARGETS:
            _check_lambda(self)
            if target == "lambda" and (self.canary_percent or self.snapstart):
                raise ConfigError(
                    "canary and snapstart are rendered for --target sam (CodeDeploy, SnapStart); serverless.yml "
                    "deploys all at once",
                    field="canary_percent" if self.canary_percent else "snapstart",
                )
        else:
            _check_container(self, target)
        if self.canary_percent and not 1 <= self.canary_percent <= 99:
            raise ConfigError(f"canary_percent must be in 1..99, got {self.canary_percent}", field="canary_percent")
        if not 1 <= self.canary_interval_min <= 60:
            raise ConfigError("canary_interval_min must be in 1..60 minutes", field="canary_interval_min")


def parse_target(text: str) -> Target:
    """``--target`` text -> Target, or an error listing the choices."""
    for target in TARGETS:
        if text == target:
            return target
    raise ConfigError(f"unknown target {text!r}; choose one of {', '.join(TARGETS)}", field="target")


def _check_lambda(s: DeploySettings) -> None:
    if s.gpu:
        raise ConfigError("gpu: Lambda has no GPUs; deploy GPU models with --target knative or k8s", field="gpu")
    if not s3_parts(s.model_url, "model_url")[1]:
        raise ConfigError(f"model_url must be s3://bucket/prefix for Lambda, got {s.model_url!r}", field="model_url")
    low, high = LAMBDA_MEMORY_MB
    if not low <= s.memory_mb <= high:
        raise ConfigError(f"memory_mb must be in {low}..{high} for Lambda, got {s.memory_mb}", field="memory_mb")
    low, high = LAMBDA_TIMEOUT_S
    if not low <= s.timeout_s <= high:
        raise ConfigError(f"timeout_s must be in {low}..{high} for Lambda, got {s.timeout_s}", field="timeout_s")
    if s.snapstart and s.python not in SNAPSTART_PYTHONS:
        raise ConfigError(f"snapstart needs a Python 3.12+ runtime, got python {s.python}", field="snapstart")
    if s.snapstart and s.min_scale:
        raise ConfigError("snapstart and provisioned concurrency (min_scale > 0) cannot be combined", field="min_scale")
    if s.min_scale > s.max_scale:
        raise ConfigError(f"min_scale {s.min_scale} exceeds max_scale {s.max_scale}", field="min_scale")
    if s.auth == "jwt" and not (s.jwt_issuer and s.jwt_audience):
        raise ConfigError("auth = 'jwt' needs jwt_issuer and jwt_audience", field="jwt_issuer")
    if not s.input_url or not s.output_url:
        raise ConfigError("input_url and output_url are required for the storage-event function", field="output_url")
    in_bucket, in_prefix = s3_parts(s.input_url, "input_url")
    out_bucket, out_prefix = s3_parts(s.output_url, "output_url")
    if in_bucket == out_bucket and (out_prefix.startswith(in_prefix) or in_prefix.startswith(out_prefix)):
        raise ConfigError(
            f"output_url {s.output_url!r} overlaps the trigger input_url {s.input_url!r}: every prediction "
            "would trigger another; use a prefix outside the input prefix",
            field="output_url",
        )


def _check_container(s: DeploySettings, target: str) -> None:
    if s.snapstart:
        raise ConfigError(f"snapstart is a Lambda feature; not available for --target {target}", field="snapstart")
    if s.memory_mb < 128:
        raise ConfigError(f"memory_mb must be at least 128, got {s.memory_mb}", field="memory_mb")
    if s.concurrency < 1:
        raise ConfigError("concurrency must be at least 1", field="concurrency")
    if target == "k8s" and s.min_scale < 1:
        raise ConfigError("min_scale must be at least 1 for k8s (an HPA never scales to zero)", field="min_scale")
    if s.max_scale < max(s.min_scale, 1):
        raise ConfigError(f"max_scale {s.max_scale} must be >= min_scale and >= 1", field="max_scale")
    if s.gpu < 0:
        raise ConfigError("gpu must be >= 0", field="gpu")


def s3_parts(url: str, field: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, normalized prefix ending in ``/`` or empty)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not _BUCKET.match(parts.netloc):
        raise ConfigError(f"{field} must be s3://bucket/prefix/, got {url!r}", field=field)
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


_FIELDS = {f.name: f for f in dataclasses.fields(DeploySettings)}
_CHOICES: dict[str, tuple[str, ...]] = {"trigger": ("s3", "sqs"), "auth": ("iam", "jwt"), "arch": ("x86_64", "arm64")}


def load_deploy_settings(path: Path, **overrides: Any) -> DeploySettings:
    """Read and validate the settings file; ``overrides`` (CLI flags, None = not given) win."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read deploy settings {path}: {exc.strerror}", field="config") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"deploy settings {path} is not valid TOML: {exc}", field="config") from exc
    section = data.get("deploy", data)
    if not isinstance(section, dict):
        raise ConfigError(f"deploy settings {path}: [deploy] must be a table", field="config")
    section = {**section, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(section) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"deploy settings {path}: unknown key(s) {unknown}; valid: {sorted(_FIELDS)}", field=unknown[0]
        )
    for required in ("name", "model_url", "model", "trusted_keys"):
        if not section.get(required):
            raise ConfigError(f"deploy settings {path}: {required!r} is required", field=required)
    values = {key: _typed(key, value) for key, value in section.items()}
    values["trusted_keys"] = read_trusted_keys(values["trusted_keys"], base=path.parent)
    if values.get("artifact"):
        values["artifact"] = str((path.parent / values["artifact"]).resolve())
    if not _NAME.match(values["name"]):
        raise ConfigError("name must be 1-40 lowercase letters, digits or '-', starting with a letter", field="name")
    version = values.get("version", "latest")
    if version != "latest" and not str(version).isdigit():
        raise ConfigError(f"version must be an integer or 'latest', got {version!r}", field="version")
    return DeploySettings(**values)


def _typed(key: str, value: Any) -> Any:
    """Check a TOML value against the field's type; the error names the key."""
    kind = str(_FIELDS[key].type)
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{key} must be an integer, got {value!r}", field=key)
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}", field=key)
    if kind.startswith("tuple"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{key} must be a string or a list of strings", field=key)
        return tuple(items)
    if kind in ("str",) or kind.startswith("Literal"):
        if key == "version" and isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}", field=key)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}", field=key)
    return value


def read_trusted_keys(entries: tuple[str, ...], *, base: Path) -> tuple[str, ...]:
    """Each entry a PEM file (relative to ``base``) or inline PEM; returned as normalized public PEM text."""
    from modelfn.signing.keys import PEM_MARKER, load_public_key, public_pem

    pems: list[str] = []
    for entry in entries:
        if PEM_MARKER in entry:
            if "PRIVATE KEY" in entry:
                raise ConfigError("trusted_keys holds a private key: list public keys only", field="trusted_keys")
            resolved = entry
        else:
            path = (base / entry).expanduser()
            if not path.is_file():
                raise ConfigError(f"trusted key file {path} does not exist", field="trusted_keys")
            if b"PRIVATE KEY" in path.read_bytes():
                raise ConfigError(f"trusted key {path} is a private key: list public keys only", field="trusted_keys")
            resolved = str(path)
        try:
            key = load_public_key(resolved)
        except ConfigError as exc:
            raise ConfigError(exc.message, field="trusted_keys") from exc
        pems.append(public_pem(key).decode())
    if not pems:
        raise ConfigError("trusted_keys is empty: the function would trust no signer", field="trusted_keys")
    return tuple(pems)
