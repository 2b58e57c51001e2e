"""Before deploying: the model in the store must carry a signature by one of the trusted keys.

Reads only the signature (not the model files), with the same verifier the function runs, so a
deployment that would never become ready (untrusted signer, unsigned or missing model) is refused
before anything is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelfn.deploy.settings import DeploySettings
    from modelfn.signing.statement import SignedStatement


def check_published_model(settings: DeploySettings) -> SignedStatement:
    """Resolve the configured version and verify its signature against ``settings.trusted_keys``."""
    from modelfn.bundle.layout import SIGNATURE_FILE, version_prefix
    from modelfn.errors import SignatureError
    from modelfn.repository.versions import resolve_listing
    from modelfn.signing.keys import TrustSet
    from modelfn.signing.verify import verify_signature
    from modelfn.store.registry import store_for

    store = store_for(settings.model_url)
    version, objects = resolve_listing(store, settings.model, settings.version)
    key = version_prefix(settings.model, version) + SIGNATURE_FILE
    signature = next((info for info in objects if info.key == key), None)
    if signature is None:
        raise SignatureError(f"{store.url}/{key} is missing: the function would refuse an unsigned model")
    trust = TrustSet.from_entries(settings.trusted_keys)
    return verify_signature(b"".join(store.read(signature.key, pin=signature)), trust)


IMAGE_DECODER = "pillow>=10"
"""What a Lambda zip needs to serve a bundle that declares image preprocessing (``modelfn[images]``)."""


def needs_image_decoder(settings: DeploySettings, statement: SignedStatement) -> bool:
    """True when the verified model's manifest declares image preprocessing and the zip would lack Pillow.

    The manifest is read from the store and checked against the digest the verified signature
    names, so nothing unsigned decides what goes into the package.
    """
    import hashlib

    from modelfn.bundle.layout import MANIFEST_FILE, version_prefix
    from modelfn.bundle.manifest import Manifest
    from modelfn.errors import IntegrityError
    from modelfn.store.registry import store_for

    if any(spec.replace(" ", "").lower().startswith("pillow") for spec in settings.extras):
        return False
    digest = statement.resources.get(MANIFEST_FILE)
    if digest is None or statement.version is None:
        return False
    store = store_for(settings.model_url)
    data = b"".join(store.read(version_prefix(statement.name, statement.version) + MANIFEST_FILE))
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(f"{MANIFEST_FILE} of {statement.name} v{statement.version} does not match its signature")
    processing = Manifest.from_json(data).processing
    return processing is not None and processing.image is not None
