"""``--target knative``: infra/knative/service.yaml filled in (GPU, scale bounds, concurrency, canary split).

Canary: the new revision gets a fixed name (``<name>-<digest of its template>``) and
``canary_percent`` of the traffic, tagged ``candidate`` (its own URL); ``previous_revision`` keeps
the rest. Deploying again without ``--canary`` promotes it. Knative itself does not watch alarms:
automatic rollback needs a progressive-delivery controller (Flagger, Argo Rollouts) on the cluster.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from modelfn.deploy.render import Rendered, load_yaml, replace_strings, write_yaml
from modelfn.deploy.settings import DeploySettings
from modelfn.deploy.targets._containers import (
    TEMPLATE_NAME,
    configure_container,
    namespace,
    pod_service_account,
    set_namespace,
    trust_config_map,
)
from modelfn.errors import ConfigError

TEMPLATE = Path("knative") / "service.yaml"
KNATIVE_ONLY_FIELDS = ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds")
"""Revision fields beside the embedded PodSpec (dropped to check the rest against the core PodSpec schema)."""
_SCALE = "autoscaling.knative.dev/"


def render(settings: DeploySettings, infra: Path, out_dir: Path) -> Rendered:
    """Write ``out_dir/service.yaml``: namespace, trust ConfigMap, [service account], Knative Service."""
    documents = render_documents(settings, infra)
    path = write_yaml(out_dir / "service.yaml", documents, target="knative", source=str(TEMPLATE))
    summary = [
        f"Knative Service {settings.namespace}/{settings.name}: {settings.container_image}, gpu {settings.gpu}, "
        f"{settings.memory_mb} Mi, scale {settings.min_scale}..{settings.max_scale}, "
        f"containerConcurrency {settings.concurrency}",
        f"model {settings.model} {settings.version} from {settings.model_url} "
        f"({len(settings.trusted_keys)} trusted key(s)); startup/readiness on /v2/health/ready",
    ]
    if settings.canary_percent:
        summary.append(
            f"canary: {settings.canary_percent}% to the new revision (tag candidate), "
            f"{100 - settings.canary_percent}% stays on {settings.previous_revision}"
        )
    return Rendered(target="knative", out_dir=out_dir, files=(path,), summary=tuple(summary))


def render_documents(settings: DeploySettings, infra: Path) -> list[dict[str, Any]]:
    """The manifests as data, in apply order."""
    service: dict[str, Any] = replace_strings(load_yaml(infra / TEMPLATE), TEMPLATE_NAME, settings.name)
    revision = service["spec"]["template"]
    annotations = revision["metadata"]["annotations"]
    annotations[_SCALE + "min-scale"] = str(settings.min_scale)
    annotations[_SCALE + "max-scale"] = str(settings.max_scale)
    annotations[_SCALE + "target"] = str(settings.concurrency)
    spec = revision["spec"]
    spec["containerConcurrency"] = settings.concurrency
    spec["timeoutSeconds"] = settings.timeout_s
    configure_container(spec["containers"][0], settings)
    account = pod_service_account(spec, settings)
    if settings.canary_percent:
        if not settings.previous_revision:
            raise ConfigError(
                "a Knative canary needs previous_revision (the revision that keeps the rest of the traffic); "
                "`modelfn deploy` reads it from the cluster when it runs for real",
                field="previous_revision",
            )
        digest = hashlib.sha256(json.dumps(revision, sort_keys=True).encode()).hexdigest()[:8]
        revision["metadata"]["name"] = new_revision = f"{settings.name}-{digest}"
        service["spec"]["traffic"] = [
            {"revisionName": settings.previous_revision, "percent": 100 - settings.canary_percent},
            {"revisionName": new_revision, "percent": settings.canary_percent, "tag": "candidate"},
        ]
    documents = [namespace(settings), trust_config_map(settings), *([account] if account else []), service]
    set_namespace(documents, settings)
    return documents


def pod_spec_as_pod(service: dict[str, Any]) -> dict[str, Any]:
    """The revision's PodSpec wrapped in a core Pod, to validate with the Kubernetes schema (none ships for Knative)."""
    spec = {k: v for k, v in service["spec"]["template"]["spec"].items() if k not in KNATIVE_ONLY_FIELDS}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": service["metadata"]["name"]}, "spec": spec}
