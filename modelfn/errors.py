"""One small error hierarchy. Every error maps to one HTTP status and to one batch outcome.

Messages name the field, URI or key and what was expected; they never echo internals. Chain
with ``raise ... from exc`` so the cause stays in logs.
"""

from __future__ import annotations


class ModelfnError(Exception):
    """Base of every error modelfn raises on purpose."""

    status_code: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """The JSON body clients see: ``{"error": ..., "code": ..., "field": ...}``."""
        body = {"error": self.message, "code": self.code}
        if self.field is not None:
            body["field"] = self.field
        return body


class ConfigError(ModelfnError):
    """Raise when a setting is missing or invalid; the message lists valid choices."""

    code = "config"


# --- request errors (4xx) -------------------------------------------------------------------


class InvalidRequest(ModelfnError):
    """Raise when a request is malformed; ``field`` names the offending part."""

    status_code = 400
    code = "invalid_request"


class UnprocessableInput(InvalidRequest):
    """Raise when a well-formed request does not fit the model schema (dtype, shape, name)."""

    status_code = 422
    code = "unprocessable_input"


class PayloadTooLarge(InvalidRequest):
    """Raise when a body exceeds the front door's limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    """Raise when the Content-Type is not one the endpoint accepts."""

    status_code = 415
    code = "unsupported_media_type"


class ModelNotFound(ModelfnError):
    """Raise when a request names a model or version this process does not serve."""

    status_code = 404
    code = "model_not_found"


class RouteNotFound(ModelfnError):
    """Raise when no route matches the request path."""

    status_code = 404
    code = "not_found"


class MethodNotAllowed(ModelfnError):
    """Raise when the route exists but not for this HTTP method; ``allow`` lists the ones it takes."""

    status_code = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: tuple[str, ...], field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.allow = allow


# --- availability (5xx that clients should retry) -------------------------------------------


class ModelNotReady(ModelfnError):
    """Raise while no verified model is loaded (starting, or the load failed)."""

    status_code = 503
    code = "model_not_ready"
    retry_after_s = 5


class DeadlineExceeded(ModelfnError):
    """Raise when the work would outlast the caller's deadline (never let the gateway 504)."""

    status_code = 503
    code = "deadline_exceeded"
    retry_after_s = 1


# --- bundle refusal: nothing is loaded after one of these -----------------------------------


class VerificationError(ModelfnError):
    """Base for every reason a bundle is refused before any byte reaches a runtime."""

    status_code = 503
    code = "verification_failed"


class IntegrityError(VerificationError):
    """Raise when a file's bytes do not match the signed digest (names the file)."""

    code = "integrity"


class SignatureError(VerificationError):
    """Raise when the signature envelope is malformed, ambiguous or does not verify."""

    code = "signature"


class UntrustedKeyError(SignatureError):
    """Raise when the signature is valid but made by a key outside the trust set."""

    code = "untrusted_key"


class UnsafeBundleError(VerificationError):
    """Raise for bundle shapes refused whatever the signature says (paths, symlinks, extra files, pickle)."""

    code = "unsafe_bundle"


class PolicyError(VerificationError):
    """Raise when a signed bundle breaks run-time policy (minimum version, expiry, pinned digest)."""

    code = "policy"


# --- storage ------------------------------------------------------------------------------


class StoreError(ModelfnError):
    """Raise when a store cannot be reached or answers unexpectedly."""

    code = "store"


class ObjectNotFound(StoreError):
    """Raise when a key, bundle or version is absent from the store."""

    status_code = 404
    code = "object_not_found"


class ObjectChanged(StoreError, VerificationError):
    """Raise when an object changed between the signature read and the file read (pinned ETag/version)."""

    code = "object_changed"


# --- build time -----------------------------------------------------------------------------


class PackagingError(ModelfnError):
    """Raise when a model cannot be converted into a bundle; says which adapter and why."""

    code = "packaging"


class ParityError(PackagingError):
    """Raise when the converted model's outputs differ from the native ones beyond tolerance."""

    code = "parity"
