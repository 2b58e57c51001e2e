"""``--target k8s``: infra/k8s/ (Deployment, Service, HPA, PDB, NetworkPolicy, ServiceAccount) filled in.

Replicas scale between ``min_scale`` and ``max_scale`` on CPU and on requests per second per pod
(``concurrency`` x 4 per second: a container serving ``concurrency`` requests at once at ~250 ms each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelfn.deploy.render import Rendered, load_yaml, replace_strings, write_yaml
from modelfn.deploy.settings import DeploySettings
from modelfn.deploy.targets._containers import (
    TEMPLATE_NAME,
    configure_container,
    namespace,
    set_namespace,
    trust_config_map,
)

FILES = ("serviceaccount.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "networkpolicy.yaml")
RPS_PER_CONCURRENT_REQUEST = 4


def render(settings: DeploySettings, infra: Path, out_dir: Path) -> Rendered:
    """Write ``out_dir/manifests.yaml``: namespace and trust ConfigMap first, then the templates."""
    documents = render_documents(settings, infra)
    path = write_yaml(out_dir / "manifests.yaml", documents, target="k8s", source="k8s/")
    summary = (
        f"namespace {settings.namespace}: Deployment {settings.name} ({settings.container_image}, "
        f"{settings.memory_mb} Mi, gpu {settings.gpu}), {settings.min_scale}..{settings.max_scale} replicas",
        f"model {settings.model} {settings.version} from {settings.model_url} "
        f"({len(settings.trusted_keys)} trusted key(s)); readiness on /v2/health/ready",
        "Service, HorizontalPodAutoscaler (cpu, requests/s), PodDisruptionBudget, NetworkPolicy, ServiceAccount",
    )
    return Rendered(target="k8s", out_dir=out_dir, files=(path,), summary=summary)


def render_documents(settings: DeploySettings, infra: Path) -> list[dict[str, Any]]:
    """The manifests as data, in apply order."""
    templates = [load_yaml(infra / "k8s" / name) for name in FILES]
    documents: list[dict[str, Any]] = [replace_strings(doc, TEMPLATE_NAME, settings.name) for doc in templates]
    by_kind = {doc["kind"]: doc for doc in documents}
    deployment = by_kind["Deployment"]
    deployment["spec"]["replicas"] = settings.min_scale
    pod = deployment["spec"]["template"]["spec"]
    configure_container(pod["containers"][0], settings)
    if settings.role_arn:
        account = by_kind["ServiceAccount"]["metadata"]
        account.setdefault("annotations", {})["eks.amazonaws.com/role-arn"] = settings.role_arn
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    hpa["minReplicas"], hpa["maxReplicas"] = settings.min_scale, settings.max_scale
    for metric in hpa["metrics"]:
        if metric["type"] == "Pods":
            metric["pods"]["target"]["averageValue"] = str(settings.concurrency * RPS_PER_CONCURRENT_REQUEST)
    set_namespace(documents, settings)
    return [namespace(settings), trust_config_map(settings), *documents]
