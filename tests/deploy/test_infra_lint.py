"""The templates under infra/ pass the platforms' own linters and schemas, and keep their contracts.

SAM: ``sam validate --lint`` and cfn-lint. Kubernetes: kubernetes-validate (strict); the Knative
Service's revision PodSpec against the core PodSpec schema (no Knative schema ships). Dockerfiles:
hadolint. Each linter is also shown to fail on a broken copy, so a pass means something.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfn.deploy.targets.knative import pod_spec_as_pod

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(p for p in (INFRA / "docker").glob("Dockerfile.*") if not p.name.endswith(".dockerignore"))
K8S = sorted((INFRA / "k8s").glob("*.yaml"))


def _run(*argv: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=300, check=False, env=env, cwd=cwd
    )


def test_sam_template_passes_sam_validate_lint() -> None:
    result = _run(str(BIN / "sam"), "validate", "--lint", "--template-file", str(INFRA / "sam" / "template.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_template_passes_cfn_lint_and_cfn_lint_catches_breakage(tmp_path: Path) -> None:
    template = INFRA / "sam" / "template.yaml"
    assert _run(str(BIN / "cfn-lint"), str(template)).returncode == 0
    # GIVEN a copy whose queue sends failures to a dead-letter queue that does not exist
    broken = tmp_path / "template.yaml"
    broken.write_text(template.read_text().replace("[StorageEventDLQ, Arn]", "[StorageEventDLX, Arn]"))
    result = _run(str(BIN / "cfn-lint"), str(broken))
    # THEN cfn-lint fails it
    assert result.returncode != 0 and "StorageEventDLX" in result.stdout


def test_sam_template_routes_and_auth() -> None:
    template: dict[str, Any] = yaml.safe_load((INFRA / "sam" / "template.yaml").read_text())
    resources = template["Resources"]
    events = resources["HttpFunction"]["Properties"]["Events"]
    # HTTP API v2 routes for the Open Inference Protocol, /predict and the TF Serving / TorchServe routes
    assert {(e["Type"], e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()} == {
        ("HttpApi", "ANY", "/v2/{proxy+}"),
        ("HttpApi", "POST", "/predict"),
        ("HttpApi", "ANY", "/v1/{proxy+}"),
        ("HttpApi", "POST", "/predictions/{proxy+}"),
        ("HttpApi", "GET", "/ping"),
    }
    # Auth is the platform's (IAM), never API keys (SECURITY.md rule 18)
    assert resources["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    assert "ApiKey" not in (INFRA / "sam" / "template.yaml").read_text()
    # Storage events: S3 notification or SQS with a DLQ and partial batch failures
    queue = resources["StorageEventFunction"]["Properties"]["Events"]["Queue"]["Properties"]
    assert queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    redrive = resources["StorageEventQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["StorageEventDLQ", "Arn"]}


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_k8s_manifests_validate_strictly(path: Path) -> None:
    result = _run(str(BIN / "kubernetes-validate"), "--strict", str(path))
    assert result.returncode == 0, result.stdout
    assert "passed" in result.stdout and "WARN" not in result.stdout


def _knative() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((INFRA / "knative" / "service.yaml").read_text())
    return service


def test_knative_pod_spec_validates_as_core_pod_spec_and_a_typo_fails() -> None:
    pod = pod_spec_as_pod(_knative())
    result = _run(str(BIN / "kubernetes-validate"), "--strict", "-", stdin=yaml.safe_dump(pod))
    assert result.returncode == 0 and "passed" in result.stdout, result.stdout
    # GIVEN the same spec with a misspelt probe field
    pod["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5
    result = _run(str(BIN / "kubernetes-validate"), "--strict", "-", stdin=yaml.safe_dump(pod))
    # THEN strict validation rejects it
    assert result.returncode != 0 and "periodSecond" in result.stdout


def test_knative_service_is_a_gpu_function_gated_on_verified_load() -> None:
    revision = _knative()["spec"]["template"]
    annotations = revision["metadata"]["annotations"]
    for key in ("min-scale", "max-scale", "target"):
        assert f"autoscaling.knative.dev/{key}" in annotations
    spec = revision["spec"]
    assert spec["containerConcurrency"] > 0
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_k8s_set_has_probes_hpa_on_cpu_and_rps_and_a_pdb() -> None:
    docs = {doc["kind"]: doc for path in K8S for doc in yaml.safe_load_all(path.read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    metrics = docs["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert {m["type"] for m in metrics} == {"Resource", "Pods"}
    assert {"PodDisruptionBudget", "Service", "NetworkPolicy", "ServiceAccount"} <= set(docs)


def test_dockerfiles_pass_hadolint_and_hadolint_catches_breakage(tmp_path: Path) -> None:
    result = _run(str(BIN / "hadolint"), *map(str, DOCKERFILES))
    assert result.returncode == 0, result.stdout
    # GIVEN a Dockerfile on an unpinned base that installs with apt-get without cleaning up
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nCMD python\n")
    result = _run(str(BIN / "hadolint"), str(bad))
    # THEN hadolint reports it
    assert result.returncode != 0 and "DL3006" in result.stdout
