"""The deploy settings file: a bad setting is a clear error naming the key, before anything is rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelfn.cli import app
from tests.fixtures.bundles import publish
from tests.fixtures.keys import SigningKey

BASE: dict[str, Any] = {
    "name": "iris",
    "model_url": "s3://models-bucket/models",
    "model": "tiny",
    "input_url": "s3://data-bucket/incoming/",
    "output_url": "s3://data-bucket/predictions/",
    "min_scale": 1,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_settings(directory: Path, key: SigningKey | None, **changes: Any) -> Path:
    """A deploy settings file in ``directory`` trusting ``key`` (its public key copied beside the file)."""
    directory.mkdir(parents=True, exist_ok=True)
    values = {**BASE, **changes}
    if key is not None and "trusted_keys" not in values:
        (directory / "signing.pub").write_bytes(key.public_path.read_bytes())
        values["trusted_keys"] = ["signing.pub"]
    path = directory / "deploy.toml"
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items() if v is not None))
    return path


def run_deploy(*args: str, env: dict[str, str] | None = None) -> Any:
    """``modelfn deploy ARGS`` in-process; returns the click result (exit code, stdout, stderr)."""
    return CliRunner().invoke(app, ["deploy", *args], env=env)


@pytest.mark.parametrize(
    ("target", "changes", "field", "words"),
    [
        ("sam", {"output_url": "s3://data-bucket/incoming/out/"}, "output_url", "overlaps the trigger"),
        ("lambda", {"output_url": "s3://data-bucket/"}, "output_url", "overlaps the trigger"),
        ("sam", {"gpu": 1}, "gpu", "Lambda has no GPUs"),
        ("sam", {"memory_mb": 64}, "memory_mb", "128..10240"),
        ("lambda", {"memory_mb": 20000}, "memory_mb", "128..10240"),
        ("sam", {"timeout_s": 901}, "timeout_s", "1..900"),
        ("sam", {"snapstart": True, "python": "3.11", "min_scale": 0}, "snapstart", "3.12+"),
        ("sam", {"snapstart": True, "min_scale": 2}, "min_scale", "cannot be combined"),
        ("lambda", {"canary_percent": 10}, "canary", "--target sam"),
        ("k8s", {"min_scale": 0}, "min_scale", "never scales to zero"),
        ("knative", {"snapstart": True}, "snapstart", "Lambda feature"),
        ("sam", {"model_url": "s3://models-bucket"}, "model_url", "s3://bucket/prefix"),
        ("sam", {"trigger": "kinesis"}, "trigger", "s3, sqs"),
        ("sam", {"memory_mb": "big"}, "memory_mb", "must be an integer"),
        ("sam", {"colour": "blue"}, "colour", "unknown key"),
        ("sam", {"name": "Iris_Model"}, "name", "lowercase"),
    ],
)
def test_bad_setting_is_refused_before_rendering(
    tmp_path: Path, signing_key: SigningKey, target: str, changes: dict[str, Any], field: str, words: str
) -> None:
    # GIVEN a settings file with one bad value
    config = write_settings(tmp_path / "cfg", signing_key, **changes)
    out = tmp_path / "build"
    # WHEN it is rendered (dry run: no cloud needed)
    result = run_deploy("--target", target, "--config", str(config), "--out", str(out), "--dry-run")
    # THEN the command fails with a message naming the problem, and nothing was written
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert field in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([], "trusted_keys' is required"),
        (["absent.pub"], "does not exist"),
        (["private.key"], "private key"),
        (["garbage.pub"], "not a PEM public key"),
    ],
)
def test_missing_or_unusable_trusted_key_is_refused(
    tmp_path: Path, signing_key: SigningKey, keys: list[str], words: str
) -> None:
    # GIVEN trusted_keys that name nothing usable
    directory = tmp_path / "cfg"
    directory.mkdir()
    (directory / "private.key").write_bytes(signing_key.private_path.read_bytes())
    (directory / "garbage.pub").write_text("not a key\n")
    config = write_settings(directory, None, trusted_keys=keys)
    out = tmp_path / "build"
    # WHEN rendering
    result = run_deploy("--target", "k8s", "--config", str(config), "--out", str(out), "--dry-run")
    # THEN a clear error about the key, nothing rendered
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert not out.exists()


def test_model_signed_by_an_untrusted_key_is_refused(
    tmp_path: Path, s3_bucket: str, tiny_bundle_dir: Path, signing_key: SigningKey, other_signing_key: SigningKey
) -> None:
    # GIVEN a model in S3 signed by a key the settings do not trust
    publish(tiny_bundle_dir, f"s3://{s3_bucket}/models", other_signing_key)
    config = write_settings(tmp_path / "cfg", signing_key, model_url=f"s3://{s3_bucket}/models")
    out = tmp_path / "build"
    # WHEN deploying with the model check
    result = run_deploy("--target", "k8s", "--config", str(config), "--out", str(out), "--dry-run", "--check-model")
    # THEN the signer is refused before anything is rendered
    assert result.exit_code == 2, result.output
    assert "trust" in result.stderr
    assert not out.exists()


def test_model_signed_by_a_trusted_key_passes_the_check(
    tmp_path: Path, s3_bucket: str, tiny_bundle_dir: Path, signing_key: SigningKey
) -> None:
    # GIVEN a model in S3 signed by the trusted key
    publish(tiny_bundle_dir, f"s3://{s3_bucket}/models", signing_key)
    config = write_settings(tmp_path / "cfg", signing_key, model_url=f"s3://{s3_bucket}/models")
    # WHEN deploying with the model check
    result = run_deploy(
        "--target", "k8s", "--config", str(config), "--out", str(tmp_path / "build"), "--dry-run", "--check-model"
    )
    # THEN the check names the verified model and rendering goes on
    assert result.exit_code == 0, result.output
    assert "model tiny v1 verifies with the trusted keys" in result.stdout
    assert (tmp_path / "build" / "manifests.yaml").is_file()


def test_unknown_target_lists_the_choices(tmp_path: Path, signing_key: SigningKey) -> None:
    config = write_settings(tmp_path / "cfg", signing_key)
    result = run_deploy("--target", "nomad", "--config", str(config), "--out", str(tmp_path / "b"), "--dry-run")
    assert result.exit_code == 2
    assert "lambda, sam, knative, k8s" in result.stderr


def test_deploy_command_module_imports_nothing_heavy() -> None:
    import json
    import subprocess
    import sys

    # GIVEN a fresh interpreter that imports the CLI with the deploy command registered
    code = "import sys, json, modelfn.cli, modelfn.commands.deploy; print(json.dumps(sorted(sys.modules)))"
    modules = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    # THEN neither the renderers nor their libraries load until the command runs
    heavy = {"yaml", "boto3", "onnxruntime", "modelfn.deploy.render", "modelfn.deploy.settings", "samtranslator"}
    assert modules & heavy == set()


def test_the_example_settings_file_renders_every_target(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN infra/deploy's example settings with a key where it says
    example = Path(__file__).resolve().parents[2] / "infra" / "deploy" / "modelfn-deploy.example.toml"
    config = tmp_path / "modelfn-deploy.toml"
    config.write_text(example.read_text())
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "signing.pub").write_bytes(signing_key.public_path.read_bytes())
    for target in ("sam", "k8s", "knative"):
        # WHEN each target renders it offline
        result = run_deploy("--target", target, "--config", str(config), "--out", str(tmp_path / target), "--dry-run")
        # THEN it validates and says what it would deploy
        assert result.exit_code == 0, result.output
        assert "would deploy:" in result.stdout
