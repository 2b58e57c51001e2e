"""`modelfn deploy --target sam`: the rendered template, its IAM policies, canary and SnapStart variants.

The policies are read from the CloudFormation that the SAM transform (aws-sam-translator, the
library `sam deploy` uses) produces from the rendered template, with the parameter defaults the
renderer wrote substituted: what the function roles would actually hold.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfn.deploy.render import INFRA_DIR, load_yaml
from modelfn.deploy.settings import DeploySettings
from modelfn.deploy.targets.sam import render_template
from tests.deploy.test_deploy_settings import run_deploy, write_settings
from tests.fixtures.keys import SigningKey

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _settings(key: SigningKey, **changes: Any) -> DeploySettings:
    values: dict[str, Any] = {
        "name": "iris", "model_url": "s3://models-bucket/models", "model": "iris",
        "trusted_keys": (key.public_path.read_text(),), "input_url": "s3://data-bucket/incoming/",
        "output_url": "s3://data-bucket/predictions/", "kms_key_arn": KMS_KEY,
    }  # fmt: skip
    return dataclasses.replace(DeploySettings(**values), **changes)


def _render(settings: DeploySettings, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    settings.check("sam")
    template = render_template(settings, load_yaml(INFRA_DIR / "sam" / "template.yaml"))
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return template, path


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    return subprocess.run([cfn_lint, str(path)], capture_output=True, text=True, timeout=300, check=False)


def _transform(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The SAM transform's CloudFormation output, parameters resolved to the rendered defaults."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    packaged = {**template, "Globals": {"Function": {**template["Globals"]["Function"], "CodeUri": "s3://code/f.zip"}}}
    output: dict[str, Any] = transform(packaged, {}, NoManagedPolicies())
    params = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    params.update({"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::StackName": "iris"})
    return _resolve(output, params, kms=bool(params["KmsKeyArn"]))


def _resolve(node: Any, params: dict[str, str], *, kms: bool) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: params.get(m.group(1), m.group(0)), node["Fn::Sub"])
        if set(node) == {"Ref"} and node["Ref"] in params:
            return params[node["Ref"]]
        if set(node) == {"Fn::If"} and node["Fn::If"][0] == "HasKmsKey":
            return _resolve(node["Fn::If"][1 if kms else 2], params, kms=kms)
        return {k: _resolve(v, params, kms=kms) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, params, kms=kms) for v in node if v != {"Ref": "AWS::NoValue"}]
    return node


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    policies = [p for p in role["Properties"].get("Policies", []) if p != {"Ref": "AWS::NoValue"}]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_function_roles_are_least_privilege(tmp_path: Path, signing_key: SigningKey, monkeypatch: Any) -> None:
    # GIVEN a rendered SAM template with a KMS key configured (so the KMS statement is present)
    template, _ = _render(_settings(signing_key), tmp_path)
    # WHEN the SAM transform turns it into CloudFormation
    output = _transform(template, monkeypatch)
    roles = {k: v for k, v in output["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"HttpFunctionRole", "StorageEventFunctionRole"}
    model_objects = "arn:aws:s3:::models-bucket/models/*"
    allowed: dict[str, dict[str, set[str]]] = {
        "HttpFunctionRole": {model_objects: {"s3:GetObject", "s3:GetObjectVersion"}},
        "StorageEventFunctionRole": {
            model_objects: {"s3:GetObject", "s3:GetObjectVersion"},
            "arn:aws:s3:::data-bucket/incoming/*": {"s3:GetObject", "s3:GetObjectVersion"},
            "arn:aws:s3:::data-bucket/predictions/*": {"s3:PutObject"},
        },
    }
    for name, role in roles.items():
        statements = _statements(role)
        assert sum(any(a.startswith("kms:") for a in _actions(s)) for s in statements) == 1
        assert len(statements) == len(allowed[name]) + 2  # + ListBucket + KMS
        for statement in statements:
            actions, resource = set(_actions(statement)), statement["Resource"]
            assert statement["Effect"] == "Allow"
            # THEN KMS is Decrypt/Verify on the configured key at most, never Sign (SECURITY.md rule 26)
            if any(a.startswith("kms:") for a in actions):
                assert actions <= {"kms:Decrypt", "kms:Verify"} and resource == KMS_KEY
                continue
            # AND listing is the model bucket, limited to the model prefix
            if actions == {"s3:ListBucket"}:
                assert resource == "arn:aws:s3:::models-bucket"
                assert statement["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
                continue
            # AND object access is read-only on the model (and input) prefix, write-only on the output prefix
            assert actions <= allowed[name].get(resource, set()), (name, actions, resource)
        text = str(role)
        assert "kms:Sign" not in text and "s3:*" not in text and "s3:DeleteObject" not in text
    # AND no statement anywhere in the output grants kms:Sign
    assert "kms:Sign" not in str(output)


def test_http_api_uses_platform_auth_never_api_keys(tmp_path: Path, signing_key: SigningKey) -> None:
    iam, _ = _render(_settings(signing_key), tmp_path)
    assert iam["Resources"]["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    jwt, path = _render(
        _settings(signing_key, auth="jwt", jwt_issuer="https://login.example.com/", jwt_audience=("iris-clients",)),
        tmp_path,
    )
    auth = jwt["Resources"]["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    assert auth["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]["issuer"] == "https://login.example.com/"
    assert "ApiKey" not in path.read_text()
    assert _cfn_lint(path).returncode == 0


def test_canary_renders_codedeploy_with_alarms_and_lints(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN --canary 10 with a 5 minute interval
    template, path = _render(_settings(signing_key, canary_percent=10, canary_interval_min=5), tmp_path)
    resources = template["Resources"]
    http = resources["HttpFunction"]["Properties"]
    # THEN the alias is published and shifted by a time-based canary config of 10% for 5 minutes
    assert http["AutoPublishAlias"] == "live"
    preference = http["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "CanaryDeploymentConfig"}
    routing = resources["CanaryDeploymentConfig"]["Properties"]["TrafficRoutingConfig"]
    assert routing == {"Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryPercentage": 10, "CanaryInterval": 5}}
    # AND the rollback alarms watch errors of the new version, 500s and ModelLoadFailed
    alarms = {resources[ref["Ref"]]["Properties"]["MetricName"] for ref in preference["Alarms"]}
    assert alarms == {"Errors", "UnexpectedErrors", "ModelLoadFailed"}
    # AND cfn-lint passes, and the SAM transform turns it into a CodeDeploy group that rolls back on alarm
    result = _cfn_lint(path)
    assert result.returncode == 0, result.stdout
    output = _transform(template, monkeypatch)
    group = output["Resources"]["HttpFunctionDeploymentGroup"]["Properties"]
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert len(group["AlarmConfiguration"]["Alarms"]) == 3


def test_snapstart_renders_apply_on_published_versions_and_lints(tmp_path: Path, signing_key: SigningKey) -> None:
    template, path = _render(_settings(signing_key, snapstart=True, python="3.13"), tmp_path)
    http = template["Resources"]["HttpFunction"]["Properties"]
    assert http["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    result = _cfn_lint(path)
    assert result.returncode == 0, result.stdout


def test_settings_become_parameter_defaults(tmp_path: Path, signing_key: SigningKey) -> None:
    settings = _settings(signing_key, memory_mb=3008, max_scale=7, min_scale=2, trigger="sqs", arch="arm64")
    template, path = _render(settings, tmp_path)
    params = {name: p.get("Default") for name, p in template["Parameters"].items()}
    assert params["ModelBucket"] == "models-bucket" and params["ModelPrefix"] == "models"
    assert params["MemorySize"] == 3008 and params["ReservedConcurrency"] == 7 and params["TriggerMode"] == "sqs"
    assert params["InputPrefix"] == "incoming/" and params["OutputPrefix"] == "predictions/"
    assert params["TrustedKeys"] == signing_key.public_path.read_text()
    http = template["Resources"]["HttpFunction"]["Properties"]
    assert http["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert _cfn_lint(path).returncode == 0


def test_dry_run_renders_lints_and_prints_the_plan(tmp_path: Path, signing_key: SigningKey) -> None:
    config = write_settings(tmp_path / "cfg", signing_key, min_scale=0)
    out = tmp_path / "build"
    result = run_deploy("--target", "sam", "--config", str(config), "--out", str(out), "--dry-run", "--canary", "20")
    assert result.exit_code == 0, result.output
    assert "ok  cfn-lint" in result.stdout and "would deploy:" in result.stdout and "canary: 20%" in result.stdout
    assert (out / "template.yaml").is_file()


def test_real_deploy_without_credentials_fails_clearly(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no AWS credentials anywhere
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = write_settings(tmp_path / "cfg", signing_key, min_scale=0)
    out = tmp_path / "build"
    # WHEN deploying for real
    result = run_deploy("--target", "sam", "--config", str(config), "--out", str(out))
    # THEN it stops before rendering or building, saying what is missing
    assert result.exit_code == 2, result.output
    assert "no AWS credentials" in result.stderr
    assert not out.exists()
