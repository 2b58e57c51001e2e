"""`modelfn keygen` and `modelfn sign`: key files, KMS public keys, local wrapping keys, signing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelfn.commands._options import fail
from modelfn.errors import ConfigError, ModelfnError

DEFAULT_KEY_DIR = Path(".modelfn/keys")


def keygen(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for signing.key (private) and signing.pub")
    ] = DEFAULT_KEY_DIR,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files")] = False,
    from_kms: Annotated[
        str | None,
        typer.Option(
            "--from-kms",
            help="Instead: fetch this KMS ECC_NIST_P256 key's public key (GetPublicKey) into OUT/kms.pub for --trust",
        ),
    ] = None,
    wrapping_key: Annotated[
        bool,
        typer.Option("--wrapping-key", help="Instead: write a random AES-256 key OUT/wrapping.key for --encrypt"),
    ] = False,
) -> None:
    """Create an ECDSA P-256 key pair for signing bundles (private key written with mode 0600)."""
    from modelfn.signing.keys import write_keypair

    try:
        if from_kms and wrapping_key:
            raise ConfigError("give at most one of --from-kms and --wrapping-key", field="keygen")
        out.mkdir(parents=True, exist_ok=True)
        if from_kms:
            from modelfn.signing.keys import write_public_key
            from modelfn.signing.kms import kms_public_key

            hint = write_public_key(out / "kms.pub", kms_public_key(from_kms), overwrite=force)
            typer.echo(f"public key:  {out / 'kms.pub'} (KMS key {from_kms})\nkey hint:    {hint}")
            return
        if wrapping_key:
            from modelfn.bundle.encryption import write_wrapping_key

            key_id = write_wrapping_key(out / "wrapping.key", overwrite=force)
            typer.echo(f"wrapping key: {out / 'wrapping.key'} (keep it secret)\nkey id:       {key_id}")
            return
        hint = write_keypair(out / "signing.key", out / "signing.pub", overwrite=force)
    except ModelfnError as exc:
        raise fail(exc) from exc
    typer.echo(f"private key: {out / 'signing.key'}\npublic key:  {out / 'signing.pub'}\nkey hint:    {hint}")


def sign(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (from `modelfn package`)")],
    key: Annotated[Path, typer.Option("--key", help="Private key PEM")] = DEFAULT_KEY_DIR / "signing.key",
    kms_key_id: Annotated[
        str | None,
        typer.Option(
            "--kms-key-id", help="Sign with this AWS KMS ECC_NIST_P256 key (id, ARN or alias) instead of --key"
        ),
    ] = None,
    kms_message_type: Annotated[
        str,
        typer.Option(
            "--kms-message-type",
            help="How KMS gets the DSSE PAE: RAW (up to 4096 bytes), DIGEST (its SHA-256), auto (RAW when it fits)",
            metavar="auto|RAW|DIGEST",
        ),
    ] = "auto",
    not_after: Annotated[
        str | None, typer.Option("--not-after", help="Signed expiry, ISO 8601 (e.g. 2027-01-01T00:00:00Z)")
    ] = None,
) -> None:
    """Sign every file of a bundle into model.sig (OpenSSF model-signing format, key method)."""
    import datetime as dt

    from modelfn.bundle.manifest import Manifest
    from modelfn.signing.sign import KeyFileSigner, Signer, sign_bundle

    try:
        manifest = Manifest.from_json((bundle / "manifest.json").read_bytes())
        expiry = dt.datetime.fromisoformat(not_after) if not_after else None
        signer: Signer
        if kms_key_id:
            from modelfn.signing.kms import MESSAGE_TYPES, KmsSigner

            if kms_message_type not in MESSAGE_TYPES:
                raise ConfigError(
                    f"--kms-message-type must be one of {', '.join(MESSAGE_TYPES)}", field="kms_message_type"
                )
            signer = KmsSigner(kms_key_id, message_type=kms_message_type)  # type: ignore[arg-type]
        else:
            signer = KeyFileSigner(key)
        path = sign_bundle(bundle, signer, name=manifest.name, version=manifest.version, not_after=expiry)
    except (OSError, ValueError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    except ModelfnError as exc:
        raise fail(exc) from exc
    typer.echo(f"signed {manifest.name} v{manifest.version} -> {path} (key {signer.key_hint[:16]}…)")
