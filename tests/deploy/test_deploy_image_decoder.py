"""Deploying an image bundle to Lambda puts Pillow into the zip; other bundles keep the slim zip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest

from modelfn.deploy.model_check import IMAGE_DECODER, check_published_model, needs_image_decoder
from modelfn.deploy.settings import load_deploy_settings
from modelfn.errors import IntegrityError
from tests.deploy.test_deploy_settings import run_deploy, write_settings
from tests.fixtures.bundles import publish
from tests.fixtures.keys import SigningKey
from tests.serving.processing_models import write_image_bundle


def test_image_bundle_needs_the_decoder_and_the_deploy_says_so(
    tmp_path: Path, s3_bucket: str, signing_key: SigningKey
) -> None:
    # GIVEN a signed bundle that declares image preprocessing, in S3
    bundle = write_image_bundle(tmp_path / "colour")
    publish(bundle, f"s3://{s3_bucket}/models", signing_key)
    config = write_settings(tmp_path / "cfg", signing_key, model="colour", model_url=f"s3://{s3_bucket}/models")
    settings = load_deploy_settings(config)
    # WHEN the verified model is checked
    statement = check_published_model(settings)
    # THEN it needs Pillow, unless the settings already add it
    assert needs_image_decoder(settings, statement)
    assert not needs_image_decoder(dataclasses.replace(settings, extras=("Pillow>=11",)), statement)
    # AND the sam dry run with the model check says Pillow goes into the zip
    result = run_deploy(
        "--target", "sam", "--config", str(config), "--out", str(tmp_path / "build"), "--dry-run", "--check-model"
    )
    assert result.exit_code == 0, result.output
    assert f"{IMAGE_DECODER} goes into the Lambda zip" in result.stdout


def test_tensor_bundle_keeps_the_slim_zip(
    tmp_path: Path, s3_bucket: str, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN a signed bundle without processing
    publish(tiny_bundle_dir, f"s3://{s3_bucket}/models", signing_key)
    settings = load_deploy_settings(write_settings(tmp_path / "cfg", signing_key, model_url=f"s3://{s3_bucket}/models"))
    # WHEN checked / THEN no decoder is added
    assert not needs_image_decoder(settings, check_published_model(settings))


def test_a_manifest_that_differs_from_its_signature_is_refused(
    tmp_path: Path, s3_bucket: str, signing_key: SigningKey
) -> None:
    # GIVEN an image bundle whose stored manifest was changed after signing
    bundle = write_image_bundle(tmp_path / "colour")
    publish(bundle, f"s3://{s3_bucket}/models", signing_key)
    settings = load_deploy_settings(
        write_settings(tmp_path / "cfg", signing_key, model="colour", model_url=f"s3://{s3_bucket}/models")
    )
    statement = check_published_model(settings)
    s3 = boto3.client("s3")
    key = f"models/colour/{statement.version}/manifest.json"
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=key, Body=body + b" ")
    # WHEN checked / THEN refused, naming the manifest
    with pytest.raises(
        IntegrityError, match=f"manifest.json of colour v{statement.version} does not match its signature"
    ):
        needs_image_decoder(settings, statement)
