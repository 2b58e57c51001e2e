"""What the Knative and Kubernetes renderers share: the container, its settings and its trust ConfigMap.

The container is the one entry point of the CPU and CUDA images (`modelfn serve` on 0.0.0.0:8080),
configured by ``MODELFN_*`` variables; trusted keys travel in a ConfigMap (public keys, not secrets).
"""

from __future__ import annotations

from typing import Any

from modelfn.deploy.settings import DeploySettings

TEMPLATE_NAME = "modelfn"
"""The name every object carries in infra/knative and infra/k8s; replaced by the settings' name."""
GPU_RESOURCE = "nvidia.com/gpu"
TRUST_KEY = "trusted-keys.pem"


def trust_config_map(settings: DeploySettings) -> dict[str, Any]:
    """ConfigMap ``<name>-trust`` holding the trusted public keys (PEM, concatenated)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{settings.name}-trust", "namespace": settings.namespace, "labels": labels(settings)},
        "data": {TRUST_KEY: "".join(settings.trusted_keys)},
    }


def namespace(settings: DeploySettings) -> dict[str, Any]:
    """The namespace the objects live in (applied first, so ``kubectl apply`` can create it)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings.namespace}}


def labels(settings: DeploySettings) -> dict[str, str]:
    """The selector label every object and pod carries."""
    return {"app.kubernetes.io/name": settings.name}


def configure_container(container: dict[str, Any], settings: DeploySettings) -> None:
    """Image, ``MODELFN_*`` environment and resources (memory, GPU) of the serving container."""
    container["image"] = settings.container_image
    container["env"] = [
        {"name": "MODELFN_HOST", "value": "0.0.0.0"},
        {"name": "MODELFN_PORT", "value": "8080"},
        {"name": "MODELFN_STORE_URL", "value": settings.model_url},
        {"name": "MODELFN_MODEL_NAME", "value": settings.model},
        {"name": "MODELFN_MODEL_VERSION", "value": settings.version},
        {
            "name": "MODELFN_TRUSTED_KEYS",
            "valueFrom": {"configMapKeyRef": {"name": f"{settings.name}-trust", "key": TRUST_KEY}},
        },
    ]
    resources = container.setdefault("resources", {})
    requests, limits = resources.setdefault("requests", {}), resources.setdefault("limits", {})
    requests["memory"] = limits["memory"] = f"{settings.memory_mb}Mi"
    if settings.gpu:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(settings.gpu)
    else:
        requests.pop(GPU_RESOURCE, None)
        limits.pop(GPU_RESOURCE, None)


def set_namespace(documents: list[dict[str, Any]], settings: DeploySettings) -> None:
    """Every namespaced object into the settings' namespace."""
    for document in documents:
        if document["kind"] != "Namespace":
            document["metadata"]["namespace"] = settings.namespace


def pod_service_account(pod_spec: dict[str, Any], settings: DeploySettings) -> dict[str, Any] | None:
    """With ``role_arn``: a service account bound to that IAM role (EKS IRSA), used by the pods."""
    if not settings.role_arn:
        return None
    pod_spec["serviceAccountName"] = settings.name
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": labels(settings),
            "annotations": {"eks.amazonaws.com/role-arn": settings.role_arn},
        },
        "automountServiceAccountToken": False,
    }
