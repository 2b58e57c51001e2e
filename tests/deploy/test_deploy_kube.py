"""`modelfn deploy --target k8s|knative`: rendered manifests, their validation, and a missing cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_deploy_settings import run_deploy, write_settings
from tests.fixtures.keys import SigningKey


def _render(tmp_path: Path, key: SigningKey, target: str, *extra: str, **changes: Any) -> dict[str, dict[str, Any]]:
    config = write_settings(tmp_path / "cfg", key, **changes)
    out = tmp_path / "build"
    result = run_deploy("--target", target, "--config", str(config), "--out", str(out), "--dry-run", *extra)
    assert result.exit_code == 0, result.output
    assert "ok  kubernetes-validate --strict" in result.stdout
    name = "manifests.yaml" if target == "k8s" else "service.yaml"
    return {doc["kind"]: doc for doc in yaml.safe_load_all((out / name).read_text())}


def test_k8s_renders_the_settings_into_valid_manifests(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN settings for 2..6 replicas, 4 GiB, one GPU, a namespace and an IAM role for the pods
    docs = _render(
        tmp_path, signing_key, "k8s", min_scale=2, max_scale=6, memory_mb=4096, gpu=1, namespace="ml",
        role_arn="arn:aws:iam::123456789012:role/iris-reader", concurrency=8,
    )  # fmt: skip
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # THEN the deployment runs the CUDA image with a GPU, the memory, and the model settings
    assert container["image"].endswith("modelfn-cuda:0.1.0")
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi", "nvidia.com/gpu": "1"}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MODELFN_STORE_URL"] == "s3://models-bucket/models" and env["MODELFN_MODEL_NAME"] == "tiny"
    assert env["MODELFN_TRUSTED_KEYS"] == {"configMapKeyRef": {"name": "iris-trust", "key": "trusted-keys.pem"}}
    assert docs["ConfigMap"]["data"]["trusted-keys.pem"] == signing_key.public_path.read_text()
    # AND readiness waits for the verified load
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # AND the HPA scales 2..6 on CPU and on requests per second
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert [m["type"] for m in hpa["metrics"]] == ["Resource", "Pods"]
    assert hpa["metrics"][1]["pods"]["target"]["averageValue"] == "32"
    # AND every object lives in the namespace, named after the service, with the pods' IAM role
    assert {doc["metadata"].get("namespace") for kind, doc in docs.items() if kind != "Namespace"} == {"ml"}
    assert deployment["metadata"]["name"] == "iris" and pod["serviceAccountName"] == "iris"
    annotations = docs["ServiceAccount"]["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/iris-reader"
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "iris"}


def test_knative_renders_scale_concurrency_and_gpu(tmp_path: Path, signing_key: SigningKey) -> None:
    docs = _render(tmp_path, signing_key, "knative", min_scale=0, max_scale=3, concurrency=4, gpu=1)
    revision = docs["Service"]["spec"]["template"]
    annotations = revision["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert annotations["autoscaling.knative.dev/max-scale"] == "3"
    assert annotations["autoscaling.knative.dev/target"] == "4"
    assert revision["spec"]["containerConcurrency"] == 4
    container = revision["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "traffic" not in docs["Service"]["spec"]  # no canary: all traffic to the latest revision


def test_knative_canary_splits_traffic_between_revisions(tmp_path: Path, signing_key: SigningKey) -> None:
    # GIVEN a running revision to keep and --canary 20
    docs = _render(tmp_path, signing_key, "knative", "--canary", "20", previous_revision="iris-00007")
    service = docs["Service"]
    new_revision = service["spec"]["template"]["metadata"]["name"]
    # THEN the new, named revision gets 20% under the candidate tag and the old one keeps 80%
    assert new_revision.startswith("iris-") and new_revision != "iris-00007"
    assert service["spec"]["traffic"] == [
        {"revisionName": "iris-00007", "percent": 80},
        {"revisionName": new_revision, "percent": 20, "tag": "candidate"},
    ]


def test_knative_canary_without_a_revision_to_keep_is_refused(tmp_path: Path, signing_key: SigningKey) -> None:
    config = write_settings(tmp_path / "cfg", signing_key)
    out = tmp_path / "build"
    result = run_deploy(
        "--target", "knative", "--config", str(config), "--out", str(out), "--dry-run", "--canary", "20"
    )
    assert result.exit_code == 2
    assert "previous_revision" in result.stderr
    assert not out.exists()


def test_real_deploy_without_kubectl_fails_clearly(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a PATH without kubectl
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    config = write_settings(tmp_path / "cfg", signing_key)
    out = tmp_path / "build"
    result = run_deploy("--target", "k8s", "--config", str(config), "--out", str(out))
    # THEN the tool is named, and nothing was rendered
    assert result.exit_code == 2, result.output
    assert "kubectl not found on PATH" in result.stderr
    assert not out.exists()


def test_real_deploy_without_a_cluster_context_fails_clearly(
    tmp_path: Path, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN kubectl with an empty kubeconfig (no cluster credentials)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert any(Path(d, "kubectl").exists() for d in os.environ["PATH"].split(os.pathsep)), "kubectl is needed here"
    config = write_settings(tmp_path / "cfg", signing_key)
    out = tmp_path / "build"
    result = run_deploy("--target", "knative", "--config", str(config), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "no Kubernetes context" in result.stderr
    assert not out.exists()
