"""``modelfn.load``: a verified model as a plain Python object, for apps that bring their own web layer.

A team's Flask (or any) app swaps ``keras.models.load_model(path)`` for ``modelfn.load(store, name,
trust=...)`` and keeps the rest. The model goes through the same loader as the HTTP handler: the
signature is checked against the given trust set before any byte reaches onnxruntime, so a tampered
or untrusted bundle raises its specific ``VerificationError`` and no predictor exists for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelfn.errors import InvalidRequest, UnprocessableInput

if TYPE_CHECKING:
    import datetime as dt

    import numpy.typing as npt

    from modelfn.bundle.manifest import Manifest
    from modelfn.config import Settings
    from modelfn.loader import LoadedBundle

PathLike = str | os.PathLike[str]


def load(
    store_url: PathLike | None = None,
    name: str | None = None,
    *,
    trust: PathLike | Sequence[PathLike] | None = None,
    version: int | str | None = None,
    **settings: Any,
) -> Predictor:
    """Fetch, verify and load model ``name`` from ``store_url``, trusting only the keys in ``trust``.

    ``trust`` is one public key (PEM path or inline PEM) or several. Anything not given comes from
    the ``MODELFN_*`` variables and settings file, as everywhere in modelfn; other settings
    (``threads``, ``min_version``, ``pinned_digest``, ``providers``, ...) may be passed by keyword.
    Raises the loader's typed error (``IntegrityError``, ``SignatureError``, ``UntrustedKeyError``,
    ``PolicyError``, ``ObjectNotFound``, ``ConfigError``, ...) when the model must not be served.
    """
    from modelfn.config import Settings

    explicit: dict[str, Any] = {
        "store_url": os.fspath(store_url) if store_url is not None else None,
        "model_name": name,
        "model_version": str(version) if version is not None else None,
        "trusted_keys": _trust_entries(trust),
        **settings,
    }
    return Predictor.from_settings(Settings.load(**explicit))


def _trust_entries(trust: PathLike | Sequence[PathLike] | None) -> str | tuple[str, ...] | None:
    """One entry as text (settings split comma lists and inline PEM), several as a tuple of strings."""
    if trust is None:
        return None
    if isinstance(trust, str | os.PathLike):
        return os.fspath(trust)
    return tuple(os.fspath(entry) for entry in trust)


class Predictor:
    """A verified, loaded model: ``predict`` arrays, a dict of named inputs, or rows; read its manifest."""

    def __init__(self, bundle: LoadedBundle) -> None:
        self._bundle = bundle

    @classmethod
    def from_settings(cls, settings: Settings) -> Predictor:
        """Load the model ``settings`` names (verify first); raises the loader's typed error on refusal."""
        from modelfn.loader import load_bundle

        return cls(load_bundle(settings))

    @property
    def manifest(self) -> Manifest:
        """The signed manifest: name, version, input/output schema, labels, parity report."""
        return self._bundle.manifest

    @property
    def labels(self) -> list[str | int] | None:
        """Class labels in output-index order (classifiers), else None."""
        labels = self._bundle.manifest.labels
        return list(labels) if labels is not None else None

    @property
    def name(self) -> str:
        return self._bundle.manifest.name

    @property
    def version(self) -> int:
        return self._bundle.manifest.version

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self._bundle.manifest.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self._bundle.model.output_names)

    @property
    def root_digest(self) -> str:
        """SHA-256 over the signed file list: the identity health checks and logs report."""
        return self._bundle.root_digest

    @property
    def verified_at(self) -> dt.datetime:
        return self._bundle.verified_at

    def health(self) -> dict[str, Any]:
        """``{name, version, root_digest, verified_at}``, as modelfn's own health endpoints report it."""
        return self._bundle.health()

    def predict(self, inputs: Any, outputs: Sequence[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        """Run the model; every output (or those named in ``outputs``) as numpy arrays by name.

        ``inputs`` is an array or nested list for a single-input model, a dict of named inputs, or a
        list of rows as dicts (``[{"a": 1.0, "b": 2.0}, ...]``, one column per input). Dtypes are cast
        only where no value changes meaning; a name, dtype or shape that does not fit the signed
        schema raises ``UnprocessableInput`` naming the input.
        """
        from modelfn.serving.codecs import as_input
        from modelfn.serving.inference import run_model

        dtypes = {spec.name: spec.dtype for spec in self._bundle.manifest.inputs}
        feeds = {
            key: as_input(value, dtypes.get(key, "float32"), field=key) for key, value in self._columns(inputs).items()
        }
        return run_model(self._bundle.model, feeds, outputs)

    def _columns(self, inputs: Any) -> dict[str, Any]:
        """Named values from whichever form ``inputs`` takes."""
        if isinstance(inputs, Mapping):
            return dict(inputs)
        if isinstance(inputs, list | tuple) and inputs and all(isinstance(row, Mapping) for row in inputs):
            keys = list(inputs[0])
            if any(set(row) != set(keys) for row in inputs):
                raise UnprocessableInput("every row must name the same inputs", field="inputs")
            return {key: [row[key] for row in inputs] for key in keys}
        if isinstance(inputs, list | tuple) and not inputs:
            raise InvalidRequest("inputs is empty: pass at least one row", field="inputs")
        names = self.input_names
        if len(names) != 1:
            raise UnprocessableInput(
                f"this model takes {len(names)} inputs {names}: pass a dict of named inputs or rows as dicts",
                field="inputs",
            )
        return {names[0]: inputs}

    def __repr__(self) -> str:
        return f"Predictor({self.name!r} v{self.version}, root sha256:{self.root_digest[:12]}…)"
