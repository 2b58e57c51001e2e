"""``--target sam``: infra/sam/template.yaml with the settings as parameter defaults, plus rollout options.

Canary (``canary_percent``): the HTTP function's alias shifts that share of traffic to the new
version, waits ``canary_interval_min`` minutes, then shifts the rest, through CodeDeploy
(``DeploymentPreference`` on a custom time-based canary config); any alarm (new version's Lambda
errors, i.e. gateway 502/504s; the app's 500s, ``UnexpectedErrors``; ``ModelLoadFailed``, the 503s of
a model that did not verify or load) rolls the alias back. SnapStart snapshots the HTTP
function's initialized process (model verified and loaded) on each published version.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from modelfn.deploy.render import Rendered, load_yaml, write_yaml
from modelfn.deploy.settings import DeploySettings, s3_parts

TEMPLATE = Path("sam") / "template.yaml"
CODE_ZIP = "modelfn-lambda.zip"
ALIAS = "live"
METRICS_NAMESPACE = "modelfn"


def render(settings: DeploySettings, infra: Path, out_dir: Path) -> Rendered:
    """Write ``out_dir/template.yaml`` (the Lambda zip is built next to it by a real deploy)."""
    template = render_template(settings, load_yaml(infra / TEMPLATE))
    path = write_yaml(out_dir / "template.yaml", [template], target="sam", source=str(TEMPLATE))
    return Rendered(target="sam", out_dir=out_dir, files=(path,), summary=tuple(_summary(settings)))


def render_template(settings: DeploySettings, template: dict[str, Any]) -> dict[str, Any]:
    """The filled-in template as data (tests read its policies and rollout settings)."""
    template = copy.deepcopy(template)
    model_bucket, model_prefix = s3_parts(settings.model_url, "model_url")
    in_bucket, in_prefix = s3_parts(settings.input_url, "input_url")
    out_bucket, out_prefix = s3_parts(settings.output_url, "output_url")
    defaults: dict[str, Any] = {
        "ModelBucket": model_bucket,
        "ModelPrefix": model_prefix.rstrip("/"),
        "ModelName": settings.model,
        "ModelVersion": settings.version,
        "TrustedKeys": "".join(settings.trusted_keys),
        "KmsKeyArn": settings.kms_key_arn,
        "MemorySize": settings.memory_mb,
        "Timeout": settings.timeout_s,
        "ReservedConcurrency": settings.max_scale,
        "InputBucketName": in_bucket,
        "InputPrefix": in_prefix,
        "OutputBucketName": out_bucket,
        "OutputPrefix": out_prefix,
        "TriggerMode": settings.trigger,
    }
    for name, value in defaults.items():
        template["Parameters"][name]["Default"] = value
    function_globals = template["Globals"]["Function"]
    function_globals["Runtime"] = f"python{settings.python}"
    function_globals["Architectures"] = [settings.arch]
    function_globals["CodeUri"] = CODE_ZIP
    resources = template["Resources"]
    http = resources["HttpFunction"]["Properties"]
    if settings.min_scale:
        http["ProvisionedConcurrencyConfig"] = {"ProvisionedConcurrentExecutions": settings.min_scale}
    if settings.snapstart:
        http["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    if settings.auth == "jwt":
        resources["HttpApi"]["Properties"]["Auth"] = {
            "DefaultAuthorizer": "JwtAuthorizer",
            "Authorizers": {
                "JwtAuthorizer": {
                    "IdentitySource": "$request.header.Authorization",
                    "JwtConfiguration": {"issuer": settings.jwt_issuer, "audience": list(settings.jwt_audience)},
                }
            },
        }
    if settings.canary_percent:
        _add_canary(resources, settings.canary_percent, settings.canary_interval_min)
    return template


def _add_canary(resources: dict[str, Any], percent: int, minutes: int) -> None:
    resources["CanaryDeploymentConfig"] = {
        "Type": "AWS::CodeDeploy::DeploymentConfig",
        "Properties": {
            "ComputePlatform": "Lambda",
            "TrafficRoutingConfig": {
                "Type": "TimeBasedCanary",
                "TimeBasedCanary": {"CanaryPercentage": percent, "CanaryInterval": minutes},
            },
        },
    }
    resources["NewVersionErrorsAlarm"] = _alarm(
        "Lambda errors of the new version during the canary",
        "AWS/Lambda",
        "Errors",
        [
            {"Name": "Resource", "Value": {"Fn::Sub": f"${{HttpFunction}}:{ALIAS}"}},
            {"Name": "FunctionName", "Value": {"Ref": "HttpFunction"}},
            {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": ["HttpFunction.Version", "Version"]}},
        ],
    )
    resources["Http5xxAlarm"] = _alarm(
        "HTTP 500s the function answers (bad input is always 4xx, so any 500 is a fault); the gateway's "
        "502/504s are the Lambda errors above (an API Gateway metric would need the API id: a circular reference)",
        METRICS_NAMESPACE,
        "UnexpectedErrors",
        [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}],
    )
    resources["ModelLoadFailedAlarm"] = _alarm(
        "The function could not verify or load its model",
        METRICS_NAMESPACE,
        "ModelLoadFailed",
        [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}],
    )
    resources["HttpFunction"]["Properties"]["DeploymentPreference"] = {
        "Type": {"Ref": "CanaryDeploymentConfig"},
        "Alarms": [{"Ref": "NewVersionErrorsAlarm"}, {"Ref": "Http5xxAlarm"}, {"Ref": "ModelLoadFailedAlarm"}],
    }


def _alarm(description: str, namespace: str, metric: str, dimensions: list[dict[str, Any]]) -> dict[str, Any]:
    """Any occurrence in a minute trips the alarm, and CodeDeploy rolls the alias back."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    }


def _summary(settings: DeploySettings) -> list[str]:
    lines = [
        f"stack {settings.name}: HTTP API (auth {settings.auth}) -> HttpFunction "
        f"(python{settings.python} {settings.arch}, {settings.memory_mb} MB, {settings.timeout_s} s, "
        f"reserved {settings.max_scale}, provisioned {settings.min_scale})",
        f"model {settings.model} {settings.version} from {settings.model_url} "
        f"({len(settings.trusted_keys)} trusted key(s))",
        f"StorageEventFunction: {settings.input_url} -> {settings.output_url} via {settings.trigger}",
    ]
    if settings.canary_percent:
        lines.append(
            f"canary: {settings.canary_percent}% for {settings.canary_interval_min} min, "
            "rollback on errors / 5xx / ModelLoadFailed alarms"
        )
    if settings.snapstart:
        lines.append("SnapStart on published versions of HttpFunction")
    return lines
